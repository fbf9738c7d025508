// ControlNode: the control node's parts wired together: the API tokens (read again on
// SIGHUP), the metrics registry, the public API (ControlService: the cluster it forms or
// loads, the witness when replicated) and its HTTP server. The binary's main() reads flags
// and runs one; a test runs one in process.
// Thread-safety: one thread drives a node: Create, Listen, then Start or RunUntilSignal, then
// Stop (or the destructor).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "control/service.h"
#include "http/server.h"

namespace das::control {

struct ControlNodeOptions {
  // Its `tokens` and `metrics` are the node's own (set by Create from the two fields below).
  ControlOptions service;
  // Host, port (0: a free one), limits and TLS files of the public API; Create sets the 413
  // answer (too_large) from the body limit.
  http::ServerOptions server;
  unsigned threads = 2;          // serving HTTP
  std::string auth_tokens_file;  // empty: the API is open
  bool metrics = true;           // GET /metrics
  // Set: called with the outcome each time SIGHUP made the node read the token file again, on
  // one of its threads, after the new tokens are in use (a test waits on it).
  std::function<void(const Status&)> tokens_reread;
};

class ControlNode {
 public:
  // Reads the token file and creates the service (which forms or loads the cluster). Any
  // failure is the configuration's: a bad token file, a data directory or cluster state that
  // does not match the options (the binary exits 2).
  static Result<std::unique_ptr<ControlNode>> Create(ControlNodeOptions options);
  ~ControlNode();
  ControlNode(const ControlNode&) = delete;
  ControlNode& operator=(const ControlNode&) = delete;

  // Listens on the public port (nothing served until Start or RunUntilSignal).
  // kInvalidArgument: a TLS file cannot be used (the binary exits 2); any other code: the
  // port cannot be listened on (exits 1).
  Status Listen();
  // REQUIRES: Listen() succeeded.
  uint16_t port() const;
  // Serves on options.threads threads until SIGINT or SIGTERM, then stops.
  void RunUntilSignal();
  // Serves on options.threads threads of their own; Stop() ends it.
  void Start();
  // Fails the inserts still queued, gives those in flight and the open connections 5 s each,
  // then stops serving. Safe to call more than once.
  void Stop();

  struct Parts;  // defined in node.cc

 private:
  explicit ControlNode(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace das::control
