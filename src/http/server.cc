#include "http/server.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "common/mutex.h"
#include "http/wire_request.h"

namespace das::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using WireRequest = bhttp::request<bhttp::string_body>;
using WireResponse = bhttp::response<bhttp::string_body>;

// I/O completes with an error_code instead of throwing: errors are expected on a network edge.
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kTooLargeText = "request body too large\n";
constexpr std::string_view kMalformedText = "malformed request\n";
constexpr std::string_view kHeaderTooLargeText = "request header fields too large\n";
constexpr std::string_view kTooManyConnectionsText = "too many connections\n";
constexpr std::string_view kPlainOnTlsText =
    "this port speaks HTTPS (TLS): use https://, not http://\n";
// The first byte of every TLS record that opens a connection (a handshake record).
constexpr unsigned char kTlsHandshakeRecord = 0x16;
// How long a connection refused for the cap gets for its 503.
constexpr std::chrono::seconds kRefusalTimeout{1};
// A refused connection is logged at most this often (with the count refused meanwhile).
constexpr std::chrono::seconds kRefusalLogInterval{10};
// How much to read while waiting for the first byte of a request.
constexpr size_t kFirstReadSize = 16 * 1024;

// One accepted connection. Its stream's executor is the connection's strand.
struct Connection {
  explicit Connection(tcp::socket socket) : stream(std::move(socket)) {}

  // Ends every pending operation. REQUIRES: on the stream's strand.
  void Close() {
    error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.socket().close(ignored);
  }

  beast::tcp_stream stream;
};

// What the accept loop and the connections share. Held by shared_ptr because the coroutines
// may still be unwinding on the io_context after the Server object itself is gone.
struct ServerState {
  ServerState(asio::io_context& io_context, ServerOptions server_options, Handler request_handler)
      : io(io_context),
        options(std::move(server_options)),
        handler(std::move(request_handler)),
        acceptor(asio::make_strand(io_context)) {}

  asio::io_context& io;
  const ServerOptions options;
  const Handler handler;
  tcp::acceptor acceptor;  // used on its own strand only, after Create
  // Set: the port speaks TLS only (read-only after Create, shared by every connection).
  std::unique_ptr<asio::ssl::context> tls;

  Mutex mu;
  std::condition_variable drained;  // signalled when a connection or the accept loop ends
  bool stopped GUARDED_BY(mu) = false;
  bool accepting GUARDED_BY(mu) = false;  // the accept loop runs
  std::unordered_set<std::shared_ptr<Connection>> connections GUARDED_BY(mu);
  uint64_t refused GUARDED_BY(mu) = 0;  // not logged yet
  std::chrono::steady_clock::time_point refusal_logged GUARDED_BY(mu){};
};

// Keeps a connection in ServerState::connections while its coroutine runs, so Stop() finds it.
class Registration {
 public:
  Registration(std::shared_ptr<ServerState> state, std::shared_ptr<Connection> conn)
      : state_(std::move(state)), conn_(std::move(conn)) {
    MutexLock lock(state_->mu);
    if (state_->stopped) return;
    if (state_->connections.size() >= state_->options.max_connections) {
      over_limit_ = true;
      ++state_->refused;
      const auto now = std::chrono::steady_clock::now();
      if (now - state_->refusal_logged >= kRefusalLogInterval) {
        spdlog::warn("http: {} connections are open, the most this node allows: refused {} {}",
                     state_->connections.size(), state_->refused,
                     state_->tls ? "(closed unanswered: a TLS port)" : "with 503");
        state_->refused = 0;
        state_->refusal_logged = now;
      }
      return;
    }
    registered_ = state_->connections.insert(conn_).second;
  }
  ~Registration() {
    if (!registered_) return;
    MutexLock lock(state_->mu);
    state_->connections.erase(conn_);
    state_->drained.notify_all();
  }
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;

  // False once the server is stopping, or when the connection is over the cap: it must not be
  // served.
  bool registered() const { return registered_; }
  bool over_limit() const { return over_limit_; }

 private:
  std::shared_ptr<ServerState> state_;
  std::shared_ptr<Connection> conn_;
  bool registered_ = false;
  bool over_limit_ = false;
};

enum class ReadOutcome { kRequest, kClose, kTooLarge, kHeaderTooLarge, kMalformed };

// Errors of the HTTP grammar (as opposed to the socket) mean the peer sent bad HTTP.
bool IsParseError(const error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category() &&
         ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message;
}

ReadOutcome Classify(const error_code& ec) {
  if (!ec) return ReadOutcome::kRequest;
  if (ec == bhttp::error::body_limit) return ReadOutcome::kTooLarge;
  if (ec == bhttp::error::header_limit) return ReadOutcome::kHeaderTooLarge;
  if (IsParseError(ec)) return ReadOutcome::kMalformed;
  return ReadOutcome::kClose;
}

// Reads one request into `parser`. An idle keep-alive connection may wait idle_timeout for the
// first byte; from then on the whole request must arrive within io_timeout. A Content-Length
// over the body limit fails in the header, so the 413 goes out before any of the body is read.
template <typename Stream>
asio::awaitable<ReadOutcome> ReadRequest(Stream& stream, beast::flat_buffer& buffer,
                                         bhttp::request_parser<bhttp::string_body>& parser,
                                         const ServerOptions& options) {
  if (buffer.size() == 0) {
    beast::get_lowest_layer(stream).expires_after(options.idle_timeout);
    auto [ec, n] = co_await stream.async_read_some(buffer.prepare(kFirstReadSize), kNoThrow);
    if (ec) co_return ReadOutcome::kClose;
    buffer.commit(n);
  }
  beast::get_lowest_layer(stream).expires_after(options.io_timeout);
  auto [header_ec, header_n] = co_await bhttp::async_read_header(stream, buffer, parser, kNoThrow);
  if (header_ec) co_return Classify(header_ec);
  auto [body_ec, body_n] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
  co_return Classify(body_ec);
}

// "ip:port" of the other end of `stream`, or "" when the socket no longer knows it.
std::string PeerOf(beast::tcp_stream& stream) {
  error_code ec;
  const tcp::endpoint endpoint = stream.socket().remote_endpoint(ec);
  if (ec) return {};
  const std::string host = endpoint.address().is_v6() ? "[" + endpoint.address().to_string() + "]"
                                                      : endpoint.address().to_string();
  return host + ":" + std::to_string(endpoint.port());
}

WireResponse ToWire(Response&& response, unsigned version, bool keep_alive) {
  WireResponse wire;
  wire.version(version);
  // Beast rejects codes outside 0-999; a handler bug must not bring the connection down.
  const bool valid = response.status >= 100 && response.status <= 999;
  wire.result(valid ? response.status : 500);
  if (!response.content_type.empty()) {
    wire.set(bhttp::field::content_type, response.content_type);
  }
  for (const auto& [name, value] : response.headers) wire.insert(name, value);
  wire.body() = std::move(response.body);
  wire.keep_alive(keep_alive && !response.close);
  wire.prepare_payload();
  return wire;
}

// The handler's answer; a throwing handler becomes a 500 so exceptions stop here.
asio::awaitable<Response> CallHandler(const Handler& handler, Request request) {
  try {
    asio::awaitable<Response> answer = handler(std::move(request));
    co_return co_await std::move(answer);
  } catch (const std::exception& e) {
    spdlog::debug("http: handler threw: {}", e.what());
  }
  Response response;
  response.status = 500;
  response.content_type = "text/plain";
  response.body = "internal error\n";
  co_return response;
}

// Answers one request; returns whether the connection stays open for another.
template <typename Stream>
asio::awaitable<bool> Respond(const ServerState& state, Stream& stream, WireRequest wire_request,
                              const std::string& peer) {
  const bool keep_alive = wire_request.keep_alive();
  const unsigned version = wire_request.version();
  asio::awaitable<Response> answer =
      CallHandler(state.handler, FromWire(std::move(wire_request), peer));
  Response response = co_await std::move(answer);
  WireResponse wire = ToWire(std::move(response), version, keep_alive);
  beast::get_lowest_layer(stream).expires_after(state.options.io_timeout);
  auto [ec, n] = co_await bhttp::async_write(stream, wire, kNoThrow);
  co_return !ec && wire.keep_alive();
}

// Answers a request the server refuses to read further (413, 400); the caller then closes.
template <typename Stream>
asio::awaitable<void> Refuse(Stream& stream, bhttp::status status, std::string_view text,
                             const ServerOptions& options) {
  WireResponse wire(status, 11);
  wire.set(bhttp::field::content_type, "text/plain");
  wire.body() = text;
  wire.keep_alive(false);
  wire.prepare_payload();
  beast::get_lowest_layer(stream).expires_after(options.io_timeout);
  co_await bhttp::async_write(stream, wire, kNoThrow);
}

// After refusing a request whose body is still arriving, closing at once would make the kernel
// reset the connection and the client could lose the answer while it is still sending. So the
// server half-closes, then reads and discards what comes for a bounded time and amount
// ("lingering close", as nginx does), and only then closes.
template <typename Stream>
asio::awaitable<void> LingerAndDrain(Stream& stream,
                                     std::chrono::milliseconds linger = std::chrono::seconds(2),
                                     size_t max_drain = 64 * 1024 * 1024,
                                     size_t scratch_size = 64 * 1024) {
  error_code ignored;
  beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_send, ignored);
  std::vector<char> scratch(scratch_size);
  size_t drained = 0;
  beast::get_lowest_layer(stream).expires_after(linger);
  while (drained < max_drain) {
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(scratch), kNoThrow);
    if (ec) break;  // the client closed, or the linger time is over
    drained += n;
  }
}

// Every co_await below awaits a named awaitable or a call with trivial or reference arguments:
// GCC 12 may destroy other temporaries of a co_await full-expression twice.
template <typename Stream>
asio::awaitable<void> ServeRequests(const ServerState& state, Stream& stream,
                                    beast::flat_buffer& buffer) {
  const std::string peer = PeerOf(beast::get_lowest_layer(stream));
  for (;;) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.body_limit(state.options.body_limit);
    parser.header_limit(static_cast<std::uint32_t>(
        std::min<size_t>(state.options.header_limit, std::numeric_limits<std::uint32_t>::max())));
    switch (co_await ReadRequest(stream, buffer, parser, state.options)) {
      case ReadOutcome::kRequest: {
        asio::awaitable<bool> respond = Respond(state, stream, parser.release(), peer);
        if (!co_await std::move(respond)) co_return;
        break;
      }
      case ReadOutcome::kTooLarge: {
        if (!state.options.too_large) {
          co_await Refuse(stream, bhttp::status::payload_too_large, kTooLargeText, state.options);
          co_await LingerAndDrain(stream);
          co_return;
        }
        // The application renders the 413 from the header alone (the body was never read).
        WireRequest wire_request = parser.release();
        const unsigned version = wire_request.version();
        Request header = FromWire(std::move(wire_request), peer);
        header.body.clear();
        WireResponse wire = ToWire(state.options.too_large(header), version, false);
        wire.result(bhttp::status::payload_too_large);
        beast::get_lowest_layer(stream).expires_after(state.options.io_timeout);
        co_await bhttp::async_write(stream, wire, kNoThrow);
        co_await LingerAndDrain(stream);
        co_return;
      }
      case ReadOutcome::kHeaderTooLarge:
        // The rest of the head may still be arriving: drain it, as after a 413.
        co_await Refuse(stream, bhttp::status::request_header_fields_too_large, kHeaderTooLargeText,
                        state.options);
        co_await LingerAndDrain(stream);
        co_return;
      case ReadOutcome::kMalformed:
        co_await Refuse(stream, bhttp::status::bad_request, kMalformedText, state.options);
        co_return;
      case ReadOutcome::kClose:
        co_return;
    }
  }
}

// A connection to a TLS port: the first bytes must open a TLS handshake. Plain HTTP gets a
// plain-text 400 saying to use https:// (as nginx does), anything else is closed; then the
// handshake (within io_timeout), the requests over TLS, and a close_notify at the end.
asio::awaitable<void> ServeTls(const ServerState& state, beast::tcp_stream& stream,
                               beast::flat_buffer& buffer) {
  stream.expires_after(state.options.idle_timeout);
  auto [first_ec, first_n] =
      co_await stream.async_read_some(buffer.prepare(kFirstReadSize), kNoThrow);
  if (first_ec) co_return;
  buffer.commit(first_n);
  if (static_cast<const unsigned char*>(buffer.data().data())[0] != kTlsHandshakeRecord) {
    co_await Refuse(stream, bhttp::status::bad_request, kPlainOnTlsText, state.options);
    co_await LingerAndDrain(stream, std::chrono::seconds(1), 64 * 1024, 4 * 1024);
    co_return;
  }
  asio::ssl::stream<beast::tcp_stream&> tls(stream, *state.tls);
  stream.expires_after(state.options.io_timeout);
  auto [handshake_ec, ignored_used] =
      co_await tls.async_handshake(asio::ssl::stream_base::server, buffer.data(), kNoThrow);
  if (handshake_ec) {
    spdlog::debug("http: TLS handshake with {} failed: {}", PeerOf(stream), handshake_ec.message());
    co_return;
  }
  // The TLS engine took these bytes (the client's hello); the requests come from it decrypted.
  buffer.consume(buffer.size());
  asio::awaitable<void> serve = ServeRequests(state, tls, buffer);
  co_await std::move(serve);
  stream.expires_after(std::chrono::seconds(1));
  co_await tls.async_shutdown(kNoThrow);
}

// The connection coroutine: the edge where exceptions stop.
asio::awaitable<void> Serve(std::shared_ptr<ServerState> state, std::shared_ptr<Connection> conn) {
  Registration registration(state, conn);
  if (registration.over_limit() && state->tls) {
    conn->Close();  // a 503 would take a TLS handshake, the work the cap is there to refuse
    co_return;
  }
  if (registration.over_limit()) {
    ServerOptions refusal = state->options;
    refusal.io_timeout = kRefusalTimeout;
    try {
      co_await Refuse(conn->stream, bhttp::status::service_unavailable, kTooManyConnectionsText,
                      refusal);
      // Briefly, and little: a request already on its way must not turn the 503 into a reset.
      co_await LingerAndDrain(conn->stream, kRefusalTimeout, 64 * 1024, 4 * 1024);
    } catch (const std::exception& e) {
      spdlog::debug("http: refusing a connection failed: {}", e.what());
    }
    conn->Close();
    co_return;
  }
  if (!registration.registered()) co_return;
  try {
    beast::flat_buffer buffer;  // one per connection, reused by every request on it
    if (state->tls) {
      asio::awaitable<void> serve = ServeTls(*state, conn->stream, buffer);
      co_await std::move(serve);
    } else {
      asio::awaitable<void> serve = ServeRequests(*state, conn->stream, buffer);
      co_await std::move(serve);
    }
  } catch (const std::exception& e) {
    spdlog::debug("http: connection failed: {}", e.what());
  }
  conn->Close();
}

asio::awaitable<void> Pause(std::chrono::milliseconds delay) {
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor, delay);
  co_await timer.async_wait(kNoThrow);
}

// Marks the accept loop as ended when it unwinds, however it ends.
struct AcceptLoopEnd {
  ~AcceptLoopEnd() {
    MutexLock lock(state->mu);
    state->accepting = false;
    state->drained.notify_all();
  }
  ServerState* state;
};

// Runs on the acceptor's strand until the acceptor is closed.
asio::awaitable<void> AcceptLoop(std::shared_ptr<ServerState> state) {
  AcceptLoopEnd end{state.get()};
  for (;;) {
    const auto strand = asio::make_strand(state->io);
    auto [ec, socket] = co_await state->acceptor.async_accept(strand, kNoThrow);
    if (!state->acceptor.is_open()) co_return;
    if (ec) {
      // E.g. out of file descriptors: back off instead of spinning.
      spdlog::debug("http: accept failed: {}", ec.message());
      co_await Pause(std::chrono::milliseconds(10));
      continue;
    }
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto conn = std::make_shared<Connection>(tcp::socket(std::move(socket)));
    asio::co_spawn(conn->stream.get_executor(), Serve(state, conn), asio::detached);
  }
}

Result<tcp::endpoint> ResolveListenAddress(asio::io_context& io, const ServerOptions& options) {
  error_code ec;
  const auto address = asio::ip::make_address(options.host, ec);
  if (!ec) return tcp::endpoint(address, options.port);
  tcp::resolver resolver(io);
  auto results = resolver.resolve(options.host, std::to_string(options.port), ec);
  if (ec || results.empty()) {
    return Unavailable("cannot resolve " + options.host + ": " + ec.message());
  }
  return results.begin()->endpoint();
}

// The server's TLS context: TLS 1.2 or later, the certificate chain and key in PEM.
Result<std::unique_ptr<asio::ssl::context>> MakeTlsContext(const ServerOptions& options) {
  if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
    return InvalidArgument("TLS needs both a certificate (--tls-cert) and its key (--tls-key)");
  }
  auto context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  error_code ec;
  context->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                           asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                           asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use,
                       ec);
  if (ec) return Internal("cannot set up TLS: " + ec.message());
  context->use_certificate_chain_file(options.tls_cert_file, ec);
  if (ec) {
    return InvalidArgument("cannot use the TLS certificate " + options.tls_cert_file + ": " +
                           ec.message());
  }
  context->use_private_key_file(options.tls_key_file, asio::ssl::context::pem, ec);
  if ((ec && ec.category() == asio::error::get_ssl_category() &&
       ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH) ||
      (!ec && SSL_CTX_check_private_key(context->native_handle()) != 1)) {
    return InvalidArgument("the TLS key " + options.tls_key_file +
                           " does not belong to the certificate " + options.tls_cert_file);
  }
  if (ec) {
    return InvalidArgument("cannot use the TLS key " + options.tls_key_file + ": " + ec.message());
  }
  return context;
}

Status Listen(ServerState& state) {
  Result<tcp::endpoint> endpoint = ResolveListenAddress(state.io, state.options);
  if (!endpoint.ok()) return std::move(endpoint).status();
  tcp::acceptor& acceptor = state.acceptor;
  error_code ec;
  acceptor.open(endpoint->protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(*endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (!ec) return Status::Ok();
  return Unavailable("cannot listen on " + state.options.host + ":" +
                     std::to_string(state.options.port) + ": " + ec.message());
}

class ServerImpl final : public Server {
 public:
  explicit ServerImpl(std::shared_ptr<ServerState> state)
      : state_(std::move(state)), port_(state_->acceptor.local_endpoint().port()) {}
  ~ServerImpl() override { Close(); }

  uint16_t port() const override { return port_; }

  size_t connections() const override {
    MutexLock lock(state_->mu);
    return state_->connections.size();
  }

  void Start() override {
    {
      MutexLock lock(state_->mu);
      if (state_->stopped || state_->accepting) return;
      state_->accepting = true;
    }
    asio::co_spawn(state_->acceptor.get_executor(), AcceptLoop(state_), asio::detached);
  }

  bool WaitForConnections(size_t at_most, std::chrono::milliseconds wait) const override {
    UniqueLock lock(state_->mu);
    return state_->drained.wait_for(lock.native(), wait, [this, at_most]() REQUIRES(state_->mu) {
      return state_->connections.size() <= at_most;
    });
  }

  bool Stop(std::chrono::milliseconds wait) override {
    Close();
    UniqueLock lock(state_->mu);
    return state_->drained.wait_for(lock.native(), wait, [this]() REQUIRES(state_->mu) {
      return state_->connections.empty() && !state_->accepting;
    });
  }

 private:
  // Stops accepting and closes every connection, without waiting.
  void Close() {
    std::vector<std::shared_ptr<Connection>> live;
    {
      MutexLock lock(state_->mu);
      if (state_->stopped) return;
      state_->stopped = true;
      live.assign(state_->connections.begin(), state_->connections.end());
    }
    // Each object is closed on its own strand, where its operations run.
    asio::post(state_->acceptor.get_executor(), [state = state_] {
      error_code ignored;
      state->acceptor.close(ignored);
    });
    for (auto& conn : live) {
      asio::post(conn->stream.get_executor(), [conn] { conn->Close(); });
    }
  }

  const std::shared_ptr<ServerState> state_;
  const uint16_t port_;
};

}  // namespace

Result<std::unique_ptr<Server>> Server::Create(boost::asio::io_context& io, ServerOptions options,
                                               Handler handler) {
  auto state = std::make_shared<ServerState>(io, std::move(options), std::move(handler));
  if (!state->options.tls_cert_file.empty() || !state->options.tls_key_file.empty()) {
    ASSIGN_OR_RETURN(state->tls, MakeTlsContext(state->options));
  }
  RETURN_IF_ERROR(Listen(*state));
  std::unique_ptr<Server> server = std::make_unique<ServerImpl>(std::move(state));
  return Result<std::unique_ptr<Server>>(std::move(server));
}

}  // namespace das::http
