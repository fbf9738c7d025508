/* The raft transport's handshake as bytes (its format is in transport.h): the constants, the
 * proofs, and the checks of what a connector sends, free of libuv and raft so that a fuzz
 * target (fuzz/raft_handshake_fuzz.cc) reaches exactly the code a raft port runs on a
 * stranger's bytes. C only; no state. */
#ifndef DAS_RAFT_INTERNAL_HANDSHAKE_H_
#define DAS_RAFT_INTERNAL_HANDSHAKE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  kMagicLen = 4,
  kVersion = 3,
  kNonce = 16,
  kMac = 32,               /* HMAC-SHA256 */
  kHello = 4 + 4 + kNonce, /* magic, version, the accepting side's nonce */
  /* magic, version, group id, the connector's raft id, the raft id it means to reach, the
   * length of its address */
  kFixedHeader = 4 + 4 + 8 + 8 + 8 + 2,
  kGroupAt = 8, /* offsets in the connector's header */
  kIdAt = 16,
  kTargetAt = 24,
  kAddressLenAt = 32,
  kMaxAddress = 255,
  kMaxHandshake = kFixedHeader + kMaxAddress + kNonce + kMac,
  kAckLen = 1 + kMac, /* kAck, then the accepting side's proof */
  kAck = 1,
  kMaxKey = 4096,
};
extern const char das_hs_magic[kMagicLen];  /* "DASR" */
extern const char das_hs_no_secret[];       /* the key of a node without a secret */
extern const char das_hs_connector_label[]; /* "das-raft-connect-v3" */
extern const char das_hs_acceptor_label[];  /* "das-raft-accept-v3" */

void das_hs_put_le(unsigned char* p, uint64_t v, int n);
uint64_t das_hs_get_le(const unsigned char* p, int n);

/* HMAC-SHA256 with `key` over `label`, the acceptor's nonce (in `hello`), the connector's
 * nonce and the connector's header (with its address, header_len <= kFixedHeader +
 * kMaxAddress). 0 or -1. */
int das_hs_mac(const unsigned char* key, size_t key_len, const char* label,
               const unsigned char* hello, const unsigned char* header, size_t header_len,
               const unsigned char* connector_nonce, unsigned char* mac);

/* The connector's fixed header (kFixedHeader bytes at `buf`): NULL and the handshake's whole
 * length in `need` (at most kMaxHandshake), or why it is no handshake of ours. */
const char* das_hs_header(const unsigned char* buf, size_t* need);

/* The connector's whole handshake (`len` = the `need` das_hs_header gave): 1 when its proof
 * holds for `key` over `hello`, else 0. Compares in constant time. */
int das_hs_proven(const unsigned char* key, size_t key_len, const unsigned char* hello,
                  const unsigned char* buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* DAS_RAFT_INTERNAL_HANDSHAKE_H_ */
