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

 private:
  double sum_ = 0;
  double compensation_ = 0;
};

}  // namespace das
