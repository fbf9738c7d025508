#include "support/tls_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>

#include <gtest/gtest.h>

namespace das::it {

struct TlsConnection::Impl {
  int fd = -1;
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  std::string buffer;  // read and not yet consumed
  ~Impl() {
    if (ssl != nullptr) SSL_free(ssl);
    if (ctx != nullptr) SSL_CTX_free(ctx);
    if (fd >= 0) ::close(fd);
  }
};

namespace {

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  if (e == 0) return "no OpenSSL error";
  char text[256];
  ERR_error_string_n(e, text, sizeof text);
  return text;
}

}  // namespace

TlsConnection::TlsConnection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsConnection::~TlsConnection() = default;

Result<std::unique_ptr<TlsConnection>> TlsConnection::Connect(int port, const std::string& ca_file,
                                                              std::chrono::milliseconds timeout) {
  auto impl = std::make_unique<Impl>();
  impl->fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval limit{static_cast<time_t>(timeout.count() / 1000),
                static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  ::setsockopt(impl->fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ::setsockopt(impl->fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  const int one = 1;
  ::setsockopt(impl->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(impl->fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Unavailable("connect to port " + std::to_string(port) + " failed");
  }
  impl->ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(impl->ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(impl->ctx, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(impl->ctx, ca_file.c_str(), nullptr) != 1) {
    return Unavailable("cannot load the CA file " + ca_file + ": " + OpenSslError());
  }
  impl->ssl = SSL_new(impl->ctx);
  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(impl->ssl), "127.0.0.1");
  SSL_set_fd(impl->ssl, impl->fd);
  if (SSL_connect(impl->ssl) != 1) {
    return Unavailable("TLS handshake with port " + std::to_string(port) +
                       " failed: " + OpenSslError());
  }
  return std::unique_ptr<TlsConnection>(new TlsConnection(std::move(impl)));
}

Result<HttpResponse> TlsConnection::RoundTrip(const HttpRequest& request) {
  std::string wire = request.method + " " + request.target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const auto& [name, value] : request.headers) wire += name + ": " + value + "\r\n";
  wire += "Content-Length: " + std::to_string(request.body.size()) +
          "\r\nConnection: keep-alive\r\n\r\n" + request.body;
  if (SSL_write(impl_->ssl, wire.data(), static_cast<int>(wire.size())) !=
      static_cast<int>(wire.size())) {
    return Unavailable("TLS write failed: " + OpenSslError());
  }
  std::string& in = impl_->buffer;
  const auto read_more = [this, &in]() {
    char chunk[16384];
    const int n = SSL_read(impl_->ssl, chunk, sizeof chunk);
    if (n <= 0) return false;
    in.append(chunk, static_cast<size_t>(n));
    return true;
  };
  size_t head_end;
  while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
    if (!read_more()) return Unavailable("the connection ended before an answer's head");
  }
  HttpResponse response;
  const std::string head = in.substr(0, head_end);
  if (head.size() < 12 || head.compare(0, 9, "HTTP/1.1 ") != 0) {
    return Internal("not an HTTP/1.1 answer: " + head.substr(0, 40));
  }
  response.status = std::atoi(head.c_str() + 9);
  size_t length = 0;
  for (size_t line = head.find("\r\n"); line != std::string::npos;) {
    const size_t next = head.find("\r\n", line + 2);
    const std::string field =
        head.substr(line + 2, next == std::string::npos ? std::string::npos : next - line - 2);
    const size_t colon = field.find(':');
    if (colon != std::string::npos) {
      std::string name = field.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string value = field.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      if (name == "content-length") length = std::strtoull(value.c_str(), nullptr, 10);
      response.headers.emplace_back(name, value);
    }
    line = next;
  }
  while (in.size() < head_end + 4 + length) {
    if (!read_more()) return Unavailable("the connection ended inside an answer's body");
  }
  response.body = in.substr(head_end + 4, length);
  in.erase(0, head_end + 4 + length);
  return response;
}

testing::AssertionResult MakeTestCertificate(const std::string& dir, const std::string& name) {
  const std::string command =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
      "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout '" +
      dir + "/" + name + "-key.pem' -out '" + dir + "/" + name + "-cert.pem' >'" + dir + "/" +
      name + "-openssl.log' 2>&1";
  const int rc = std::system(command.c_str());
  if (rc != 0) {
    return testing::AssertionFailure() << "openssl req failed (" << rc << "): " << command;
  }
  return testing::AssertionSuccess();
}

}  // namespace das::it
