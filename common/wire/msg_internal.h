/* Internals shared by message.c, server.c and client.c: not a public API. */
#ifndef MFL_WIRE_MSG_INTERNAL_H
#define MFL_WIRE_MSG_INTERNAL_H

#include "wire/keys.h"
#include "wire/message.h"

struct mfl_msg_t {
    Metafl__Envelope *env;
    zmq_msg_t *frames;          /* the data frames, kept for zero-copy views */
    size_t n_frames;
    mfl_tensor_t *tensors;
    size_t n_tensors;
    float **copies;             /* per tensor: a contiguous copy, or NULL (view into a frame) */
    mfl_tensor_piece_t *pieces; /* tensors left in their frames (limits.pieces): their runs */
    uint8_t *hashes;            /* n_tensors × MFL_HASH_BYTES, verified */
    char site[MFL_KEY_NAME_MAX + 1];
    uint8_t routing_id[256];
    size_t routing_id_len;
    Metafl__UpdateHeader *update_header; /* set by the server after verification */
};

/* Reads one whole multipart message from `sock` (a ROUTER if `router`: its
 * first frame is the routing id, copied into rid/rid_len). Frames past the
 * limits are read and dropped so the socket stays in step. The ZAP User-Id
 * goes into `site` (size MFL_KEY_NAME_MAX + 1; "" if none). Returns 1 with
 * *out set (or *out NULL and *reason/err on a rejected message), 0 when
 * nothing was waiting (EAGAIN), -1 on a socket error. */
int mfl_msg_recv_raw(void *sock, int router, const mfl_wire_limits_t *limits, mfl_msg_t **out,
                     uint8_t *rid, size_t *rid_len, char *site, int *reason, char *err,
                     size_t errlen);

/* mfl_msg_recv_raw in two steps, so the server can decode (hash) two
 * messages at once: recv_frames reads one whole message's frames (same
 * return values; on 1, *frames/n_frames hold them, or NULL after a message
 * over the limits, with *reason/err); decode_from takes ownership of the
 * frames array and returns the decoded message (routing id and site set)
 * or NULL + reason/err. decode_from touches no shared state: any thread. */
int mfl_msg_recv_frames(void *sock, int router, const mfl_wire_limits_t *limits,
                        zmq_msg_t **frames, size_t *n_frames, uint8_t *rid, size_t *rid_len,
                        char *site, int *reason, char *err, size_t errlen);

/* What mfl_msg_recv_frames learnt about the connection a message came
 * from: its descriptor (ZMQ_SRCFD; -1 if unknown) and the bytes its frames
 * took on the wire (mfl_conn_guard_wire_bytes), dropped frames included. */
typedef struct {
    int fd;
    uint64_t wire_bytes;
} mfl_msg_source_t;

/* The source of the message the last mfl_msg_recv_frames on this thread
 * read (valid until the next call on the same thread). */
mfl_msg_source_t mfl_msg_last_source(void);
mfl_msg_t *mfl_msg_decode_from(zmq_msg_t *frames, size_t n, const mfl_wire_limits_t *limits,
                               const uint8_t *rid, size_t rid_len, const char *site,
                               int *reason, char *err, size_t errlen);

/* Sets ZMQ_MAXMSGSIZE from the limits. */
int mfl_wire_set_maxmsgsize(void *sock, const mfl_wire_limits_t *limits);

/* Sends a Reject envelope (no tensors). */
int mfl_msg_send_reject(void *sock, const void *rid, size_t rid_len, int reason, uint32_t round,
                        const char *text, const mfl_wire_limits_t *limits, char *err,
                        size_t errlen);

/* Milliseconds since the epoch (wall clock, for liveness). */
uint64_t mfl_wire_now_ms(void);

#endif
