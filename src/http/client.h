// An HTTP/1.1 client for one peer (host:port) with a pool of kept-alive connections.
//
// Send() borrows an idle connection or opens a new one (at most max_connections at once; more
// callers wait for one), writes the request and reads the answer within the deadline. On any
// error or deadline the connection is closed, never reused. Errors are values: kUnavailable
// (connect/IO failure), kDeadlineExceeded (no full answer in time).
// Thread-safety: Send() may be called from any thread and coroutine concurrently.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/status.h"
#include "http/message.h"

namespace das::http {

struct ClientOptions {
  std::string host;
  uint16_t port = 0;
  size_t max_connections = 8;
  size_t body_limit = 64 * 1024 * 1024;  // of an answer
  // HTTPS: the server's certificate must verify against `tls_ca_file` (PEM; empty: the
  // system's CAs) and name `host`. A CA file that cannot be read fails every Send.
  bool tls = false;
  std::string tls_ca_file = {};
};

class Client {
 public:
  static std::unique_ptr<Client> Create(boost::asio::any_io_executor executor,
                                        ClientOptions options);
  virtual ~Client() = default;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // "host:port"
  virtual const std::string& peer() const = 0;

  // Sends `request` (method, target, content_type, body) and returns the answer, whatever its
  // status code. `timeout` bounds the whole exchange including waiting for a connection.
  virtual boost::asio::awaitable<Result<Response>> Send(Request request,
                                                        std::chrono::milliseconds timeout) = 0;

  // Closes idle connections and fails future Sends with kShuttingDown.
  virtual void Close() = 0;

 protected:
  Client() = default;
};

}  // namespace das::http
