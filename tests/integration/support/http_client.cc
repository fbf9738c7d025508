#include "support/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

namespace das::it {
namespace {

using Clock = std::chrono::steady_clock;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Trim(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return std::string(s.substr(b, e - b));
}

int RemainingMs(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

bool HasHeader(const HttpRequest& r, std::string_view name) {
  return std::any_of(r.headers.begin(), r.headers.end(),
                     [&](const auto& h) { return Lower(h.first) == Lower(name); });
}

std::string SerializeHead(const HttpRequest& r, int port, bool keep_alive) {
  std::string head = r.method + " " + r.target + " HTTP/1.1\r\n";
  if (!HasHeader(r, "host")) head += "Host: 127.0.0.1:" + std::to_string(port) + "\r\n";
  for (const auto& [name, value] : r.headers) head += name + ": " + value + "\r\n";
  if (!HasHeader(r, "content-length") &&
      (r.declared_length || !r.body.empty() || r.method == "POST" || r.method == "PUT")) {
    head += "Content-Length: " + std::to_string(r.declared_length.value_or(r.body.size())) + "\r\n";
  }
  if (!HasHeader(r, "connection")) {
    head += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  }
  return head + "\r\n";
}

}  // namespace

std::string HttpResponse::Header(std::string_view name) const {
  const std::string lower = Lower(name);
  for (const auto& [n, v] : headers) {
    if (n == lower) return v;
  }
  return "";
}

std::string HttpResponse::MediaType() const {
  std::string type = Header("content-type");
  type = type.substr(0, type.find(';'));
  return Lower(Trim(type));
}

Result<std::unique_ptr<HttpConnection>> HttpConnection::Connect(int port,
                                                                std::chrono::milliseconds timeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Internal(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  if (rc < 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (rc == 0) {
      ::close(fd);
      return DeadlineExceeded("connect to port " + std::to_string(port) + " timed out");
    }
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    errno = err;
    rc = err == 0 ? 0 : -1;
  }
  if (rc < 0) {
    const std::string what = std::strerror(errno);
    ::close(fd);
    return Unavailable("connect to port " + std::to_string(port) + ": " + what);
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return std::make_unique<HttpConnection>(fd, port, timeout);
}

HttpConnection::~HttpConnection() { ::close(fd_); }

Status HttpConnection::SendAll(std::string_view data, Clock::time_point deadline) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, RemainingMs(deadline)) == 0) return DeadlineExceeded("send timed out");
      continue;
    }
    return Unavailable(std::string("send: ") + std::strerror(errno));
  }
  return Status::Ok();
}

Result<bool> HttpConnection::ReadMore(Clock::time_point deadline) {
  char chunk[65536];
  while (true) {
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n > 0) {
      buffer_.append(chunk, static_cast<size_t>(n));
      return true;
    }
    if (n == 0) {
      closed_ = true;
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, RemainingMs(deadline)) == 0) {
        return DeadlineExceeded("no complete answer from port " + std::to_string(port_) +
                                " within " + std::to_string(timeout_.count()) + " ms");
      }
      continue;
    }
    closed_ = true;
    return Unavailable(std::string("recv: ") + std::strerror(errno));
  }
}

Result<HttpResponse> HttpConnection::ReadResponse(Clock::time_point deadline) {
  size_t head_end;
  while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    ASSIGN_OR_RETURN(bool more, ReadMore(deadline));
    if (!more) return Unavailable("connection closed before a complete answer head");
  }
  HttpResponse response;
  const std::string head = buffer_.substr(0, head_end);
  buffer_.erase(0, head_end + 4);
  size_t line_end = head.find("\r\n");
  const std::string status_line = head.substr(0, line_end);
  if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12) {
    return Internal("bad status line: " + status_line);
  }
  response.status = std::stoi(status_line.substr(9, 3));
  while (line_end != std::string::npos) {
    const size_t next = head.find("\r\n", line_end + 2);
    const std::string line = head.substr(line_end + 2, next - line_end - 2);
    line_end = next;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    response.headers.emplace_back(Lower(Trim(line.substr(0, colon))), Trim(line.substr(colon + 1)));
  }
  if (Lower(response.Header("connection")) == "close") closed_ = true;
  if (response.status / 100 == 1 || response.status == 204 || response.status == 304) {
    return response;
  }
  if (Lower(response.Header("transfer-encoding")).find("chunked") != std::string::npos) {
    while (true) {
      size_t eol;
      while ((eol = buffer_.find("\r\n")) == std::string::npos) {
        ASSIGN_OR_RETURN(bool more, ReadMore(deadline));
        if (!more) return Unavailable("connection closed inside a chunked body");
      }
      const size_t size = std::stoul(buffer_.substr(0, eol), nullptr, 16);
      while (buffer_.size() < eol + 2 + size + 2) {
        ASSIGN_OR_RETURN(bool more, ReadMore(deadline));
        if (!more) return Unavailable("connection closed inside a chunked body");
      }
      response.body.append(buffer_, eol + 2, size);
      buffer_.erase(0, eol + 2 + size + 2);  // trailers are not supported (nobody sends them)
      if (size == 0) return response;
    }
  }
  const std::string length = response.Header("content-length");
  if (!length.empty()) {
    const size_t n = std::stoul(length);
    while (buffer_.size() < n) {
      ASSIGN_OR_RETURN(bool more, ReadMore(deadline));
      if (!more) return Unavailable("connection closed inside the body");
    }
    response.body = buffer_.substr(0, n);
    buffer_.erase(0, n);
    return response;
  }
  while (true) {  // no length: the body runs to the end of the connection
    ASSIGN_OR_RETURN(bool more, ReadMore(deadline));
    if (!more) break;
  }
  response.body = std::move(buffer_);
  buffer_.clear();
  return response;
}

Result<HttpResponse> HttpConnection::RoundTrip(const HttpRequest& request, bool keep_alive) {
  if (closed_) return Unavailable("connection already closed");
  const auto deadline = Clock::now() + timeout_;
  const std::string head = SerializeHead(request, port_, keep_alive);
  // A server may answer (413) and close before it reads the body: a failed send is then not the
  // end, the answer may already be waiting.
  Status sent = SendAll(head, deadline);
  if (sent.ok() && request.send_body) sent = SendAll(request.body, deadline);
  Result<HttpResponse> response = ReadResponse(deadline);
  if (!response.ok() && !sent.ok()) return sent;
  return response;
}

Result<HttpResponse> HttpDo(int port, const HttpRequest& request,
                            std::chrono::milliseconds timeout) {
  ASSIGN_OR_RETURN(std::unique_ptr<HttpConnection> connection,
                   HttpConnection::Connect(port, timeout));
  return connection->RoundTrip(request, /*keep_alive=*/false);
}

Result<HttpResponse> HttpGet(int port, const std::string& target,
                             std::vector<std::pair<std::string, std::string>> headers,
                             std::chrono::milliseconds timeout) {
  HttpRequest request;
  request.target = target;
  request.headers = std::move(headers);
  return HttpDo(port, request, timeout);
}

Result<HttpResponse> HttpPost(int port, const std::string& target, std::string body,
                              const std::string& content_type, std::chrono::milliseconds timeout) {
  HttpRequest request;
  request.method = "POST";
  request.target = target;
  if (!content_type.empty()) request.headers.emplace_back("Content-Type", content_type);
  request.body = std::move(body);
  return HttpDo(port, request, timeout);
}

}  // namespace das::it
