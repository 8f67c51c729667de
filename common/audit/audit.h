/* A hash-chained, signed, append-only audit log: one JSON line per event
 * (an update sent, accepted or rejected; a round opened or closed), kept by
 * the coordinator and by every site. docs/AUDIT.md describes the format,
 * what `metafl audit verify` proves and what it does not.
 *
 * Each line is, keys in this fixed order (the writer's canonical form):
 *   {"seq":N,"time":"2026-11-24T07:18:20.123Z","writer":"NAME","kind":"...",
 *    "round":R,"site":"S","nonce":"hex","delta_hash":"hex","norm":X,"n":N,
 *    "privacy":null|{"clip":C,"sigma":S,"q":Q,"steps":T,"epsilon":E,"delta":D},
 *    "update_sig":"hex","signed_header":"hex","reason":"text",
 *    "prev":"hex64","hash":"hex64","sig":"hex128"}
 * hash = BLAKE2b-256 of the line's bytes before ",\"hash\"" (which include
 * prev, the previous record's hash; the first record's prev is 64 zeros);
 * sig = Ed25519 by the writer over "metafl-audit-v1" || hash. The writer's
 * public key is found by name (DIR/WRITER.pub) when verifying.
 *
 * Appends are one write(2) of a whole line followed by fdatasync (or, in
 * deferred mode and for lazy appends, at the writer's sync points: see
 * mfl_audit_set_deferred_sync, mfl_audit_append_lazy), so a crash loses at most the line being
 * written; a torn last line (no newline) is
 * reported by verify, and cut off (with a warning and a "log_opened" record
 * saying how many bytes) when the writer reopens the log. */
#ifndef MFL_AUDIT_AUDIT_H
#define MFL_AUDIT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MFL_AUDIT_NAME_MAX     64    /* writer / site names */
#define MFL_AUDIT_NONCE_MAX    64    /* bytes */
#define MFL_AUDIT_SIGNED_MAX   4096  /* bytes of a site's signed header */
#define MFL_AUDIT_REASON_MAX   255   /* printable ASCII; others become '?' */
#define MFL_AUDIT_LINE_MAX     16384 /* a longer line is rejected */
#define MFL_AUDIT_FILE_MAX     (4ull << 30) /* verify/show refuse bigger logs */

typedef enum {
    MFL_AUDIT_LOG_OPENED = 0,      /* the writer (re)opened the log */
    MFL_AUDIT_UPDATE_SENT,         /* site side: an update left this site */
    MFL_AUDIT_UPDATE_ACCEPTED,     /* coordinator: folded into the aggregate */
    MFL_AUDIT_UPDATE_REJECTED,     /* coordinator: refused; reason says why */
    MFL_AUDIT_ROUND_OPENED,        /* coordinator: a round was dispatched */
    MFL_AUDIT_ROUND_CLOSED,        /* coordinator: server step applied; n = updates */
    MFL_AUDIT_ROUND_ABANDONED,     /* coordinator: too few sites; θ unchanged */
    /* coordinator: the operator stopped the run (metafl status --abort);
     * round = the round open or next, reason says how many were done.
     * Appended last so older logs keep their meaning and still verify. */
    MFL_AUDIT_RUN_ABORTED,
    /* coordinator: the last round closed and the final evaluation ended;
     * round = rounds done. A restart of a finished run sees it and does
     * not evaluate again. */
    MFL_AUDIT_RUN_FINISHED,
    /* coordinator: a selected site said it could not do its task (round =
     * the task's round, reason = the site's words); the round stopped
     * waiting for it. */
    MFL_AUDIT_SITE_FAILED,
    /* coordinator: the site's key left the allow-list while it was
     * connected; its session ended and it left the open round. */
    MFL_AUDIT_SITE_REVOKED,
    /* a peer's signed audit log head, as received (site side: the
     * coordinator's, from a RoundTask): site = the peer's writer name,
     * n = its record count, delta_hash = that record's hash, update_sig =
     * its signature (mfl_audit_head_verify). */
    MFL_AUDIT_PEER_HEAD,
    /* coordinator: a round's updates arrived as one securely aggregated sum
     * (docs/SECAGG.md): n = sites in it, delta_hash = the digest of the
     * protocol's transcript, reason names the sites. Appended after the
     * kinds before it, as run_aborted. */
    MFL_AUDIT_SECURE_SUM,
    /* site: the privacy policy refused a task; round, reason = the rule and
     * why (privacy/policy.h). Appended after the kinds before it. */
    MFL_AUDIT_TASK_DECLINED,
    /* site: a privacy ledger (the budget spent) starts here from zero: the
     * operator said so (metafl-site-agent --new-privacy-ledger). Without
     * one the site runs no DP task (docs/PRIVACY.md). */
    MFL_AUDIT_LEDGER_STARTED,
    /* coordinator: federated model selection (docs/SELECTION.md). A
     * selection round opened or closed (round = the round within the
     * candidate's budget, n = sites selected / updates, delta_hash = θ
     * after the step), a site's validation scores of a candidate (site,
     * n = validation rows, norm = its score under the rule), a candidate's
     * mean (norm), or the winner (reason names the rule and the setting).
     * Appended after the kinds before it. */
    MFL_AUDIT_SELECTION,
    /* secure aggregation over the daemons (docs/SECAGG.md), appended after
     * the kinds before it. Coordinator: a phase of an attempt ended; reason
     * = "<phase> <index:site ...>" (the sites it accepted), n = how many,
     * delta_hash = the phase's transcript (mfl_secagg_server_transcript). */
    MFL_AUDIT_SECAGG_PHASE,
    /* a masked input: coordinator, accepted from `site`; site, sent by it.
     * delta_hash = BLAKE2b-256 of the masked words' little-endian bytes,
     * n = words; both sides record the same hash for the same input. */
    MFL_AUDIT_SECAGG_MASKED,
    /* federated standardisation (docs/DATA.md), appended after the kinds
     * before it. Coordinator: what one site sent (site; n = its fit rows;
     * delta_hash = BLAKE2b-256 of its per-feature sums then sums of
     * squares, little-endian doubles; the values are in metrics.jsonl), or
     * the pooled scaling (no site; n = rows pooled; delta_hash = BLAKE2b-256
     * of the means then the scales, little-endian floats). */
    MFL_AUDIT_SCALING,
    MFL_AUDIT_KIND_COUNT
} mfl_audit_kind_t;

/* Differential-privacy parameters of one update (site-level DP), enough for
 * `metafl audit privacy` to recompute the budget. */
typedef struct {
    double clip;     /* clipping norm S */
    double sigma;    /* noise multiplier (std = sigma · clip) */
    double q;        /* sampling rate */
    uint64_t steps;  /* noisy steps in this update */
    double epsilon;  /* the site's cumulative ε after this update, as it claims */
    double delta;    /* δ of that ε */
} mfl_audit_privacy_t;

/* One record. Plain data (about 4.5 KB: keep off hot paths' stacks if that
 * matters). Fields marked (writer) are filled by mfl_audit_append and
 * ignored on input. */
typedef struct {
    uint64_t seq;                          /* (writer) 1-based record number */
    uint64_t time_ms;                      /* Unix ms; 0 on append = now */
    char writer[MFL_AUDIT_NAME_MAX + 1];   /* (writer) the log writer's key name */
    mfl_audit_kind_t kind;
    uint64_t round;
    char site[MFL_AUDIT_NAME_MAX + 1];     /* "" when not about one site */
    uint8_t nonce[MFL_AUDIT_NONCE_MAX];
    size_t nonce_len;
    bool has_delta_hash;
    uint8_t delta_hash[32];                /* digest of Δ: see mfl_audit_update_digest */
    double norm;                           /* L2 norm of Δ (finite, ≥ 0) */
    uint64_t n;                            /* samples (updates for round_closed) */
    bool has_privacy;
    mfl_audit_privacy_t privacy;
    bool has_update_sig;
    uint8_t update_sig[64];                /* the site's Ed25519 signature ... */
    uint8_t signed_header[MFL_AUDIT_SIGNED_MAX]; /* ... over these bytes (serialized */
    size_t signed_header_len;              /* UpdateHeader); 0 if not kept */
    char reason[MFL_AUDIT_REASON_MAX + 1]; /* rejection reason / note; "" if none */
    uint8_t prev[32];                      /* (writer) previous record's hash */
    uint8_t hash[32];                      /* (writer) this record's hash */
    uint8_t sig[64];                       /* (writer) Ed25519 over tag || hash */
} mfl_audit_record_t;

/* "log_opened", "update_sent", ...; NULL for an unknown kind. */
const char *mfl_audit_kind_name(mfl_audit_kind_t kind);

/* Parses a kind name; 0, or -1 if unknown. */
int mfl_audit_kind_parse(const char *text, mfl_audit_kind_t *kind);

/* Zeroes *rec and sets kind, round and site (copied; truncated at
 * MFL_AUDIT_NAME_MAX; NULL means ""). A convenience for callers. */
void mfl_audit_record_init(mfl_audit_record_t *rec, mfl_audit_kind_t kind, uint64_t round,
                           const char *site);

/* BLAKE2b-256 of n floats as little-endian bytes (the same hash the wire
 * puts in UpdateHeader.tensor_hashes for each tensor) and the L2 norm (in
 * double). */
void mfl_audit_delta_hash(const float *delta, size_t n, uint8_t out[32]);
double mfl_audit_l2_norm(const float *delta, size_t n);

/* The record's delta_hash for an update sent as k tensors whose BLAKE2b-256
 * hashes are hashes[32·i .. 32·i+32) (message order): for k = 1 that hash
 * itself (so it is BLAKE2b of Δ's bytes), for k > 1 BLAKE2b-256 of the k
 * hashes concatenated. Computable from the signed UpdateHeader alone, so
 * `verify` checks it against what the site signed; an auditor holding Δ
 * recomputes it from the tensors. k = 0 gives BLAKE2b of nothing. */
void mfl_audit_update_digest(const uint8_t *hashes, size_t k, uint8_t out[32]);

/* Fills *rec (zeroing it first) for `kind` from a site's signed update as it
 * travels on the wire: `header` is the serialized UpdateHeader (borrowed)
 * and `signature` the site's Ed25519 signature over it. From the decoded
 * header: round, site, nonce, n, delta_hash (mfl_audit_update_digest of its
 * tensor hashes), norm,
 * and privacy when applied (clip, sigma, epsilon, and q, steps and delta
 * from the header's privacy record; a header without them (older sites)
 * gives q = 1 and steps = 1, one site-level Gaussian release per update,
 * and delta 0 for the caller to set from the round's privacy settings). The header bytes and
 * signature are kept, so `verify` can check them against the site's key.
 * Does not verify the signature (the wire layer does, before accepting).
 * 0, or -1 with err if the header does not decode, is over
 * MFL_AUDIT_SIGNED_MAX or has a bad site name or nonce. Thread-safe. */
int mfl_audit_record_from_update(mfl_audit_record_t *rec, mfl_audit_kind_t kind,
                                 const uint8_t *header, size_t header_len,
                                 const uint8_t signature[64], char *err, size_t errlen);

/* ---- writing -------------------------------------------------------- */

typedef struct mfl_audit mfl_audit_t;

/* Opens (creating it, mode 0644, and any missing parent directories, if
 * absent) the log at `path` for appending as
 * writer `writer` (a key name) with the writer's Ed25519 secret key
 * (`sign_sk`, 64 bytes, copied into sodium_malloc memory). An existing log
 * is read and its hash chain checked (not the signatures: verify does that)
 * so the chain continues from its last record; a torn last line is cut off
 * (logged as a warning) and a log_opened record notes it. Appends a
 * log_opened record. The file is locked (flock, exclusive) while open, so
 * a second writer, e.g. a daemon started twice on one run directory, is
 * refused instead of interleaving two chains. NULL with "PATH:LINE:
 * reason" in err if the existing log is broken (the log is then left
 * untouched), is held by another writer, or on I/O error. */
mfl_audit_t *mfl_audit_open(const char *path, const char *writer, const uint8_t sign_sk[64],
                            char *err, size_t errlen);

/* Closes the log and wipes the key; accepts NULL; nulls *self_p. In
 * deferred mode, first fsyncs what is pending (an error is logged). */
void mfl_audit_destroy(mfl_audit_t **self_p);

/* Appends `rec` (borrowed; its (writer) fields are ignored): assigns seq,
 * time (if 0), writer, prev, hash, sig, writes the line and fsyncs before
 * returning (in deferred mode: writes only; see mfl_audit_sync). If `out` is non-NULL the completed record is copied there.
 * Bytes of `reason` outside printable ASCII are written as '?'.
 * Returns 0, or -1 with err (invalid field: non-finite norm, bad site name,
 * oversize; or I/O). A write that fails (full volume, quota, file size
 * limit) is cut back to the last complete record, so nothing of it stays
 * and the same append can be retried later; only if that cut fails, or
 * an fsync fails, is the log marked failed (mfl_audit_failed) and every
 * later append refused, because what reached the disk is then unknown.
 * Thread-safe (an internal mutex serialises appends). */
int mfl_audit_append(mfl_audit_t *self, const mfl_audit_record_t *rec, mfl_audit_record_t *out,
                     char *err, size_t errlen);

/* As mfl_audit_append, but never syncs, whatever the mode: the line is
 * written at once (a process crash loses nothing; readers see it) and
 * reaches the disk with the next append that syncs, the next
 * mfl_audit_sync or mfl_audit_destroy. For a record nothing depends on
 * until a later synced record: a site's peer_head, which its update_sent
 * record (synced before the update leaves) makes durable with it. On power
 * loss before that point it may be lost (a tail only; the chain of what
 * remains is intact). mfl_audit_count / mfl_audit_head include it;
 * mfl_audit_signed_head (the synced chain) does not until it is synced.
 * Thread-safe. */
int mfl_audit_append_lazy(mfl_audit_t *self, const mfl_audit_record_t *rec,
                          mfl_audit_record_t *out, char *err, size_t errlen);

/* Switches the fsync policy. Default (false): every append fsyncs before
 * it returns, so a returned append is on disk (a site needs this: its
 * update_sent record must be durable before the update leaves). Deferred
 * (true): an append is still one write(2) of the whole line, so once it
 * returns a process crash (SIGKILL) loses nothing and readers see the
 * line, but it reaches the disk only at the next mfl_audit_sync or
 * mfl_audit_destroy; on power loss the records since the last sync may be
 * lost (or the last one torn: reopen cuts it). For the coordinator, which
 * syncs once per round before its checkpoint (docs/AUDIT.md). Switching
 * back to false does not sync what is pending: call mfl_audit_sync.
 * Thread-safe. */
void mfl_audit_set_deferred_sync(mfl_audit_t *self, bool deferred);

/* fsyncs the lines appended since the last sync (nothing to do, and 0, if
 * there are none). Returns 0, or -1 with "PATH: ..." in err if the log
 * already failed or the fsync fails; a failed fsync marks the log failed
 * (every later append and sync fails), since which records reached the
 * disk is then unknown. Thread-safe. */
int mfl_audit_sync(mfl_audit_t *self, char *err, size_t errlen);

/* True once the log is closed for writing (a failed fsync or a failed
 * cut after a failed write): no append or sync can succeed again. */
bool mfl_audit_failed(mfl_audit_t *self);

/* Records appended so far in the file (including earlier sessions). */
uint64_t mfl_audit_count(mfl_audit_t *self);

/* The hash of the last record (the chain head), 32 bytes into out. */
void mfl_audit_head(mfl_audit_t *self, uint8_t out[32]);

/* The chain head as of the last sync (every append in the default mode):
 * record count and that record's hash (zeros for 0), and the writer's
 * Ed25519 signature over it (mfl_audit_head_verify). What a peer may hold
 * as proof that these records exist: durable, so a power loss does not
 * make an honest log look truncated. Thread-safe. */
void mfl_audit_signed_head(mfl_audit_t *self, uint64_t *seq, uint8_t head[32],
                           uint8_t sig[64]);

/* Ed25519 signatures mfl_audit_signed_head has computed: one per synced
 * head, however often it is asked (the coordinator asks once per site and
 * round; the repeats return the signature already made, the same bytes).
 * For tests and diagnostics. Thread-safe. */
uint64_t mfl_audit_head_signs(mfl_audit_t *self);

/* 0 if `sig` is `pk`'s signature over "metafl-audit-head-v1" || seq (u64
 * little-endian) || head, else -1. */
int mfl_audit_head_verify(const uint8_t pk[32], uint64_t seq, const uint8_t head[32],
                          const uint8_t sig[64]);

/* ---- reading and verifying ------------------------------------------ */

/* Parses one line (without its newline; need not be NUL-terminated) into
 * *rec. Strict: the exact key set and order above, types, hex lengths,
 * bounds. It checks the form only (not hash or signature). 0, or -1 with
 * "reason" in err (the caller adds FILE:LINE). Thread-safe. */
int mfl_audit_record_parse(const char *line, size_t len, mfl_audit_record_t *rec, char *err,
                           size_t errlen);

/* Calls fn(arg, line_no, rec) for each record of the log in order (form
 * checked, chain and signatures not). fn returns 0 to go on, non-zero to
 * stop (returned as is). Returns 0, or -1 with "PATH:LINE: reason" in err at
 * the first malformed line. */
typedef int(mfl_audit_each_fn)(void *arg, size_t line_no, const mfl_audit_record_t *rec);
int mfl_audit_foreach(const char *path, mfl_audit_each_fn *fn, void *arg, char *err,
                      size_t errlen);

/* Looks up the Ed25519 public key of key name `name` into pk. 0, or -1 with
 * err (unknown name, unreadable key file). */
typedef int(mfl_audit_key_fn)(void *arg, const char *name, uint8_t pk[32], char *err,
                              size_t errlen);

typedef struct {
    size_t n_records;        /* records checked (all of them when ok) */
    size_t n_site_sigs;      /* site update signatures verified */
    size_t bad_line;         /* 0 when ok */
    uint64_t bad_record;     /* record number (seq expected there); 0 when ok */
    char message[768];       /* "FILE:LINE: record N: why", or "ok: ..." */
} mfl_audit_report_t;

/* Verifies the whole log: every line's form, seq = 1, 2, ...; the hash
 * chain; each record's hash; each writer signature (key by writer name);
 * and for records holding a site's signed header (except update_rejected
 * ones, which may hold a bad update as evidence): the site signature (key
 * by site name) and that the header's round, site, n, nonce, digest of the
 * tensor hashes and norm (1e-4 relative) equal the record's. Stops at the first bad record. Returns 0 (report says
 * "ok: N records, chain intact, all signatures valid") or -1 (report names
 * FILE:LINE: record N and why). Thread-safe. */
int mfl_audit_verify_with(const char *path, mfl_audit_key_fn *keys, void *keys_arg,
                          mfl_audit_report_t *report);

/* Cross-checks two logs kept by the two sides of a federation (the
 * coordinator's and a site's), each already verified on its own: every
 * head one log holds of the other (a site's peer_head records of the
 * coordinator; the coordinator's update records, whose signed headers
 * carry the site's head) must be a record of the other log with that
 * hash. A head beyond the other log's end names that log truncated; a
 * different hash names it forked (or rewritten). Secure aggregation: a
 * masked input both logs record (secagg_masked, same round, nonce and
 * site) must carry the same hash on both sides ("DIFFERS" otherwise).
 * Returns 0 (message says how many heads and masked inputs matched) or -1
 * (message names the log, the record and the head that proves it). */
int mfl_audit_cross_check(const char *path_a, const char *path_b, char *message,
                          size_t message_len);

/* As mfl_audit_verify_with, with keys loaded from KEYS_DIR/NAME.pub. */
int mfl_audit_verify(const char *path, const char *keys_dir, mfl_audit_report_t *report);

#endif
