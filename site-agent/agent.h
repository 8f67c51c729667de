/* The site agent: the hospital's daemon as an object that tests can drive.
 *
 * It loads the site's identity (one Ed25519 key: signs updates, and its
 * derived CURVE key authenticates the transport), pins the coordinator's
 * public key, loads and validates its data (mfl_site_worker_new) and dials
 * out: the hospital opens no port. After every CURVE handshake (the first
 * and each reconnect, e.g. after a coordinator restart or a network drop)
 * it announces itself with Hello{site, version, n_train, schema hash,
 * capabilities}. It answers RoundTask with a signed Update + Δ frames
 * (and appends an update_sent record to its own audit log first), EvalTask
 * with an EvalReport (metrics only), and logs Welcome, Reject and Bye.
 * Nothing but Δ, its signed header and evaluation metrics ever leaves.
 *
 * Not thread-safe: one thread runs an agent. */
#ifndef MFL_SITE_AGENT_H
#define MFL_SITE_AGENT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "site/site_config.h"

typedef struct mfl_site_agent mfl_site_agent_t;

typedef enum {
    MFL_SECAGG_FAULT_NONE = 0,
    MFL_SECAGG_FAULT_EXIT_AFTER_SHARE, /* send the share boxes, then exit (a dropout) */
    MFL_SECAGG_FAULT_SHORT_MASKED,     /* send a masked vector one word short, only */
    MFL_SECAGG_FAULT_TWICE_MASKED,     /* send the masked vector twice */
    MFL_SECAGG_FAULT_HOLD_MASKED,      /* hold the masked vector until secagg_hold_file exists */
} mfl_site_agent_secagg_fault_t;

/* TESTS ONLY (tests/hostile/site_fault_site.c): a site that lies about
 * its data or holds a damaged model. */
typedef enum {
    MFL_SITE_FAULT_NONE = 0,
    MFL_SITE_FAULT_MOMENTS_BEYOND_FLOATS, /* moments of rows whose mean is 1e42 (no float's) */
    MFL_SITE_FAULT_MOMENTS_MORE_ROWS,     /* moments of 100× the rows it has */
    MFL_SITE_FAULT_CORRUPT_HELD,          /* one bit of the held model flips before round 3's
                                           * task is applied (its digest kept) */
    MFL_SITE_FAULT_HOG_GRANT,             /* asks to upload at once, never trains or sends */
} mfl_site_agent_fault_t;

typedef struct {
    bool exit_after_eval; /* stop (status 0) after the first EvalReport is sent */
    uint32_t max_rounds;  /* stop after this many updates sent; 0 = never */
    /* The audit log holds no privacy ledger (a new or re-created log):
     * start one from zero (a ledger_started record). Ignored, with a
     * warning, when the log already holds one. docs/PRIVACY.md. */
    bool new_privacy_ledger;
    /* TESTS ONLY (tests/hostile/secagg_fault_site.c; main never sets it):
     * misbehave in secure aggregation's masked phase, to prove the
     * coordinator survives it. */
    mfl_site_agent_secagg_fault_t secagg_fault;
    const char *secagg_hold_file;      /* HOLD_MASKED: the file to wait for (≤ 60 s) */
    /* TESTS ONLY (tests/hostile/chunk_fault_site.c): misbehave in a chunked
     * upload (wire/chunk_upload.h), to prove the coordinator refuses it. */
    int chunk_fault; /* mfl_chunk_fault_t */
    mfl_site_agent_fault_t site_fault; /* TESTS ONLY, as above */
} mfl_site_agent_opts_t;

/* Builds an agent from a loaded config (borrowed; keep it alive while the
 * agent lives): identity (refused if readable by others or named other
 * than site.id), coordinator key, data (a bad file fails here naming
 * FILE:LINE and the column), audit log, and the (asynchronous) connection.
 * opts NULL = defaults. NULL + err on any failure. */
mfl_site_agent_t *mfl_site_agent_new(const mfl_site_config_t *cfg,
                                     const mfl_site_agent_opts_t *opts, char *err,
                                     size_t errlen);

/* Closes the connection (a Bye is sent if connected), the audit log, wipes
 * keys; accepts NULL; nulls the pointer. */
void mfl_site_agent_destroy(mfl_site_agent_t **self_p);

/* What a step did. */
typedef enum {
    MFL_AGENT_CONTINUE = 0, /* keep going */
    MFL_AGENT_DONE = 1,     /* an exit condition was met (opts), exit 0 */
    MFL_AGENT_FATAL = -1,   /* unrecoverable (schema / version refused, audit log broken) */
} mfl_agent_status_t;

/* Waits up to timeout_ms for one message and handles it (plus any pending
 * Hello after a handshake). err holds the reason on MFL_AGENT_FATAL. */
mfl_agent_status_t mfl_site_agent_step(mfl_site_agent_t *self, int timeout_ms, char *err,
                                       size_t errlen);

/* Steps until *stop becomes non-zero (a signal handler sets it) or a step
 * returns DONE / FATAL. Returns the process exit status: 0 or 1. */
int mfl_site_agent_run(mfl_site_agent_t *self, volatile sig_atomic_t *stop);

/* Counters, for tests and the status log. */
uint64_t mfl_site_agent_updates_sent(const mfl_site_agent_t *self);
uint64_t mfl_site_agent_reports_sent(const mfl_site_agent_t *self);
uint64_t mfl_site_agent_hellos_sent(const mfl_site_agent_t *self);

#endif
