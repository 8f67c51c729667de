/* The site agent's side of the wire: a DEALER socket that only dials out, as
 * a CURVE client pinning the coordinator's public key.
 *
 * ZeroMQ reconnects by itself with backoff (ZMQ_RECONNECT_IVL 100 ms up to
 * ZMQ_RECONNECT_IVL_MAX 5 s). A socket monitor watches the handshake: each
 * successful CURVE handshake calls the on_connect hook (so the agent re-sends
 * Hello after a drop); an authentication refusal (our key not allow-listed)
 * or a connection the server drops mid-handshake (almost always: we pinned the
 * wrong coordinator key) is remembered as a clear error.
 *
 * One thread drives a client; hooks run in that thread, inside the client's
 * calls (never in a ZeroMQ thread). */
#ifndef MFL_WIRE_CLIENT_H
#define MFL_WIRE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/keys.h"
#include "wire/message.h"
#include "wire/server.h" /* mfl_recv_result_t */

typedef struct mfl_client_t mfl_client_t;

typedef struct {
    mfl_wire_limits_t limits;  /* receive caps */
    uint32_t heartbeat_ms;     /* ZMTP heartbeats and app Heartbeat messages; default 2000 */
    int send_timeout_ms;       /* ZMQ_SNDTIMEO; default 5000 */
    int reconnect_ivl_ms;      /* default 100 */
    int reconnect_ivl_max_ms;  /* default 5000 */
    int io_threads;            /* default 2 */
} mfl_client_opts_t;

void mfl_client_opts_default(mfl_client_opts_t *opts);

/* Called after each successful CURVE handshake (first connect and every
 * reconnect). `n` counts handshakes from 1. */
typedef void(mfl_client_connect_fn)(mfl_client_t *client, unsigned n, void *arg);

/* Connects (asynchronously) to `endpoint` with `identity` (borrowed; keep it
 * alive), pinning `server_key` (copied). opts NULL = defaults. NULL + err on a
 * bad endpoint or key. */
mfl_client_t *mfl_client_new(const char *endpoint, const mfl_identity_t *identity,
                             const mfl_public_key_t *server_key, const mfl_client_opts_t *opts,
                             char *err, size_t errlen);
void mfl_client_destroy(mfl_client_t **self_p);

/* Registers the reconnect hook (NULL clears it). */
void mfl_client_on_connect(mfl_client_t *self, mfl_client_connect_fn *fn, void *arg);

/* Waits up to timeout_ms for a completed handshake. 0 when connected; -1 with
 * err otherwise (early, at the first failed handshake), naming the cause: "coordinator refused our key (not in its
 * allow-list?)", "connection closed during the CURVE handshake: the pinned
 * coordinator key (NAME) is probably wrong", or nothing reachable at all. */
int mfl_client_wait_connected(mfl_client_t *self, int timeout_ms, char *err, size_t errlen);

/* True while a handshaken connection is up (as far as the monitor knows). */
bool mfl_client_connected(const mfl_client_t *self);

/* Sends one message (see mfl_msg_send). Fails (-1, err) after
 * send_timeout_ms when no handshaken connection exists: messages are never
 * queued for a connection that has not authenticated. */
int mfl_client_send(mfl_client_t *self, const Metafl__Envelope *env,
                    const mfl_tensor_t *tensors, size_t n_tensors, mfl_release_fn *release,
                    void *hint, char *err, size_t errlen);

/* Sends an app-level Heartbeat now, without blocking (-1 if it could not be
 * queued). Also sent automatically from recv every heartbeat_ms while
 * connected. */
int mfl_client_heartbeat(mfl_client_t *self, char *err, size_t errlen);

/* Waits up to timeout_ms for a message from the coordinator, handling
 * monitor events (hooks) and heartbeats meanwhile. A malformed message is
 * dropped and reported as MFL_RECV_REJECTED (nothing is sent back). */
mfl_recv_result_t mfl_client_recv(mfl_client_t *self, int timeout_ms, mfl_msg_t **msg,
                                  int *reason, char *err, size_t errlen);

/* The most recent handshake/connection error text, "" if none. Borrowed. */
const char *mfl_client_last_error(const mfl_client_t *self);

#endif
