/* A raft_uv_transport of our own that puts every Raft group of a node on one TCP port (libraft's
 * stock transport listens on one address per group). A connection starts with a handshake that
 * names the group: the connecting side sends magic "DASR", version 1, the group id, its raft id
 * and its address; the accepting side answers one byte (1) once the group is there, and only
 * then does raft's own traffic start, so no byte of it is read by the handshake. Every socket
 * gets TCP_NODELAY. C only (it includes raft/uv.h); loop thread only. */
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
