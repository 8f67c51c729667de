/* The round engine: the coordinator's federated rounds as a transport-free
 * state machine, so the daemon (coordinator.c, over CurveZMQ), `metafl
 * simulate` (sites in-process) and unit tests drive the SAME code.
 *
 * Inputs are events: a site connected (Hello accepted), a site was seen or
 * went away, an update arrived, an eval report arrived, the clock ticked.
 * Outputs go through a sink: send a RoundTask / EvalTask to a site, reject
 * a site's message with a reason, a round closed, the run finished.
 *
 * A round: when enough sites are connected the engine selects sites (all,
 * or a seeded fraction of the connected ones in site-id order), draws a
 * fresh 16-byte nonce (libsodium CSPRNG), derives the round seed from (run
 * seed, round) and sends the task. Each update is checked (authenticated
 * site == header site, round, nonce, selected, not a duplicate, tensor
 * names and shapes against the learner, NaN/Inf, norm bound); a rejection
 * is logged once per (site, reason, round) and counted, and the engine
 * keeps serving. Accepted updates are folded into the order-independent
 * fixed-point aggregate. The round closes when every selected site
 * reported, or at the deadline with ≥ min_sites; with fewer the attempt is
 * abandoned (θ unchanged) and the round re-opened with a new nonce. On
 * close: server step, atomic checkpoint, audit record, one progress line,
 * one JSON metrics line.
 *
 * Signature and tensor-hash checks are the transport's job BEFORE an update
 * reaches the engine (server.h verifies both against the allow-listed key;
 * `metafl simulate` calls mfl_update_verify): the engine receives the
 * verified header, decoded by the task codec into plain C
 * (mfl_update_header_t, wire/task.h). The engine speaks only the plain task
 * types: tasks out, headers and reports in.
 *
 * Determinism: the round seed depends only on (run seed, round); sites
 * derive their streams from (round seed, site id); aggregation is
 * order-independent; so a run (and a resumed run) is bit-reproducible when
 * the same sites report.
 *
 * Not thread-safe: one thread feeds an engine. Sink callbacks run inside
 * the event calls and must not call back into the engine (queue instead). */
#ifndef MFL_COORD_ROUND_ENGINE_H
#define MFL_COORD_ROUND_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "round/run_config.h"
#include "core/tensor.h"
#include "secagg/secagg_server.h" /* mfl_secagg_run_t */
#include "wire/secagg_wire.h"
#include "wire/task.h"

#define MFL_ENGINE_NONCE_BYTES 16
#define MFL_ENGINE_SITE_MAX 65 /* site ids are ≤ 64 characters (wire/keys.h) */

typedef struct mfl_round_engine mfl_round_engine_t;


/* What a closed round reports (to the sink and the metrics file). */
typedef struct {
    uint32_t round;
    uint32_t rounds;
    uint32_t attempt;        /* 1 + abandoned attempts before this one */
    size_t n_selected;
    size_t n_accepted;
    size_t n_rejected;       /* rejections during this round */
    size_t n_failed;         /* selected sites that withdrew (failure, revocation) */
    double loss_before;      /* n-weighted mean of the sites' loss before, over the
                              * updates that sent losses; NaN if none did (DP) */
    double loss_after;
    double total_weight;
    double delta_norm;       /* ‖mean Δ‖₂ */
    double seconds;          /* open → last update accepted (or the deadline): the
                              * round's collection time, monotonic clock, µs resolution */
    double wall_seconds;     /* open → close finished (server step, θ hash, checkpoint
                              * written, records): when the next round can open */
    bool at_deadline;
} mfl_round_summary_t;

/* One site's evaluation, as logged and written to the metrics file. */
typedef struct {
    uint32_t round;
    const char *site;
    const mfl_eval_report_t *report;
} mfl_eval_summary_t;

/* The engine's outputs. Every callback is optional (NULL = ignore). The
 * messages and tensors passed are borrowed for the call only. */
typedef struct {
    void *ctx;
    /* θ as `n_tensors` tensors in the learner's layout. Return 0, or -1 if
     * the site cannot be reached (the engine keeps going; the deadline
     * handles it). */
    int (*send_round_task)(void *ctx, const char *site, const mfl_round_task_t *task,
                           const mfl_tensor_t *tensors, size_t n_tensors);
    int (*send_eval_task)(void *ctx, const char *site, const mfl_eval_task_t *task,
                          const mfl_tensor_t *tensors, size_t n_tensors);
    void (*reject)(void *ctx, const char *site, mfl_reject_t reason, uint32_t round,
                   const char *text);
    void (*round_closed)(void *ctx, const mfl_round_summary_t *summary);
    void (*eval_report)(void *ctx, const mfl_eval_summary_t *summary);
    /* The last round closed and the final evaluation ended. */
    void (*finished)(void *ctx);
} mfl_engine_sink_t;

/* Builds an engine: a learner from config->learner (for θ's layout and
 * size), θ from the latest checkpoint in config->checkpoint_dir if there is
 * one (resume: the next round is the one after it; a checkpoint of another
 * model or seed is refused), else a fresh θ from config->init_seed. Creates
 * the checkpoint dir and opens the metrics file (appending) and, when
 * config->audit_log is set, the audit log signed with `audit_sk` (64-byte
 * Ed25519 secret key, borrowed for the call) as writer `writer`; audit_sk
 * NULL disables the audit log. `config` and `sink` are copied. NULL + err. */
mfl_round_engine_t *mfl_round_engine_new(const mfl_coord_config_t *config,
                                         const mfl_engine_sink_t *sink, const char *writer,
                                         const uint8_t *audit_sk, char *err, size_t errlen);
void mfl_round_engine_destroy(mfl_round_engine_t **self_p);

/* Time. Every `now_ms` the engine is given is MONOTONIC milliseconds
 * (mfl_clock_mono_ms(), arbitrary origin): deadlines, site timeouts and
 * liveness are intervals and must not move when the system clock is set.
 * Wall time (the engine's clock, below) is only written down: the task's
 * deadline_unix_ms for the site's display, status times, audit records. */
typedef struct {
    void *ctx;
    uint64_t (*wall_ms)(void *ctx); /* ms since the Unix epoch */
    uint64_t (*mono_ms)(void *ctx); /* monotonic ms, same clock as every now_ms */
} mfl_engine_clock_t;

/* Replaces the engine's clock (default: mfl_clock_wall_ms and
 * mfl_clock_mono_ms); tests inject one to step the wall clock. `clock` is
 * copied; NULL restores the default. */
void mfl_round_engine_set_clock(mfl_round_engine_t *self, const mfl_engine_clock_t *clock);

/* The engine's monotonic now, and the wall time of a monotonic instant
 * (`mono_ms` of the same clock) as the engine's wall clock reads it now. */
uint64_t mfl_round_engine_now(const mfl_round_engine_t *self);
uint64_t mfl_round_engine_wall_of(const mfl_round_engine_t *self, uint64_t mono_ms);

/* The update encodings a site offered in its Hello ("compress:fp16",
 * "compress:int8" capabilities): bit k = encoding k of fed/quant.h (bit 0,
 * float32, always). Call before mfl_round_engine_site_hello, whose task
 * re-send uses it. Sites never told offer float32 only. Each RoundTask
 * asks a site for rounds.upload_encoding if it offered it, else float32,
 * and an update in another encoding is refused (REJECT_ENCODING). */
void mfl_round_engine_site_encodings(mfl_round_engine_t *self, const char *site,
                                     uint32_t mask);

/* The compressed broadcasts a site can apply (its Hello's "broadcast:fp16"
 * / "broadcast:int8" capabilities: bit k = encoding k of fed/quant.h, bit
 * 0 always) and the model it holds (Hello.broadcast_base, 32 bytes; NULL:
 * none). Call before mfl_round_engine_site_hello. With
 * rounds.broadcast_encoding set, a site that holds the previous round's
 * θ̂ and offered the encoding is sent the encoded difference
 * (RoundTask.broadcast_base); any other site θ̂ in full (docs/WIRE.md). */
void mfl_round_engine_site_broadcast(mfl_round_engine_t *self, const char *site, uint32_t mask,
                                     const uint8_t *base);

/* The site could not apply the broadcast difference of its task (round,
 * nonce; SiteFailure.need_model): it holds no base from now on and, if its
 * task in the open round was a difference, the task goes again with the
 * model in full: 0. -1 when that does not apply (stale, evaluation, it was
 * sent the full model): the caller treats it as a failure. */
int mfl_round_engine_site_need_model(mfl_round_engine_t *self, const char *site, uint32_t round,
                                     const uint8_t *nonce, size_t nonce_len, const char *reason);

/* The model the sites of the open round train from: θ̂ with a compressed
 * broadcast, else θ (borrowed; n_state floats). */
const float *mfl_round_engine_broadcast_theta(const mfl_round_engine_t *self);

/* A site joined (its Hello was accepted) at `now_ms` (monotonic ms). If it was
 * selected for the open round and has not reported, the task is sent again
 * (a restarted site rejoins the round in flight). If an evaluation is open
 * and the site has not reported for it, it gets the EvalTask, whether it
 * was asked before (restart) or joins late: a site that never trained can
 * join for evaluation only (the evaluation's deadline does not move).
 * `n_train` is informational. */
void mfl_round_engine_site_hello(mfl_round_engine_t *self, const char *site, uint64_t n_train,
                                 uint64_t now_ms);

/* Why a site stops taking part (mfl_round_engine_site_withdraw). */
typedef enum {
    MFL_ENGINE_SITE_FAILED = 0,   /* its task failed (SiteFailure); the open round only */
    MFL_ENGINE_SITE_REVOKED = 1,  /* its key left the allow-list: gone until a new Hello */
} mfl_engine_withdraw_t;

/* `site` will not report in the open round or evaluation: records it
 * (audit site_failed / site_revoked, with `reason`), remembers it for
 * status (failures, last failure), and stops waiting for it: the round
 * closes as soon as every other selected site has reported, if at least
 * min_sites updates are in (else at its deadline, as before). FAILED needs
 * the task's round and nonce (`evaluation`: an EvalTask's); a failure for
 * another round or nonce is stale: ignored, -1. REVOKED also marks the
 * site gone. Returns 0. */
int mfl_round_engine_site_withdraw(mfl_round_engine_t *self, const char *site,
                                   mfl_engine_withdraw_t why, bool evaluation, uint32_t round,
                                   const uint8_t *nonce, size_t nonce_len, const char *reason,
                                   uint64_t now_ms);

/* The i-th site's failures (as mfl_round_engine_site_at orders them):
 * count, the last one's words ("" if none) and wall ms, and whether its
 * key was revoked. */
const char *mfl_round_engine_site_failure(const mfl_round_engine_t *self, size_t i,
                                          uint32_t *n_failures, uint64_t *wall_ms,
                                          bool *revoked);

/* Liveness: any message or heartbeat from `site`. */
void mfl_round_engine_site_seen(mfl_round_engine_t *self, const char *site, uint64_t now_ms);

/* The site is gone (said Bye, or the transport says so). It stays selected
 * in an open round (the deadline decides) but is not selected again. */
void mfl_round_engine_site_gone(mfl_round_engine_t *self, const char *site);

/* An update from the authenticated `peer` with its verified header and its
 * Δ tensors (borrowed). `signed_header`/`signature` are the bytes the site
 * signed and its Ed25519 signature, kept in the audit record so the record
 * verifies on its own (both may be NULL/0). Returns 0 if accepted, or -1
 * after rejecting it through the sink with a reason (and logging it). May
 * close the round. */
int mfl_round_engine_update(mfl_round_engine_t *self, const char *peer,
                            const mfl_update_header_t *header,
                            const mfl_tensor_t *tensors, size_t n_tensors,
                            const uint8_t *signed_header, size_t signed_header_len,
                            const uint8_t *signature, size_t signature_len, uint64_t now_ms);

/* Chunked uploads (docs/WIRE.md "Chunked uploads"). An update whose bytes
 * exceed config->chunked_upload_bytes is asked in chunks of
 * config->upload_chunk_bytes (RoundTask.upload_chunk_values); the daemon
 * spools the verified chunks (round/upload_spool.h) and hands the engine
 * the whole update only through a reader, never in memory. */

/* Reads an update's float values [offset, offset + n) in the engine's
 * flat layout into out: 0, or -1 with err. */
typedef int(mfl_engine_read_fn)(void *ctx, size_t offset, float *out, size_t n, char *err,
                                size_t errlen);

/* The start of a chunked upload from `peer` (its verified, decoded header):
 * the checks of an update that need no tensors (open round, nonce,
 * selected, not yet reported, granted, header signed for the chunk size
 * its task asked). 0: go on receiving chunks (*encoding: the encoding the
 * chunks must be in, *chunk_values the chunk size); -1: rejected through
 * the sink (the grant slot is freed, an update_rejected record written). */
int mfl_round_engine_update_begin(mfl_round_engine_t *self, const char *peer,
                                  const mfl_update_header_t *header,
                                  const uint8_t *signed_header, size_t signed_header_len,
                                  const uint8_t *signature, size_t signature_len,
                                  uint32_t *encoding, uint64_t *chunk_values, uint64_t now_ms);

/* A chunked upload is complete: as mfl_round_engine_update, with the
 * values read through `read` (flat layout, decoded float32, already
 * verified against the signed hashes chunk by chunk) instead of tensors
 * in memory. Norm, bounds and the fold each read the update once in 1 MiB
 * blocks; nothing is folded before all checks passed. 0 accepted, -1
 * rejected through the sink. */
int mfl_round_engine_update_read(mfl_round_engine_t *self, const char *peer,
                                 const mfl_update_header_t *header, mfl_engine_read_fn *read,
                                 void *ctx, const uint8_t *signed_header,
                                 size_t signed_header_len, const uint8_t *signature,
                                 size_t signature_len, uint64_t now_ms);

/* A chunked upload from `peer` failed before it was complete (a bad
 * chunk, the site gone): rejected through the sink with `reason` and
 * `text` (a Reject to the site, the log, an update_rejected record with
 * its signed header when given), and its grant slot freed. */
void mfl_round_engine_update_refused(mfl_round_engine_t *self, const char *peer,
                                     const mfl_update_header_t *header, mfl_reject_t reason,
                                     const char *text, const uint8_t *signed_header,
                                     size_t signed_header_len, const uint8_t *signature,
                                     size_t signature_len);

/* θ's layout: the engine's tensor views (names, shapes, counts; borrowed). */
const mfl_tensor_t *mfl_round_engine_layout(const mfl_round_engine_t *self, size_t *n_tensors);

/* An evaluation report from the authenticated `peer`. Returns 0 if it
 * answered the open evaluation, else -1 (rejected through the sink). */
int mfl_round_engine_eval_report(mfl_round_engine_t *self, const char *peer,
                                 const mfl_eval_report_t *report, uint64_t now_ms);

/* Advances time: opens a round when enough sites are connected, closes or
 * abandons at the deadline, drops sites silent for site_timeout. A run
 * resumed with every round done opens its final evaluation the same way:
 * once wait_for_sites sites are connected (however long that takes), then
 * eval_deadline_ms for their reports. Call it often (every ≤ 100 ms) and
 * after every other event. */
void mfl_round_engine_tick(mfl_round_engine_t *self, uint64_t now_ms);

/* Upload flow control (protocol 2). `fn(ctx, site, round, nonce,
 * nonce_len)` sends an UploadGrant; it returns 0, or -1 if the site cannot
 * be reached (its slot is then handed on). Called inside the engine's
 * event calls, like the sink. Once this is set, at most
 * config->max_concurrent_uploads sites hold a grant at a time, sites that
 * ask while all slots are busy wait first come, first served, and an
 * update from a site without a grant is rejected (REJECT_NOT_GRANTED). A
 * slot frees when its site's update arrives (accepted or rejected), the
 * site says hello again, leaves or times out, or the round closes or is
 * abandoned; and while another site waits, a slot held for site_timeout
 * without the update (chunked: without a chunk, see
 * mfl_round_engine_upload_progress) is taken back at a tick and handed
 * on, so sites that ask and never send cannot starve the others until the
 * deadline. Without it (`metafl simulate`, unit tests) updates need no
 * grant. Returns 0, or -1 on OOM (flow control then stays off). */
typedef int(mfl_engine_grant_fn)(void *ctx, const char *site, uint32_t round,
                                 const uint8_t *nonce, size_t nonce_len);
/* `small_bytes`: when Δ (4·P bytes) is at most this, updates need no
 * grant (sites send them directly) and an UploadReady is granted at once
 * without a slot (the daemon passes MFL_UPLOAD_GATE_SMALL_BYTES,
 * upload_gate.h says why; 0 = every update needs a grant and a slot). */
int mfl_round_engine_flow_control(mfl_round_engine_t *self, mfl_engine_grant_fn *fn, void *ctx,
                                  uint64_t small_bytes);

/* UploadReady from the authenticated `peer`: its update for (round, nonce)
 * of `update_bytes` tensor bytes is ready. Checked like an update (open
 * round, this attempt's nonce, selected, not yet reported, the bytes equal
 * Δ's size in the encoding its task asked for: 4·P, 2·P or P); then
 * granted now or queued. Returns 0 (granted or queued), or
 * -1 after rejecting it through the sink. Without flow control it only
 * counts as liveness and returns 0 (nothing to grant). */
int mfl_round_engine_upload_ready(mfl_round_engine_t *self, const char *peer, uint32_t round,
                                  const uint8_t *nonce, size_t nonce_len,
                                  uint64_t update_bytes, uint64_t now_ms);

/* A chunked upload of `site` moved (its UpdateBegin or a chunk was
 * taken at now_ms): the clock of its held slot restarts. No-op for a site
 * holding no slot. */
void mfl_round_engine_upload_progress(mfl_round_engine_t *self, const char *site,
                                      uint64_t now_ms);

/* Sites holding an upload grant / waiting for one (0 without flow control). */
size_t mfl_round_engine_uploads_in_flight(const mfl_round_engine_t *self);
size_t mfl_round_engine_uploads_waiting(const mfl_round_engine_t *self);

/* Secure aggregation (docs/SECAGG.md): the updates of `n_sites` selected
 * sites of this round's open attempt (round, 16-byte nonce) arrive as one
 * unmasked sum of their encoded updates (secagg/secagg_update.h: n_state
 * terms + the quantised weight, n_words = n_state + 1 words, borrowed), with
 * the sums of w·loss before / after for the round's summary. The engine
 * never sees a site's Δ, so the per-update checks (shapes, NaN/Inf, norm
 * bound) are the sites' own; it checks the attempt and that each site is
 * selected and has not reported, writes a `secure_sum` audit record
 * (`transcript`: 32-byte digest of the protocol's transcript; the sum is
 * folded only with its record written), folds the sum (bit-identical to
 * folding the same updates one by one), marks the sites reported, and
 * closes the round when all selected sites are in. The loss sums are
 * NaN when a site of the sum did not send its losses (DP): the round's
 * mean loss then leaves them out. 0, or -1 with err and nothing folded. */
int mfl_round_engine_secure_sum(mfl_round_engine_t *self, uint32_t round, const uint8_t *nonce,
                                const char *const *sites, size_t n_sites, const void *sum,
                                size_t n_words, double loss_before_sum, double loss_after_sum,
                                const uint8_t transcript[32], uint64_t now_ms, char *err,
                                size_t errlen);

/* Secure aggregation over a transport (docs/SECAGG.md): with
 * config->secagg_enabled every round is one attempt of the protocol among
 * its selected sites. The engine drives the five phases itself: it puts
 * the attempt's setup (threshold, graph, the selection in id order, the
 * vector length, the word width and F: config->secagg_word_bits,
 * secagg_frac_bits) into each RoundTask, collects each phase's messages
 * through mfl_round_engine_secagg_msg, ends a phase when every expected
 * site has answered or at the phase's deadline, sends the next phase's
 * messages through `io->send`, and folds the unmasked sum with
 * mfl_round_engine_secure_sum. Deadlines: advertise, share, signoff and
 * unmask get config->secagg_phase_ms (secure_aggregation.phase_deadline_s)
 * or, unset, max(1 s, rounds.deadline / 4) each from their start; the
 * masked phase ends at the round's deadline (the sites train meanwhile).
 * Fewer than the threshold at any phase, or shares that do not rebuild a
 * secret: the attempt is abandoned (θ unchanged, audit round_abandoned
 * with the reason), every selected site gets SECAGG_END, and the round is
 * retried with a new nonce as for too few updates. Plain updates are
 * refused in such a round (REJECT_SECAGG_PHASE). The audit log gets a
 * secagg_phase record per ended phase (its transcript) and a
 * secagg_masked record per masked input accepted (its hash).
 *
 * `io->site_key` gives a site's Ed25519 public key as the transport's
 * allow-list has it (the roster the coordinator checks signatures
 * against; each site checks against its own copy); -1 if unknown, and the
 * attempt is not started (the round then ends at its deadline, abandoned).
 * `io->send` returns 0 or -1 (unreachable: the phase deadline decides).
 * Both run inside the engine's calls, like the sink. `io` is copied. */
typedef struct {
    void *ctx;
    int (*site_key)(void *ctx, const char *site, uint8_t pk[32]);
    int (*send)(void *ctx, const char *site, const mfl_secagg_wire_t *msg);
} mfl_engine_secagg_io_t;
void mfl_round_engine_secagg_io(mfl_round_engine_t *self, const mfl_engine_secagg_io_t *io);

/* One of secure aggregation's messages from the authenticated `peer`
 * (decoded by wire/secagg_codec.h; borrowed). For SECAGG_MASKED `words`
 * (n_words, borrowed) is the masked vector the message carried. Checked
 * (selected in the attempt, its round and nonce, a kind a site sends, the
 * phase's rules in secagg_server.h) and taken, or rejected through the
 * sink with the reason (REJECT_SECAGG_*, REJECT_SIGNATURE,
 * REJECT_DUPLICATE, ...): 0 or -1. May end a phase, finish the sum and
 * close the round. */
int mfl_round_engine_secagg_msg(mfl_round_engine_t *self, const char *peer,
                                const mfl_secagg_wire_t *msg, const uint64_t *words,
                                size_t n_words, uint64_t now_ms);

/* As mfl_round_engine_secagg_msg with the masked words' width and hash as
 * the transport has them: `words` are n_words words of `word_bits` (64:
 * uint64_t, 32: uint32_t; a width other than the attempt's is rejected,
 * REJECT_SECAGG_LENGTH), and `hash` (NULL: computed here) the BLAKE2b-256
 * of their little-endian bytes that the transport verified on receipt,
 * used as is for the audit record and the transcript instead of hashing
 * the vector again. */
int mfl_round_engine_secagg_msg_words(mfl_round_engine_t *self, const char *peer,
                                      const mfl_secagg_wire_t *msg, const void *words,
                                      size_t n_words, unsigned word_bits, const uint8_t *hash,
                                      uint64_t now_ms);
/* As mfl_round_engine_secagg_msg_words with the masked words in `n_runs`
 * runs (secagg/secagg_server.h's mfl_secagg_run_t: e.g. the frames they
 * arrived in, each a whole number of aligned words), folded where they
 * lie instead of gathered into one buffer first; their lengths add up to
 * the vector's. runs NULL: no words. */
int mfl_round_engine_secagg_msg_runs(mfl_round_engine_t *self, const char *peer,
                                     const mfl_secagg_wire_t *msg, const mfl_secagg_run_t *runs,
                                     size_t n_runs, unsigned word_bits, const uint8_t *known,
                                     uint64_t now_ms);

/* The open attempt's phase name ("advertise", ..., secagg_server.h), or
 * NULL when no securely aggregated attempt is in flight. */
const char *mfl_round_engine_secagg_phase(const mfl_round_engine_t *self);

/* Read-only state, for status and tests. */
typedef enum {
    MFL_ENGINE_WAITING = 0, /* for sites before a round */
    MFL_ENGINE_ROUND = 1,   /* a round is open */
    MFL_ENGINE_EVAL = 2,    /* an evaluation is open */
    MFL_ENGINE_DONE = 3,    /* all rounds and the final evaluation are over */
    MFL_ENGINE_FAILED = 4,  /* a round exhausted max_attempts, or a fatal I/O error */
    MFL_ENGINE_ABORTED = 5, /* the operator stopped the run (metafl status --abort) */
} mfl_engine_phase_t;

mfl_engine_phase_t mfl_round_engine_phase(const mfl_round_engine_t *self);
const char *mfl_engine_phase_name(mfl_engine_phase_t phase);
/* The open round, or the next one to open (1-based). */
uint32_t mfl_round_engine_round(const mfl_round_engine_t *self);
/* Rounds completed (closed with a server step), including before a resume. */
uint32_t mfl_round_engine_rounds_done(const mfl_round_engine_t *self);
/* θ (borrowed; changes at each round close). */
const float *mfl_round_engine_theta(const mfl_round_engine_t *self);
/* θ's current digest (32 bytes: BLAKE2b-256 of its tensors' BLAKE2b, as
 * RoundTask.model_hash and the metrics' theta_blake2b carry it). */
const uint8_t *mfl_round_engine_theta_hash(const mfl_round_engine_t *self);
size_t mfl_round_engine_n_state(const mfl_round_engine_t *self);
/* Has `site` said hello (or otherwise been seen) since the engine started? */
bool mfl_round_engine_knows(const mfl_round_engine_t *self, const char *site);
/* Is `site` selected for the open round? */
bool mfl_round_engine_is_selected(const mfl_round_engine_t *self, const char *site);
/* The open round's nonce (16 bytes) or NULL. */
const uint8_t *mfl_round_engine_nonce(const mfl_round_engine_t *self);
/* Why the audit log cannot be written now (updates are refused and no
 * round opens or closes until it can), or NULL while it works. */
const char *mfl_round_engine_audit_error(const mfl_round_engine_t *self);
/* Total rejections since start. */
uint64_t mfl_round_engine_rejections(const mfl_round_engine_t *self);
/* The most recent closed round's summary, or NULL before the first. */
const mfl_round_summary_t *mfl_round_engine_last_summary(const mfl_round_engine_t *self);

/* Model selection's progress (docs/SELECTION.md), for status and metrics:
 * false when the run has no selection. *candidate: the one in training or
 * being scored (1-based), 0 once decided; *n_candidates; *winner: 1-based,
 * 0 while undecided; *rule: "auroc", "accuracy" or "loss" (borrowed). Any
 * out pointer may be NULL. */
bool mfl_round_engine_selection(const mfl_round_engine_t *self, size_t *candidate,
                                size_t *n_candidates, size_t *winner, const char **rule);
/* Candidate i's (0-based) mean validation score, NAN until it is scored
 * in this process (a restart after the pick knows only the winner). */
double mfl_round_engine_selection_score(const mfl_round_engine_t *self, size_t i);

/* Connected sites, for status: count, and i-th id and last-seen ms
 * (monotonic: mfl_round_engine_wall_of converts it for display). */
size_t mfl_round_engine_n_sites(const mfl_round_engine_t *self);
const char *mfl_round_engine_site_at(const mfl_round_engine_t *self, size_t i,
                                     uint64_t *last_seen_ms, bool *connected);

/* Run control from the operator: a paused engine closes the open round as
 * usual but opens no new one; abort stops at once (phase ABORTED, distinct
 * from FAILED so status can say who stopped it; a run_aborted audit
 * record; the last checkpoint kept; a later start resumes from it). */
void mfl_round_engine_pause(mfl_round_engine_t *self, bool paused);
bool mfl_round_engine_paused(const mfl_round_engine_t *self);
void mfl_round_engine_abort(mfl_round_engine_t *self);

/* The round seed for (run seed, round): what RoundTask.seed carries. */
uint64_t mfl_round_seed(uint64_t run_seed, uint32_t round);

/* Optional: `fn(ctx, θ tensors, hashes, n)` is called after a server step
 * changed θ, once the engine has hashed θ's tensors (hashes: n × 32 bytes,
 * BLAKE2b of each tensor's bytes, borrowed for the call) and written the
 * checkpoint; θ stays as passed until the next call. Lets the transport
 * prepare the next broadcast (a copy with these hashes, not hashed again).
 * NULL removes it. */
typedef void(mfl_engine_theta_fn)(void *ctx, const mfl_tensor_t *tensors,
                                  const uint8_t *hashes, size_t n_tensors);
void mfl_round_engine_on_theta(mfl_round_engine_t *self, mfl_engine_theta_fn *fn, void *ctx);

/* Federated standardisation (data.standardize: federated, docs/DATA.md):
 * true with *out the pooled scaling when the engine's current setting
 * (the winner after selection) scales with it and it is known; false (and
 * out->n 0) otherwise. */
bool mfl_round_engine_scaling(const mfl_round_engine_t *self, mfl_task_scaling_t *out);

#endif
