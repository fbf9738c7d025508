#include "load/loader.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "das/v1/das.pb.h"
#include "http/client.h"

namespace das::load {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

// Bad rows named in the error of a file that has any.
constexpr uint64_t kBadRowsShown = 10;

std::string Hex64(uint64_t v) {
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(v));
  return out;
}

// What the batches' keys depend on besides the file: the columns and the batch size (another
// batch size cuts other batches, which must not be taken for these).
uint64_t OptionsHash(const LoadOptions& o) {
  std::string what = o.source.key_column;
  what += '\0';
  what += o.source.value_column;
  what += '\0';
  what += std::to_string(o.batch_rows);
  return XXH3_64bits(what.data(), what.size());
}

// One batch's outcome: 200, a final error, or (retryable) no answer or a 5xx.
struct Sent {
  enum Kind { kOk, kFinal, kRetry } kind;
  std::string message;
};

Sent Interpret(const Result<http::Response>& answer, uint64_t index) {
  std::string which = "batch ";
  which += std::to_string(index + 1);
  if (!answer.ok()) return {Sent::kRetry, which + ": " + answer.status().ToString()};
  if (answer->status == 200) return {Sent::kOk, {}};
  // The control node answers a protobuf request's error with a das.v1.ErrorResponse.
  das::v1::ErrorResponse error;
  const std::string text = error.ParseFromString(answer->body) && !error.error().empty()
                               ? error.error()
                               : answer->body.substr(0, 500);
  const std::string message = which + ": HTTP " + std::to_string(answer->status) + ": " + text;
  if (answer->status >= 500 || answer->status == 429) return {Sent::kRetry, message};
  return {Sent::kFinal, message};
}

class Sender {
 public:
  Sender(asio::io_context& io, const LoadOptions& options, const ProgressFn& progress)
      : io_(io), options_(options), progress_(progress) {
    http::ClientOptions client;
    client.host = options.target.host;
    client.port = options.target.port;
    client.max_connections = std::max<size_t>(options.concurrency, 1);
    client.tls = options.target.tls;
    client.tls_ca_file = options.tls_ca_file;
    client_ = http::Client::Create(io.get_executor(), client);
  }

  // Sends every batch `next` produces (empty: the end), at most `concurrency` at once.
  asio::awaitable<Status> Run(std::function<Result<std::vector<LoadRow>>()> next,
                              const std::string& file_id, uint64_t total) {
    progress_state_.rows_total = total;
    started_ = Clock::now();
    last_success_ = started_;
    Report();
    asio::steady_timer wake(io_, Clock::time_point::max());
    wake_ = &wake;
    for (uint64_t index = 0;; ++index) {
      while (in_flight_ >= std::max<size_t>(options_.concurrency, 1) && error_.ok()) {
        auto woken = wake.async_wait(asio::as_tuple(asio::use_awaitable));
        co_await std::move(woken);
        wake.expires_at(Clock::time_point::max());
      }
      if (!error_.ok()) break;
      Result<std::vector<LoadRow>> rows = next();
      if (!rows.ok()) {
        error_ = rows.status();
        break;
      }
      if (rows->empty()) break;
      das::v1::InsertBatch batch;
      batch.set_idempotency_key(BatchKey(file_id, options_, index));
      for (LoadRow& row : *rows) {
        das::v1::Row* out = batch.add_rows();
        out->set_partition_key(std::move(row.key));
        out->set_value(row.value);
      }
      ++in_flight_;
      asio::awaitable<void> send = SendBatch(index, rows->size(), batch.SerializeAsString());
      asio::co_spawn(io_, std::move(send), asio::detached);
    }
    while (in_flight_ > 0) {
      auto woken = wake.async_wait(asio::as_tuple(asio::use_awaitable));
      co_await std::move(woken);
      wake.expires_at(Clock::time_point::max());
    }
    wake_ = nullptr;
    client_->Close();
    co_return error_;
  }

  const LoadProgress& progress() const { return progress_state_; }

 private:
  asio::awaitable<void> SendBatch(uint64_t index, size_t rows, std::string body) {
    std::chrono::milliseconds backoff(50);
    for (;;) {
      if (!error_.ok()) break;  // another batch failed: the load stops
      http::Request request;
      request.method = "POST";
      request.target = "/insert/batch";
      request.content_type = "application/x-protobuf";
      request.has_content_type = true;
      request.body = body;
      if (!options_.token.empty()) {
        request.headers.emplace_back("Authorization", "Bearer " + options_.token);
      }
      asio::awaitable<Result<http::Response>> call =
          client_->Send(std::move(request), options_.request_timeout);
      Result<http::Response> answer = co_await std::move(call);
      const Sent sent = Interpret(answer, index);
      if (sent.kind == Sent::kOk) {
        last_success_ = Clock::now();
        progress_state_.rows_done += rows;
        ++progress_state_.batches_done;
        Report();
        break;
      }
      if (sent.kind == Sent::kFinal) {
        if (error_.ok()) error_ = InvalidArgument(sent.message);
        break;
      }
      if (Clock::now() - last_success_ > options_.retry_for) {
        if (error_.ok()) {
          error_ = Unavailable("the cluster at " + options_.target.host + ":" +
                               std::to_string(options_.target.port) + " took no batch for " +
                               std::to_string(options_.retry_for.count() / 1000) +
                               " s; last: " + sent.message);
        }
        break;
      }
      ++progress_state_.retries;
      asio::steady_timer pause(io_, backoff);
      auto paused = pause.async_wait(asio::as_tuple(asio::use_awaitable));
      co_await std::move(paused);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
    --in_flight_;
    if (wake_ != nullptr) wake_->cancel();
  }

  void Report() {
    progress_state_.elapsed = Clock::now() - started_;
    if (progress_) progress_(progress_state_);
  }

  asio::io_context& io_;
  const LoadOptions& options_;
  const ProgressFn& progress_;
  std::unique_ptr<http::Client> client_;
  asio::steady_timer* wake_ = nullptr;  // Run's, cancelled when a batch ends
  size_t in_flight_ = 0;
  Status error_ = Status::Ok();
  LoadProgress progress_state_;
  Clock::time_point started_;
  Clock::time_point last_success_;
};

}  // namespace

Result<Target> ParseUrl(const std::string& url) {
  Target target;
  std::string_view rest(url);
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
    target.tls = true;
    target.port = 443;
  } else {
    return InvalidArgument("--url '" + url + "' is not http://host[:port] or https://host[:port]");
  }
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.empty() || rest.find('/') != std::string_view::npos) {
    return InvalidArgument("--url '" + url +
                           "' must be the control node's root: scheme://host:port");
  }
  const size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && rest.find(']') == std::string_view::npos) {
    const std::string port(rest.substr(colon + 1));
    char* end = nullptr;
    const long value = std::strtol(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || value < 1 || value > 65535) {
      return InvalidArgument("--url '" + url + "' has a bad port");
    }
    target.port = static_cast<uint16_t>(value);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return InvalidArgument("--url '" + url + "' has no host");
  target.host = std::string(rest);
  return target;
}

std::string BatchKey(const std::string& file_id, const LoadOptions& options, uint64_t index) {
  std::string key = "das-load:";
  key += file_id;
  key += ':';
  key += Hex64(OptionsHash(options)).substr(0, 8);
  key += ':';
  key += std::to_string(index);
  return key;
}

Result<std::string> FileIdentity(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) return NotFound("cannot open " + path);
  std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> state(XXH3_createState(),
                                                                        &XXH3_freeState);
  XXH3_64bits_reset(state.get());
  std::vector<char> buffer(1 << 20);
  uint64_t size = 0;
  for (;;) {
    const size_t n = std::fread(buffer.data(), 1, buffer.size(), file.get());
    if (n > 0) XXH3_64bits_update(state.get(), buffer.data(), n);
    size += n;
    if (n < buffer.size()) break;
  }
  if (std::ferror(file.get())) return Unavailable("cannot read " + path);
  return Hex64(XXH3_64bits_digest(state.get())) + Hex64(size).substr(8);
}

Result<LoadSummary> Load(const LoadOptions& options, const ProgressFn& progress, bool* sending) {
  if (sending != nullptr) *sending = false;
  LoadSummary summary;
  if (options.batch_rows == 0) return InvalidArgument("--batch-rows must be positive");
  ASSIGN_OR_RETURN(summary.file_id, FileIdentity(options.source.path));

  // Every row is checked before anything is sent: a bad row stores nothing.
  const auto validate_start = Clock::now();
  uint64_t total = 0;
  {
    ASSIGN_OR_RETURN(std::unique_ptr<RowSource> check, RowSource::Open(options.source));
    std::vector<LoadRow> rows;
    std::vector<std::string> bad;
    uint64_t bad_rows = 0;
    for (;;) {
      rows.clear();
      Result<bool> more = check->Next(64 * 1024, rows);
      if (!more.ok()) {
        if (more.status().code() != StatusCode::kInvalidArgument) return more.status();
        if (++bad_rows <= kBadRowsShown) bad.push_back(more.status().message());
        continue;
      }
      if (!*more) break;
    }
    total = check->rows_read();
    if (bad_rows > 0) {
      std::string message = std::to_string(bad_rows) + " bad row";
      if (bad_rows > 1) message += 's';
      message += " in " + options.source.path + ", nothing was sent";
      if (bad_rows > kBadRowsShown) {
        message += " (the first ";
        message += std::to_string(kBadRowsShown);
        message += ")";
      }
      message += ':';
      for (const std::string& line : bad) {
        message += "\n  ";
        message += line;
      }
      return InvalidArgument(std::move(message));
    }
  }
  summary.validate_time = Clock::now() - validate_start;

  ASSIGN_OR_RETURN(std::unique_ptr<RowSource> source, RowSource::Open(options.source));
  asio::io_context io(1);
  Sender sender(io, options, progress);
  Status status = Status::Ok();
  auto next = [&]() -> Result<std::vector<LoadRow>> {
    std::vector<LoadRow> rows;
    rows.reserve(std::min<uint64_t>(options.batch_rows, total));
    ASSIGN_OR_RETURN(bool more, source->Next(options.batch_rows, rows));
    (void)more;
    return rows;
  };
  const auto load_start = Clock::now();
  asio::awaitable<Status> run = sender.Run(next, summary.file_id, total);
  asio::co_spawn(io, std::move(run), [&status](std::exception_ptr error, Status result) {
    if (error) std::rethrow_exception(error);
    status = std::move(result);
  });
  io.run();
  summary.load_time = Clock::now() - load_start;
  // The file was read whole once already: what fails now is the sending.
  if (!status.ok() && sending != nullptr) *sending = true;
  RETURN_IF_ERROR(status);
  summary.rows = sender.progress().rows_done;
  summary.batches = sender.progress().batches_done;
  summary.retries = sender.progress().retries;
  return summary;
}

}  // namespace das::load
