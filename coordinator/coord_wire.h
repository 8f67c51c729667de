/* The coordinator's transport adapter: the wire server (CURVE ROUTER, ZAP
 * allow-list, signature checks) seen as a stream of plain events and a few
 * send calls, in the terms the round engine uses (tensors as the core
 * view, core/tensor.h).
 *
 * Kept apart from coordinator.c so the daemon logic never touches the
 * wire's messages directly, and so the transport could be swapped.
 *
 * Not thread-safe: one thread drives it (ZeroMQ sockets rule). */
#ifndef MFL_COORD_WIRE_H
#define MFL_COORD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"
#include "wire/secagg_wire.h"
#include "wire/task.h"

typedef struct mfl_coord_wire mfl_coord_wire_t;

/* One received, wire-validated message, in plain C. Everything is
 * borrowed from the adapter and valid until the next recv or
 * mfl_coord_wire_release(); the fields of other kinds are zero. */
typedef struct {
    const char *site;                       /* authenticated (ZAP) site id */
    mfl_msg_kind_t kind;
    struct {                                /* HELLO */
        const char *software_version;       /* "" if not sent */
        uint64_t n_train;
        const uint8_t *schema_hash;
        size_t schema_hash_len;
        const char *schema_text;            /* not NUL-terminated: schema_text_len bytes */
        size_t schema_text_len;
        uint32_t n_features, n_classes;
        const uint64_t *class_counts;
        size_t n_class_counts;
        /* update encodings the site offers, bit (1 << mfl_quant_kind_t):
         * float32 always, fp16/int8 from its "compress:*" capabilities */
        uint32_t encodings;
        bool secagg;                        /* "secagg": it takes part in secure aggregation */
        /* compressed broadcasts the site can apply, the same bits, from its
         * "broadcast:*" capabilities (float32 always), and the model it
         * holds (Hello.broadcast_base; NULL: none or not 32 bytes) */
        uint32_t broadcasts;
        const uint8_t *broadcast_base;
    } hello;
    /* UPDATE: the verified header, decoded (NULL if it did not decode: a
     * field over its cap), and the bytes the site signed with its
     * signature, for the audit record. */
    const mfl_update_header_t *update_header;
    const uint8_t *signed_header;
    size_t signed_header_len;
    const uint8_t *signature;
    size_t signature_len;
    /* UPDATE_BEGIN: the header fields above, and the chunk hashes
     * (n × 32 bytes, contiguous; NULL with `text` saying why if the list
     * is malformed: an entry not 32 bytes, more than MFL_CHUNKS_MAX). */
    const uint8_t *chunk_hashes;
    size_t n_chunk_hashes;
    struct {                                /* UPDATE_CHUNK (its one tensor in `tensors`) */
        uint32_t round;
        const uint8_t *nonce;
        size_t nonce_len;
        uint64_t index;
    } chunk;
    struct {                                /* UPLOAD_READY */
        uint32_t round;
        const uint8_t *nonce;
        size_t nonce_len;
        uint64_t update_bytes;
    } upload_ready;
    const mfl_eval_report_t *eval_report;   /* EVAL_REPORT (NULL: did not decode) */
    struct {                                /* SITE_FAILURE: the site cannot do its task */
        uint32_t round;
        const uint8_t *nonce;
        size_t nonce_len;
        bool evaluation;                    /* the failed task was an EvalTask */
        const char *reason;                 /* "" if none */
        bool need_model;                    /* a broadcast difference it could not apply */
    } site_failure;
    /* SECAGG_* from a site: the decoded message (NULL if it did not decode:
     * `text` says why) and, for SECAGG_MASKED, its words (uint64_t or
     * uint32_t: secagg_word_bits) as runs in order (the frames they
     * arrived in, or one run: mfl_msg_word_runs; each run's count is in
     * words; NULL if none) and their BLAKE2b-256, verified on receipt (the
     * tensor header's). */
    const mfl_secagg_wire_t *secagg;
    const mfl_tensor_piece_t *secagg_runs;
    size_t secagg_n_runs;
    unsigned secagg_word_bits;
    const uint8_t *secagg_hash;
    const char *text;                       /* BYE: the reason; REJECT: the text (""); SECAGG_*: a decode error */
    const mfl_tensor_t *tensors;
    size_t n_tensors;
} mfl_wire_event_t;

/* Binds `endpoint` with the secret key in `key_file`, admitting the public
 * keys in `allow_dir`. max_message_bytes caps one message (frames are
 * capped at the same size); heartbeat_ms is the ZMTP heartbeat. NULL + err. */
mfl_coord_wire_t *mfl_coord_wire_new(const char *endpoint, const char *key_file,
                                     const char *allow_dir, size_t max_message_bytes,
                                     uint32_t heartbeat_ms, char *err, size_t errlen);
void mfl_coord_wire_destroy(mfl_coord_wire_t **self_p);

/* θ changed (a server step): copies it now, with its tensors' BLAKE2b
 * `hashes` (n_tensors × 32, as the engine computed them once for the
 * round; NULL: hashed here, on a helper thread for a large θ), so the next
 * RoundTask/EvalTask send finds its snapshot ready instead of copying and
 * hashing θ on the round's critical path. Tensors and hashes are borrowed
 * for the call; a later send whose θ differs from this copy ignores it.
 * Never fails (on OOM the send prepares θ itself). */
void mfl_coord_wire_prepare_theta(mfl_coord_wire_t *self, const mfl_tensor_t *tensors,
                                  const uint8_t *hashes, size_t n_tensors);

/* The current event's update has been folded (the engine is closing the
 * round): its tensor frames are given back now rather than at the next
 * receive, so the close's copy of the new θ does not come on top of them.
 * The event's tensor views must not be read afterwards. */
void mfl_coord_wire_release_tensors(mfl_coord_wire_t *self);

/* Bytes of θ copies the adapter holds for broadcasts: the current
 * snapshot (while some send still holds it, or until the next receive
 * after its last send finished: then it is dropped and only its hashes are
 * kept) plus one being prepared. For tests and memory accounting. */
size_t mfl_coord_wire_snapshot_bytes(const mfl_coord_wire_t *self);

/* The bound endpoint ("tcp://127.0.0.1:41234"). */
const char *mfl_coord_wire_endpoint(const mfl_coord_wire_t *self);

/* Re-reads the allow-list directory (SIGHUP): new connections see the new
 * list; messages from a site no longer in it are dropped unread. On error
 * the old list stays in force and err says why. Returns 0 or -1. */
int mfl_coord_wire_reload(mfl_coord_wire_t *self, char *err, size_t errlen);

/* Whether `site`'s key is in the allow-list now. */
bool mfl_coord_wire_site_allowed(mfl_coord_wire_t *self, const char *site);

/* Ends `site`'s session now (its connections are closed, later messages
 * on them dropped); `why` goes to the log. Returns connections closed. */
int mfl_coord_wire_drop_site(mfl_coord_wire_t *self, const char *site, const char *why);
/* The coordinator's key name and Ed25519 secret key (64 bytes, borrowed),
 * for the audit log. */
const char *mfl_coord_wire_name(const mfl_coord_wire_t *self);
const uint8_t *mfl_coord_wire_sign_sk(const mfl_coord_wire_t *self);

/* Waits up to timeout_ms for a message. Returns 1 with *ev filled, 0 on
 * timeout or after a message the wire layer rejected (already answered
 * with a Reject and logged here), -1 if the socket failed (err). */
int mfl_coord_wire_recv(mfl_coord_wire_t *self, int timeout_ms, mfl_wire_event_t *ev,
                        char *err, size_t errlen);
/* Frees the current message early (optional). */
void mfl_coord_wire_release(mfl_coord_wire_t *self);

/* Monotonic ms of the last message (heartbeats included) from `site`; 0 never. */
uint64_t mfl_coord_wire_last_seen(const mfl_coord_wire_t *self, const char *site);

/* Sends to the latest connection of `site`. 0 or -1 (err). */
int mfl_coord_wire_send_round_task(mfl_coord_wire_t *self, const char *site,
                                   const mfl_round_task_t *task,
                                   const mfl_tensor_t *tensors, size_t n_tensors,
                                   char *err, size_t errlen);
int mfl_coord_wire_send_eval_task(mfl_coord_wire_t *self, const char *site,
                                  const mfl_eval_task_t *task,
                                  const mfl_tensor_t *tensors, size_t n_tensors,
                                  char *err, size_t errlen);
int mfl_coord_wire_send_reject(mfl_coord_wire_t *self, const char *site, mfl_reject_t reason, uint32_t round, const char *text,
                               char *err, size_t errlen);
int mfl_coord_wire_send_welcome(mfl_coord_wire_t *self, const char *site, uint32_t round,
                                uint32_t heartbeat_ms, const char *run_id, char *err,
                                size_t errlen);
/* UploadGrant{round, nonce} (nonce borrowed for the call). */
int mfl_coord_wire_send_grant(mfl_coord_wire_t *self, const char *site, uint32_t round,
                              const uint8_t *nonce, size_t nonce_len, char *err,
                              size_t errlen);
/* One of secure aggregation's messages (wire/secagg_codec.h) to `site`. */
int mfl_coord_wire_send_secagg(mfl_coord_wire_t *self, const char *site,
                               const mfl_secagg_wire_t *msg, char *err, size_t errlen);
/* The allow-listed Ed25519 public key of `site` (32 bytes): 0, or -1 if
 * it is not in the allow-list. */
int mfl_coord_wire_site_key(mfl_coord_wire_t *self, const char *site, uint8_t pk[32]);
int mfl_coord_wire_send_bye(mfl_coord_wire_t *self, const char *site, const char *reason,
                            char *err, size_t errlen);

/* The protocol version this build speaks (Envelope.protocol_version). */
uint32_t mfl_coord_wire_protocol_version(void);

/* The wire server's traffic counters, for the Prometheus file: bytes in
 * and out, and the wire's own rejections by RejectReason. */
#include "round/prom_export.h"
void mfl_coord_wire_counters(const mfl_coord_wire_t *self, mfl_prom_wire_t *out);

#endif
