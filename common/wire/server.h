/* The coordinator's side of the wire: a ROUTER socket bound as a CURVE server.
 *
 * A ZAP handler (its own thread, inproc://zeromq.zap.01 in the server's own
 * ZeroMQ context) admits only CURVE keys from the allow-list directory and
 * sets the ZAP User-Id to the key's name, so every received message carries
 * the authenticated site id. A message whose Hello.site, UpdateHeader.site or
 * EvalReport.site names another site is rejected (REJECT_WRONG_SITE). An
 * Update's signature is verified against the site's allow-listed key and its
 * signed tensor hashes against the frames (REJECT_SIGNATURE / REJECT_HASH).
 * Round, nonce, selection and duplicate checks belong to the coordinator
 * (update_sign.h has the helper).
 *
 * One thread drives a server (ZeroMQ sockets are not thread-safe);
 * mfl_server_reload is the exception: it may be called from any thread. */
#ifndef MFL_WIRE_SERVER_H
#define MFL_WIRE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/keys.h"
#include "wire/message.h"

typedef struct mfl_server_t mfl_server_t;

/* No ZMTP heartbeats: libzmq 4.3.4 aborts on them with a peer that stops
 * reading (docs/WIRE.md "Threat model"); liveness is the sites' Heartbeat
 * messages, dead links are found by TCP keepalive. */
typedef struct {
    mfl_wire_limits_t limits;  /* receive caps (mfl_wire_limits_default) */
    int send_timeout_ms;       /* ZMQ_SNDTIMEO; default 0: a send never waits for a peer */
    int send_hwm;              /* ZMQ_SNDHWM, messages queued per peer; default 64 */
    int io_threads;            /* ZMQ_IO_THREADS; default 2 (CURVE runs there) */
    double rejects_per_s;      /* Rejects sent per connection per second; default 5 */
    double reject_burst;       /* ... in a burst; default 10 */
    uint32_t strikes_max;      /* bad messages per 10 s before a connection is cut; 100 */
    size_t max_connections;    /* open connections; more are cut at once; default 256 */
    uint64_t backlog_slack_bytes; /* per-connection bound = limits.max_total_bytes + this
                                     (default 4 MiB; conn_guard.h) */
} mfl_server_opts_t;

void mfl_server_opts_default(mfl_server_opts_t *opts);

/* What mfl_server_recv returns. */
typedef enum {
    MFL_RECV_OK = 0,        /* *msg holds a validated message */
    MFL_RECV_TIMEOUT = 1,   /* nothing within timeout_ms */
    MFL_RECV_REJECTED = 2,  /* a bad message was dropped, a Reject sent back to its
                               sender, *reason and err say why (log it, count it) */
    MFL_RECV_ERROR = -1,    /* the socket failed (err says why) */
} mfl_recv_result_t;

/* Binds `endpoint` (e.g. "tcp://0.0.0.0:7000" or "tcp://127.0.0.1:*") as a
 * CURVE server with `identity` (borrowed; keep it alive) and admits the keys
 * in `allow_dir` (*.pub, stem = site id). opts NULL = defaults. Returns NULL
 * with err naming the endpoint or file on failure. */
mfl_server_t *mfl_server_new(const char *endpoint, const mfl_identity_t *identity,
                             const char *allow_dir, const mfl_server_opts_t *opts,
                             char *err, size_t errlen);

/* Closes the socket (pending sends dropped), stops the ZAP thread. NULL-safe. */
void mfl_server_destroy(mfl_server_t **self_p);

/* The endpoint actually bound, e.g. "tcp://127.0.0.1:41234" (borrowed). */
const char *mfl_server_endpoint(const mfl_server_t *self);

/* Re-reads the allow-list directory. New connections see the new list;
 * messages still arriving from a site no longer in it are dropped unread
 * and its connection is cut when the next one arrives (call
 * mfl_server_drop_site to cut it at once). On error the old list stays in
 * force. Thread-safe. */
int mfl_server_reload(mfl_server_t *self, char *err, size_t errlen);

/* Whether `site` is in the allow-list now. */
bool mfl_server_site_allowed(mfl_server_t *self, const char *site);
/* The allow-listed Ed25519 public key of `site` (32 bytes): 0, or -1 if
 * it is not in the allow-list now. Thread-safe. */
int mfl_server_site_key(mfl_server_t *self, const char *site, uint8_t pk[32]);

/* Ends `site`'s session now: cuts every connection it has (conn_guard.h),
 * forgets its routing, drops whatever it still sends on them. `why` goes
 * to the log. Returns the number of connections cut. Driving thread. */
int mfl_server_drop_site(mfl_server_t *self, const char *site, const char *why);

/* Waits up to timeout_ms (-1 forever, 0 poll) for one message. Heartbeat
 * messages are consumed here (they only refresh liveness) and not returned.
 * On MFL_RECV_OK the caller owns *msg. *reason may be NULL. */
mfl_recv_result_t mfl_server_recv(mfl_server_t *self, int timeout_ms, mfl_msg_t **msg,
                                  int *reason, char *err, size_t errlen);

/* Sends to the most recent connection of `site` (as seen by recv), never
 * waiting: -1 with err if the site has not been seen, its connection is
 * gone or cut, or its queue is full (the message is dropped and counted in
 * send_dropped). A Reject beyond the connection's rate is not sent (-1,
 * counted in rejects_suppressed). Zero-copy and release semantics as
 * mfl_msg_send. */
int mfl_server_send(mfl_server_t *self, const char *site, const Metafl__Envelope *env,
                    const mfl_tensor_t *tensors, size_t n_tensors, mfl_release_fn *release,
                    void *hint, char *err, size_t errlen);

/* Sends to the connection `msg` came from (even if it is not the site's
 * latest). Same semantics as mfl_server_send. */
int mfl_server_reply(mfl_server_t *self, const mfl_msg_t *msg, const Metafl__Envelope *env,
                     const mfl_tensor_t *tensors, size_t n_tensors, mfl_release_fn *release,
                     void *hint, char *err, size_t errlen);

/* Sends Reject{reason, text, round} back to msg's connection. The
 * coordinator calls this for its own checks (round, nonce, duplicate...). */
int mfl_server_reject(mfl_server_t *self, const mfl_msg_t *msg, Metafl__RejectReason reason,
                      uint32_t round, const char *text, char *err, size_t errlen);

/* Liveness: monotonic ms (mfl_clock_mono_ms) of the last message (any kind)
 * from `site`; 0 if never seen. */
uint64_t mfl_server_last_seen(const mfl_server_t *self, const char *site);

/* Counters since creation. */
#define MFL_SERVER_REASONS 64 /* rejected_by_reason slots (RejectReason values) */
typedef struct {
    uint64_t received;   /* messages returned or consumed (heartbeats) */
    uint64_t rejected;   /* messages rejected by wire checks */
    uint64_t sent;
    uint64_t send_dropped;       /* sends refused: queue full, peer gone */
    uint64_t rejects_suppressed; /* Rejects not sent (rate limit) */
    uint64_t discarded;          /* messages dropped unread (cut or revoked) */
    uint64_t conns_cut;          /* connections cut (misbehaving, revoked, backlog, surplus) */
    size_t conns_open;           /* connections open now */
    uint64_t max_backlog_bytes;  /* largest per-connection backlog seen */
    uint64_t backlog_bytes_now;  /* largest per-connection backlog at the guard's last tick */
    uint64_t bytes_in;   /* frames received (envelope + tensor frames, after CURVE) */
    uint64_t bytes_out;  /* envelopes + tensor data handed to ZeroMQ to send */
    /* Wire-check rejections by RejectReason (index ≥ MFL_SERVER_REASONS
     * counted in the last slot). */
    uint64_t rejected_by_reason[MFL_SERVER_REASONS];
} mfl_server_stats_t;
mfl_server_stats_t mfl_server_stats(const mfl_server_t *self);

#endif
