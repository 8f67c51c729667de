/* The server's per-connection guard: a real memory bound per connection,
 * and a way to end one connection of a ROUTER.
 *
 * libzmq bounds one frame (ZMQ_MAXMSGSIZE) and counts whole messages
 * (ZMQ_RCVHWM), but it keeps every frame of a multipart message in memory
 * until the last one arrives, and the application cannot see a message
 * before that: one message of many capped frames grows without bound
 * (issue 10 item 3: 8 × 60 MiB frames took RSS from 11 to 491 MiB). Nor can
 * a ROUTER close one peer's connection (that API is draft-only in 4.3).
 *
 * The guard watches the ROUTER's connections through a socket monitor
 * (ACCEPTED / DISCONNECTED carry the connection's file descriptor) on its
 * own thread, and every MFL_CONN_GUARD_TICK_MS compares, per connection,
 * the bytes the kernel has received (TCP_INFO tcpi_bytes_received) with
 * the bytes the application has taken from it (reported by the server for
 * every message it reads, with its exact CurveZMQ framing overhead). The
 * difference is what sits inside libzmq (a partial message, queued whole
 * messages) and the kernel's receive buffer. Above `budget_bytes` the
 * connection is cut: shutdown(2) of its socket, so libzmq sees the peer
 * gone, frees its queue and closes the descriptor itself.
 *
 * Exactness: the count covers every byte an honest metafl peer sends
 * except its CURVE handshake (< 1 KiB per connection, within the slack the
 * server adds); ZMTP commands the application never sees (PING, which our
 * peers no longer send) count as backlog, so a peer sending them only
 * brings its own cut closer. Between two ticks a connection can exceed the
 * budget by what it delivers in one tick.
 *
 * Thread-safety: new/destroy from the thread that owns the ROUTER;
 * delivered/cut/strike from that thread too; the guard's own thread only
 * touches its table under its lock. */
#ifndef MFL_WIRE_CONN_GUARD_H
#define MFL_WIRE_CONN_GUARD_H

#include <stddef.h>
#include <stdint.h>

#define MFL_CONN_GUARD_TICK_MS 10

typedef struct mfl_conn_guard mfl_conn_guard_t;

typedef struct {
    uint64_t cut_backlog;   /* connections cut for holding more than the budget */
    uint64_t cut_asked;     /* connections cut by mfl_conn_guard_cut */
    uint64_t cut_surplus;   /* connections cut because more than max_conns were open */
    size_t open;            /* connections open now */
    uint64_t max_backlog;   /* largest backlog seen on any connection (bytes) */
    uint64_t backlog_now;   /* largest backlog of an open connection at the last tick */
} mfl_conn_guard_stats_t;

/* Starts the monitor on `router` (created in `ctx`, not yet bound or
 * connected: the monitor must see every connection) and the guard's
 * thread. A connection opened while max_conns are open is cut at once.
 * NULL + err on failure. */
mfl_conn_guard_t *mfl_conn_guard_new(void *ctx, void *router, uint64_t budget_bytes,
                                     size_t max_conns, char *err, size_t errlen);

/* Stops the thread and closes the monitor socket. Call before closing the
 * ROUTER's context. NULL-safe; nulls the pointer. */
void mfl_conn_guard_destroy(mfl_conn_guard_t **self_p);

/* The application took `wire_bytes` (the sum of mfl_conn_guard_wire_bytes
 * over a message's frames) from connection `fd` (zmq_msg_get(ZMQ_SRCFD));
 * fd < 0 is ignored. */
void mfl_conn_guard_delivered(mfl_conn_guard_t *self, int fd, uint64_t wire_bytes);

/* The bytes a CurveZMQ (ZMTP 3) peer puts on the wire for one frame of
 * `size` bytes: MESSAGE command name, nonce, MAC and flags, and the ZMTP
 * frame header. */
uint64_t mfl_conn_guard_wire_bytes(size_t size);

/* Ends connection `fd` now (shutdown both ways; libzmq then drops it).
 * 0 if it was an open connection the guard knew, -1 otherwise (nothing
 * is done: the descriptor may already belong to something else). */
int mfl_conn_guard_cut(mfl_conn_guard_t *self, int fd);

mfl_conn_guard_stats_t mfl_conn_guard_stats(mfl_conn_guard_t *self);

#endif
