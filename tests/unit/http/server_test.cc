// Server tests over a raw loopback socket, so that each test controls the exact bytes sent.
#include "http/server.h"

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace das::http {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

struct Answer {
  std::string head;  // status line and headers
  std::string body;
};

// Reads one HTTP answer framed by Content-Length. `pending` carries bytes read past it.
Answer ReadAnswer(tcp::socket& socket, std::string& pending) {
  const size_t head_end = asio::read_until(socket, asio::dynamic_buffer(pending), "\r\n\r\n");
  Answer answer{pending.substr(0, head_end), ""};
  pending.erase(0, head_end);
  const size_t at = answer.head.find("Content-Length: ");
  const size_t length = at == std::string::npos ? 0 : std::stoul(answer.head.substr(at + 16));
  if (pending.size() < length) {
    asio::read(socket, asio::dynamic_buffer(pending),
               asio::transfer_exactly(length - pending.size()));
  }
  answer.body = pending.substr(0, length);
  pending.erase(0, length);
  return answer;
}

// True when the peer has closed the connection (a read ends with EOF or a reset).
bool PeerClosed(tcp::socket& socket) {
  char byte;
  boost::system::error_code ec;
  socket.read_some(asio::buffer(&byte, 1), ec);
  return ec == asio::error::eof || ec == asio::error::connection_reset;
}

asio::awaitable<Response> Echo(Request request) {
  Response response;
  response.content_type = "text/plain";
  response.body = request.method + " " + request.target + " " + request.body;
  co_return response;
}

class ServerTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions options, Handler handler) {
    auto server = Server::Create(io_, std::move(options), std::move(handler));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    server_->Start();
    run_returned_ = std::async(std::launch::async, [this] { io_.run(); });
  }

  void TearDown() override {
    if (server_) server_->Stop();
    if (run_returned_.valid() && run_returned_.wait_for(5s) != std::future_status::ready) {
      io_.stop();
      ADD_FAILURE() << "io_context.run() did not return after Stop()";
    }
  }

  tcp::socket Connect() {
    tcp::socket socket(raw_io_);
    socket.connect(tcp::endpoint(asio::ip::address_v4::loopback(), server_->port()));
    return socket;
  }

  asio::io_context io_;
  asio::io_context raw_io_;  // for the blocking test sockets; never run
  std::unique_ptr<Server> server_;
  std::future<void> run_returned_;
};

TEST_F(ServerTest, KeepAliveAnswersSequentialAndPipelinedRequestsOnOneConnection) {
  StartServer(ServerOptions{}, Echo);
  tcp::socket socket = Connect();
  std::string pending;

  asio::write(socket, asio::buffer(std::string("GET /one HTTP/1.1\r\nHost: x\r\n\r\n")));
  Answer first = ReadAnswer(socket, pending);
  EXPECT_EQ(first.head.substr(0, 15), "HTTP/1.1 200 OK");
  EXPECT_EQ(first.body, "GET /one ");

  asio::write(socket, asio::buffer(std::string("POST /two HTTP/1.1\r\nHost: x\r\n"
                                               "Content-Length: 3\r\n\r\nabc"
                                               "GET /three HTTP/1.1\r\nHost: x\r\n\r\n")));
  EXPECT_EQ(ReadAnswer(socket, pending).body, "POST /two abc");
  EXPECT_EQ(ReadAnswer(socket, pending).body, "GET /three ");
}

TEST_F(ServerTest, ContentLengthOverLimitIsAnswered413BeforeTheBodyIsSent) {
  std::atomic<int> calls{0};
  StartServer(ServerOptions{}, [&calls](Request request) -> asio::awaitable<Response> {
    ++calls;
    co_return Response{};
  });
  tcp::socket socket = Connect();
  std::string pending;

  asio::write(socket, asio::buffer(std::string("POST /ingest HTTP/1.1\r\nHost: x\r\n"
                                               "Content-Length: 20000000\r\n\r\n")));
  Answer answer = ReadAnswer(socket, pending);
  EXPECT_EQ(answer.head.substr(0, 12), "HTTP/1.1 413");
  EXPECT_NE(answer.head.find("Connection: close"), std::string::npos) << answer.head;
  EXPECT_NE(answer.head.find("Content-Type: text/plain"), std::string::npos) << answer.head;
  EXPECT_TRUE(PeerClosed(socket));
  EXPECT_EQ(calls.load(), 0);
}

// A client that sends its whole body before reading (no Expect: 100-continue) must still read
// the 413: the server drains the body instead of resetting the connection under it. The
// answer is the application's (ServerOptions::too_large), rendered from the header.
TEST_F(ServerTest, BodySentInFullOverTheLimitStillGetsTheApplications413) {
  ServerOptions options;
  options.body_limit = 1024;
  options.too_large = [](const Request& header) {
    Response r;
    r.status = 413;
    r.content_type = "application/json";
    r.body = "{\"target\":\"" + header.target + "\"}";
    return r;
  };
  StartServer(options, Echo);
  tcp::socket socket = Connect();
  const std::string body(4 * 1024 * 1024, 'x');
  const std::string request =
      "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  boost::system::error_code ec;
  asio::write(socket, asio::buffer(request), ec);
  EXPECT_FALSE(ec) << "the server reset the connection while the body was sent: " << ec.message();
  std::string pending;
  Answer answer = ReadAnswer(socket, pending);
  EXPECT_EQ(answer.head.substr(0, 12), "HTTP/1.1 413");
  EXPECT_NE(answer.head.find("Content-Type: application/json"), std::string::npos) << answer.head;
  EXPECT_EQ(answer.body, "{\"target\":\"/big\"}");
}

TEST_F(ServerTest, ChunkedBodyOverLimitIsAnswered413) {
  ServerOptions options;
  options.body_limit = 1024;
  StartServer(options, Echo);
  tcp::socket socket = Connect();
  std::string pending;

  asio::write(socket, asio::buffer("POST /ingest HTTP/1.1\r\nHost: x\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n7d0\r\n" +
                                   std::string(2000, 'a') + "\r\n0\r\n\r\n"));
  EXPECT_EQ(ReadAnswer(socket, pending).head.substr(0, 12), "HTTP/1.1 413");
}

TEST_F(ServerTest, BodyAtTheLimitIsAccepted) {
  ServerOptions options;
  options.body_limit = 4;
  StartServer(options, Echo);
  tcp::socket socket = Connect();
  std::string pending;

  asio::write(socket, asio::buffer(std::string("PUT /x HTTP/1.1\r\nHost: x\r\n"
                                               "Content-Length: 4\r\n\r\nabcd")));
  Answer answer = ReadAnswer(socket, pending);
  EXPECT_EQ(answer.head.substr(0, 12), "HTTP/1.1 200");
  EXPECT_EQ(answer.body, "PUT /x abcd");
}

TEST_F(ServerTest, MalformedRequestIsAnswered400AndClosed) {
  StartServer(ServerOptions{}, Echo);
  tcp::socket socket = Connect();
  std::string pending;

  asio::write(socket, asio::buffer(std::string("GET /x HTTP/1.1\r\nBad Header\r\n\r\n")));
  EXPECT_EQ(ReadAnswer(socket, pending).head.substr(0, 12), "HTTP/1.1 400");
  EXPECT_TRUE(PeerClosed(socket));
}

TEST_F(ServerTest, HeadOverTheHeaderLimitIsAnswered431AndClosed) {
  ServerOptions options;
  options.header_limit = 1024;
  StartServer(options, Echo);
  {
    tcp::socket socket = Connect();
    std::string pending;
    const std::string head =
        "GET /x HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n";
    asio::write(socket, asio::buffer(head));
    Answer answer = ReadAnswer(socket, pending);
    EXPECT_EQ(answer.head.substr(0, 12), "HTTP/1.1 431") << answer.head;
    EXPECT_EQ(answer.body, "request header fields too large\n");
    EXPECT_TRUE(PeerClosed(socket));
  }
  // A head within the limit is served.
  tcp::socket socket = Connect();
  std::string pending;
  asio::write(
      socket,
      asio::buffer("GET /y HTTP/1.1\r\nHost: x\r\nX-Small: " + std::string(500, 'b') + "\r\n\r\n"));
  EXPECT_EQ(ReadAnswer(socket, pending).body, "GET /y ");
}

TEST_F(ServerTest, AConnectionOverTheCapIsAnswered503AndTheCapFreesWithAClose) {
  ServerOptions options;
  options.max_connections = 2;
  StartServer(options, Echo);
  std::string pending;
  // Two connections, each known to be served (answered) before the next is opened.
  tcp::socket first = Connect();
  asio::write(first, asio::buffer(std::string("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")));
  EXPECT_EQ(ReadAnswer(first, pending).body, "GET /1 ");
  tcp::socket second = Connect();
  asio::write(second, asio::buffer(std::string("GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")));
  EXPECT_EQ(ReadAnswer(second, pending).body, "GET /2 ");
  ASSERT_EQ(server_->connections(), 2u);

  tcp::socket third = Connect();
  Answer refused = ReadAnswer(third, pending);  // sent unasked: the request is never read
  EXPECT_EQ(refused.head.substr(0, 12), "HTTP/1.1 503") << refused.head;
  EXPECT_EQ(refused.body, "too many connections\n");
  EXPECT_TRUE(PeerClosed(third));
  EXPECT_EQ(server_->connections(), 2u);

  // The open ones are still served; once one closes, a new connection is.
  asio::write(first, asio::buffer(std::string("GET /1b HTTP/1.1\r\nHost: x\r\n\r\n")));
  EXPECT_EQ(ReadAnswer(first, pending).body, "GET /1b ");
  first.close();
  // The server sees the close when its read of the next request ends.
  ASSERT_TRUE(server_->WaitForConnections(1, 30s));
  tcp::socket fourth = Connect();
  asio::write(fourth, asio::buffer(std::string("GET /4 HTTP/1.1\r\nHost: x\r\n\r\n")));
  EXPECT_EQ(ReadAnswer(fourth, pending).body, "GET /4 ");
}

TEST_F(ServerTest, ThrowingHandlerIsAnswered500) {
  StartServer(ServerOptions{}, [](Request request) -> asio::awaitable<Response> {
    throw std::runtime_error("boom");
    co_return Response{};
  });
  tcp::socket socket = Connect();
  std::string pending;

  asio::write(socket, asio::buffer(std::string("GET /x HTTP/1.1\r\nHost: x\r\n\r\n")));
  EXPECT_EQ(ReadAnswer(socket, pending).head.substr(0, 12), "HTTP/1.1 500");
}

TEST_F(ServerTest, ResponseCloseEndsTheConnection) {
  StartServer(ServerOptions{}, [](Request request) -> asio::awaitable<Response> {
    Response response;
    response.close = true;
    co_return response;
  });
  tcp::socket socket = Connect();
  std::string pending;

  asio::write(socket, asio::buffer(std::string("GET /x HTTP/1.1\r\nHost: x\r\n\r\n")));
  EXPECT_NE(ReadAnswer(socket, pending).head.find("Connection: close"), std::string::npos);
  EXPECT_TRUE(PeerClosed(socket));
}

TEST_F(ServerTest, StopClosesOpenConnectionsAndLetsRunReturn) {
  StartServer(ServerOptions{}, Echo);
  std::vector<tcp::socket> sockets;
  for (int i = 0; i < 3; ++i) {
    sockets.push_back(Connect());
    std::string pending;
    asio::write(sockets.back(), asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
    ASSERT_EQ(ReadAnswer(sockets.back(), pending).head.substr(0, 12), "HTTP/1.1 200");
  }

  server_->Stop();
  server_->Stop();  // a second call is harmless

  ASSERT_EQ(run_returned_.wait_for(5s), std::future_status::ready);
  for (auto& socket : sockets) EXPECT_TRUE(PeerClosed(socket));
}

// Every header reaches the handler as sent; Header() finds one whatever its case.
TEST_F(ServerTest, RequestCarriesEveryHeader) {
  std::promise<Request> seen;
  StartServer(ServerOptions{}, [&seen](Request request) -> asio::awaitable<Response> {
    seen.set_value(std::move(request));
    co_return Response{};
  });
  tcp::socket socket = Connect();
  asio::write(socket,
              asio::buffer(std::string("GET /h HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0k\r\n"
                                       "X-Request-Id: 42\r\n\r\n")));
  const Request request = seen.get_future().get();
  ASSERT_NE(request.Header("authorization"), nullptr);
  EXPECT_EQ(*request.Header("authorization"), "Bearer t0k");
  ASSERT_NE(request.Header("X-REQUEST-ID"), nullptr);
  EXPECT_EQ(*request.Header("X-REQUEST-ID"), "42");
  EXPECT_EQ(request.Header("Cookie"), nullptr);
  EXPECT_EQ(request.headers.size(), 3u);
}

// A handler that hands the test its timer and waits until the test cancels it.
Handler Holding(std::promise<asio::steady_timer*>& entered) {
  return [&entered](Request) -> asio::awaitable<Response> {
    asio::steady_timer hold(co_await asio::this_coro::executor, std::chrono::hours(1));
    entered.set_value(&hold);
    auto [ec] = co_await hold.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ec;
    co_return Response{};
  };
}

// Stop() returns only once no handler runs any more: a handler in flight holds it (bounded by
// its wait), and it returns true once that handler finished.
TEST_F(ServerTest, StopWaitsForHandlersInFlight) {
  std::promise<asio::steady_timer*> entered;
  StartServer(ServerOptions{}, Holding(entered));
  tcp::socket socket = Connect();
  asio::write(socket, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
  asio::steady_timer* hold = entered.get_future().get();
  EXPECT_EQ(server_->connections(), 1u);

  auto stopped = std::async(std::launch::async, [this] { return server_->Stop(30s); });
  EXPECT_EQ(stopped.wait_for(100ms), std::future_status::timeout) << "Stop() did not wait";
  asio::post(hold->get_executor(), [hold] { hold->cancel(); });
  EXPECT_TRUE(stopped.get());
  EXPECT_EQ(server_->connections(), 0u);
}

TEST_F(ServerTest, StopGivesUpAfterItsWait) {
  std::promise<asio::steady_timer*> entered;
  StartServer(ServerOptions{}, Holding(entered));
  tcp::socket socket = Connect();
  asio::write(socket, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
  asio::steady_timer* hold = entered.get_future().get();
  EXPECT_FALSE(server_->Stop(0ms));
  asio::post(hold->get_executor(), [hold] { hold->cancel(); });
  EXPECT_TRUE(server_->Stop(30s));
}

TEST_F(ServerTest, CreateFailsWithUnavailableWhenThePortIsTaken) {
  StartServer(ServerOptions{}, Echo);
  ServerOptions options;
  options.port = server_->port();
  auto second = Server::Create(io_, options, Echo);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace das::http
