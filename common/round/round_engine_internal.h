/* Private state of the round engine, shared by round_engine.c (sites,
 * opening, checks) and round_close.c (closing, checkpoints, outputs). Not
 * for other modules. */
#ifndef MFL_COORD_ROUND_ENGINE_INTERNAL_H
#define MFL_COORD_ROUND_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "audit/audit.h"
#include "fed/aggregate.h"
#include "fed/checkpoint.h"
#include "fed/server_step.h"
#include "meta/learner.h"
#include "round/round_engine.h"
#include "round/upload_gate.h"

#define MFL_ENGINE_AUDIT_PENDING 4  /* records owed after a failed append */
#define MFL_ENGINE_AUDIT_RETRY_MS 1000
/* update_rejected records per site and round attempt; the next rejection
 * writes one more saying that the rest go unrecorded (round_audit.c). */
#define MFL_ENGINE_REJECT_RECORDS 4

typedef struct {
    char id[MFL_ENGINE_SITE_MAX];
    bool connected;
    uint64_t last_seen_ms;  /* monotonic */
    bool grant_seen;        /* holds an upload grant since grant_ms (round_flow.c) */
    uint64_t grant_ms;      /* monotonic: first tick it held it, or its last chunk */
    uint64_t n_train;
    bool selected;        /* in the open round */
    bool reported;        /* accepted update in the open round */
    uint32_t reject_logged; /* reasons already logged this round (bit per reason) */
    uint32_t reject_recorded; /* update_rejected records this round (bounded) */
    bool eval_sent;
    bool eval_reported;
    float *delta;         /* robust aggregators: its accepted Δ (flat), else NULL */
    /* round_withdraw.c: failures the site reported (or updates refused for
     * good), the last one's words and wall time; revoked = its key left
     * the allow-list (cleared by its next accepted Hello). */
    bool withdrawn;       /* out of the open round (failed or revoked) */
    bool revoked;
    uint32_t n_failures;
    uint64_t failed_wall_ms;
    char last_failure[160];
    uint32_t encodings;   /* bit k: update encoding k offered in Hello (bit 0 always) */
    /* Compressed broadcast (round_broadcast.c): bit k = a difference in
     * encoding k it can apply ("broadcast:*"); the model it holds (from
     * its Hello, or the round whose update was accepted); whether its
     * open task carries a difference. */
    uint32_t broadcasts;
    bool has_base;
    uint8_t base[32];
    bool sent_diff;
} mfl_engine_site_t;

/* round_secagg_phases.c: the attempt in flight (NULL server: none). */
typedef struct mfl_engine_secagg mfl_engine_secagg_t;

struct mfl_round_engine {
    mfl_coord_config_t config;
    mfl_engine_sink_t sink;
    mfl_engine_clock_t clock;  /* wall time for records and display only */
    mfl_engine_theta_fn *on_theta; /* see mfl_round_engine_on_theta */
    void *on_theta_ctx;
    mfl_learner_t *learner;
    size_t n_state;
    float *theta;
    uint8_t theta_hash[32];   /* θ's digest (RoundTask.model_hash): mfl_engine_hash_theta */
    uint8_t *theta_tensor_hash; /* n_tensors × 32: BLAKE2b of each of θ's tensors */
    uint8_t model_hash[32];   /* of the model spec + algorithm (checkpoint guard) */
    size_t n_tensors;
    mfl_tensor_t *views;   /* θ as tensors (data points into theta) */
    size_t *tensor_offset;        /* contiguous in tensor order (checked at new) */
    mfl_aggregate_part_t *parts;  /* an update's tensors as aggregate parts (no flat Δ): one
                                     per tensor, or per run of a tensor left in its frames */
    size_t cap_parts;
    uint32_t site_timeout_config_ms; /* as configured; config.site_timeout_ms follows P */
    mfl_aggregate_t *agg;
    mfl_server_step_t *step;
    mfl_audit_t *audit;
    char audit_writer[MFL_AUDIT_NAME_MAX + 1]; /* its key name (RoundTask.audit_writer) */
    FILE *metrics;

    mfl_engine_site_t *sites;  /* sorted by id */
    size_t n_sites, cap_sites;

    mfl_engine_phase_t phase;
    bool started;              /* the first round opened (wait_for_sites met) */
    bool paused;
    bool finish_pending;       /* DONE at start: tell the sink at the first tick */
    size_t waiting_logged;     /* 1 + connected count last logged while waiting; 0 none */
    uint32_t round;            /* open or next round, 1-based */
    uint32_t rounds_done;
    uint32_t attempt;          /* attempts of `round` so far */
    uint64_t round_seed;
    uint8_t nonce[MFL_ENGINE_NONCE_BYTES];
    uint64_t opened_ms, deadline_ms; /* monotonic: every decision */
    uint64_t deadline_unix_ms;       /* wall: told to the sites, for display */
    double opened_mono_s;      /* mfl_clock_mono_s() at open: the metrics' clock */
    size_t n_selected, n_accepted, n_rejected_round;
    size_t n_withdrawn;        /* selected sites out of the open round (round_withdraw.c) */
    uint64_t n_rejected_total;
    mfl_reject_t last_reject;      /* the latest rejection, for its record */
    char last_reject_text[256];
    double loss_before_sum, loss_after_sum, weight_sum;
    /* the weight of the updates that sent their losses (a DP site's are
     * not sent): the round's mean loss is over those, NaN if none */
    double loss_weight_sum;

    uint32_t eval_round;
    bool eval_final;
    uint8_t eval_nonce[MFL_ENGINE_NONCE_BYTES];
    uint64_t eval_deadline_ms;

    bool have_summary;
    mfl_round_summary_t last;

    /* Upload flow control (round_flow.c): NULL gate = off (simulate). */
    mfl_upload_gate_t *gate;
    mfl_engine_grant_fn *grant;
    void *grant_ctx;
    uint64_t small_upload_bytes;  /* granted without a slot up to this size */

    /* The update being taken is not in memory (a chunked upload spooled
     * to disk, round_chunked.c): its values are read through rd_fn in
     * blocks of MFL_ENGINE_READ_BLOCK floats into rd_buf. NULL otherwise. */
    mfl_engine_read_fn *rd_fn;
    void *rd_ctx;
    float *rd_buf;
    double rd_scale;              /* the clip factor the scaled reader applies */

    /* The last checkpoint's fsyncs and pruning, on a helper thread
     * (round_close.c): the file is renamed into place before the next
     * round opens, durable once the helper is joined. */
    pthread_t ck_thread;
    bool ck_running;
    int ck_rc;                 /* the helper's sync result */
    char ck_path[MFL_CHECKPOINT_PATH_MAX];
    mfl_checkpoint_staged_t ck_staged;
    char ck_err[512];
    char ck_prune_err[512];    /* a failed prune: a warning only */

    /* The audit log could not be written (round_audit.c): no update is
     * folded and no round opened or closed until it can again. */
    bool audit_down;
    bool audit_down_timed;     /* audit_down_since_ms is set (by a tick) */
    uint64_t audit_down_since_ms, audit_retry_at_ms; /* monotonic */
    uint64_t audit_refused;    /* updates refused while it was down */
    char audit_err[300];
    mfl_audit_record_t *audit_pending[MFL_ENGINE_AUDIT_PENDING]; /* owed, in order */
    size_t n_audit_pending;
    /* Secure aggregation over a transport (round_secagg_phases.c). */
    mfl_engine_secagg_io_t secagg_io;
    mfl_engine_secagg_t *secagg;
    char abandon_note[256];    /* why the open attempt is abandoned, if not too few updates */

    /* Model selection (round_select.c): while `selecting`, config.learner,
     * config.server and the eval adaptation are candidate sel_index's and
     * rounds count up to selection.rounds; then the winner's, for good. */
    bool selecting;
    size_t sel_index;          /* candidate in progress (0-based) */
    size_t sel_winner;         /* valid once sel_decided */
    bool sel_decided;
    mfl_select_rule_t sel_rule; /* resolved */
    uint8_t sel_digest[32];
    double sel_means[MFL_SELECT_MAX_CANDIDATES];  /* NAN: no score */
    double sel_loss[MFL_SELECT_MAX_CANDIDATES];   /* mean validation loss: the tie-break */
    size_t sel_sites[MFL_SELECT_MAX_CANDIDATES];  /* sites that scored it */
    mfl_select_score_t *sel_scores; /* this candidate's reports (n_sites cap) */
    char (*sel_score_site)[MFL_ENGINE_SITE_MAX];
    size_t n_sel_scores, cap_sel_scores;

    /* Compressed broadcast (round_broadcast.c; NULL bcast: off, or not
     * made yet): θ̂, the model the sites train from, as tensors with their
     * hashes; the round it is for; the encoded difference to the previous
     * θ̂ (bcast_prev_hash) with per-tensor scales and hashes. */
    float *bcast;
    mfl_tensor_t *bcast_views;
    uint8_t *bcast_tensor_hash;   /* n_tensors × 32 */
    uint8_t bcast_hash[32];       /* θ̂'s digest: RoundTask.model_hash */
    uint32_t bcast_round;
    bool bcast_diff;              /* the difference below is valid for bcast_round */
    uint8_t bcast_prev_hash[32];
    uint8_t *bcast_q;             /* tensor i at mfl_quant_bytes(kind, offset_i) */
    float *bcast_scale;
    uint8_t *bcast_q_hash;        /* n_tensors × 32, of the encoded bytes */
    mfl_tensor_t *bcast_q_views;

    /* Federated standardisation (round_scaling.c): the setup evaluation
     * that collects the sites' fit-row moments (moments_phase), what each
     * sent (by site, in site-id order at pooling), and the pooled scaling
     * every task carries while config.federated_scaling (scaling_ready). */
    bool scaling_needed;       /* the configured setting or a candidate uses it */
    bool scaling_ready;
    bool moments_phase;
    mfl_task_scaling_t scaling;
    struct mfl_engine_moments *moments;
    size_t n_moments, cap_moments;
};

/* Whether output.checkpoint_dir holds a checkpoint, or one that cannot be
 * read: either way a run trained there before. For a state file that such a
 * run would have written (selection, scaling) and that is missing. */
bool mfl_engine_has_checkpoint(const mfl_round_engine_t *self);

/* round_scaling.c */
/* At construction, after selection's start: whether the run needs the
 * pooled scaling, and if so the one on record (scaling.state) if any. A
 * checkpoint without that record (a run that trained without it) is
 * refused. 0 / -1. */
int mfl_engine_scaling_start(mfl_round_engine_t *self, char *err, size_t errlen);
/* The setup evaluation is still owed (the tick opens it before anything). */
bool mfl_engine_scaling_owed(const mfl_round_engine_t *self);
/* A moments report from `site` (the open setup evaluation's): checked,
 * kept, recorded (audit, metrics). */
void mfl_engine_scaling_report(mfl_round_engine_t *self, const char *site,
                               const mfl_eval_report_t *r);
/* The setup evaluation ended: pools what came in (≥ min_sites sites, else
 * the run fails naming them), records and keeps the scaling. */
void mfl_engine_scaling_done(mfl_round_engine_t *self);
/* Fills a task's scaling (n 0 when the current setting uses each site's). */
void mfl_engine_scaling_task(const mfl_round_engine_t *self, mfl_task_scaling_t *sc);
void mfl_engine_scaling_free(mfl_round_engine_t *self);

mfl_engine_site_t *mfl_engine_find_site(mfl_round_engine_t *self, const char *id);
void mfl_engine_fill_algorithm(const mfl_round_engine_t *self, mfl_task_algorithm_t *a);
void mfl_engine_send_round_task(mfl_round_engine_t *self, mfl_engine_site_t *s);
void mfl_engine_send_eval_task(mfl_round_engine_t *self, mfl_engine_site_t *s);
void mfl_engine_reject(mfl_round_engine_t *self, const char *peer, mfl_reject_t reason,
                       uint32_t round, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
const char *mfl_engine_reject_name(mfl_reject_t reason);

/* round_flow.c: `site` no longer needs its upload slot (its update
 * arrived, it left, it restarted): frees it and grants the next waiting
 * site. No-op without flow control. */
void mfl_engine_flow_release(mfl_round_engine_t *self, const char *site);
/* Takes back the upload slot of a site that has held it for site_timeout
 * without its update (or, chunked, a chunk) arriving while another site
 * waits, and hands it on (round_flow.c). From the tick. */
void mfl_engine_flow_expire(mfl_round_engine_t *self, uint64_t now_ms);
/* A round (attempt) opened: every slot and the queue start empty. */
void mfl_engine_flow_reset(mfl_round_engine_t *self);

/* round_close.c */
void mfl_engine_close_round(mfl_round_engine_t *self, uint64_t now_ms, bool at_deadline);
/* Closes the open round early when every selected site has either
 * reported or withdrawn and enough updates are in. */
void mfl_engine_maybe_close(mfl_round_engine_t *self, uint64_t now_ms);
void mfl_engine_abandon_round(mfl_round_engine_t *self, uint64_t now_ms);
void mfl_engine_after_close(mfl_round_engine_t *self, uint64_t now_ms);
void mfl_engine_finish_eval(mfl_round_engine_t *self);
int mfl_engine_checkpoint_join(mfl_round_engine_t *self);
/* Appends a round record (round_opened/closed/abandoned, run_aborted).
 * 0, or -1 if it could not be written: the engine is then "audit down"
 * (round_audit.c); a round_closed or round_abandoned record is kept and
 * written first when the log works again. */
int mfl_engine_audit_round(mfl_round_engine_t *self, mfl_audit_kind_t kind, const char *reason);
/* Appends the update_accepted record (`note`, e.g. a clip or a weight cap,
 * as its reason): 0, or -1 (audit down; the caller
 * takes the update back out of the aggregate and rejects it). */
int mfl_engine_audit_update(mfl_round_engine_t *self, const mfl_update_header_t *h,
                            const mfl_tensor_t *tensors, double norm, const char *note,
                            const uint8_t *signed_header, size_t signed_len, const uint8_t *sig,
                            size_t sig_len);

/* round_audit.c: the audit log's failure handling. */
/* Appends `rec`; on failure marks the engine audit down (logged once) and,
 * if `owed`, queues a copy to be written before anything else. 0 or -1. */
int mfl_engine_audit_append(mfl_round_engine_t *self, const mfl_audit_record_t *rec, bool owed);
/* From tick: while down, retries every MFL_ENGINE_AUDIT_RETRY_MS (the
 * owed records, then a note of the gap); past config.audit_give_up_ms, or
 * at once if the log is closed for good, the run fails. */
void mfl_engine_audit_tick(mfl_round_engine_t *self, uint64_t now_ms);
/* An update from `peer` (header `h`, may be NULL; the site's signed bytes
 * if any) was just rejected (last_reject): writes its update_rejected
 * record, at most MFL_ENGINE_REJECT_RECORDS per site and round attempt
 * plus one saying the rest are not recorded. */
void mfl_engine_audit_rejected(mfl_round_engine_t *self, const char *peer,
                               const mfl_update_header_t *h, const uint8_t *signed_header,
                               size_t signed_len, const uint8_t *sig, size_t sig_len);
/* Stops the run: phase FAILED, the message logged, the sink told. */
void mfl_engine_fail(mfl_round_engine_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mfl_engine_audit_free(mfl_round_engine_t *self);

/* round_robust.c: robust aggregation (config.aggregator != MEAN). */
/* Frees every site's kept Δ (a round opened, closed or was abandoned). */
void mfl_engine_robust_reset(mfl_round_engine_t *self);
/* The round's aggregate of the kept Δs (in site-id order) into mean[n_state]:
 * median, trimmed mean or Multi-Krum. 0, or -1 with err. */
int mfl_engine_robust_mean(mfl_round_engine_t *self, float *mean, char *err, size_t errlen);

/* round_engine_new.c: build / free everything that depends on the model
 * and server settings (learner, θ = θ₀ from init_seed, its layout, the
 * aggregate, the server step, the model hash) from self->config. */
int mfl_engine_bind(mfl_round_engine_t *self, char *err, size_t errlen);
void mfl_engine_unbind(mfl_round_engine_t *self);

/* round_select.c: model selection's phase of the engine. */
/* At construction, before bind: with selection enabled, the winner on
 * record (selection.state) or candidate 0 goes into self->config. 0 / -1. */
int mfl_engine_select_start(mfl_round_engine_t *self, char *err, size_t errlen);
/* Rounds the current phase runs: selection.rounds while selecting. */
uint32_t mfl_engine_rounds_target(const mfl_round_engine_t *self);
/* A selection evaluation's report from `site`: kept, recorded. */
void mfl_engine_select_report(mfl_round_engine_t *self, const char *site,
                              const mfl_eval_report_t *r);
/* The selection evaluation ended: score the candidate; the next one, or
 * the winner (recorded) and the real training. */
void mfl_engine_select_next(mfl_round_engine_t *self);
/* Fills a task's selection part (zero when not selecting). */
void mfl_engine_select_task(const mfl_round_engine_t *self, mfl_task_selection_t *sel);
/* A selection record (audit kind selection): round, site ("" none), n,
 * norm (a score), reason. 0 or -1 (audit down). */
int mfl_engine_audit_selection(mfl_round_engine_t *self, uint64_t round, const char *site,
                               uint64_t n, double score, const char *reason);

/* round_resume.c. No checkpoint loaded: 0 if the run directory holds no
 * earlier run (no checkpoint file, no round_closed record, no round line
 * in the metrics), else -1 with err naming the files and the operator's
 * options. */
int mfl_engine_check_fresh_start(mfl_round_engine_t *self, char *err, size_t errlen);
/* Resumed from `ck_path` (round rounds_done), audit log and metrics open:
 * if that round ran here (its round_opened is in the audit log) and a crash
 * left out its round_closed record or metrics line, writes them; a finished run (run_finished on record) goes to
 * DONE without evaluating again. 0 or -1 with err. */
int mfl_engine_reconcile(mfl_round_engine_t *self, const char *ck_path, char *err,
                         size_t errlen);
/* The final evaluation ended: a run_finished record and metrics line. */
void mfl_engine_record_finished(mfl_round_engine_t *self);
void mfl_engine_log_eval(mfl_round_engine_t *self, const char *site,
                         const mfl_eval_report_t *r);

/* Hashes each of θ's tensors once (theta_tensor_hash: what the broadcast's
 * TensorHeaders carry) and sets theta_hash to their digest,
 * mfl_audit_update_digest(theta_tensor_hash, n_tensors): the same
 * construction update records use for Δ, so θ is hashed once per round,
 * not once for the wire and again whole (issue 17). With one tensor the
 * digest is BLAKE2b of θ's bytes. */
void mfl_engine_hash_theta(mfl_round_engine_t *self);

/* The update encoding (fed/quant.h) site s is asked for: the configured
 * one if s offered it, else float32. */
uint32_t mfl_engine_site_encoding(const mfl_round_engine_t *self, const mfl_engine_site_t *s);

/* round_broadcast.c: the compressed broadcast (rounds.broadcast_encoding).
 * on: configured, and neither selecting nor securely aggregating. open: θ̂
 * for self->round (once per round; reused by later attempts), before its
 * tasks go out; -1 only on OOM (θ then goes out in full). active: θ̂ is
 * made for the open round. task: fills task's model_hash (θ̂) and base
 * (a difference for a site that holds the previous θ̂ and offered the
 * encoding) and returns the tensors to send with it (self->views when
 * off). reported: s trained from θ̂, so it holds it. adopt: θ̂ = hat
 * (a checkpoint's) as made for `round`. reason: the round_opened record's
 * words ("" when off; returns the length). */
bool mfl_engine_bcast_on(const mfl_round_engine_t *self);
int mfl_engine_bcast_open(mfl_round_engine_t *self);
bool mfl_engine_bcast_active(const mfl_round_engine_t *self);
const mfl_tensor_t *mfl_engine_bcast_task(mfl_round_engine_t *self, mfl_engine_site_t *s,
                                          mfl_round_task_t *task);
void mfl_engine_bcast_reported(mfl_round_engine_t *self, mfl_engine_site_t *s);
int mfl_engine_bcast_adopt(mfl_round_engine_t *self, const float *hat, uint32_t round);
size_t mfl_engine_bcast_reason(const mfl_round_engine_t *self, char *out, size_t len);
void mfl_engine_bcast_free(mfl_round_engine_t *self);

/* round_chunked.c: the values per chunk site s is asked to upload in
 * (RoundTask.upload_chunk_values), 0 = one message: Δ's bytes in s's
 * encoding above limits.chunked_upload_bytes, and not secure aggregation. */
uint64_t mfl_engine_chunk_values(const mfl_round_engine_t *self, const mfl_engine_site_t *s);

/* From this many parameters (sums of 64 MiB) the aggregate's sums are
 * freed at a close or abandonment and allocated again by the next fold,
 * so they never coexist with θ's broadcast copy (round_close.c). Below,
 * they are kept and zeroed (no page faults per round). */
#define MFL_ENGINE_RELEASE_SUMS_PARAMS ((size_t)1 << 23)

/* Floats read per block from a spooled update (1 MiB). */
#define MFL_ENGINE_READ_BLOCK ((size_t)1 << 18)

/* Reads an update's values [offset, offset + n) (flat layout) from the
 * reader the engine holds (rd_fn), or through the scaled reader (the
 * same values times rd_scale, as float(scale · double(x))). */
int mfl_engine_read(void *engine, size_t offset, float *out, size_t n, char *err,
                    size_t errlen);
int mfl_engine_read_scaled(void *engine, size_t offset, float *out, size_t n, char *err,
                           size_t errlen);

/* round_chunked.c: true when some tensor is left encoded in its frames
 * (fp16 / int8 codes in `pieces`, data NULL: wire/message.h
 * encoded_runs); mfl_engine_update for such an update, its values read
 * through a decoding reader (rd_fn) in MFL_ENGINE_READ_BLOCK blocks: the
 * same norm, fold, clip and records as the decoded floats in memory. */
bool mfl_engine_coded(const mfl_tensor_t *tensors, size_t n);
int mfl_engine_update_coded(mfl_round_engine_t *self, const char *peer, bool granted,
                            const mfl_update_header_t *h, const mfl_tensor_t *tensors,
                            size_t n_tensors, const uint8_t *signed_header,
                            size_t signed_header_len, const uint8_t *signature,
                            size_t signature_len, uint64_t now_ms);

/* round_engine.c: the update checks and fold shared by whole and chunked
 * updates (tensors are layout views when self->rd_fn is set). */
int mfl_engine_update(mfl_round_engine_t *self, const char *peer, bool granted,
                      const mfl_update_header_t *h, const mfl_tensor_t *tensors,
                      size_t n_tensors, const uint8_t *signed_header, size_t signed_header_len,
                      const uint8_t *signature, size_t signature_len, uint64_t now_ms);
/* The checks an update's header passes before its tensors are looked at
 * (site, phase, round, nonce, selected, not reported, granted, chunking
 * as asked); the site, or NULL after rejecting it through the sink. */
mfl_engine_site_t *mfl_engine_update_admit(mfl_round_engine_t *self, const char *peer,
                                           bool granted, const mfl_update_header_t *h,
                                           uint64_t now_ms);

/* round_secagg_phases.c. open: starts the attempt for the selected
 * sites (before their tasks go out); fill_task: the task's setup; tick:
 * phase deadlines, true while an attempt is in flight (the engine's own
 * deadline then waits); end: the round closed or was abandoned, every
 * selected site is told (abandoned, reason) and the attempt freed. */
void mfl_engine_secagg_open(mfl_round_engine_t *self, uint64_t now_ms);
void mfl_engine_secagg_fill_task(const mfl_round_engine_t *self, mfl_round_task_t *task);
bool mfl_engine_secagg_tick(mfl_round_engine_t *self, uint64_t now_ms);
void mfl_engine_secagg_end(mfl_round_engine_t *self, bool abandoned, const char *reason);
void mfl_engine_secagg_free(mfl_round_engine_t *self);
/* The bytes of this attempt's masked input (length × word bytes: what a
 * site's UploadReady announces), or 0 when no attempt is in flight. */
uint64_t mfl_engine_secagg_masked_bytes(const mfl_round_engine_t *self);
#endif
