#include "worker/node_identity.h"

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "common/durable_file.h"

namespace das::worker {

Result<uint64_t> KeptNodeId(const std::string& data_dir) {
  const std::string path = (std::filesystem::path(data_dir) / "node_id").string();
  ASSIGN_OR_RETURN(std::optional<std::string> kept, ReadFileIfExists(path));
  if (!kept) return uint64_t{0};
  std::string text = *kept;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  char* end = nullptr;
  errno = 0;
  const unsigned long long kept_id = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || kept_id == 0) {
    return Unavailable(path + " does not hold a node id ('" + text.substr(0, 32) +
                       "'); it is not this program's, or it was damaged");
  }
  return static_cast<uint64_t>(kept_id);
}

Status ClaimNodeId(const std::string& data_dir, uint64_t id) {
  std::error_code error;
  std::filesystem::create_directories(data_dir, error);
  if (error) return Unavailable("cannot create " + data_dir + ": " + error.message());
  ASSIGN_OR_RETURN(uint64_t kept_id, KeptNodeId(data_dir));
  if (kept_id == 0) {
    return WriteFileDurably((std::filesystem::path(data_dir) / "node_id").string(),
                            std::to_string(id) + "\n");
  }
  if (kept_id != id) {
    return InvalidArgument("the data directory " + data_dir + " belongs to worker " +
                           std::to_string(kept_id) + ", not " + std::to_string(id) +
                           ": start it with --id " + std::to_string(kept_id) + ", or give worker " +
                           std::to_string(id) + " a data directory of its own");
  }
  return Status::Ok();
}

}  // namespace das::worker
