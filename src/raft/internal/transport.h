/* A raft_uv_transport of our own that puts every Raft group of a node on one TCP port (libraft's
 * stock transport listens on one address per group). A connection starts with a handshake that
 * names the group and proves the cluster secret both ways (integers little-endian):
 *   acceptor -> connector: "DASR", version 3 (4 bytes), a random 16-byte nonce (the hello);
 *   connector -> acceptor: "DASR", version 3, group id (8), its raft id (8), the raft id it
 *     means to reach (8), address length (2), its address, a random 16-byte nonce, and
 *     HMAC-SHA256(secret, "das-raft-connect-v3" || acceptor nonce || connector nonce ||
 *     everything it sent before the nonce);
 *   acceptor -> connector, once the proof holds, the group is there and the acceptor is the
 *     node meant (a peer that dialed a stale address reached another node: refused, and raft
 *     retries where it is now): one byte (1) and HMAC-SHA256(secret, "das-raft-accept-v3" ||
 *     the same nonces and header).
 * Only then does raft's own traffic start, so no byte of it is read by the handshake. A proof
 * that does not hold closes the connection, with a line to the hub's log callback naming the
 * peer. Every socket gets TCP_NODELAY and a 10 s TCP_USER_TIMEOUT. C only (it includes raft/uv.h);
 * loop thread only. */
#ifndef DAS_RAFT_INTERNAL_TRANSPORT_H_
#define DAS_RAFT_INTERNAL_TRANSPORT_H_

#include <raft.h>
#include <raft/uv.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "raft/internal/raft_c.h"

/* Fills `t` as the transport of group `group_id` on `hub`; raft then calls its init, listen,
 * connect and close. das_hub_transport_release frees what init allocated, after raft's close. */
int das_hub_transport_init(das_raft_hub* hub, uint64_t group_id, struct raft_uv_transport* t);
void das_hub_transport_release(struct raft_uv_transport* t);

#endif /* DAS_RAFT_INTERNAL_TRANSPORT_H_ */
