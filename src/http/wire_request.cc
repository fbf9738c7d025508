#include "http/wire_request.h"

#include <utility>

namespace das::http {

namespace bhttp = boost::beast::http;

Request FromWire(bhttp::request<bhttp::string_body>&& wire, const std::string& peer) {
  Request request;
  request.peer = peer;
  request.method = std::string(wire.method_string());
  request.target = std::string(wire.target());
  if (auto it = wire.find(bhttp::field::content_type); it != wire.end()) {
    request.content_type = std::string(it->value());
    request.has_content_type = true;
  }
  if (auto it = wire.find(bhttp::field::accept); it != wire.end()) {
    request.accept = std::string(it->value());
  }
  for (const auto& field : wire) {
    request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  request.body = std::move(wire.body());
  return request;
}

}  // namespace das::http
