// A small blocking HTTP/1.1 client over POSIX sockets, for black-box tests of the binaries.
//
// It sends exactly the bytes a test asks for (including a Content-Length that lies about the
// body, or a head without its body) and returns what the server answered. Failures to connect,
// timeouts and resets are values (a non-OK das::Status), never exceptions.
// Thread-safety: HttpDo() is safe from any thread; an HttpConnection is used by one thread.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace das::it {

struct HttpRequest {
  std::string method = "GET";
  std::string target = "/";
  // Sent as given. Host, Content-Length (for a body or declared_length) and Connection are added
  // unless the test sets them.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When set, Content-Length announces this many bytes whatever the body's size.
  std::optional<size_t> declared_length;
  // False: send the head only (with its Content-Length), then read the answer; for limits that
  // the server must enforce before it reads a body.
  bool send_body = true;
};

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;

  // The first value of header `name` (any case), or "" when absent.
  std::string Header(std::string_view name) const;
  // The media type of Content-Type, lower case, without parameters ("application/json").
  std::string MediaType() const;
};

// One connection, which can carry several requests (keep-alive).
class HttpConnection {
 public:
  // Connects to 127.0.0.1:`port`. UNAVAILABLE when refused.
  static Result<std::unique_ptr<HttpConnection>> Connect(int port,
                                                         std::chrono::milliseconds timeout);
  HttpConnection(int fd, int port, std::chrono::milliseconds timeout)
      : fd_(fd), port_(port), timeout_(timeout) {}
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;
  ~HttpConnection();

  // Sends `request` and reads one answer within the timeout. With keep_alive, asks the server to
  // keep the connection open for the next request.
  Result<HttpResponse> RoundTrip(const HttpRequest& request, bool keep_alive);
  // True when the server said Connection: close or closed the socket.
  bool closed() const { return closed_; }

 private:
  Status SendAll(std::string_view data, std::chrono::steady_clock::time_point deadline);
  // Reads more bytes into buffer_; returns false on EOF.
  Result<bool> ReadMore(std::chrono::steady_clock::time_point deadline);
  Result<HttpResponse> ReadResponse(std::chrono::steady_clock::time_point deadline);

  int fd_;
  int port_;
  std::chrono::milliseconds timeout_;
  std::string buffer_;  // received and not yet consumed
  bool closed_ = false;
};

// One request on a fresh connection (Connection: close).
Result<HttpResponse> HttpDo(int port, const HttpRequest& request,
                            std::chrono::milliseconds timeout = std::chrono::seconds(15));

// Shorthands.
Result<HttpResponse> HttpGet(int port, const std::string& target,
                             std::vector<std::pair<std::string, std::string>> headers = {},
                             std::chrono::milliseconds timeout = std::chrono::seconds(15));
Result<HttpResponse> HttpPost(int port, const std::string& target, std::string body,
                              const std::string& content_type,
                              std::chrono::milliseconds timeout = std::chrono::seconds(15));

}  // namespace das::it
