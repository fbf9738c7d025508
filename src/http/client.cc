#include "http/client.h"

#include <algorithm>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "common/mutex.h"

namespace das::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using WireRequest = bhttp::request<bhttp::string_body>;
using WireResponse = bhttp::response<bhttp::string_body>;

// I/O completes with an error_code instead of throwing: errors are expected on a network edge.
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// One kept-alive connection and the bytes read past its last answer. All its I/O runs on its
// own strand: Beast's timeout handlers complete on the executor of the operation that armed
// them, so successive Sends from different threads must share one executor per connection.
struct Conn {
  explicit Conn(const asio::any_io_executor& executor) : stream(asio::make_strand(executor)) {}
  beast::tcp_stream stream;
  std::unique_ptr<asio::ssl::stream<beast::tcp_stream&>> tls;  // over `stream`, for HTTPS
  beast::flat_buffer buffer;
  Clock::time_point idle_since;  // when it last went back to the pool
};

// An idle connection older than this is closed instead of reused: servers close idle
// keep-alive connections (ours after 60 s), and a request sent on one they closed fails.
constexpr std::chrono::seconds kMaxIdle{20};

// Destroys `conn` on its strand, after whatever its last operation left queued there.
void DestroyOnStrand(std::unique_ptr<Conn> conn) {
  if (!conn) return;
  const asio::any_io_executor strand = conn->stream.get_executor();
  asio::post(strand, [conn = std::move(conn)]() mutable { conn.reset(); });
}

// What the pool hands a Send: a connection, or (conn == nullptr) the right to open one.
struct Lease {
  std::unique_ptr<Conn> conn;
  bool reused = false;
};

// A Send waiting for a lease. Whoever serves it (Release, Discard, Close) sets `result` under
// Pool::mu_ and then cancels `timer`; otherwise the timer wakes it at the deadline.
struct Waiter {
  Waiter(const asio::any_io_executor& executor, Clock::time_point deadline)
      : timer(executor, deadline) {}
  asio::steady_timer timer;
  std::optional<Result<Lease>> result;  // GUARDED_BY(Pool::mu_)
};

// One attempt at an exchange on one connection.
struct Attempt {
  error_code ec;
  bool got_some = false;  // some of the answer was read: the request must not be resent
  bool keep_alive = false;
  Response response;
};

WireRequest ToWire(Request&& request, const std::string& host) {
  WireRequest wire;
  wire.version(11);
  const bhttp::verb verb = bhttp::string_to_verb(request.method);
  if (verb == bhttp::verb::unknown) {
    wire.method_string(request.method);
  } else {
    wire.method(verb);
  }
  wire.target(request.target);
  wire.set(bhttp::field::host, host);
  if (!request.content_type.empty()) wire.set(bhttp::field::content_type, request.content_type);
  if (!request.accept.empty()) wire.set(bhttp::field::accept, request.accept);
  for (const auto& [name, value] : request.headers) wire.insert(name, value);
  wire.body() = std::move(request.body);
  wire.keep_alive(true);
  wire.prepare_payload();
  return wire;
}

Response ToResponse(WireResponse&& wire) {
  Response response;
  response.status = wire.result_int();
  for (const auto& field : wire) {
    switch (field.name()) {
      case bhttp::field::content_type:
        response.content_type = std::string(field.value());
        break;
      case bhttp::field::content_length:  // framing, already applied
      case bhttp::field::transfer_encoding:
      case bhttp::field::connection:
      case bhttp::field::keep_alive:
        break;
      default:
        response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
  }
  response.close = !wire.keep_alive();
  response.body = std::move(wire.body());
  return response;
}

// The server closed a kept-alive connection just as it was reused: usually the request never
// reached a handler (see Exchange for when it is sent again).
bool IsStaleKeepAlive(const Attempt& attempt) {
  const error_code& ec = attempt.ec;
  return !attempt.got_some &&
         (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
          ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
          ec == asio::error::connection_aborted);
}

// The pool and everything a Send needs. Held by shared_ptr: a suspended Send keeps it alive
// even if the Client that owns it is destroyed first.
class Pool {
 public:
  Pool(asio::any_io_executor executor, ClientOptions options)
      : executor_(std::move(executor)),
        options_(std::move(options)),
        peer_(options_.host + ":" + std::to_string(options_.port)) {
    error_code ec;
    const auto address = asio::ip::make_address(options_.host, ec);
    if (!ec) literal_ = tcp::endpoint(address, options_.port);
    if (options_.tls) MakeTlsContext();
  }

  const std::string& peer() const { return peer_; }

  static asio::awaitable<Result<Response>> Send(std::shared_ptr<Pool> self, Request request,
                                                std::chrono::milliseconds timeout);
  void Close();

 private:
  asio::awaitable<Result<Response>> Exchange(WireRequest wire, std::chrono::milliseconds timeout);
  asio::awaitable<Result<Lease>> Acquire(Clock::time_point deadline,
                                         std::chrono::milliseconds timeout);
  asio::awaitable<Result<Lease>> WaitForLease(Clock::time_point deadline,
                                              std::chrono::milliseconds timeout);
  asio::awaitable<Status> Connect(Conn& conn, Clock::time_point deadline,
                                  std::chrono::milliseconds timeout);
  asio::awaitable<Attempt> Transfer(Conn& conn, const WireRequest& wire,
                                    Clock::time_point deadline);
  std::optional<Result<Lease>> TryTakeLocked() REQUIRES(mu_);
  // Closes every idle connection: after one turned out stale, the others likely are too.
  void DropIdle();
  void Release(std::unique_ptr<Conn> conn);
  void Discard(std::unique_ptr<Conn> conn);
  void GiveBack(Lease lease);
  Status ToStatus(const error_code& ec, std::chrono::milliseconds timeout) const;
  void MakeTlsContext();
  template <typename Stream>
  asio::awaitable<Attempt> TransferOn(Stream& stream, beast::flat_buffer& buffer,
                                      const WireRequest& wire);

  const asio::any_io_executor executor_;
  const ClientOptions options_;
  const std::string peer_;
  std::optional<tcp::endpoint> literal_;     // set when host is an IP address
  std::unique_ptr<asio::ssl::context> tls_;  // options_.tls: verifies the server
  Status tls_error_;                         // why tls_ could not be made (every Send fails)

  Mutex mu_;
  bool closed_ GUARDED_BY(mu_) = false;
  size_t open_ GUARDED_BY(mu_) = 0;                              // idle + leased + connecting
  std::vector<std::unique_ptr<Conn>> idle_ GUARDED_BY(mu_);      // most recently used last
  std::deque<std::shared_ptr<Waiter>> waiters_ GUARDED_BY(mu_);  // oldest first
};

asio::awaitable<Result<Response>> Pool::Send(std::shared_ptr<Pool> self, Request request,
                                             std::chrono::milliseconds timeout) {
  // Named awaitables in this file: GCC 12 may destroy the non-trivial temporaries of a co_await
  // full-expression twice.
  asio::awaitable<Result<Response>> exchange =
      self->Exchange(ToWire(std::move(request), self->peer_), timeout);
  co_return co_await std::move(exchange);
}

asio::awaitable<Result<Response>> Pool::Exchange(WireRequest wire,
                                                 std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  for (int attempt = 0;; ++attempt) {
    Result<Lease> lease = co_await Acquire(deadline, timeout);
    if (!lease.ok()) co_return std::move(lease).status();
    if (!lease->conn) {
      auto conn = std::make_unique<Conn>(executor_);
      asio::awaitable<Status> connect = asio::co_spawn(
          conn->stream.get_executor(), Connect(*conn, deadline, timeout), asio::use_awaitable);
      Status connected = co_await std::move(connect);
      if (!connected.ok()) {
        Discard(std::move(conn));
        co_return connected;
      }
      lease->conn = std::move(conn);
    }
    asio::awaitable<Attempt> transfer =
        asio::co_spawn(lease->conn->stream.get_executor(), Transfer(*lease->conn, wire, deadline),
                       asio::use_awaitable);
    Attempt result = co_await std::move(transfer);
    if (!result.ec) {
      if (result.keep_alive) {
        Release(std::move(lease->conn));
      } else {
        Discard(std::move(lease->conn));
      }
      co_return std::move(result.response);
    }
    Discard(std::move(lease->conn));
    const bool stale = lease->reused && IsStaleKeepAlive(result);
    if (stale) DropIdle();
    // Only a request that may be repeated is sent again: a POST whose connection closed may
    // still have been applied (a stopping server closes connections with requests in flight).
    const bool repeatable = wire.method() == bhttp::verb::get || wire.method() == bhttp::verb::head;
    if (attempt > 0 || !stale || !repeatable) co_return ToStatus(result.ec, timeout);
  }
}

asio::awaitable<Result<Lease>> Pool::Acquire(Clock::time_point deadline,
                                             std::chrono::milliseconds timeout) {
  {
    MutexLock lock(mu_);
    if (std::optional<Result<Lease>> taken = TryTakeLocked()) co_return std::move(*taken);
  }
  co_return co_await WaitForLease(deadline, timeout);
}

asio::awaitable<Result<Lease>> Pool::WaitForLease(Clock::time_point deadline,
                                                  std::chrono::milliseconds timeout) {
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  auto waiter = std::make_shared<Waiter>(executor, deadline);
  // The wait starts before the waiter is visible to others, so a wake-up cannot be lost.
  auto wait = asio::async_initiate<decltype(kNoThrow), void(error_code)>(
      [this, waiter](auto handler) {
        waiter->timer.async_wait(std::move(handler));
        MutexLock lock(mu_);
        waiter->result = TryTakeLocked();
        if (waiter->result) {
          waiter->timer.cancel();
        } else {
          waiters_.push_back(waiter);
        }
      },
      kNoThrow);
  co_await std::move(wait);
  std::optional<Result<Lease>> result;
  {
    MutexLock lock(mu_);
    result = std::move(waiter->result);
    if (!result) std::erase(waiters_, waiter);
  }
  if (result && result->ok() && Clock::now() >= deadline) {
    GiveBack(std::move(**result));
    result.reset();
  }
  if (!result) co_return ToStatus(beast::error::timeout, timeout);
  co_return std::move(*result);
}

std::optional<Result<Lease>> Pool::TryTakeLocked() {
  if (closed_) return Result<Lease>(ShuttingDown(peer_ + ": client closed"));
  const Clock::time_point now = Clock::now();
  while (!idle_.empty()) {
    std::unique_ptr<Conn> conn = std::move(idle_.back());
    idle_.pop_back();
    if (now - conn->idle_since < kMaxIdle) return Result<Lease>(Lease{std::move(conn), true});
    --open_;
    DestroyOnStrand(std::move(conn));
  }
  if (open_ < options_.max_connections) {
    ++open_;
    return Result<Lease>(Lease{});
  }
  return std::nullopt;
}

// REQUIRES: on conn's strand, like Transfer.
asio::awaitable<Status> Pool::Connect(Conn& conn, Clock::time_point deadline,
                                      std::chrono::milliseconds timeout) {
  conn.stream.expires_at(deadline);
  error_code ec;
  if (literal_) {
    std::tie(ec) = co_await conn.stream.async_connect(*literal_, kNoThrow);
  } else {
    // Resolved per new connection, so a peer that restarts under a new address is found.
    tcp::resolver resolver(executor_);
    const std::string port = std::to_string(options_.port);
    auto [resolve_ec, endpoints] = co_await resolver.async_resolve(options_.host, port, kNoThrow);
    if (resolve_ec) co_return Unavailable(peer_ + ": cannot resolve: " + resolve_ec.message());
    tcp::endpoint endpoint;
    std::tie(ec, endpoint) = co_await conn.stream.async_connect(endpoints, kNoThrow);
  }
  if (ec) co_return ToStatus(ec, timeout);
  conn.stream.socket().set_option(tcp::no_delay(true), ec);
  if (!options_.tls) co_return Status::Ok();
  if (!tls_error_.ok()) co_return tls_error_;
  conn.tls = std::make_unique<asio::ssl::stream<beast::tcp_stream&>>(conn.stream, *tls_);
  conn.tls->set_verify_callback(asio::ssl::host_name_verification(options_.host));
  if (!literal_) SSL_set_tlsext_host_name(conn.tls->native_handle(), options_.host.c_str());
  auto [handshake_ec] =
      co_await conn.tls->async_handshake(asio::ssl::stream_base::client, kNoThrow);
  if (handshake_ec) {
    co_return Unavailable(peer_ + ": TLS handshake failed: " + handshake_ec.message());
  }
  co_return Status::Ok();
}

void Pool::MakeTlsContext() {
  tls_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  error_code ec;
  tls_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                        asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                        asio::ssl::context::no_tlsv1_1,
                    ec);
  tls_->set_verify_mode(asio::ssl::verify_peer, ec);
  if (options_.tls_ca_file.empty()) {
    tls_->set_default_verify_paths(ec);
  } else {
    tls_->load_verify_file(options_.tls_ca_file, ec);
  }
  if (ec) {
    tls_error_ =
        InvalidArgument("cannot use the TLS CA file " + options_.tls_ca_file + ": " + ec.message());
  }
}

// REQUIRES: on conn's strand.
asio::awaitable<Attempt> Pool::Transfer(Conn& conn, const WireRequest& wire,
                                        Clock::time_point deadline) {
  conn.stream.expires_at(deadline);
  if (conn.tls) {
    asio::awaitable<Attempt> attempt = TransferOn(*conn.tls, conn.buffer, wire);
    co_return co_await std::move(attempt);
  }
  asio::awaitable<Attempt> attempt = TransferOn(conn.stream, conn.buffer, wire);
  co_return co_await std::move(attempt);
}

template <typename Stream>
asio::awaitable<Attempt> Pool::TransferOn(Stream& stream, beast::flat_buffer& buffer,
                                          const WireRequest& wire) {
  Attempt attempt;
  auto [write_ec, written] = co_await bhttp::async_write(stream, wire, kNoThrow);
  if (write_ec) {
    attempt.ec = write_ec;
    co_return attempt;
  }
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(options_.body_limit);
  if (wire.method() == bhttp::verb::head) parser.skip(true);
  auto [read_ec, read] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
  attempt.got_some = parser.got_some() || buffer.size() > 0;
  attempt.ec = read_ec;
  if (read_ec) co_return attempt;
  attempt.keep_alive = parser.keep_alive();
  attempt.response = ToResponse(parser.release());
  co_return attempt;
}

void Pool::Release(std::unique_ptr<Conn> conn) {
  std::shared_ptr<Waiter> woken;
  {
    MutexLock lock(mu_);
    if (closed_) {
      --open_;
      DestroyOnStrand(std::move(conn));
    } else if (!waiters_.empty()) {
      woken = std::move(waiters_.front());
      waiters_.pop_front();
      woken->result = Result<Lease>(Lease{std::move(conn), true});
    } else {
      conn->idle_since = Clock::now();
      idle_.push_back(std::move(conn));
    }
  }
  if (woken) woken->timer.cancel();
}

void Pool::DropIdle() {
  std::vector<std::unique_ptr<Conn>> idle;
  {
    MutexLock lock(mu_);
    open_ -= idle_.size();
    idle.swap(idle_);
  }
  for (auto& conn : idle) DestroyOnStrand(std::move(conn));
}

// Closes `conn` (if any) and passes its slot to a waiter, which then opens a fresh one.
void Pool::Discard(std::unique_ptr<Conn> conn) {
  DestroyOnStrand(std::move(conn));
  std::shared_ptr<Waiter> woken;
  {
    MutexLock lock(mu_);
    if (!closed_ && !waiters_.empty()) {
      woken = std::move(waiters_.front());
      waiters_.pop_front();
      woken->result = Result<Lease>(Lease{});
    } else {
      --open_;
    }
  }
  if (woken) woken->timer.cancel();
}

void Pool::GiveBack(Lease lease) {
  if (lease.conn) {
    Release(std::move(lease.conn));
  } else {
    Discard(nullptr);
  }
}

void Pool::Close() {
  std::vector<std::unique_ptr<Conn>> idle;
  std::deque<std::shared_ptr<Waiter>> waiters;
  {
    MutexLock lock(mu_);
    if (closed_) return;
    closed_ = true;
    open_ -= idle_.size();
    idle.swap(idle_);
    waiters.swap(waiters_);
    for (auto& waiter : waiters)
      waiter->result = Result<Lease>(ShuttingDown(peer_ + ": client closed"));
  }
  for (auto& waiter : waiters) waiter->timer.cancel();
  for (auto& conn : idle) DestroyOnStrand(std::move(conn));
}

Status Pool::ToStatus(const error_code& ec, std::chrono::milliseconds timeout) const {
  if (ec == beast::error::timeout) {
    return DeadlineExceeded(peer_ + ": no answer within " + std::to_string(timeout.count()) +
                            " ms");
  }
  return Unavailable(peer_ + ": " + ec.message());
}

class ClientImpl final : public Client {
 public:
  ClientImpl(asio::any_io_executor executor, ClientOptions options)
      : pool_(std::make_shared<Pool>(std::move(executor), std::move(options))) {}
  ~ClientImpl() override { pool_->Close(); }

  const std::string& peer() const override { return pool_->peer(); }

  asio::awaitable<Result<Response>> Send(Request request,
                                         std::chrono::milliseconds timeout) override {
    return Pool::Send(pool_, std::move(request), timeout);
  }

  void Close() override { pool_->Close(); }

 private:
  // Shared with every Send in flight (see Pool).
  const std::shared_ptr<Pool> pool_;
};

}  // namespace

std::unique_ptr<Client> Client::Create(boost::asio::any_io_executor executor,
                                       ClientOptions options) {
  return std::make_unique<ClientImpl>(std::move(executor), std::move(options));
}

}  // namespace das::http
