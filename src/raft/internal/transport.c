/* See transport.h. */
#include "raft/internal/transport.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/internal/handshake.h"

typedef struct group_transport group_transport;
typedef struct outgoing outgoing;
typedef struct incoming incoming;
typedef struct peer_address peer_address;

/* Where a peer is now (das_raft_hub_set_peers): dialed instead of the address in the group's
 * configuration, which keeps the one the peer had when it was added. */
struct peer_address {
  raft_id id;
  char address[kMaxAddress + 1];
};

struct das_raft_hub {
  uv_loop_t* loop;
  uv_tcp_t listener;
  group_transport* groups; /* registered transports */
  incoming* incomings;     /* connections still in their handshake */
  das_raft_hub_closed_cb closed_cb;
  void* closed_arg;
  unsigned handshake_timeout_ms; /* for each handshake, either way */
  unsigned char key[kMaxKey];    /* the cluster secret (or das_hs_no_secret) */
  size_t key_len;
  das_raft_hub_log_cb log_cb;
  void* log_arg;
  peer_address* peers; /* malloc'ed; NULL when none */
  size_t peer_count;
};

struct group_transport {
  das_raft_hub* hub;
  struct raft_uv_transport* t;
  uint64_t group_id;
  raft_id id;
  char address[kMaxAddress + 1];
  raft_uv_accept_cb accept_cb; /* set by listen */
  outgoing* pending;           /* connect requests in flight */
  raft_uv_transport_close_cb close_cb;
  int closing;
  group_transport* next;
};

enum stage { kResolving, kConnecting, kReadingHello, kWriting, kReadingAck };

struct outgoing {
  group_transport* g;
  struct raft_uv_connect* req;
  raft_uv_connect_cb cb;
  raft_id target; /* the peer meant: the acceptor must be it */
  enum stage stage;
  int canceled; /* the transport is closing: answer RAFT_CANCELED */
  int stopping; /* canceled or timed out: every callback from now on finishes */
  uv_timer_t timer;
  uv_getaddrinfo_t resolve;
  uv_connect_t connect;
  uv_write_t write;
  uv_tcp_t* tcp; /* raft_malloc'ed: handed to raft on success */
  unsigned char handshake[kMaxHandshake];
  size_t handshake_len;
  unsigned char hello[kHello]; /* then the ack, read into the same place */
  unsigned char ack[kAckLen];
  size_t have; /* of the hello or the ack */
  outgoing* next;
};

struct incoming {
  das_raft_hub* hub;
  uv_tcp_t* tcp;
  uv_write_t write;
  unsigned char hello[kHello];
  unsigned char buf[kMaxHandshake];
  unsigned char ack[kAckLen];
  size_t have;
  size_t need;
  int writing;
  int acking;       /* the write in flight is the ack (else the hello) */
  int orphaned;     /* its socket was closed while the ack was being written: the callback frees */
  uv_timer_t timer; /* the handshake's deadline; its close callback frees the struct */
  incoming* next;
};

static void free_handle(uv_handle_t* handle) { raft_free(handle); }

/* Each side's proof binds both nonces, so neither a recorded handshake nor a reflected one
 * proves anything (handshake.h). */
static int handshake_mac(const das_raft_hub* hub, const char* label, const unsigned char* hello,
                         const unsigned char* header, size_t header_len,
                         const unsigned char* connector_nonce, unsigned char* mac) {
  return das_hs_mac(hub->key, hub->key_len, label, hello, header, header_len, connector_nonce, mac);
}

/* "ip:port" of the other end of `tcp`, or "an unknown peer". */
static void peer_name(uv_tcp_t* tcp, char* out, size_t out_len) {
  struct sockaddr_storage addr;
  int len = sizeof addr;
  char ip[64];
  snprintf(out, out_len, "an unknown peer");
  if (uv_tcp_getpeername(tcp, (struct sockaddr*)&addr, &len) != 0) return;
  if (addr.ss_family == AF_INET) {
    const struct sockaddr_in* in4 = (const struct sockaddr_in*)&addr;
    uv_ip4_name(in4, ip, sizeof ip);
    snprintf(out, out_len, "%s:%d", ip, ntohs(in4->sin_port));
  } else if (addr.ss_family == AF_INET6) {
    const struct sockaddr_in6* in6 = (const struct sockaddr_in6*)&addr;
    uv_ip6_name(in6, ip, sizeof ip);
    snprintf(out, out_len, "[%s]:%d", ip, ntohs(in6->sin6_port));
  }
}

/* Every raft socket: no Nagle delay, and data unacknowledged for 10 s fails the connection (raft
 * sends a heartbeat far more often), so a peer that vanished without a word (its host gone, a
 * partition) is given up and raft dials again, where the hub's book says the peer is now,
 * rather than after TCP's minutes of retransmissions. */
static void tune_socket(uv_tcp_t* tcp) {
  uv_tcp_nodelay(tcp, 1);
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t*)tcp, &fd) == 0) {
    const unsigned int timeout_ms = 10000;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms, sizeof timeout_ms);
  }
}

/* Tells the hub's owner that a connection was refused, and why. */
static void log_refusal(das_raft_hub* hub, uv_tcp_t* tcp, const char* why) {
  if (hub->log_cb == NULL) return;
  char peer[128];
  char line[1024];
  peer_name(tcp, peer, sizeof peer);
  snprintf(line, sizeof line, "refused a raft connection from %s: %s", peer, why);
  hub->log_cb(hub->log_arg, peer, line);
}

/* "host:port" -> host and port strings; 0 or RAFT_INVALID. */
static int split_address(const char* address, char* host, size_t host_len, char* port,
                         size_t port_len) {
  const char* colon = strrchr(address, ':');
  if (colon == NULL || colon == address || (size_t)(colon - address) >= host_len) {
    return RAFT_INVALID;
  }
  memcpy(host, address, (size_t)(colon - address));
  host[colon - address] = '\0';
  snprintf(port, port_len, "%s", colon + 1);
  return 0;
}

/* --- the hub's side: accepting, the handshake, handing the stream to the group ----------- */

static group_transport* find_group(das_raft_hub* hub, uint64_t group_id) {
  for (group_transport* g = hub->groups; g != NULL; g = g->next) {
    if (g->group_id == group_id && g->accept_cb != NULL && !g->closing) return g;
  }
  return NULL;
}

static void unlink_incoming(incoming* in) {
  for (incoming** p = &in->hub->incomings; *p != NULL; p = &(*p)->next) {
    if (*p == in) {
      *p = in->next;
      return;
    }
  }
}

static void incoming_timer_closed(uv_handle_t* handle) { free(handle->data); }

/* Frees `in`, once its timer is closed (its socket is raft's or closed by then). */
static void release_incoming(incoming* in) {
  uv_timer_stop(&in->timer);
  uv_close((uv_handle_t*)&in->timer, incoming_timer_closed);
}

static void drop_incoming(incoming* in) {
  unlink_incoming(in);
  uv_close((uv_handle_t*)in->tcp, free_handle);
  release_incoming(in);
}

/* A peer that does not finish its handshake in time is dropped. */
static void incoming_timed_out(uv_timer_t* timer) {
  incoming* in = timer->data;
  if (in->writing) { /* the ack write completes with UV_ECANCELED and frees it */
    unlink_incoming(in);
    uv_close((uv_handle_t*)in->tcp, free_handle);
    in->orphaned = 1;
    return;
  }
  drop_incoming(in);
}

static void incoming_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
static void incoming_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);

/* The hello is out: read the connector's handshake. The ack is out: the stream is raft's. */
static void incoming_written(uv_write_t* write, int status) {
  incoming* in = write->data;
  in->writing = 0;
  if (in->orphaned) { /* its socket is closed already */
    release_incoming(in);
    return;
  }
  if (status != 0) {
    drop_incoming(in);
    return;
  }
  if (!in->acking) {
    if (uv_read_start((uv_stream_t*)in->tcp, incoming_alloc, incoming_read) != 0) {
      drop_incoming(in);
    }
    return;
  }
  group_transport* g = find_group(in->hub, das_hs_get_le(in->buf + kGroupAt, 8));
  if (g == NULL) {
    drop_incoming(in);
    return;
  }
  const raft_id peer = das_hs_get_le(in->buf + kIdAt, 8);
  const size_t len = (size_t)das_hs_get_le(in->buf + kAddressLenAt, 2);
  char address[kMaxAddress + 1];
  memcpy(address, in->buf + kFixedHeader, len);
  address[len] = '\0';
  uv_tcp_t* tcp = in->tcp;
  unlink_incoming(in);
  release_incoming(in);
  g->accept_cb(g->t, peer, address, (uv_stream_t*)tcp); /* the stream is raft's now */
}

static int incoming_write(incoming* in, unsigned char* bytes, size_t len, int acking) {
  uv_buf_t reply = uv_buf_init((char*)bytes, (unsigned)len);
  in->write.data = in;
  in->writing = 1;
  in->acking = acking;
  if (uv_write(&in->write, (uv_stream_t*)in->tcp, &reply, 1, incoming_written) != 0) {
    in->writing = 0;
    return -1;
  }
  return 0;
}

static void incoming_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) {
  (void)suggested;
  incoming* in = handle->data;
  /* Exactly what the handshake still lacks: never a byte of what follows it. */
  buf->base = (char*)in->buf + in->have;
  buf->len = in->need - in->have;
}

/* The header is complete: check it and learn how long the handshake is. NULL or why not. */
static const char* parse_header(incoming* in) { return das_hs_header(in->buf, &in->need); }

static void incoming_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  (void)buf;
  incoming* in = stream->data;
  if (nread == 0) return;
  if (nread < 0) {
    drop_incoming(in);
    return;
  }
  in->have += (size_t)nread;
  if (in->have == kFixedHeader && in->need == kFixedHeader) {
    const char* why = parse_header(in);
    if (why != NULL) {
      log_refusal(in->hub, in->tcp, why);
      drop_incoming(in);
      return;
    }
  }
  if (in->have < in->need) return;
  uv_read_stop(stream);
  const size_t header_len = in->need - kNonce - kMac;
  const unsigned char* nonce = in->buf + header_len;
  if (!das_hs_proven(in->hub->key, in->hub->key_len, in->hello, in->buf, in->need)) {
    char why[kMaxAddress + 128];
    const size_t len = (size_t)das_hs_get_le(in->buf + kAddressLenAt, 2);
    snprintf(why, sizeof why,
             "it does not prove the cluster secret (it names raft id %llu at %.*s, group %llu)",
             (unsigned long long)das_hs_get_le(in->buf + kIdAt, 8), (int)len,
             (const char*)in->buf + kFixedHeader,
             (unsigned long long)das_hs_get_le(in->buf + kGroupAt, 8));
    log_refusal(in->hub, in->tcp, why);
    drop_incoming(in);
    return;
  }
  const group_transport* g = find_group(in->hub, das_hs_get_le(in->buf + kGroupAt, 8));
  if (g == NULL) {
    drop_incoming(in); /* no such group here (yet): the peer retries */
    return;
  }
  const raft_id target = das_hs_get_le(in->buf + kTargetAt, 8);
  if (target != g->id) {
    char why[128];
    snprintf(why, sizeof why,
             "it is meant for raft id %llu, and this node is %llu (a stale address of a node "
             "that moved: the peer retries where it is now)",
             (unsigned long long)target, (unsigned long long)g->id);
    log_refusal(in->hub, in->tcp, why);
    drop_incoming(in);
    return;
  }
  in->ack[0] = kAck;
  if (handshake_mac(in->hub, das_hs_acceptor_label, in->hello, in->buf, header_len, nonce,
                    in->ack + 1) != 0 ||
      incoming_write(in, in->ack, kAckLen, 1) != 0) {
    drop_incoming(in);
  }
}

static void on_connection(uv_stream_t* listener, int status) {
  das_raft_hub* hub = listener->data;
  if (status != 0) return;
  incoming* in = calloc(1, sizeof *in);
  uv_tcp_t* tcp = raft_malloc(sizeof *tcp);
  if (in == NULL || tcp == NULL) {
    free(in);
    raft_free(tcp);
    return;
  }
  uv_tcp_init(hub->loop, tcp);
  tcp->data = in;
  in->hub = hub;
  in->tcp = tcp;
  in->need = kFixedHeader;
  if (uv_accept(listener, (uv_stream_t*)tcp) != 0) {
    uv_close((uv_handle_t*)tcp, free_handle);
    free(in);
    return;
  }
  tune_socket(tcp);
  uv_timer_init(hub->loop, &in->timer);
  in->timer.data = in;
  uv_timer_start(&in->timer, incoming_timed_out, hub->handshake_timeout_ms, 0);
  in->next = hub->incomings;
  hub->incomings = in;
  /* The acceptor speaks first: a fresh nonce the connector's proof must cover. */
  memcpy(in->hello, das_hs_magic, kMagicLen);
  das_hs_put_le(in->hello + 4, kVersion, 4);
  if (RAND_bytes(in->hello + 8, kNonce) != 1 || incoming_write(in, in->hello, kHello, 0) != 0) {
    drop_incoming(in);
  }
}

static void hub_listener_closed(uv_handle_t* handle);

int das_raft_hub_open(uv_loop_t* loop, const char* address, unsigned handshake_timeout_ms,
                      const void* secret, size_t secret_len, das_raft_hub_log_cb log_cb,
                      void* log_arg, das_raft_hub** out, char* errmsg, size_t errmsg_len) {
  char host[256];
  char port[16];
  struct sockaddr_storage addr;
  if (split_address(address, host, sizeof host, port, sizeof port) != 0) {
    snprintf(errmsg, errmsg_len, "'%s' is not host:port", address);
    return UV_EINVAL;
  }
  int rv = uv_ip4_addr(host, atoi(port), (struct sockaddr_in*)&addr);
  if (rv != 0) rv = uv_ip6_addr(host, atoi(port), (struct sockaddr_in6*)&addr);
  if (rv != 0) {
    snprintf(errmsg, errmsg_len, "'%s' is not an IP address", host);
    return rv;
  }
  if (secret_len > kMaxKey) {
    snprintf(errmsg, errmsg_len, "the cluster secret is longer than %d bytes", kMaxKey);
    return UV_EINVAL;
  }
  das_raft_hub* hub = calloc(1, sizeof *hub);
  if (hub == NULL) return UV_ENOMEM;
  hub->loop = loop;
  hub->handshake_timeout_ms = handshake_timeout_ms;
  if (secret_len > 0) {
    memcpy(hub->key, secret, secret_len);
    hub->key_len = secret_len;
  } else {
    memcpy(hub->key, das_hs_no_secret, strlen(das_hs_no_secret));
    hub->key_len = strlen(das_hs_no_secret);
  }
  hub->log_cb = log_cb;
  hub->log_arg = log_arg;
  uv_tcp_init(loop, &hub->listener);
  hub->listener.data = hub;
  rv = uv_tcp_bind(&hub->listener, (const struct sockaddr*)&addr, 0);
  if (rv == 0) rv = uv_listen((uv_stream_t*)&hub->listener, 128, on_connection);
  if (rv != 0) {
    snprintf(errmsg, errmsg_len, "cannot listen on %s: %s", address, uv_strerror(rv));
    uv_close((uv_handle_t*)&hub->listener, hub_listener_closed); /* frees the hub */
    return rv;
  }
  *out = hub;
  return 0;
}

int das_raft_hub_set_peers(das_raft_hub* hub, const uint64_t* ids, const char* const* addresses,
                           size_t count) {
  peer_address* peers = NULL;
  if (count > 0) {
    peers = calloc(count, sizeof *peers);
    if (peers == NULL) return UV_ENOMEM;
  }
  for (size_t i = 0; i < count; i++) {
    if (strlen(addresses[i]) > kMaxAddress) {
      free(peers);
      return UV_EINVAL;
    }
    peers[i].id = ids[i];
    snprintf(peers[i].address, sizeof peers[i].address, "%s", addresses[i]);
  }
  free(hub->peers);
  hub->peers = peers;
  hub->peer_count = count;
  return 0;
}

/* The address to dial for peer `id`: its current one when the hub was told, else `configured`. */
static const char* peer_address_of(const das_raft_hub* hub, raft_id id, const char* configured) {
  for (size_t i = 0; i < hub->peer_count; i++) {
    if (hub->peers[i].id == id) return hub->peers[i].address;
  }
  return configured;
}

static void hub_listener_closed(uv_handle_t* handle) {
  das_raft_hub* hub = handle->data;
  das_raft_hub_closed_cb cb = hub->closed_cb;
  void* arg = hub->closed_arg;
  free(hub->peers);
  free(hub);
  if (cb != NULL) cb(arg);
}

void das_raft_hub_close(das_raft_hub* hub, das_raft_hub_closed_cb cb, void* arg) {
  hub->closed_cb = cb;
  hub->closed_arg = arg;
  /* Connections still in their handshake are dropped; one waiting for its ack write is closed
   * too (the write then completes with UV_ECANCELED, after the hub is gone: detach it). */
  while (hub->incomings != NULL) {
    incoming* in = hub->incomings;
    hub->incomings = in->next;
    uv_close((uv_handle_t*)in->tcp, free_handle);
    if (in->writing) {
      in->orphaned = 1; /* the ack's callback frees it */
      uv_timer_stop(&in->timer);
    } else {
      release_incoming(in);
    }
  }
  uv_close((uv_handle_t*)&hub->listener, hub_listener_closed);
}

/* --- a group's side: raft's transport interface ----------------------------------------- */

static void unlink_outgoing(outgoing* out) {
  for (outgoing** p = &out->g->pending; *p != NULL; p = &(*p)->next) {
    if (*p == out) {
      *p = out->next;
      return;
    }
  }
}

static void unregister_group(group_transport* g) {
  for (group_transport** p = &g->hub->groups; *p != NULL; p = &(*p)->next) {
    if (*p == g) {
      *p = g->next;
      return;
    }
  }
}

/* Closing, once the last connect request is answered: raft may release the transport. */
static void maybe_closed(group_transport* g) {
  if (!g->closing || g->pending != NULL || g->close_cb == NULL) return;
  raft_uv_transport_close_cb cb = g->close_cb;
  g->close_cb = NULL;
  cb(g->t);
}

static void outgoing_timer_closed(uv_handle_t* handle) { free(handle->data); }

/* Answers a connect request: with the stream (status 0) or an error; closes the socket then. */
static void finish(outgoing* out, int status) {
  group_transport* g = out->g;
  uv_tcp_t* tcp = out->tcp;
  if (out->canceled) status = RAFT_CANCELED;
  if (status != 0 && tcp != NULL) uv_close((uv_handle_t*)tcp, free_handle);
  unlink_outgoing(out);
  struct raft_uv_connect* req = out->req;
  raft_uv_connect_cb cb = out->cb;
  uv_timer_stop(&out->timer);
  uv_close((uv_handle_t*)&out->timer, outgoing_timer_closed); /* frees `out` */
  cb(req, status == 0 ? (uv_stream_t*)tcp : NULL, status);
  maybe_closed(g);
}

static void outgoing_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) {
  (void)suggested;
  outgoing* out = handle->data;
  /* Exactly what the hello or the ack still lacks: nothing of raft's traffic is read here. */
  if (out->stage == kReadingHello) {
    buf->base = (char*)out->hello + out->have;
    buf->len = kHello - out->have;
  } else {
    buf->base = (char*)out->ack + out->have;
    buf->len = kAckLen - out->have;
  }
}

static void handshake_written(uv_write_t* write, int status);

/* The header, the connector's nonce and its proof over the acceptor's hello. 0 or -1. */
static int fill_handshake(outgoing* out) {
  group_transport* g = out->g;
  const size_t len = strlen(g->address);
  unsigned char* p = out->handshake;
  memcpy(p, das_hs_magic, kMagicLen);
  das_hs_put_le(p + 4, kVersion, 4);
  das_hs_put_le(p + kGroupAt, g->group_id, 8);
  das_hs_put_le(p + kIdAt, g->id, 8);
  das_hs_put_le(p + kTargetAt, out->target, 8);
  das_hs_put_le(p + kAddressLenAt, len, 2);
  memcpy(p + kFixedHeader, g->address, len);
  const size_t header_len = kFixedHeader + len;
  unsigned char* nonce = p + header_len;
  if (RAND_bytes(nonce, kNonce) != 1) return -1;
  if (handshake_mac(g->hub, das_hs_connector_label, out->hello, p, header_len, nonce,
                    nonce + kNonce) != 0) {
    return -1;
  }
  out->handshake_len = header_len + kNonce + kMac;
  return 0;
}

/* The acceptor's ack proves the secret too: a node that cannot is not sent raft traffic. */
static int ack_proven(outgoing* out) {
  const size_t header_len = out->handshake_len - kNonce - kMac;
  unsigned char expected[kMac];
  if (out->ack[0] != kAck) return 0;
  if (handshake_mac(out->g->hub, das_hs_acceptor_label, out->hello, out->handshake, header_len,
                    out->handshake + header_len, expected) != 0) {
    return 0;
  }
  return CRYPTO_memcmp(expected, out->ack + 1, kMac) == 0;
}

static void outgoing_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  (void)buf;
  outgoing* out = stream->data;
  if (nread == 0) return;
  if (nread < 0) {
    uv_read_stop(stream);
    finish(out, RAFT_NOCONNECTION);
    return;
  }
  out->have += (size_t)nread;
  if (out->stage == kReadingHello) {
    if (out->have < kHello) return;
    uv_read_stop(stream);
    if (memcmp(out->hello, das_hs_magic, kMagicLen) != 0 ||
        das_hs_get_le(out->hello + 4, 4) != kVersion || fill_handshake(out) != 0) {
      finish(out, RAFT_NOCONNECTION);
      return;
    }
    out->stage = kWriting;
    out->have = 0;
    out->write.data = out;
    uv_buf_t bytes = uv_buf_init((char*)out->handshake, (unsigned)out->handshake_len);
    if (uv_write(&out->write, (uv_stream_t*)out->tcp, &bytes, 1, handshake_written) != 0) {
      finish(out, RAFT_NOCONNECTION);
    }
    return;
  }
  if (out->have < kAckLen) return;
  uv_read_stop(stream);
  if (!ack_proven(out)) {
    if (out->g->hub->log_cb != NULL) {
      char peer[128];
      char line[256];
      peer_name(out->tcp, peer, sizeof peer);
      snprintf(line, sizeof line,
               "refused the raft peer at %s: its answer does not prove the cluster secret", peer);
      out->g->hub->log_cb(out->g->hub->log_arg, peer, line);
    }
    finish(out, RAFT_NOCONNECTION);
    return;
  }
  finish(out, 0);
}

static void handshake_written(uv_write_t* write, int status) {
  outgoing* out = write->data;
  if (status != 0 || out->stopping) {
    finish(out, RAFT_NOCONNECTION);
    return;
  }
  out->stage = kReadingAck;
  if (uv_read_start((uv_stream_t*)out->tcp, outgoing_alloc, outgoing_read) != 0) {
    finish(out, RAFT_NOCONNECTION);
  }
}

/* Connected: wait for the acceptor's hello, whose nonce our proof covers. */
static void connected(uv_connect_t* connect, int status) {
  outgoing* out = connect->data;
  if (status != 0 || out->stopping) {
    finish(out, RAFT_NOCONNECTION);
    return;
  }
  tune_socket(out->tcp);
  out->stage = kReadingHello;
  if (uv_read_start((uv_stream_t*)out->tcp, outgoing_alloc, outgoing_read) != 0) {
    finish(out, RAFT_NOCONNECTION);
  }
}

static void resolved(uv_getaddrinfo_t* resolve, int status, struct addrinfo* res) {
  outgoing* out = resolve->data;
  if (status != 0 || out->stopping || res == NULL) {
    if (res != NULL) uv_freeaddrinfo(res);
    finish(out, RAFT_NOCONNECTION);
    return;
  }
  out->tcp = raft_malloc(sizeof *out->tcp);
  if (out->tcp == NULL) {
    uv_freeaddrinfo(res);
    finish(out, RAFT_NOMEM);
    return;
  }
  uv_tcp_init(out->g->hub->loop, out->tcp);
  out->tcp->data = out;
  out->stage = kConnecting;
  out->connect.data = out;
  int rv = uv_tcp_connect(&out->connect, out->tcp, res->ai_addr, connected);
  uv_freeaddrinfo(res);
  if (rv != 0) finish(out, RAFT_NOCONNECTION);
}

/* Stops a connect request in flight: one resolving is cancelled in libuv's pool (or finishes
 * when its result comes); one connecting or writing completes with UV_ECANCELED once its socket
 * is closed; one reading is answered now. */
static void abort_outgoing(outgoing* out) {
  out->stopping = 1;
  if (out->stage == kResolving) {
    uv_cancel((uv_req_t*)&out->resolve);
  } else if (out->stage == kReadingHello || out->stage == kReadingAck) {
    finish(out, RAFT_NOCONNECTION); /* closes its socket */
  } else {
    uv_close((uv_handle_t*)out->tcp, free_handle);
    out->tcp = NULL; /* closed: finish must not close it again */
  }
}

/* A peer that does not acknowledge in time (connected but hung, or partitioned) is given up:
 * raft's client retries later. */
static void outgoing_timed_out(uv_timer_t* timer) { abort_outgoing(timer->data); }

static int transport_connect(struct raft_uv_transport* t, struct raft_uv_connect* req, raft_id id,
                             const char* address, raft_uv_connect_cb cb) {
  group_transport* g = t->impl;
  char host[256];
  char port[16];
  if (g->closing) return RAFT_CANCELED;
  /* A configured address may carry "#<id>" (a member added under a unique name): dialed
   * without it when the book does not say where the peer is now. */
  char dial[kMaxAddress + 1];
  snprintf(dial, sizeof dial, "%s", peer_address_of(g->hub, id, address));
  char* mark = strchr(dial, '#');
  if (mark != NULL) *mark = '\0';
  if (split_address(dial, host, sizeof host, port, sizeof port) != 0) return RAFT_INVALID;
  outgoing* out = calloc(1, sizeof *out);
  if (out == NULL) return RAFT_NOMEM;
  out->g = g;
  out->req = req;
  out->cb = cb;
  out->target = id;
  out->stage = kResolving;
  out->resolve.data = out;
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  /* Resolved on every attempt, so a peer that comes back under a new address is found. */
  if (uv_getaddrinfo(g->hub->loop, &out->resolve, resolved, host, port, &hints) != 0) {
    free(out);
    return RAFT_NOCONNECTION;
  }
  uv_timer_init(g->hub->loop, &out->timer);
  out->timer.data = out;
  uv_timer_start(&out->timer, outgoing_timed_out, g->hub->handshake_timeout_ms, 0);
  out->next = g->pending;
  g->pending = out;
  return 0;
}

static int transport_init(struct raft_uv_transport* t, raft_id id, const char* address) {
  group_transport* g = t->impl;
  if (strlen(address) > kMaxAddress) return RAFT_NAMETOOLONG;
  g->id = id;
  snprintf(g->address, sizeof g->address, "%s", address);
  return 0;
}

static int transport_listen(struct raft_uv_transport* t, raft_uv_accept_cb cb) {
  group_transport* g = t->impl;
  g->accept_cb = cb;
  return 0;
}

/* Cancels every connect request (see abort_outgoing). */
static void transport_close(struct raft_uv_transport* t, raft_uv_transport_close_cb cb) {
  group_transport* g = t->impl;
  g->closing = 1;
  g->close_cb = cb;
  g->accept_cb = NULL;
  unregister_group(g);
  outgoing* out = g->pending;
  while (out != NULL) {
    outgoing* next = out->next;
    out->canceled = 1;
    if (!out->stopping) abort_outgoing(out);
    out = next;
  }
  maybe_closed(g);
}

int das_hub_transport_init(das_raft_hub* hub, uint64_t group_id, struct raft_uv_transport* t) {
  group_transport* g = calloc(1, sizeof *g);
  if (g == NULL) return RAFT_NOMEM;
  g->hub = hub;
  g->t = t;
  g->group_id = group_id;
  t->version = 1;
  t->impl = g;
  t->init = transport_init;
  t->listen = transport_listen;
  t->connect = transport_connect;
  t->close = transport_close;
  g->next = hub->groups;
  hub->groups = g;
  return 0;
}

void das_hub_transport_release(struct raft_uv_transport* t) {
  group_transport* g = t->impl;
  if (g == NULL) return;
  if (!g->closing) unregister_group(g);
  free(g);
  t->impl = NULL;
}
