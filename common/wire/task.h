/* What the coordinator and a site say to each other, as plain C: a round
 * task, an evaluation task, a site's update header and evaluation report,
 * and the reasons a message is refused. The round engine and the site
 * worker speak only these; the task codec (wire/task_codec.h) turns them
 * into the protocol's messages and back, so no Metafl__* type (generated
 * protobuf) appears outside common/wire and the programs' transport files.
 *
 * Fields mirror proto/metafl.proto one for one (same names, same units);
 * strings and byte strings are copied into fixed arrays with the caps
 * below, and a decoder refuses a longer one instead of cutting it. */
#ifndef MFL_WIRE_TASK_H
#define MFL_WIRE_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meta/learner.h"

#define MFL_TASK_NONCE_MAX 64   /* bytes of a nonce (the coordinator sends 16) */
#define MFL_TASK_HASH_BYTES 32  /* BLAKE2b-256 */
#define MFL_TASK_SITE_MAX 64    /* characters of a site id (wire/keys.h) */
#define MFL_TASK_TEXT_MAX 128   /* characters of a model, algorithm, loss, optimiser name */
#define MFL_TASK_SECAGG_MAX_SITES 255 /* sites of one secure-aggregation attempt (secagg_msg.h) */

/* Reasons a message is refused: Metafl RejectReason's values (the codec
 * checks they agree at compile time). */
typedef enum {
    MFL_REJECT_UNSPECIFIED = 0,
    MFL_REJECT_BAD_MESSAGE = 1,
    MFL_REJECT_WRONG_SITE = 2,
    MFL_REJECT_WRONG_ROUND = 3,
    MFL_REJECT_REPLAY = 4,
    MFL_REJECT_DUPLICATE = 5,
    MFL_REJECT_NOT_SELECTED = 6,
    MFL_REJECT_SHAPE = 7,
    MFL_REJECT_NONFINITE = 8,
    MFL_REJECT_NORM = 9,
    MFL_REJECT_SIGNATURE = 10,
    MFL_REJECT_HASH = 11,
    MFL_REJECT_TOO_LARGE = 12,
    MFL_REJECT_SCHEMA = 13,
    MFL_REJECT_VERSION = 14,
    MFL_REJECT_NOT_GRANTED = 15,
    MFL_REJECT_AUDIT_UNAVAILABLE = 23, /* the coordinator cannot write its audit log */
    MFL_REJECT_ENCODING = 37,          /* not in the update encoding the task asked for */
    MFL_REJECT_DATA = 40,              /* the site's data cannot form the task */
    /* secure aggregation (docs/SECAGG.md) */
    MFL_REJECT_SECAGG_PHASE = 31,      /* not expected in the attempt's phase */
    MFL_REJECT_SECAGG_LENGTH = 32,     /* a masked vector of the wrong length */
    MFL_REJECT_SECAGG_MALFORMED = 33,  /* bad index, list or share box */
    MFL_REJECT_SECAGG_SHARES = 34,     /* shares that do not reconstruct */
    MFL_REJECT_SECAGG_REFUSED = 35,    /* (site) an unmask request an honest site refuses */
    MFL_REJECT_CHUNK = 54,             /* chunked upload: chunk out of order, repeated,
                                          unannounced, wrong size; upload unfinished */
} mfl_reject_t;

/* Kinds of message: Metafl MessageKind's values (checked by the codec). */
typedef enum {
    MFL_MSG_HELLO = 1,
    MFL_MSG_WELCOME = 2,
    MFL_MSG_ROUND_TASK = 3,
    MFL_MSG_UPDATE = 4,
    MFL_MSG_EVAL_TASK = 5,
    MFL_MSG_EVAL_REPORT = 6,
    MFL_MSG_HEARTBEAT = 7,
    MFL_MSG_REJECT = 8,
    MFL_MSG_BYE = 9,
    MFL_MSG_UPLOAD_READY = 10,
    MFL_MSG_UPLOAD_GRANT = 11,
    MFL_MSG_SITE_FAILURE = 12,
    /* secure aggregation (wire/secagg_wire.h) */
    MFL_MSG_SECAGG_KEYS = 20,
    MFL_MSG_SECAGG_SHARES = 21,
    MFL_MSG_SECAGG_MASKED = 22,
    MFL_MSG_SECAGG_SURVIVORS = 23,
    MFL_MSG_SECAGG_SIGNOFF = 24,
    MFL_MSG_SECAGG_UNMASK = 25,
    MFL_MSG_SECAGG_REVEALS = 26,
    MFL_MSG_SECAGG_END = 27,
    MFL_MSG_UPDATE_BEGIN = 44, /* chunked upload: signed update + chunk hashes */
    MFL_MSG_UPDATE_CHUNK = 45, /* chunked upload: one chunk of one tensor */
} mfl_msg_kind_t;

/* The protocol's name of a reject reason, e.g. "REJECT_HASH"; never NULL
 * ("REJECT_UNKNOWN" for a value the protocol does not define). */
const char *mfl_reject_reason_name(int reason);

/* AlgorithmSpec: the learner settings a site trains with. 0 / "" in a field
 * means "the learner's default" (proto3 cannot tell unset from 0). */
typedef struct {
    char name[MFL_TASK_TEXT_MAX];          /* "reptile", "maml", ... */
    uint32_t inner_steps;
    float inner_lr;
    uint32_t meta_batch;
    uint32_t outer_steps;
    float outer_lr;
    uint32_t batch_size;                   /* rows per support/query batch; 0 = all */
    uint32_t local_epochs;
    uint32_t n_way, k_shot, n_query;       /* episodes of metric methods; 0 = default */
    char loss[MFL_TASK_TEXT_MAX];
    float pos_weight;
    char relation_spec[MFL_TASK_TEXT_MAX];
    char outer_optim[MFL_TASK_TEXT_MAX];
} mfl_task_algorithm_t;

/* PrivacySettings: site-level DP of a round (clip Δ to clip_norm, add
 * N(0, (noise_multiplier · clip_norm)²)). */
typedef struct {
    bool enabled;
    double clip_norm;
    double noise_multiplier;
    double target_delta;
} mfl_task_privacy_t;

/* Federated model selection's part of a RoundTask or EvalTask
 * (docs/SELECTION.md). candidate 0: an ordinary task. candidate k ≥ 1: the
 * site works on its training rows only, split into a fit part and a
 * validation part (a stratified draw of validation_fraction of them, seeded
 * by validation_seed and the site id): a round trains on the fit part, an
 * evaluation adapts on fit rows and scores the validation rows. */
#define MFL_TASK_SELECTION_MAX 64   /* candidates a task may name */
#define MFL_TASK_VALIDATION_MAX 0.9 /* largest validation fraction */
typedef struct {
    uint32_t candidate;
    double validation_fraction; /* (0, MFL_TASK_VALIDATION_MAX] when candidate ≥ 1 or
                                   adapt_search */
    uint64_t validation_seed;
    /* EvalTask only, with candidate 0: the site picks its adaptation steps
     * and rate on its validation rows first (mfl_site_worker_eval). */
    bool adapt_search;
} mfl_task_selection_t;

/* Federated standardisation (RoundTask / EvalTask scaling_mean and
 * scaling_scale, docs/DATA.md): n = 0, the site scales with its own
 * training rows' statistics; else the consortium's mean and scale (> 0,
 * finite) of each of n features. Decoded only with n ≤ MFL_TASK_SCALING_MAX
 * and both lists the same length. */
#define MFL_TASK_SCALING_MAX 256
typedef struct {
    uint32_t n;
    float mean[MFL_TASK_SCALING_MAX];
    float scale[MFL_TASK_SCALING_MAX];
} mfl_task_scaling_t;

/* RoundTask (θ travels beside it as tensors). */
typedef struct {
    uint32_t round;
    uint8_t nonce[MFL_TASK_NONCE_MAX];
    size_t nonce_len;
    char model_spec[MFL_TASK_TEXT_MAX];
    uint8_t model_hash[MFL_TASK_HASH_BYTES];
    size_t model_hash_len;                 /* 0 or MFL_TASK_HASH_BYTES */
    mfl_task_algorithm_t algorithm;
    mfl_task_privacy_t privacy;
    uint64_t deadline_unix_ms;
    uint64_t seed;                         /* the round seed */
    /* The coordinator's signed audit log head (docs/AUDIT.md,
     * "Truncation"); has_audit_head false when absent. */
    bool has_audit_head;
    uint64_t audit_seq;
    uint8_t audit_head[MFL_TASK_HASH_BYTES];
    uint8_t audit_head_sig[64];
    char audit_writer[MFL_TASK_SITE_MAX + 1];
    uint32_t update_encoding;              /* fed/quant.h kind the update must travel as */
    /* > 0: send the update in chunks of this many values per tensor
     * (docs/WIRE.md "Chunked uploads"); 0: as one Update. Decoded only
     * within [MFL_CHUNK_VALUES_MIN, MFL_CHUNK_VALUES_MAX]. */
    uint64_t upload_chunk_values;
    mfl_task_selection_t selection;
    mfl_task_scaling_t scaling;
    /* RoundTask.secagg: this round is securely summed (docs/SECAGG.md);
     * the site runs the protocol instead of sending an Update. */
    bool has_secagg;
    struct {
        uint32_t threshold;
        uint32_t neighbours;               /* 0: every pair; even k: SecAgg+ */
        uint64_t length;                   /* masked vector words (n_params + 1) */
        uint32_t word_bits;                /* 0 or 64: 64-bit words; 32 */
        uint32_t frac_bits;                /* F with 32-bit words; 0 with 64 */
        bool masked_grant;                 /* ask UploadReady before the masked input */
        size_t n_sites;                    /* ≤ MFL_TASK_SECAGG_MAX_SITES */
        /* the selection sorted by id; site i has index i + 1 */
        char sites[MFL_TASK_SECAGG_MAX_SITES][MFL_TASK_SITE_MAX + 1];
    } secagg;
    /* RoundTask.broadcast_base: the tensors are the fp16 / int8 difference
     * to the model of this hash (fed/bcast.h); false: the model itself. */
    bool has_broadcast_base;
    uint8_t broadcast_base[MFL_TASK_HASH_BYTES];
} mfl_round_task_t;

/* EvalTask. */
typedef struct {
    uint32_t round;
    uint8_t nonce[MFL_TASK_NONCE_MAX];
    size_t nonce_len;
    char model_spec[MFL_TASK_TEXT_MAX];
    uint8_t model_hash[MFL_TASK_HASH_BYTES];
    size_t model_hash_len;
    mfl_task_algorithm_t algorithm;
    uint32_t adapt_steps;
    float adapt_lr;
    mfl_task_selection_t selection;
    mfl_task_scaling_t scaling;
    /* EvalTask.moments: report the fit rows' moments instead of scores
     * (selection.validation_fraction names the fit rows; 0: all training
     * rows). */
    bool moments;
} mfl_eval_task_t;

/* EvalReport: a site's scores of θ adapted, before adaptation and of a
 * local-only model. */
typedef struct {
    uint32_t round;
    uint8_t nonce[MFL_TASK_NONCE_MAX];
    size_t nonce_len;
    char site[MFL_TASK_SITE_MAX + 1];
    double loss, accuracy, auroc, sensitivity, specificity;
    uint64_t n;
    double loss_before, accuracy_before, auroc_before;
    double accuracy_local, auroc_local;
    uint64_t n_support;
    double rmse, mae, r2, rmse_before, rmse_local; /* regression; NaN otherwise */
    uint32_t adapt_steps_used; /* chosen on validation rows (adapt_search); else 0 */
    float adapt_lr_used;       /* idem; 0 when the task's rate was used */
    double sens_at_spec90, sens_at_spec90_local;   /* binary; NaN otherwise */
    /* Treatment recommendation (site eval.treatment_arms; meta/treatment.h):
     * policy values of θ adapted, θ as received, the local-only model, the
     * arm best in training for everyone, the arms given; NaN otherwise. */
    double value, value_before, value_local, value_best_arm, value_given;
    /* EvalTask.moments' answer: n_moments features (0: none sent), the fit
     * rows' count and the per-feature sums and sums of squares of their
     * raw values. Decoded only with both lists the same length,
     * ≤ MFL_TASK_SCALING_MAX, finite, sums of squares ≥ 0. */
    uint32_t n_moments;
    uint64_t moments_n;
    double moments_sum[MFL_TASK_SCALING_MAX];
    double moments_sum_sq[MFL_TASK_SCALING_MAX];
} mfl_eval_report_t;

/* UpdateHeader, the part of an update a site signs, as the coordinator
 * reads it. The per-tensor hashes are not kept: `digest` is the update
 * digest of them (mfl_update_digest), what the audit log records. */
typedef struct {
    uint32_t round;
    uint8_t nonce[MFL_TASK_NONCE_MAX];
    size_t nonce_len;
    char site[MFL_TASK_SITE_MAX + 1];
    uint64_t n_samples;
    size_t n_tensor_hashes;
    uint8_t digest[MFL_TASK_HASH_BYTES];
    /* "" when every tensor hash was 32 bytes and there were at most
     * MFL_UPDATE_MAX_TENSORS of them (digest valid); else why not. */
    char digest_error[96];
    bool has_metrics;
    struct {
        double loss_before, loss_after;
        uint64_t n_tasks;
    } metrics;
    bool has_privacy;
    struct {
        bool applied;
        double clip_norm, noise_multiplier, pre_clip_norm, epsilon_spent;
        /* what an auditor needs to recompute epsilon_spent (docs/PRIVACY.md):
         * "gaussian-site", "dpsgd", "clip" or ""; q; noisy releases; the δ
         * of epsilon_spent; whether the policy withheld the unnoised
         * statistics (they are then in not_sent) */
        char mechanism[32];
        double sample_rate;
        uint64_t steps;
        double delta;
        bool stats_withheld;
        /* distributed noise under SecAgg: t > 0 = noise_multiplier is the
         * σ/√t share applied, epsilon_spent is at sum_noise_multiplier (σ);
         * 0 = full noise (fields 210-211) */
        uint32_t noise_shares;
        double sum_noise_multiplier;
    } privacy;
    double delta_norm;
    /* The site's audit log head when it signed (record count, hash);
     * has_audit_head false when absent. */
    bool has_audit_head;
    uint64_t audit_seq;
    uint8_t audit_head[MFL_TASK_HASH_BYTES];
    /* The statistics the site did not send: MFL_STAT_* bits (0 = all sent).
     * A field whose bit is set holds 0 and means "not sent", never a
     * measured 0; encode sends the list (UpdateHeader.not_sent) and zeroes
     * nothing itself, decode refuses a header that lists a field and also
     * gives it a value. */
    uint32_t not_sent;
    /* > 0: the update travels in chunks of this many values per tensor,
     * and each signed tensor hash is BLAKE2b-256 of its chunks' hashes
     * (mfl_chunk_tensor_hash). 0: one message, plain tensor hashes. */
    uint64_t chunk_values;
} mfl_update_header_t;

/* Chunked uploads (docs/WIRE.md "Chunked uploads"): the values per chunk
 * a task may ask for (a site refuses a task outside this range: tiny
 * chunks would be a flood of messages, huge ones one big message again). */
#define MFL_CHUNK_VALUES_MIN 1024u
#define MFL_CHUNK_VALUES_MAX (64u << 20)
/* Chunks one update may have (UpdateBegin.chunk_hashes). */
#define MFL_CHUNKS_MAX 65536u

/* Chunks of a tensor of `count` values at `chunk_values` per chunk:
 * ceil(count / chunk_values) (0 for an empty tensor). */
uint64_t mfl_chunk_count(uint64_t count, uint64_t chunk_values);

/* A chunked tensor's signed hash: BLAKE2b-256 of its k chunk hashes
 * hashes[32·j ..] concatenated in order. Thread-safe. */
void mfl_chunk_tensor_hash(const uint8_t *hashes, size_t k, uint8_t out[MFL_TASK_HASH_BYTES]);

/* The same from the tensor's bytes as they travel (len bytes, cut into
 * chunks of chunk_bytes): what a receiver or simulate checks a chunked
 * update's signed tensor hash against. Thread-safe. */
void mfl_chunked_bytes_hash(const uint8_t *bytes, size_t len, size_t chunk_bytes,
                            uint8_t out[MFL_TASK_HASH_BYTES]);

/* Bits of mfl_update_header_t.not_sent (UpdateStat in metafl.proto). */
#define MFL_STAT_N_SAMPLES (1u << 1)
#define MFL_STAT_LOSS_BEFORE (1u << 2)
#define MFL_STAT_LOSS_AFTER (1u << 3)
#define MFL_STAT_N_TASKS (1u << 4)
#define MFL_STAT_PRE_CLIP_NORM (1u << 5)
#define MFL_STAT_LOSSES (MFL_STAT_LOSS_BEFORE | MFL_STAT_LOSS_AFTER)
#define MFL_STAT_ALL                                                                           \
    (MFL_STAT_N_SAMPLES | MFL_STAT_LOSSES | MFL_STAT_N_TASKS | MFL_STAT_PRE_CLIP_NORM)

#define MFL_UPDATE_MAX_TENSORS 256 /* tensor hashes a digest is computed over */

/* The update digest of k tensor hashes hashes[32·i .. 32·i+32) (message
 * order): for k = 1 that hash itself (so it is BLAKE2b-256 of Δ's bytes),
 * for k ≠ 1 BLAKE2b-256 of the k hashes concatenated (k = 0: of nothing).
 * Computable from the signed header alone, so an auditor checks it against
 * what the site signed. Thread-safe. */
void mfl_update_digest(const uint8_t *hashes, size_t k, uint8_t out[MFL_TASK_HASH_BYTES]);

/* Federated standardisation's record of what a site sent: BLAKE2b-256 of
 * r's n_moments sums then n_moments sums of squares, as little-endian
 * doubles. The coordinator's and the site's audit records (kind scaling)
 * both carry it, so the two logs can be compared. Thread-safe. */
void mfl_task_moments_digest(const mfl_eval_report_t *r, uint8_t out[MFL_TASK_HASH_BYTES]);

/* Serialized UpdateHeader bytes (what a site signs) to the plain header;
 * at most MFL_AUDIT_SIGNED_MAX-sized inputs are the caller's to enforce.
 * 0, or -1 with err ("signed update header does not decode", or a field
 * over its cap). Implemented by the codec (task_codec.c). */
int mfl_update_header_decode(const uint8_t *bytes, size_t len, mfl_update_header_t *out,
                             char *err, size_t errlen);

/* The bytes a site signs: `h`'s round, nonce, site, n_samples, metrics (if
 * has_metrics), privacy (if has_privacy) and delta_norm, with the k tensor
 * hashes hashes[32·i ..] (h's digest fields are ignored), serialized as an
 * UpdateHeader into *buf (realloc'd to *len bytes; the caller frees it).
 * 0, or -1 (err; *buf unchanged) on out of memory or a field both listed in
 * not_sent and given a value. */
int mfl_update_header_encode(const mfl_update_header_t *h, const uint8_t *hashes, size_t k,
                             uint8_t **buf, size_t *len, char *err, size_t errlen);

/* The AlgorithmSpec the coordinator sends for its learner config `l` and
 * episode shape (n_way, k_shot, n_query). */
void mfl_task_algorithm_from_learner(const mfl_learner_config_t *l, uint32_t n_way,
                                     uint32_t k_shot, uint32_t n_query,
                                     mfl_task_algorithm_t *out);

/* The learner config a site builds from `a` and `model_spec`: the
 * algorithm's defaults, overridden by every non-zero field. 0, or -1 with
 * err naming the field (unknown algorithm, loss or optimiser, a count over
 * its cap, a negative or non-finite rate, a missing or too long model). */
int mfl_task_algorithm_to_learner(const mfl_task_algorithm_t *a, const char *model_spec,
                                  mfl_learner_config_t *config, char *err, size_t errlen);

#endif
