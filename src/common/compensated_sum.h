// Neumaier's variant of Kahan summation: exact to one final rounding for far more terms than a
// naive sum, including when a term is larger than the running total (where plain Kahan fails).
// Thread-safety: a value type; not synchronized.
#pragma once

#include <cmath>

namespace das {

class CompensatedSum {
 public:
  void Add(double x) {
    double t = sum_ + x;
    if (std::fabs(sum_) >= std::fabs(x)) {
      compensation_ += (sum_ - t) + x;
    } else {
      compensation_ += (x - t) + sum_;
    }
    sum_ = t;
  }
  double Value() const { return sum_ + compensation_; }
  // What Value() lost to rounding (exact, by Knuth's TwoSum): Value() + Residual() is the sum
  // to twice a double's precision, so that another CompensatedSum can add both and lose nothing.
  double Residual() const {
    const double v = sum_ + compensation_;
    const double b = v - sum_;
    return (sum_ - (v - b)) + (compensation_ - b);
  }

 private:
  double sum_ = 0;
  double compensation_ = 0;
};

}  // namespace das
