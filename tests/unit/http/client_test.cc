// Client tests against a real Server, or against raw loopback sockets that misbehave on purpose.
#include "http/client.h"

#include <stdlib.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>

#include "http/server.h"

namespace das::http {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

asio::awaitable<Response> Echo(Request request) {
  Response response;
  response.status = 201;
  response.content_type = "application/x-echo";
  response.body = std::move(request.body);
  response.headers = {{"X-Method", request.method},
                      {"X-Target", request.target},
                      {"X-Content-Type", request.content_type},
                      {"X-Accept", request.accept},
                      {"X-Peer", request.peer}};
  co_return response;
}

class ClientTest : public ::testing::Test {
 protected:
  // Two threads, so that Sends and connections really run concurrently.
  void SetUp() override {
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }

  void TearDown() override {
    if (client_) client_->Close();
    if (server_) server_->Stop();
    guard_.reset();
    for (auto& thread : threads_) thread.join();
  }

  void StartServer(ServerOptions options = {}, Handler handler = Echo) {
    auto server = Server::Create(io_, std::move(options), std::move(handler));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    server_->Start();
  }

  void MakeClient(uint16_t port, size_t max_connections = 8, std::string tls_ca_file = {}) {
    ClientOptions options;
    options.host = "127.0.0.1";
    options.port = port;
    options.max_connections = max_connections;
    options.tls = !tls_ca_file.empty();
    options.tls_ca_file = std::move(tls_ca_file);
    client_ = Client::Create(io_.get_executor(), options);
  }

  // Runs one Send on the io_context and waits for its result.
  Result<Response> SendNow(Request request, std::chrono::milliseconds timeout = 5s) {
    std::optional<Result<Response>> result;
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          // A named awaitable: GCC 12 may destroy temporaries of a co_await expression twice.
          asio::awaitable<Result<Response>> send = client_->Send(std::move(request), timeout);
          result.emplace(co_await std::move(send));
        },
        asio::use_future)
        .get();
    return std::move(*result);
  }

  // Waits until the server has closed every connection (its idle timeout ran out): an event,
  // not a guess at how long that takes on a loaded machine.
  void WaitServerClosedAll() { ASSERT_TRUE(server_->WaitForConnections(0, 30s)); }

  static Request Get(std::string target) {
    Request request;
    request.method = "GET";
    request.target = std::move(target);
    return request;
  }

  asio::io_context io_{2};
  asio::executor_work_guard<asio::io_context::executor_type> guard_{io_.get_executor()};
  std::vector<std::thread> threads_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Client> client_;
};

std::string Header(const Response& response, const std::string& name) {
  for (const auto& [key, value] : response.headers) {
    if (key == name) return value;
  }
  return "<absent>";
}

TEST_F(ClientTest, RoundTripCarriesMethodTargetContentTypeBodyStatusAndHeaders) {
  StartServer();
  MakeClient(server_->port());
  Request request;
  request.method = "POST";
  request.target = "/ingest?format=json";
  request.content_type = "application/json";
  request.accept = "application/x-protobuf";
  request.body = R"({"rows":[1,2,3]})";

  Result<Response> response = SendNow(request);

  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 201u);
  EXPECT_EQ(response->content_type, "application/x-echo");
  EXPECT_EQ(response->body, R"({"rows":[1,2,3]})");
  EXPECT_EQ(Header(*response, "X-Method"), "POST");
  EXPECT_EQ(Header(*response, "X-Target"), "/ingest?format=json");
  EXPECT_EQ(Header(*response, "X-Content-Type"), "application/json");
  EXPECT_EQ(Header(*response, "X-Accept"), "application/x-protobuf");
  EXPECT_FALSE(response->close);
  EXPECT_EQ(client_->peer(), "127.0.0.1:" + std::to_string(server_->port()));
  EXPECT_EQ(Header(*response, "X-Peer").rfind("127.0.0.1:", 0), 0u) << "the server's Request.peer";
}

TEST_F(ClientTest, SequentialSendsReuseOneConnection) {
  // A hand-written peer that accepts exactly one connection and answers ten requests on it.
  asio::io_context raw_io;
  tcp::acceptor acceptor(raw_io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  auto peer = std::async(std::launch::async, [&acceptor] {
    tcp::socket socket = acceptor.accept();
    std::string pending;
    for (int i = 0; i < 10; ++i) {
      const size_t end = asio::read_until(socket, asio::dynamic_buffer(pending), "\r\n\r\n");
      pending.erase(0, end);
      const std::string body = "answer " + std::to_string(i);
      asio::write(socket, asio::buffer("HTTP/1.1 200 OK\r\nContent-Length: " +
                                       std::to_string(body.size()) + "\r\n\r\n" + body));
    }
  });
  MakeClient(acceptor.local_endpoint().port());

  for (int i = 0; i < 10; ++i) {
    Result<Response> response = SendNow(Get("/n"));
    ASSERT_TRUE(response.ok()) << response.status().ToString();
    EXPECT_EQ(response->body, "answer " + std::to_string(i));
  }
  peer.get();
  // No second connection is waiting to be accepted.
  acceptor.non_blocking(true);
  boost::system::error_code ec;
  acceptor.accept(ec);
  EXPECT_EQ(ec, asio::error::would_block);
}

TEST_F(ClientTest, PeerThatNeverAnswersGivesDeadlineExceeded) {
  // Listens (the kernel completes the handshake) but never accepts or reads, like a SIGSTOPped
  // process.
  asio::io_context raw_io;
  tcp::acceptor silent(raw_io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  MakeClient(silent.local_endpoint().port());

  const auto start = std::chrono::steady_clock::now();
  Result<Response> response = SendNow(Get("/slow"), 300ms);
  const auto elapsed = std::chrono::steady_clock::now() - start;

  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(
      response.status().message(),
      "127.0.0.1:" + std::to_string(silent.local_endpoint().port()) + ": no answer within 300 ms");
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 1500ms);
}

TEST_F(ClientTest, WaitingForABusyPoolIsBoundedByTheDeadline) {
  asio::io_context raw_io;
  tcp::acceptor silent(raw_io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  MakeClient(silent.local_endpoint().port(), /*max_connections=*/1);

  // The first Send holds the only connection; the second waits for it until its deadline.
  auto first = std::async(std::launch::async, [this] { return SendNow(Get("/a"), 1s); });
  std::this_thread::sleep_for(50ms);
  const auto start = std::chrono::steady_clock::now();
  Result<Response> second = SendNow(Get("/b"), 300ms);
  const auto elapsed = std::chrono::steady_clock::now() - start;

  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_LT(elapsed, 1500ms);
  Result<Response> first_response = first.get();
  ASSERT_FALSE(first_response.ok());
  EXPECT_EQ(first_response.status().code(), StatusCode::kDeadlineExceeded)
      << first_response.status().ToString();
}

TEST_F(ClientTest, ConnectionRefusedGivesUnavailable) {
  uint16_t port;
  {
    asio::io_context raw_io;
    tcp::acceptor closed(raw_io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    port = closed.local_endpoint().port();
  }
  MakeClient(port);

  Result<Response> response = SendNow(Get("/"), 2s);

  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(response.status().message(),
            "127.0.0.1:" + std::to_string(port) + ": Connection refused");
}

TEST_F(ClientTest, ConcurrentSendsShareABoundedPoolAndGetTheirOwnAnswers) {
  StartServer();
  MakeClient(server_->port(), /*max_connections=*/4);
  constexpr int kSends = 200;
  std::atomic<int> exact{0};
  std::vector<std::future<void>> done;
  for (int i = 0; i < kSends; ++i) {
    done.push_back(asio::co_spawn(
        asio::make_strand(io_),
        [this, i, &exact]() -> asio::awaitable<void> {
          Request request;
          request.method = "POST";
          request.target = "/echo";
          request.body = "request " + std::to_string(i);
          asio::awaitable<Result<Response>> send = client_->Send(std::move(request), 10s);
          Result<Response> response = co_await std::move(send);
          if (response.ok() && response->body == "request " + std::to_string(i)) ++exact;
        },
        asio::use_future));
  }
  for (auto& future : done) future.get();
  EXPECT_EQ(exact.load(), kSends);
}

TEST_F(ClientTest, StaleKeptAliveConnectionIsRetriedOnAFreshOne) {
  ServerOptions options;
  options.idle_timeout = 50ms;  // the server closes the idle connection between the two Sends
  StartServer(options);
  MakeClient(server_->port());

  ASSERT_TRUE(SendNow(Get("/first")).ok());
  WaitServerClosedAll();
  Result<Response> second = SendNow(Get("/second"));

  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(Header(*second, "X-Target"), "/second");
}

// Regression: with several idle connections all closed by the server, the retry used to take
// the next idle (and just as stale) connection and fail. Now the pool drops its idle
// connections once one is stale and the retry opens a fresh one.
TEST_F(ClientTest, ManyStaleIdleConnectionsCostNoFailure) {
  ServerOptions options;
  options.idle_timeout = 50ms;
  std::atomic<int> calls{0};
  StartServer(options, [&calls](Request request) -> asio::awaitable<Response> {
    ++calls;
    // Slow enough that concurrent Sends each open their own connection.
    asio::steady_timer timer(co_await asio::this_coro::executor, 50ms);
    co_await timer.async_wait(asio::use_awaitable);
    co_return Response{};
  });
  MakeClient(server_->port(), /*max_connections=*/4);
  std::vector<std::future<bool>> first;
  for (int i = 0; i < 4; ++i) {
    first.push_back(asio::co_spawn(
        asio::make_strand(io_),
        [this]() -> asio::awaitable<bool> {
          asio::awaitable<Result<Response>> send = client_->Send(Get("/warm"), 5s);
          Result<Response> response = co_await std::move(send);
          co_return response.ok();
        },
        asio::use_future));
  }
  for (auto& f : first) ASSERT_TRUE(f.get());
  WaitServerClosedAll();  // the server closes all four

  Result<Response> get = SendNow(Get("/after"));
  ASSERT_TRUE(get.ok()) << get.status().ToString();
  EXPECT_EQ(calls.load(), 5);
}

// A POST is never sent twice: one whose kept-alive connection turned out closed fails (it may
// have been applied), and the next one goes out on a fresh connection.
TEST_F(ClientTest, StalePostIsNotResent) {
  ServerOptions options;
  options.idle_timeout = 50ms;
  StartServer(options);
  MakeClient(server_->port());
  Request post;
  post.method = "POST";
  post.target = "/write";
  post.body = "x";
  ASSERT_TRUE(SendNow(post).ok());
  WaitServerClosedAll();

  Result<Response> stale = SendNow(post);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.status().code(), StatusCode::kUnavailable);
  Result<Response> fresh = SendNow(post);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(fresh->body, "x");
}

TEST_F(ClientTest, SendAfterCloseGivesShuttingDown) {
  StartServer();
  MakeClient(server_->port());
  ASSERT_TRUE(SendNow(Get("/")).ok());

  client_->Close();
  Result<Response> response = SendNow(Get("/"));

  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kShuttingDown);
}

// A self-signed certificate for 127.0.0.1 made by the openssl command (its own CA).
class TlsClientTest : public ClientTest {
 protected:
  void SetUp() override {
    ClientTest::SetUp();
    char pattern[] = "/tmp/das-tls-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    for (const char* name : {"server", "stranger"}) {
      const std::string command =
          "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
          "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
          dir_ + "/" + name + "-key.pem -out " + dir_ + "/" + name + "-cert.pem >/dev/null 2>&1";
      ASSERT_EQ(std::system(command.c_str()), 0) << command;
    }
  }
  void TearDown() override {
    ClientTest::TearDown();
    std::filesystem::remove_all(dir_);
  }
  void StartTlsServer(size_t max_connections = 1024) {
    ServerOptions options;
    options.max_connections = max_connections;
    options.tls_cert_file = dir_ + "/server-cert.pem";
    options.tls_key_file = dir_ + "/server-key.pem";
    StartServer(options);
  }
  std::string dir_;
};

TEST_F(TlsClientTest, HttpsRoundTripsKeepTheirConnectionAlive) {
  StartTlsServer();
  MakeClient(server_->port(), 8, dir_ + "/server-cert.pem");
  for (int i = 0; i < 3; ++i) {
    Request request;
    request.method = "POST";
    request.target = "/over-tls";
    request.content_type = "text/plain";
    request.body = "body " + std::to_string(i);
    Result<Response> response = SendNow(request);
    ASSERT_TRUE(response.ok()) << response.status().ToString();
    EXPECT_EQ(response->status, 201u);
    EXPECT_EQ(response->body, "body " + std::to_string(i));
    EXPECT_EQ(Header(*response, "X-Target"), "/over-tls");
  }
  EXPECT_EQ(server_->connections(), 1u);
}

TEST_F(TlsClientTest, AServerTheClientDoesNotTrustIsUnavailable) {
  StartTlsServer();
  MakeClient(server_->port(), 8, dir_ + "/stranger-cert.pem");
  Result<Response> response = SendNow(Get("/"));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(response.status().message().find("TLS handshake failed"), std::string::npos)
      << response.status().message();
}

TEST_F(TlsClientTest, PlainHttpToATlsPortIsToldToUseHttps) {
  StartTlsServer();
  MakeClient(server_->port());
  Result<Response> response = SendNow(Get("/"));
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 400u);
  EXPECT_EQ(response->body, "this port speaks HTTPS (TLS): use https://, not http://\n");
  EXPECT_TRUE(response->close);
}

// Over --max-connections a TLS port closes the connection unanswered (a 503 would take the
// handshake the cap is there to refuse), while the connection it serves goes on.
TEST_F(TlsClientTest, AConnectionOverTheCapIsClosedWithoutAHandshake) {
  StartTlsServer(/*max_connections=*/1);
  MakeClient(server_->port(), 1, dir_ + "/server-cert.pem");
  ASSERT_TRUE(SendNow(Get("/first")).ok());  // its connection stays open, idle in the pool
  ASSERT_EQ(server_->connections(), 1u);
  asio::io_context io;
  tcp::socket extra(io);
  extra.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
  // Far below the server's 30 s handshake deadline: a server that began a handshake instead of
  // closing would leave this read waiting, not ended.
  timeval limit{20, 0};
  ::setsockopt(extra.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  const unsigned char client_hello_start[] = {0x16, 0x03, 0x01};
  boost::system::error_code ec;
  asio::write(extra, asio::buffer(client_hello_start), ec);
  char c;
  const ssize_t n = ::recv(extra.native_handle(), &c, 1, 0);  // not asio: it would poll past
  EXPECT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET)) << n << " " << std::strerror(errno);
  Result<Response> again = SendNow(Get("/second"));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(Header(*again, "X-Target"), "/second");
}

TEST_F(TlsClientTest, ACaFileThatCannotBeReadFailsEverySend) {
  StartTlsServer();
  MakeClient(server_->port(), 8, dir_ + "/missing.pem");
  Result<Response> response = SendNow(Get("/"));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(response.status().message().find("cannot use the TLS CA file " + dir_ + "/missing.pem"),
            std::string::npos)
      << response.status().message();
}

}  // namespace
}  // namespace das::http
