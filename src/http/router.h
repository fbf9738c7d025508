// Router: the one place for routes, methods, 404/405, query-parameter checks and what every route
// shares (middleware: auth, metrics, request ids). Services register handlers; the server calls
// Router::Handle as its http::Handler.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "http/message.h"
#include "http/query.h"

namespace das::http {

// A route's handler. It receives the parsed target (path, decoded params, matched route), so it
// never parses `request.target` again. Like Handler, it must not block.
using RouteHandler =
    std::function<boost::asio::awaitable<Response>(Request request, Target target)>;

// Wraps every matched route's handler. It may call `next` (at most once) or answer on its own.
// `next` stays valid until the awaitable returned by the middleware completes.
using Middleware = std::function<boost::asio::awaitable<Response>(Request request, Target target,
                                                                  const RouteHandler& next)>;

// Builds the response for an error the router itself detects (kMalformed: 400, kNotFound: 404,
// kMethodNotAllowed: 405, as HttpStatusOf says), so that the service chooses the body format.
// The router adds the Allow header to a 405 afterwards.
using ErrorRenderer = std::function<Response(const Request& request, const Status& error)>;

struct RouteOptions {
  // The query parameters the route accepts; any other one is answered with 400.
  std::vector<std::string> params;
};

// Thread-safety: Add, AddPrefix and Use must all happen before serving; after that the router
// is read-only and Handle may run concurrently on any number of threads. The router must
// outlive every Handle coroutine it started. Not copyable or movable: the composed handlers
// refer into it.
class Router {
 public:
  explicit Router(ErrorRenderer render_error);
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Registers `handler` for `method` (case-sensitive, HEAD not special) on exactly `path`, which
  // is compared with the path as sent (not percent-decoded).
  // REQUIRES: `path` starts with '/'; `method` is not yet registered on `path`.
  void Add(std::string method, std::string path, RouteHandler handler, RouteOptions options = {});

  // Like Add, but matches every path that starts with `prefix` ("/admin/workers/"). An exact
  // route wins over any prefix route, and the longest matching prefix wins over shorter ones.
  // REQUIRES: `prefix` starts with '/'; `method` is not yet registered on `prefix`.
  void AddPrefix(std::string method, std::string prefix, RouteHandler handler,
                 RouteOptions options = {});

  // Appends a middleware around every route, present and future. The first one added is the
  // outermost. Middleware runs only for a matched route whose query parameters were accepted.
  void Use(Middleware middleware);

  // Answers one request: 400 for a malformed target, 404 for an unknown path, 405 (with Allow)
  // for a method not registered on the matched path, 400 for an unknown or repeated query
  // parameter; otherwise the route's handler inside all middleware. The path alone picks the
  // route (exact, then longest prefix); only then is the method looked at.
  // `[&router](Request r) { return router.Handle(std::move(r)); }` is an http::Handler.
  boost::asio::awaitable<Response> Handle(Request request) const;

  // The registered path or prefix that `target` (a request target, query and all) would be
  // routed to, whatever its method; empty when none matches. It outlives the router's use.
  std::string_view RouteOf(std::string_view target) const;
  // Every registered path and prefix, sorted.
  std::vector<std::string> Patterns() const;

 private:
  // One method registered on one path or prefix.
  struct Endpoint {
    std::string method;
    RouteOptions options;
    RouteHandler handler;   // as registered
    RouteHandler composed;  // `handler` wrapped by every middleware
  };
  // Every method registered on one path or prefix, in registration order (the Allow order).
  struct Route {
    std::string pattern;
    std::vector<Endpoint> endpoints;
  };
  using RouteMap = std::map<std::string, Route, std::less<>>;

  void Register(RouteMap& routes, std::string method, std::string pattern, RouteHandler handler,
                RouteOptions options);
  RouteHandler Compose(const RouteHandler& handler) const;
  const Route* FindRoute(std::string_view path) const;
  struct Match {
    const Route* route;
    const Endpoint* endpoint;
  };
  // The endpoint to call for `request`, or the error response to send instead.
  std::variant<Match, Response> Resolve(const Request& request, const Target& target) const;
  Response MethodNotAllowed(const Request& request, const Target& target, const Route& route) const;

  ErrorRenderer render_error_;
  RouteMap exact_;
  RouteMap prefixes_;
  std::vector<Middleware> middlewares_;
};

}  // namespace das::http
