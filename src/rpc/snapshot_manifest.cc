#include "rpc/snapshot_manifest.h"

namespace das::rpc {
namespace {

constexpr size_t kManifestBytes = 16;

void PutLittleEndian(uint64_t value, char* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(value >> (8 * i));
}

uint64_t GetLittleEndian(const char* in) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i)
    value |= static_cast<uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  return value;
}

}  // namespace

std::string EncodeManifest(const SnapshotManifest& manifest) {
  std::string out(kManifestBytes, '\0');
  PutLittleEndian(manifest.shard, out.data());
  PutLittleEndian(manifest.index, out.data() + 8);
  return out;
}

Result<SnapshotManifest> DecodeManifest(std::string_view bytes) {
  if (bytes.size() != kManifestBytes) {
    return Malformed("shard snapshot manifest of " + std::to_string(bytes.size()) + " bytes, not " +
                     std::to_string(kManifestBytes));
  }
  return SnapshotManifest{GetLittleEndian(bytes.data()), GetLittleEndian(bytes.data() + 8)};
}

}  // namespace das::rpc
