/* Multipart metafl messages: frame 0 is a protobuf Envelope (proto/metafl.proto),
 * frames 1.. are raw little-endian float32 tensor bytes described in order by
 * Envelope.tensors (a tensor spans TensorHeader.n_frames consecutive frames of
 * at most `chunk_bytes` each), or for an encoded tensor (TensorHeader.encoding
 * fp16 / int8, fed/quant.h; mfl_tensor_t.encoding on send) its encoded bytes:
 * the hash covers those bytes, and the receiver decodes them into a float32
 * copy (up to 4 × the bytes received for int8: the limits count wire bytes). Sending is zero-copy when the caller supplies a
 * release callback; receiving validates every frame against hard limits and
 * yields a message object that owns the decoded envelope and tensor buffers.
 *
 * These functions work on any ZeroMQ socket; server.h and client.h wrap them
 * with CURVE, authentication and liveness. */
#ifndef MFL_WIRE_MESSAGE_H
#define MFL_WIRE_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "core/tensor.h"
#include "metafl.pb-c.h"
#include "wire/task.h" /* mfl_reject_reason_name */

/* 2: upload flow control (UploadReady / UploadGrant before every Update). */
#define MFL_WIRE_PROTOCOL_VERSION 2
/* Reject envelopes of versions [this, MFL_WIRE_PROTOCOL_VERSION] are read
 * (the Reject layout never changes), and a REJECT_VERSION goes out as this
 * version so peers of every version can read it. */
#define MFL_WIRE_OLDEST_REJECT_VERSION 1
#define MFL_HASH_BYTES 32                  /* BLAKE2b-256 */
#define MFL_WIRE_CHUNK_BYTES (64u << 20)  /* default frame size for tensor data */
/* The frame size the daemons send with: a big tensor in 1 MiB frames lets
 * CurveZMQ encrypt frame k+1 while frame k is on the socket and being
 * decrypted by the peer, instead of encrypting, sending and decrypting one
 * 4 MB frame back to back (for P = 1M a site's update arrived in 2-5 ms after
 * its send instead of 20-25 ms; docs/PERFORMANCE.md). The receiver then
 * reassembles the tensor in its hashing pass (one copy). */
#define MFL_WIRE_PIPELINE_CHUNK_BYTES (1u << 20)
/* The frame size the coordinator sends θ with. CurveZMQ encrypts a frame
 * into a fresh buffer when the connection's I/O pulls it and keeps that
 * copy until the peer has taken all of it; a broadcast to N sites
 * therefore holds up to N encrypted frames at once (N whole θ when θ fits
 * one frame: ≈ 4·P per site at the round's peak, docs/PERFORMANCE.md
 * "Upload flow control"). Small frames bound that to N × 64 KiB. */
#define MFL_WIRE_BROADCAST_CHUNK_BYTES (64u << 10)
/* Upload flow control (protocol 2): a site whose update's tensor bytes are
 * at most this sends it at once, without UploadReady / UploadGrant; bigger
 * ones wait for a grant. N such updates cost the coordinator no more than
 * the N broadcast frames above, and a small model keeps its round time
 * (the handshake is a third wake-up of every site per round: P = 982,
 * N = 256 on 2 cores, 144 → 225 ms median round with it). */
#define MFL_WIRE_UNGRANTED_UPDATE_BYTES MFL_WIRE_BROADCAST_CHUNK_BYTES

/* TensorHeader.encoding 3: little-endian uint64 words, 8 bytes each, for
 * secure aggregation's masked vectors (a SECAGG_MASKED message carries
 * exactly one such tensor, and no other message may carry one). Masked
 * words are uniform bits, not floats: never checked for NaN/Inf. On send,
 * a tensor with this encoding has `data` pointing to `count` uint64
 * words (cast); on receive read them with mfl_msg_words (mfl_tensor_t's
 * data then points to the same words, not to floats). */
#define MFL_WIRE_ENCODING_U64 3
/* TensorHeader.encoding 4: little-endian uint32 words, 4 bytes each: the
 * same for a masked vector of 32-bit words (docs/SECAGG.md "Word width");
 * data points to `count` uint32 words; read with mfl_msg_words32. */
#define MFL_WIRE_ENCODING_U32 4

/* Hard caps applied on receive (and chunk size on send). */
typedef struct {
    size_t max_envelope_bytes; /* frame 0; default 1 MiB */
    size_t max_frame_bytes;    /* any tensor frame; default 64 MiB; also ZMQ_MAXMSGSIZE:
                                  a bigger frame makes ZeroMQ drop the connection */
    uint64_t max_total_bytes;  /* all frames of one message; default 1 GiB */
    size_t max_frames;         /* all frames incl. frame 0; default 1024 */
    size_t max_tensors;        /* default 256 */
    size_t chunk_bytes;        /* send side: split tensors into frames of this size
                                  (multiple of 4); default MFL_WIRE_CHUNK_BYTES; raised
                                  for a message that would exceed max_frames */
    bool pieces;               /* receive side: a float32 tensor spread over several
                                  frames (each a whole number of aligned floats) is
                                  left in them, its view's data NULL and its runs in
                                  mfl_tensor_t.pieces, instead of copied into one
                                  buffer (4·P bytes less per update held; the
                                  coordinator folds updates from the runs); so are
                                  uint64 / uint32 words (mfl_msg_word_runs); default
                                  false: every view has contiguous data */
    bool encoded_runs;         /* receive side, with `pieces`: an fp16 / int8 tensor
                                  of an Update or a RoundTask (no other message) is
                                  hashed and checked finite where it lies and left
                                  encoded in its frames: data NULL, `pieces` runs of
                                  codes (data cast: count codes of
                                  mfl_quant_bytes(encoding, 1) bytes each), encoding
                                  and scale set; read it with mfl_quant_decode_view
                                  (fed/quant.h). No 4·P float copy per update or
                                  broadcast (the coordinator decodes while it folds,
                                  a site while it adds); frames that split a code are
                                  decoded as before; default false: float32 copies */
} mfl_wire_limits_t;

/* Fills *limits with the defaults above. */
void mfl_wire_limits_default(mfl_wire_limits_t *limits);

/* Tensors travel as the core view (core/tensor.h): on send everything is
 * borrowed from the caller; on receive everything is owned by the mfl_msg_t
 * it came from, and blake2b is the verified hash. */

/* BLAKE2b-256 of count float32 values (little-endian bytes). */
void mfl_tensor_hash(const float *data, uint64_t count, uint8_t out[MFL_HASH_BYTES]);

/* Called exactly once, from any thread (usually a ZeroMQ I/O thread), when
 * the transport no longer reads the tensor bytes of one send. */
typedef void(mfl_release_fn)(void *hint);

/* A received, validated message. Opaque; destroy with mfl_msg_destroy. */
typedef struct mfl_msg_t mfl_msg_t;

/* Sends one message: `env` (caller-built; its kind and body set, tensors left
 * empty: they are filled here from `tensors`) then the tensor frames.
 * env->protocol_version 0 sends this build's version (any other value is
 * sent as is: tests speak old versions with it).
 * `routing_id` (ROUTER sockets) is prepended as the first frame when non-NULL.
 * Zero-copy if `release` is non-NULL: the tensor bytes must stay unchanged
 * until release(hint) runs (it runs even when sending fails part-way, after
 * the frames are dropped). With release == NULL the bytes are copied before
 * return. Returns 0, or -1 with err (timeouts say so; EHOSTUNREACH says the
 * peer is gone). Not thread-safe per socket (ZeroMQ rule). */
int mfl_msg_send(void *socket, const void *routing_id, size_t routing_id_len,
                 const Metafl__Envelope *env, const mfl_tensor_t *tensors, size_t n_tensors,
                 const mfl_wire_limits_t *limits, mfl_release_fn *release, void *hint,
                 char *err, size_t errlen);

/* Validates and takes ownership of `n` frames (each an initialised zmq_msg_t,
 * moved out: the caller's array holds closed empty messages afterwards).
 * frames[0] is the Envelope. Checks, in order: frame counts and sizes against
 * `limits` (REJECT_TOO_LARGE), envelope decode and version (REJECT_BAD_MESSAGE,
 * REJECT_VERSION; a Reject of an older version ≥ MFL_WIRE_OLDEST_REJECT_VERSION
 * is accepted), tensor headers: dims, shape product overflow, frame count
 * and 4·product bytes (REJECT_SHAPE), hash (REJECT_HASH), NaN/Inf
 * (REJECT_NONFINITE). Returns the message, or NULL with *reason (a
 * Metafl__RejectReason) and err. Thread-safe (no shared state). */
mfl_msg_t *mfl_msg_decode(zmq_msg_t *frames, size_t n, const mfl_wire_limits_t *limits,
                          int *reason, char *err, size_t errlen);

/* Gives back the message's tensor data (frames and copies) before the
 * message itself goes: its tensor views must not be read afterwards (their
 * data and pieces become NULL); the envelope, site and update header stay.
 * For a receiver done with an update while its event is still being
 * handled. Accepts NULL. */
void mfl_msg_release_tensors(mfl_msg_t *self);

/* Frees the message, its envelope and its tensor buffers; accepts NULL. */
void mfl_msg_destroy(mfl_msg_t **self_p);

/* The decoded envelope (borrowed, valid until destroy). */
const Metafl__Envelope *mfl_msg_envelope(const mfl_msg_t *self);
Metafl__MessageKind mfl_msg_kind(const mfl_msg_t *self);

/* Tensors in order; borrowed views valid until destroy. */
size_t mfl_msg_tensor_count(const mfl_msg_t *self);
const mfl_tensor_t *mfl_msg_tensor(const mfl_msg_t *self, size_t i);

/* Tensor i's words if it travelled as MFL_WIRE_ENCODING_U64 (8-byte
 * aligned, owned by the message, hash-verified), *count their number;
 * NULL for any other tensor. */
const uint64_t *mfl_msg_words(const mfl_msg_t *self, size_t i, uint64_t *count);

/* The same for MFL_WIRE_ENCODING_U32 (4-byte aligned uint32 words). */
const uint32_t *mfl_msg_words32(const mfl_msg_t *self, size_t i, uint64_t *count);

/* Tensor i's words (MFL_WIRE_ENCODING_U64 or _U32, hash-verified) as runs
 * in order, each {data: that many words of *word_bits bits, cast;
 * count: words}: the frames they arrived in when the receiver asked for
 * pieces (mfl_wire_limits_t.pieces) and each frame held whole aligned
 * words (mfl_msg_words / words32 then return NULL: there is no one
 * buffer), else one run written into *one. *n_runs, *word_bits (64 or 32)
 * and *count (all words) are set. NULL for any other tensor. Valid until
 * the message's tensors are released. */
const mfl_tensor_piece_t *mfl_msg_word_runs(const mfl_msg_t *self, size_t i,
                                            mfl_tensor_piece_t *one, size_t *n_runs,
                                            unsigned *word_bits, uint64_t *count);

/* Set by the server (never by the peer): the site id ZAP admitted ("" on the
 * client side), and the ROUTER routing id of the connection it came from. */
const char *mfl_msg_site(const mfl_msg_t *self);
const uint8_t *mfl_msg_routing_id(const mfl_msg_t *self, size_t *len);

/* For Update messages the server has verified (see server.h): the unpacked,
 * signature-checked UpdateHeader; NULL for other kinds. Borrowed. */
const Metafl__UpdateHeader *mfl_msg_update_header(const mfl_msg_t *self);

#endif
