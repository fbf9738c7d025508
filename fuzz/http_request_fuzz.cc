// What a public or internal HTTP port does with a stranger's bytes before any handler: Beast's
// request parser with the server's limits (head 16 KiB, body 1 MiB here), then our reading of
// the request: the server's own conversion (http/wire_request.h), the target and its query
// parameters (http/query.h), the bearer token (control/auth.h), the body's and the answer's
// encodings (control/codec.h), and the cluster secret's header (rpc/cluster_auth.h). The input is
// fed in two pieces (its first byte says where it splits), as a socket may deliver it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "control/auth.h"
#include "control/codec.h"
#include "http/message.h"
#include "http/query.h"
#include "http/wire_request.h"
#include "rpc/cluster_auth.h"

namespace bhttp = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t split = 1 + data[0] % (size > 1 ? size - 1 : 1);
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(1024 * 1024);
  parser.eager(true);
  boost::beast::error_code ec;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string pending;
  for (std::string_view piece : {rest.substr(0, split - 1), rest.substr(split - 1)}) {
    pending.append(piece);
    while (!pending.empty() && !parser.is_done()) {
      const size_t used = parser.put(boost::asio::buffer(pending), ec);
      if (ec == bhttp::error::need_more) {
        ec = {};
        pending.erase(0, used);
        break;
      }
      if (ec) return 0;
      pending.erase(0, used);
      if (used == 0) break;
    }
  }
  if (!parser.is_header_done()) return 0;
  bhttp::request<bhttp::string_body> wire = parser.release();
  das::http::Request request = das::http::FromWire(std::move(wire), "127.0.0.1:1");

  (void)das::http::ParseTarget(request.target);
  if (const std::string* authorization = request.Header("Authorization")) {
    if (auto token = das::control::BearerToken(*authorization)) {
      (void)das::control::ConstantTimeEquals(*token, "a-token-of-the-file");
    }
  }
  das::control::Decoded<das::control::Encoding> body = das::control::BodyEncoding(request);
  (void)das::control::AnswerEncoding(request, das::control::Encoding::kProtobuf);
  (void)das::control::ErrorEncoding(request);
  (void)body;
  static const auto key = das::rpc::ClusterKey::Create("the fuzzer's cluster secret");
  (void)key->Verify(request, std::chrono::system_clock::now());
  return 0;
}
