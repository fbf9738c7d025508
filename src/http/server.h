// An HTTP/1.1 server: accepts connections, reads each request within a deadline and a body
// limit, passes it to a Handler and writes the answer, with keep-alive.
//
// Requests whose Content-Length exceeds the body limit are answered 413 from the header, before
// the body is read, and the connection is closed. Runs on the io_context it is given; the
// caller runs that context on as many threads as it likes (each connection is a strand).
// Lifecycle: Start() once; Stop() stops accepting, closes every connection and waits (bounded)
// until every connection's coroutine and the accept loop have ended, so a request handler runs
// no more once it returned true. Call Stop() from a thread that does not run the io_context
// (it needs the io_context to make progress); the destructor closes without waiting.
// Thread-safety: Start/Stop from one thread; the handler may be called concurrently.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "http/message.h"

namespace boost::asio {
class io_context;
}

namespace das::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: pick a free port (see Server::port())
  size_t body_limit = 16 * 1024 * 1024;
  // Largest request head (request line and headers) in bytes; a longer one is answered 431
  // and the connection closed.
  size_t header_limit = 16 * 1024;
  // Connections served at once; one more is answered 503 and closed at once, unread.
  size_t max_connections = 1024;
  // Deadline for reading one whole request (header and body), and for writing a response.
  std::chrono::milliseconds io_timeout{30'000};
  // An idle keep-alive connection is closed after this long.
  std::chrono::milliseconds idle_timeout{60'000};
  // Renders the 413 answer from the request's header (its body is empty: it is never read),
  // so that it can use the application's error format. Unset: a text/plain 413.
  std::function<Response(const Request&)> too_large;
  // Both set: the port speaks HTTPS only (TLS 1.2 or later; PEM files: the certificate chain,
  // and its private key, unencrypted). A plain-HTTP request is answered 400 in plain text.
  std::string tls_cert_file;
  std::string tls_key_file;
};

class Server {
 public:
  // Binds and listens; fails with kUnavailable when the address cannot be bound, and with
  // kInvalidArgument naming the file when the TLS certificate or key cannot be used.
  static Result<std::unique_ptr<Server>> Create(boost::asio::io_context& io, ServerOptions options,
                                                Handler handler);
  virtual ~Server() = default;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound port (useful with port 0).
  virtual uint16_t port() const = 0;
  // Connections open now (accepted and not yet closed).
  virtual size_t connections() const = 0;
  // Waits up to `wait` until at most `at_most` connections are open (e.g. after idle ones were
  // closed by the idle timeout, or by their clients); returns whether so few are.
  virtual bool WaitForConnections(size_t at_most, std::chrono::milliseconds wait) const = 0;
  // Starts accepting. Returns at once; the work runs on the io_context.
  virtual void Start() = 0;
  // Stops accepting, closes every connection and waits up to `wait` for their coroutines to
  // end. Returns whether they all did. Safe to call more than once.
  virtual bool Stop(std::chrono::milliseconds wait = std::chrono::seconds(5)) = 0;

 protected:
  Server() = default;
};

}  // namespace das::http
