/* See handshake.h. */
#include "raft/internal/handshake.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

const char das_hs_magic[kMagicLen] = {'D', 'A', 'S', 'R'};
/* Its handshakes prove nothing, and it accepts no node that has a secret (nor does one with a
 * secret accept it). */
const char das_hs_no_secret[] = "das: no cluster secret";
const char das_hs_connector_label[] = "das-raft-connect-v3";
const char das_hs_acceptor_label[] = "das-raft-accept-v3";

void das_hs_put_le(unsigned char* p, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = (unsigned char)(v >> (8 * i));
}

uint64_t das_hs_get_le(const unsigned char* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

int das_hs_mac(const unsigned char* key, size_t key_len, const char* label,
               const unsigned char* hello, const unsigned char* header, size_t header_len,
               const unsigned char* connector_nonce, unsigned char* mac) {
  unsigned char message[sizeof das_hs_connector_label + kNonce * 2 + kFixedHeader + kMaxAddress];
  const size_t label_len = strlen(label);
  if (label_len >= sizeof das_hs_connector_label || header_len > kFixedHeader + kMaxAddress) {
    return -1;
  }
  size_t n = 0;
  memcpy(message + n, label, label_len);
  n += label_len;
  memcpy(message + n, hello + 8, kNonce);
  n += kNonce;
  memcpy(message + n, connector_nonce, kNonce);
  n += kNonce;
  memcpy(message + n, header, header_len);
  n += header_len;
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), key, (int)key_len, message, n, mac, &mac_len) == NULL || mac_len != kMac) {
    return -1;
  }
  return 0;
}

const char* das_hs_header(const unsigned char* buf, size_t* need) {
  if (memcmp(buf, das_hs_magic, kMagicLen) != 0) return "it does not speak the raft handshake";
  if (das_hs_get_le(buf + 4, 4) != kVersion) return "its handshake is of another version";
  const size_t len = (size_t)das_hs_get_le(buf + kAddressLenAt, 2);
  if (len == 0 || len > kMaxAddress) return "its handshake names no valid address";
  *need = kFixedHeader + len + kNonce + kMac;
  return NULL;
}

int das_hs_proven(const unsigned char* key, size_t key_len, const unsigned char* hello,
                  const unsigned char* buf, size_t len) {
  if (len < kFixedHeader + 1 + kNonce + kMac || len > kMaxHandshake) return 0;
  const size_t header_len = len - kNonce - kMac;
  const unsigned char* nonce = buf + header_len;
  unsigned char expected[kMac];
  if (das_hs_mac(key, key_len, das_hs_connector_label, hello, buf, header_len, nonce, expected) !=
      0) {
    return 0;
  }
  return CRYPTO_memcmp(expected, nonce + kNonce, kMac) == 0;
}
