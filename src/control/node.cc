#include "control/node.h"

#include <csignal>
#include <functional>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "control/auth.h"
#include "control/codec.h"
#include "http/run.h"
#include "metrics/registry.h"

namespace das::control {

namespace asio = boost::asio;

// In the order they are made; destroyed in reverse.
struct ControlNode::Parts {
  explicit Parts(ControlNodeOptions o) : options(std::move(o)), io(static_cast<int>(threads())) {}
  unsigned threads() const { return std::max(options.threads, 1u); }

  ControlNodeOptions options;
  std::unique_ptr<TokenFile> tokens;
  std::unique_ptr<metrics::Registry> metrics;
  asio::io_context io;
  http::IoThreads serving{io};  // Start()'s
  std::optional<asio::signal_set> hangup;
  std::function<void()> await_hangup;
  std::unique_ptr<ControlService> service;
  std::unique_ptr<http::Server> server;
  bool stopped = false;

  Status LoadTokens();
  void ReloadTokensOnHangup();
  void StopServing();
};

Status ControlNode::Parts::LoadTokens() {
  if (options.auth_tokens_file.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(tokens, TokenFile::Load(options.auth_tokens_file));
  spdlog::info("public API requires a token: {} tokens from {}", tokens->size(), tokens->path());
  return Status::Ok();
}

// SIGHUP reads the token file again (and is never the default action: termination).
void ControlNode::Parts::ReloadTokensOnHangup() {
  hangup.emplace(io, SIGHUP);
  await_hangup = [this] {
    hangup->async_wait([this](const boost::system::error_code& error, int) {
      if (error) return;
      if (!tokens) {
        spdlog::info("SIGHUP: no --auth-tokens-file to read again");
      } else {
        const Status reloaded = tokens->Reload();
        if (reloaded.ok()) {
          spdlog::info("SIGHUP: {} tokens from {}", tokens->size(), tokens->path());
        } else {
          spdlog::error("SIGHUP: kept the tokens as they were: {}", reloaded.message());
        }
        if (options.tokens_reread) options.tokens_reread(reloaded);
      }
      await_hangup();
    });
  };
  await_hangup();
}

// Inserts in flight finish or fail first, so that no connection waits on them; then the server
// closes its connections and waits for their handlers.
void ControlNode::Parts::StopServing() {
  if (!service->Stop()) spdlog::warn("inserts still in flight after 5 s; stopping anyway");
  if (server && !server->Stop()) {
    spdlog::warn("connections still open after 5 s; stopping anyway");
  }
  if (hangup) hangup->cancel();
}

Result<std::unique_ptr<ControlNode>> ControlNode::Create(ControlNodeOptions options) {
  auto parts = std::make_unique<Parts>(std::move(options));
  RETURN_IF_ERROR(parts->LoadTokens());
  parts->ReloadTokensOnHangup();
  if (parts->options.metrics) parts->metrics = std::make_unique<metrics::Registry>();
  ControlOptions service = parts->options.service;
  service.tokens = parts->tokens.get();
  service.metrics = parts->metrics.get();
  ASSIGN_OR_RETURN(parts->service, ControlService::Create(parts->io.get_executor(), service));
  return std::unique_ptr<ControlNode>(new ControlNode(std::move(parts)));
}

ControlNode::ControlNode(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

ControlNode::~ControlNode() { Stop(); }

Status ControlNode::Listen() {
  http::ServerOptions server = parts_->options.server;
  server.too_large = [limit = server.body_limit](const http::Request& header) {
    return TooLarge(header, limit);
  };
  ControlService& service = *parts_->service;
  ASSIGN_OR_RETURN(parts_->server,
                   http::Server::Create(parts_->io, server, [&service](http::Request r) {
                     return service.Handle(std::move(r));
                   }));
  parts_->server->Start();
  std::string workers;
  for (const WorkerAddress& w : parts_->options.service.workers) {
    if (!workers.empty()) workers += ',';
    workers += w.ToString();
  }
  spdlog::info("control node listening on {}:{} ({}), workers {}, replication factor {}",
               server.host, parts_->server->port(), server.tls_cert_file.empty() ? "HTTP" : "HTTPS",
               workers.empty() ? std::string("none yet (waiting for joins)") : workers,
               parts_->options.service.replication.replication_factor);
  return Status::Ok();
}

uint16_t ControlNode::port() const { return parts_->server->port(); }

void ControlNode::RunUntilSignal() {
  http::RunUntilSignal(parts_->io, parts_->threads(), [this] { parts_->StopServing(); });
  parts_->stopped = true;
  spdlog::info("stopped");
}

void ControlNode::Start() { parts_->serving.Start(parts_->threads()); }

void ControlNode::Stop() {
  if (parts_->stopped) return;
  // The service and the server stop on the io_context: serve, if never started, while they do.
  if (!parts_->serving.started()) Start();
  parts_->stopped = true;
  parts_->StopServing();
  parts_->serving.Stop();
}

}  // namespace das::control
