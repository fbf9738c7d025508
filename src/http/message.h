// Plain HTTP request and response values, free of Beast, so that request handlers are pure
// functions that unit tests call without a socket, and only src/http/*.cc include Beast.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>

namespace das::http {

struct Request {
  std::string method;        // "GET", "POST", ... as sent
  std::string target;        // origin form: "/analytics?format=json"
  std::string content_type;  // empty when the header is absent
  bool has_content_type = false;
  std::string accept;  // empty when the header is absent
  std::string body;
  // Every header as received (names as sent), for what travels there: tokens, the cluster
  // secret, request ids. A client sends these too, after the fields above.
  std::vector<std::pair<std::string, std::string>> headers;
  // Who sent it: "ip:port" of the connection's other end (servers fill it; empty otherwise).
  std::string peer;

  // The first header named `name` (case-insensitive), or nullptr.
  const std::string* Header(std::string_view name) const;
};

struct Response {
  unsigned status = 200;
  std::string content_type;  // omitted from the wire when empty
  std::string body;
  // Extra headers, e.g. {"Allow", "POST"} on a 405.
  std::vector<std::pair<std::string, std::string>> headers;
  // Ask the server to close the connection after this response.
  bool close = false;
};

// A request handler. It must not block: slow work goes to another thread and is awaited.
using Handler = std::function<boost::asio::awaitable<Response>(Request)>;

}  // namespace das::http
