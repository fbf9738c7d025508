#include "common/fingerprint.h"

#include <xxhash.h>

#include <bit>

namespace das {
namespace {

template <typename T>
void AppendLittleEndian(std::string& out, T value) {
  for (size_t i = 0; i < sizeof(T); ++i) {
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
}

}  // namespace

void Fingerprinter::Add(std::string_view partition_key, double value) {
  AppendLittleEndian(buffer_, static_cast<uint32_t>(partition_key.size()));
  buffer_.append(partition_key);
  AppendLittleEndian(buffer_, std::bit_cast<uint64_t>(value));
}

uint64_t Fingerprinter::Finish() const { return XXH3_64bits(buffer_.data(), buffer_.size()); }

}  // namespace das
