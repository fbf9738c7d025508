// HTTPS for the tests, written on OpenSSL directly (not on the system's own client code): one
// connection that verifies the server's certificate against a CA file and the name 127.0.0.1,
// then carries any number of requests (keep-alive). Answers are framed by Content-Length,
// which the server always sends.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "common/status.h"
#include "support/http_client.h"

namespace das::it {

class TlsConnection {
 public:
  // Connects to 127.0.0.1:`port` and completes the handshake; UNAVAILABLE saying why not
  // (refused, or the certificate does not verify).
  static Result<std::unique_ptr<TlsConnection>> Connect(int port, const std::string& ca_file,
                                                        std::chrono::milliseconds timeout);
  ~TlsConnection();
  TlsConnection(const TlsConnection&) = delete;
  TlsConnection& operator=(const TlsConnection&) = delete;

  // Sends `request` (Connection: keep-alive) and reads one answer.
  Result<HttpResponse> RoundTrip(const HttpRequest& request);

  struct Impl;

 private:
  explicit TlsConnection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Makes a self-signed certificate for 127.0.0.1 and its key with the openssl command
// (`dir`/cert.pem, `dir`/key.pem); the certificate is its own CA.
testing::AssertionResult MakeTestCertificate(const std::string& dir, const std::string& name);

}  // namespace das::it
