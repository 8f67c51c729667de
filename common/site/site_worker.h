/* The site worker: everything a hospital does in a round, without any
 * transport. The daemon (agent.c) wraps it with a DEALER socket; the
 * coordinator's `metafl simulate` runs many of them in one process.
 *
 * A worker owns its site's data (a training split and a held-out split,
 * fixed at creation), a learner (rebuilt only when a task asks for a
 * different model or algorithm) and, optionally, the site's Ed25519
 * signing key. It has no global state: one worker per site, any number of
 * workers per process. A worker is NOT thread-safe: call it from one
 * thread at a time (different workers may run in different threads; the
 * caller sets the BLAS thread count once, see nn/blas.h).
 *
 * Determinism: a round's Δ depends only on (θ, the RoundTask's algorithm,
 * model, seed, round) and the site id (the worker's training stream is
 * mfl_rng_seed(seed, mfl_site_worker_stream(site_id, round))). With
 * privacy off, the same inputs give bit-identical Δ on the same build.
 * With privacy on, noise comes from libsodium's CSPRNG and is not
 * reproducible, by design.
 *
 * Layout on the wire: θ and Δ are the learner's flat state vector; on the
 * wire they travel as the learner's named tensors in layout order
 * (mfl_site_worker_n_tensors / mfl_site_worker_tensor). UpdateHeader's
 * tensor_hashes[i] is BLAKE2b-256 (crypto_generichash, 32 bytes, no key)
 * of tensor i's little-endian float32 bytes, exactly what TensorHeader's
 * blake2b field carries. */
#ifndef MFL_SITE_WORKER_H
#define MFL_SITE_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "meta/learner.h"
#include "privacy/accountant.h"
#include "privacy/policy.h"
#include "wire/task.h"

struct mfl_site_config; /* common/site/site_config.h */

#define MFL_SITE_ID_MAX 64
#define MFL_SITE_HASH_BYTES 32        /* BLAKE2b-256 */
#define MFL_SITE_SIGNATURE_BYTES 64   /* Ed25519 detached signature */
#define MFL_SITE_SIGN_SK_BYTES 64     /* libsodium Ed25519 secret key (seed || pk) */

typedef struct mfl_site_worker mfl_site_worker_t;

/* Builds a worker from a validated site config (site_config.h): loads the data
 * source, checks it (a bad CSV fails here with "FILE:LINE:COLUMN: what"),
 * splits it into training / held-out with the config's split seed and
 * fraction, and standardises both with the training rows' statistics
 * (data.standardize: site). It does not read the key file: the caller sets
 * the signing key (mfl_site_worker_set_signing_key), so simulate can run
 * unsigned and the agent keeps one identity for transport and signing.
 * `cfg` is borrowed (copied what is needed). NULL + err on any failure. */
mfl_site_worker_t *mfl_site_worker_new(const struct mfl_site_config *cfg, char *err,
                                       size_t errlen);

/* Builds a worker from data already in memory (for `metafl simulate` and
 * tests): TAKES OWNERSHIP of `train` and `heldout` (both destroyed with the
 * worker, also on failure; `heldout` may be NULL: then evaluation uses the
 * training split as its query set). `site_id` is copied (at most
 * MFL_SITE_ID_MAX - 1 bytes). `sign_sk` (MFL_SITE_SIGN_SK_BYTES, borrowed,
 * copied into sodium_malloc memory) may be NULL: updates are then unsigned
 * (signature_len 0). NULL + err on failure. */
mfl_site_worker_t *mfl_site_worker_new_from_data(const char *site_id, mfl_dataset_t *train,
                                                 mfl_dataset_t *heldout,
                                                 const uint8_t *sign_sk, char *err,
                                                 size_t errlen);

/* The site's audit log head (record count and that record's hash) to put
 * into the next update headers it signs (UpdateHeader.audit_seq/head), so
 * the coordinator holds proof of the site's log (docs/AUDIT.md,
 * "Truncation"). head NULL: none. */
void mfl_site_worker_set_audit_head(mfl_site_worker_t *self, uint64_t seq,
                                    const uint8_t *head);

/* Sets (or replaces) the Ed25519 signing key (MFL_SITE_SIGN_SK_BYTES,
 * borrowed, copied into sodium_malloc memory); NULL removes it. 0 or -1 on
 * out of secure memory. The agent calls it with its identity's key. */
int mfl_site_worker_set_signing_key(mfl_site_worker_t *self, const uint8_t *sign_sk);

/* The hospital's privacy policy (privacy/policy.h; copied). A worker built
 * from a site config has the config's; one built from data has the
 * defaults (mode none). 0, or -1 with err if the policy does not check. */
int mfl_site_worker_set_privacy(mfl_site_worker_t *self, const mfl_privacy_policy_t *policy,
                                char *err, size_t errlen);

/* The budget already spent, as read back from the site's signed audit log
 * (privacy/ledger.h): `spent` is copied; NULL means unknown, and every DP
 * task is then declined with `why` (copied) naming how to recover. A
 * worker built from data starts known and empty (simulate, tests); one
 * built from a config with a DP mode starts unknown until the agent sets
 * it. Each DP round adds its releases to this account. */
void mfl_site_worker_set_ledger(mfl_site_worker_t *self, const mfl_privacy_accountant_t *spent,
                                const char *why);

/* ε spent so far at the policy's δ; NAN when the ledger is unknown. */
double mfl_site_worker_epsilon_spent(const mfl_site_worker_t *self);

/* The policy in force (borrowed). */
const mfl_privacy_policy_t *mfl_site_worker_policy(const mfl_site_worker_t *self);

/* Frees everything (wipes the key) and nulls the caller's pointer; accepts NULL. */
void mfl_site_worker_destroy(mfl_site_worker_t **self_p);

/* The site id (borrowed from the worker). */
const char *mfl_site_worker_site(const mfl_site_worker_t *self);
/* Training / held-out rows (Hello.n_train is the first). */
size_t mfl_site_worker_n_train(const mfl_site_worker_t *self);
size_t mfl_site_worker_n_heldout(const mfl_site_worker_t *self);
/* Features per row of the site's data. */
size_t mfl_site_worker_n_features(const mfl_site_worker_t *self);
/* BLAKE2b-256 (data/csv_canon.h's mfl_schema_hash) of the site's
 * canonical data schema text (Hello.schema_hash): features, classes, the
 * label and every feature column with its kind and levels. Sites whose
 * data encode the same way hash equal, whatever their file layout. */
const uint8_t *mfl_site_worker_schema_hash(const mfl_site_worker_t *self);
/* That canonical text (borrowed from the worker; Hello.schema_text). */
const char *mfl_site_worker_schema_text(const mfl_site_worker_t *self);
/* What loading did (rows dropped, cells imputed per column), for --check;
 * NULL for sources that drop and impute nothing. Borrowed. */
const char *mfl_site_worker_data_report(const mfl_site_worker_t *self);
/* Classes of the site's label (0 = regression), and training rows per class
 * into counts[0..n_classes) if n_classes <= max; returns the number written
 * (0 for regression or when more than max). */
size_t mfl_site_worker_n_classes(const mfl_site_worker_t *self);
size_t mfl_site_worker_class_counts(const mfl_site_worker_t *self, uint64_t *counts,
                                    size_t max);

/* The per-site stream id used with the task seed: a stable 64-bit hash of
 * the site id mixed with the round. Exposed so tests and the simulator can
 * reproduce a site's draws. */
uint64_t mfl_site_worker_stream(const char *site_id, uint32_t round);

/* What a round produced. Every pointer is OWNED BY THE WORKER and stays
 * valid until the next mfl_site_worker_round() on the same worker or its
 * destruction; copy what you keep. */
typedef struct {
    const float *delta;        /* Δ = θ_local − θ (after clipping/noise), n_delta floats */
    size_t n_delta;            /* == n_theta */
    const uint8_t *header;     /* serialized UpdateHeader: the signed bytes */
    size_t header_len;
    uint8_t signature[MFL_SITE_SIGNATURE_BYTES]; /* Ed25519 over header */
    size_t signature_len;      /* 64, or 0 when the worker has no key */
    mfl_train_metrics_t metrics;
    double delta_norm;         /* L2 norm of the Δ that is sent */
    double pre_clip_norm;      /* L2 norm before clipping (== delta_norm without privacy) */
    const uint8_t *tensor_hashes; /* BLAKE2b-256 of each Δ tensor (learner layout order),
                                   * 32 bytes each, exactly as signed in the header: pass
                                   * them to the wire so it does not hash Δ again */
    /* The encoding the task asked for (fed/quant.h; 0 float32). When not 0,
     * `delta` holds the DECODED values (what the coordinator folds),
     * `encoded` the bytes to send (tensor i at byte offset
     * mfl_quant_bytes(encoding, offset_i), with scales[i]), and
     * tensor_hashes hash those bytes. */
    uint32_t encoding;
    const uint8_t *encoded;
    const float *scales;
    /* The task asked for chunks (RoundTask.upload_chunk_values > 0): each
     * tensor is cut into chunks of chunk_values values; chunk_hashes holds
     * the n_chunks BLAKE2b-256 hashes of their bytes as sent (tensor by
     * tensor, in order) and tensor_hashes[i] is BLAKE2b-256 of tensor i's
     * chunk hashes (mfl_chunk_tensor_hash), what the header signs. */
    uint64_t chunk_values;
    const uint8_t *chunk_hashes;
    size_t n_chunks;
} mfl_site_round_result_t;

/* mfl_site_worker_round's (and _eval's) return when the site's privacy
 * policy refuses the task: err then reads "privacy.RULE: why" (the rule
 * first, up to ':'). */
#define MFL_SITE_ROUND_DECLINED 1

/* Runs one round: first decides the task against the site's privacy
 * policy and ledger (privacy/policy.h; a refusal returns
 * MFL_SITE_ROUND_DECLINED before any training; mode record trains with
 * DP-SGD, meta/learner_dp.h), then builds (or reuses) the learner for task->model_spec and
 * task->algorithm, checks that n_theta equals the learner's state size and
 * that θ is finite, samples tasks from the training split (gradient
 * methods: "the site is the task" with support/query batches of
 * algorithm.batch_size rows or all rows; metric methods: N-way K-shot
 * episodes from algorithm.n_way/k_shot/n_query), meta-trains from θ, applies
 * task->privacy (clip to clip_norm, add N(0, (σ·S)²) noise from the CSPRNG),
 * fills an UpdateHeader (round, nonce, site, n_samples, per-tensor hashes,
 * metrics, privacy record, delta_norm), serializes and signs it.
 * `task` and `theta` are borrowed. Returns 0, or -1 + err (bad task, shape
 * mismatch, non-finite θ, training failure); on -1 `out` is unspecified. */
int mfl_site_worker_round(mfl_site_worker_t *self, const mfl_round_task_t *task,
                          const float *theta, size_t n_theta, mfl_site_round_result_t *out,
                          char *err, size_t errlen);

/* Compressed updates: bit k of `mask` says the site accepts encoding k of
 * fed/quant.h (bit 0, float32, is always set); the default accepts all
 * (MFL_SITE_ENCODINGS_ALL). A RoundTask asking for an encoding not offered
 * fails the round. A lossy round encodes Δ + the residual the site kept
 * from its previous lossy rounds (error feedback, reset when the model
 * changes), with stochastic rounding drawn from the task seed (stream
 * mfl_site_worker_stream(site, round), seed task seed ^ MFL_QUANT_STREAM,
 * one generator per tensor i: stream + 1 + i), so the bytes are a function
 * of (θ, task, site, previous rounds' residual). A round's residual is
 * committed when a task for a later round arrives; a retried attempt of
 * the same round (or an earlier one, after a coordinator resume) starts
 * again from the committed residual, so retries encode identically. */
#define MFL_SITE_ENCODINGS_ALL 0x7u
void mfl_site_worker_set_encodings(mfl_site_worker_t *self, uint32_t mask);
uint32_t mfl_site_worker_encodings(const mfl_site_worker_t *self);

/* Learner layout of the most recent round or eval (for the Δ tensor frames):
 * count, and tensor `index` (borrowed; valid until the learner is rebuilt).
 * 0 / NULL before the first round. */
size_t mfl_site_worker_n_tensors(const mfl_site_worker_t *self);
const mfl_tensor_info_t *mfl_site_worker_tensor(const mfl_site_worker_t *self, size_t index);

/* What an evaluation produced: plain values, no pointers. */
typedef struct {
    mfl_eval_metrics_t adapted;    /* θ adapted on the support set, scored on held-out */
    mfl_eval_metrics_t before;     /* θ as received, no adaptation, same held-out rows */
    mfl_eval_metrics_t local_only; /* a fresh model trained on the same support only */
    size_t n_support;              /* labelled rows used to adapt */
    /* task.selection.adapt_search: the steps and rate this site chose on
     * its validation rows and then used (0 and 0 otherwise) */
    uint32_t adapt_steps_used;
    float adapt_lr_used;
    /* eval.treatment_arms > 0 (meta/treatment.h), else NAN: the policy
     * value on held-out rows of the arm each model recommends, of giving
     * everyone the arm that did best in the training split, and of the
     * arms actually given (the trial's own good-outcome rate). */
    double value_adapted, value_before, value_local, value_best_arm, value_given;
} mfl_site_eval_result_t;

/* Evaluates θ the way a (new) hospital would use it. The support set is
 * the hospital's k labelled cases: the first k rows (k = the site's
 * eval.support_cases, else algorithm.k_shot; all training rows if 0 or
 * more than there are) of a shuffle of the training split seeded by the
 * site id alone, with every class present when k allows; the same k cases
 * at every evaluation. The query set is the held-out split. "adapted" =
 * adapt_steps steps of adapt_lr from θ (metric methods: prototypes from
 * the support set); "before" = θ scored directly (0 steps); "local_only" =
 * a fresh θ (seeded by the site id) trained with max(adapt_steps,
 * local_only_steps) steps of adapt_lr on the same support: the hospital's
 * alternative without the consortium. A metric method (ProtoNets,
 * Matching, Relation) trains it episodically on the support alone: each
 * step splits every class of the support in two (a seeded shuffle:
 * pseudo-support / pseudo-query; mfl_sampler_new_class_split), takes the
 * method's own task gradient and an SGD step of adapt_lr
 * (mfl_learner_train_sgd); it is then scored with the full support as
 * prototypes / matching set. A support with one class, or no class of 2
 * rows (k = 1), gives no episode: that local_only stays untrained.
 * Deterministic given (θ, task
 * settings, site). Borrowed inputs; 0 or -1 + err, or MFL_SITE_ROUND_DECLINED
 * when the privacy policy lets no unnoised statistics leave (a DP mode
 * without allow_unnoised_stats): the report would be such statistics.
 * A gradient method whose softmax head is narrower than the site's classes
 * (mfl_algo_episodic_head) is scored on N-way tasks of the site's own
 * classes instead, k images per class (mfl_site_worker_eval_ways). */
int mfl_site_worker_eval(mfl_site_worker_t *self, const mfl_eval_task_t *task,
                         const float *theta, size_t n_theta, mfl_site_eval_result_t *out,
                         char *err, size_t errlen);

/* Per-site adaptation (task.selection.adapt_search, docs/SELECTION.md):
 * before the evaluation above, the site chooses (steps, rate) from
 * MFL_SITE_ADAPT_STEPS × MFL_SITE_ADAPT_RATES (0 steps once). A gradient
 * method cross-validates on the very support cases the evaluation adapts
 * on: round(1/validation_fraction) stratified folds (2 to 10, seeded by
 * the task's validation_seed and the site), one SGD trajectory per rate
 * and fold scored on the held-out fold at every step count, the lowest
 * mean loss wins (ties: fewer steps, then the lower rate); a rate stops
 * early when its loss has not improved at 2 step counts in a row or it
 * diverges. Fewer than 2 support cases: an error. A metric method or an
 * episodic head instead tries each pair on support cases from its fit
 * rows, scored on its validation rows (mfl_site_worker_validation's
 * split), best accuracy winning (ties: lower loss, fewer steps, lower
 * rate). Either way the held-out (test) rows are not read to choose, and
 * the result is deterministic given (θ, task, site). */
#define MFL_SITE_ADAPT_STEPS {0u, 10u, 30u, 100u, 300u, 1000u}
#define MFL_SITE_ADAPT_RATES {0.01f, 0.03f, 0.1f, 0.3f, 1.0f}

/* Model selection's validation rows (docs/SELECTION.md): the worker's
 * training rows split, per class, into a fit part and a validation part of
 * round(fraction · count) rows of each class, shuffled by a generator
 * seeded with (seed, the site id); the held-out (test) rows are never
 * part of either. Selection tasks (task.selection.candidate ≥ 1) train on
 * the fit part and score the validation part; this exposes the same split
 * for tests and tools. Borrowed pointers, valid until the next selection
 * task with another (fraction, seed) or the worker's destruction. 0, or -1
 * + err (fraction outside (0, 0.9], or a part would be empty). */
int mfl_site_worker_validation(mfl_site_worker_t *self, double fraction, uint64_t seed,
                               const mfl_dataset_t **fit, const mfl_dataset_t **val,
                               char *err, size_t errlen);

/* Federated standardisation (data.standardize: federated, docs/DATA.md):
 * gives the worker its rows unscaled (`raw_train`, `raw_heldout`: the same
 * rows in the same order as its training and held-out splits, before any
 * scaling; borrowed, copied; raw_heldout NULL when the worker has none).
 * The worker then scales them with its own training rows' statistics
 * (exactly as data.standardize: site), answers an EvalTask with `moments`
 * (the count, per-feature sums and sums of squares of its fit rows, in the
 * report) and, whenever a RoundTask or EvalTask carries a scaling, uses
 * that one instead. A worker without it refuses both. At most
 * MFL_TASK_SCALING_MAX features. 0, or -1 + err. */
int mfl_site_worker_enable_federated_scaling(mfl_site_worker_t *self,
                                             const mfl_dataset_t *raw_train,
                                             const mfl_dataset_t *raw_heldout, char *err,
                                             size_t errlen);

/* Fills *report (zeroed first) from a result: round and nonce from
 * `task`, the site id, the three scores. */
void mfl_site_worker_fill_report(const mfl_site_worker_t *self, const mfl_eval_task_t *task,
                                 const mfl_site_eval_result_t *result,
                                 mfl_eval_report_t *report);

/* The last update has left (every byte copied out) or is moot: for a
 * large model (8M+ parameters) its Δ's pages (and an encoded copy's) go
 * back to the kernel, so they cost nothing while the next θ arrives or an
 * evaluation runs. The next round rewrites Δ whole. The error-feedback
 * residuals are kept. */
void mfl_site_worker_release_update(mfl_site_worker_t *self);

/* Hands the last update's buffers to the caller (free() them): Δ and its
 * encoded bytes (NULL when there are none), which the result of the last
 * round points into. For a sender that still reads them (a zero-copy
 * send in flight) while the worker runs again: the worker allocates fresh
 * ones at its next round or evaluation. */
void mfl_site_worker_take_update(mfl_site_worker_t *self, float **delta, uint8_t **encoded);

#endif
