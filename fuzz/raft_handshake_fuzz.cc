// A raft port's handshake with a stranger (src/raft/internal/handshake.h): the acceptor's
// hello is fixed here; the input is what the connector sends, read the way the transport reads
// it (the fixed header, then exactly the length it announces). Half of the inputs (first byte
// odd) get a valid proof computed over their own header, so the fuzzer also reaches what
// follows a proof that holds: the group, the raft id and the address read out of it.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "raft/internal/handshake.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 + kFixedHeader) return 0;
  static const unsigned char kKey[] = "the fuzzer's cluster secret";
  unsigned char hello[kHello] = {'D', 'A', 'S', 'R', kVersion, 0, 0, 0};
  for (int i = 8; i < kHello; ++i) hello[i] = static_cast<unsigned char>(i * 7);
  const bool prove = data[0] & 1;
  unsigned char buf[kMaxHandshake];
  std::memcpy(buf, data + 1, kFixedHeader);
  size_t need = 0;
  if (das_hs_header(buf, &need) != nullptr) return 0;
  if (need > kMaxHandshake || need < kFixedHeader) __builtin_trap();
  if (size - 1 < need) return 0;
  std::memcpy(buf, data + 1, need);
  const size_t header_len = need - kNonce - kMac;
  if (prove) {
    das_hs_mac(kKey, sizeof kKey - 1, das_hs_connector_label, hello, buf, header_len,
               buf + header_len, buf + header_len + kNonce);
  }
  if (!das_hs_proven(kKey, sizeof kKey - 1, hello, buf, need)) {
    if (prove) __builtin_trap();  // a proof made with the key must hold
    return 0;
  }
  const size_t len = static_cast<size_t>(das_hs_get_le(buf + kAddressLenAt, 2));
  const std::string address(reinterpret_cast<const char*>(buf) + kFixedHeader, len);
  (void)das_hs_get_le(buf + kGroupAt, 8);
  (void)das_hs_get_le(buf + kTargetAt, 8);
  (void)das_hs_get_le(buf + kIdAt, 8);
  unsigned char ack[kMac];
  das_hs_mac(kKey, sizeof kKey - 1, das_hs_acceptor_label, hello, buf, header_len, buf + header_len,
             ack);
  return 0;
}
