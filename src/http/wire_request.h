// A request as Beast parsed it -> the plain http::Request handlers see. Used by the server for
// every request, and by fuzz/http_request_fuzz.cc, so the fuzzer runs exactly this conversion.
// Includes Beast's message types: only .cc files include it.
#pragma once

#include <string>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "http/message.h"

namespace das::http {

// Every field of `wire` (moved from), its body, and `peer` ("ip:port" of the sender).
Request FromWire(boost::beast::http::request<boost::beast::http::string_body>&& wire,
                 const std::string& peer);

}  // namespace das::http
