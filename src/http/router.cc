#include "http/router.h"

#include <algorithm>
#include <cassert>
#include <optional>
#include <unordered_set>
#include <utility>

namespace das::http {
namespace {

std::string Join(const std::vector<std::string>& items) {
  std::string joined;
  for (const std::string& item : items) {
    if (!joined.empty()) joined += ", ";
    joined += item;
  }
  return joined;
}

// The message for the first unknown or repeated query parameter, or nullopt when all are fine.
std::optional<std::string> CheckParams(const Target& target, const RouteOptions& options) {
  const std::vector<std::string>& accepted = options.params;
  std::unordered_set<std::string_view> seen;
  for (const QueryParam& param : target.params) {
    if (std::find(accepted.begin(), accepted.end(), param.name) == accepted.end()) {
      std::string message = "unknown query parameter '" + param.name + "' on " + target.path;
      if (!accepted.empty()) message += "; accepted: " + Join(accepted);
      return message;
    }
    if (!seen.insert(param.name).second) {
      return "query parameter '" + param.name + "' is given more than once";
    }
  }
  return std::nullopt;
}

// One middleware layer around `next`. The awaitable that `middleware` returns refers to this
// lambda's copy of `next`, which lives in the router as long as the router does.
RouteHandler Layer(Middleware middleware, RouteHandler next) {
  return
      [middleware = std::move(middleware), next = std::move(next)](Request request, Target target) {
        return middleware(std::move(request), std::move(target), next);
      };
}

}  // namespace

Router::Router(ErrorRenderer render_error) : render_error_(std::move(render_error)) {}

void Router::Add(std::string method, std::string path, RouteHandler handler, RouteOptions options) {
  Register(exact_, std::move(method), std::move(path), std::move(handler), std::move(options));
}

void Router::AddPrefix(std::string method, std::string prefix, RouteHandler handler,
                       RouteOptions options) {
  Register(prefixes_, std::move(method), std::move(prefix), std::move(handler), std::move(options));
}

void Router::Register(RouteMap& routes, std::string method, std::string pattern,
                      RouteHandler handler, RouteOptions options) {
  assert(!pattern.empty() && pattern.front() == '/');
  Route& route = routes[pattern];
  route.pattern = pattern;
  for ([[maybe_unused]] const Endpoint& endpoint : route.endpoints) {
    assert(endpoint.method != method);
  }
  RouteHandler composed = Compose(handler);
  route.endpoints.push_back(
      {std::move(method), std::move(options), std::move(handler), std::move(composed)});
}

void Router::Use(Middleware middleware) {
  middlewares_.push_back(std::move(middleware));
  for (RouteMap* routes : {&exact_, &prefixes_}) {
    for (auto& [pattern, route] : *routes) {
      for (Endpoint& endpoint : route.endpoints) endpoint.composed = Compose(endpoint.handler);
    }
  }
}

RouteHandler Router::Compose(const RouteHandler& handler) const {
  RouteHandler composed = handler;
  for (auto it = middlewares_.rbegin(); it != middlewares_.rend(); ++it) {
    composed = Layer(*it, std::move(composed));
  }
  return composed;
}

const Router::Route* Router::FindRoute(std::string_view path) const {
  if (auto exact = exact_.find(path); exact != exact_.end()) return &exact->second;
  const Route* longest = nullptr;
  for (const auto& [prefix, route] : prefixes_) {
    if (path.starts_with(prefix) && (!longest || prefix.size() > longest->pattern.size())) {
      longest = &route;
    }
  }
  return longest;
}

std::variant<Router::Match, Response> Router::Resolve(const Request& request,
                                                      const Target& target) const {
  const Route* route = FindRoute(target.path);
  if (!route)
    return render_error_(request, Status(StatusCode::kNotFound, "no route " + target.path));
  auto endpoint = std::find_if(route->endpoints.begin(), route->endpoints.end(),
                               [&](const Endpoint& e) { return e.method == request.method; });
  if (endpoint == route->endpoints.end()) return MethodNotAllowed(request, target, *route);
  if (std::optional<std::string> bad = CheckParams(target, endpoint->options)) {
    return render_error_(request, Status(StatusCode::kMalformed, std::move(*bad)));
  }
  return Match{route, &*endpoint};
}

Response Router::MethodNotAllowed(const Request& request, const Target& target,
                                  const Route& route) const {
  std::vector<std::string> methods;
  for (const Endpoint& endpoint : route.endpoints) methods.push_back(endpoint.method);
  const std::string allow = Join(methods);
  Response response = render_error_(
      request,
      Status(StatusCode::kMethodNotAllowed,
             "method " + request.method + " is not allowed on " + target.path + "; use " + allow));
  response.headers.emplace_back("Allow", allow);
  return response;
}

std::string_view Router::RouteOf(std::string_view target) const {
  const Route* route = FindRoute(target.substr(0, target.find('?')));
  return route ? std::string_view(route->pattern) : std::string_view();
}

std::vector<std::string> Router::Patterns() const {
  std::vector<std::string> patterns;
  for (const RouteMap* routes : {&exact_, &prefixes_}) {
    for (const auto& [pattern, route] : *routes) patterns.push_back(pattern);
  }
  std::sort(patterns.begin(), patterns.end());
  return patterns;
}

boost::asio::awaitable<Response> Router::Handle(Request request) const {
  Result<Target> parsed = ParseTarget(request.target);
  if (!parsed.ok())
    co_return render_error_(request, Status(StatusCode::kMalformed, parsed.status().message()));
  Target target = std::move(parsed).value();
  std::variant<Match, Response> resolved = Resolve(request, target);
  if (Response* error = std::get_if<Response>(&resolved)) co_return std::move(*error);
  const Match match = std::get<Match>(resolved);
  target.route = match.route->pattern;
  // Named awaitable: GCC 12 may destroy the by-value arguments of a co_await full-expression
  // twice.
  boost::asio::awaitable<Response> answer =
      match.endpoint->composed(std::move(request), std::move(target));
  co_return co_await std::move(answer);
}

}  // namespace das::http
