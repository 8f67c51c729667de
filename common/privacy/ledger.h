/* The privacy budget a site has spent, read back from signed, hash-chained
 * audit logs, and the independent recomputation `metafl audit privacy`
 * runs.
 *
 * The site's ledger is its own audit log (audit/audit.h): every update that
 * left with DP on has an update_sent record carrying (q, σ, steps, ε, δ)
 * from the header the site signed. At start the agent verifies the whole
 * log (chain and signatures, with the site's own key) and adds up the RDP
 * of those releases; nothing else (no state file, no config value) says
 * what was spent, so deleting files or editing the config cannot reset the
 * budget. A log without a ledger_started record (a fresh or re-created
 * log) has no ledger: the site then runs no DP task until the operator
 * starts one deliberately (docs/PRIVACY.md, "Recovering a ledger").
 *
 * Not thread-safe per call target (reads files); no global state. */
#ifndef MFL_PRIVACY_LEDGER_H
#define MFL_PRIVACY_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "privacy/accountant.h"

typedef struct {
    bool started;          /* the log holds a ledger_started record */
    size_t n_releases;     /* DP updates added to the account */
    size_t n_declined;     /* task_declined records */
    size_t n_records;      /* records in the log */
} mfl_privacy_ledger_info_t;

/* Verifies the log at `path` (every record written and every update signed
 * by `site`, Ed25519 public key `sign_pk`; records that hold a peer's
 * signed chain head, the coordinator's, are checked with `peer_pk` when
 * `peer` names it, and make the log fail to verify otherwise) and adds the RDP of each of the
 * site's DP releases (update_sent records with σ > 0) into `spent`, which
 * the caller has initialised. Returns 0 with *info filled, or -1 with err
 * ("PATH:LINE: record N: why" when the log does not verify; spent is then
 * unspecified). A missing file is an error too. */
int mfl_privacy_ledger_read(const char *path, const char *site, const uint8_t sign_pk[32],
                            const char *peer, const uint8_t *peer_pk,
                            mfl_privacy_accountant_t *spent, mfl_privacy_ledger_info_t *info,
                            char *err, size_t errlen);

/* One DP release as the recomputation sees it. */
typedef struct {
    size_t line;          /* 1-based line of its record */
    uint64_t seq;         /* the record's seq */
    const char *site;     /* borrowed for the callback */
    uint64_t round;
    double q, sigma, delta;
    uint64_t steps;
    double claimed;       /* ε the site wrote (cumulative) */
    double recomputed;    /* ε from this log's releases of that site so far */
    bool disagrees;       /* |claimed − recomputed| > 1e-6 · max(1, recomputed) */
} mfl_privacy_release_t;

typedef void(mfl_privacy_release_fn)(void *arg, const mfl_privacy_release_t *release);

/* Recomputes, per site, ε after each DP release recorded in the log at
 * `path` (a site's log: update_sent; the coordinator's: update_accepted and
 * update_rejected, since a rejected update left its site too; the same
 * (site, round, nonce) counts once), independently of the ε each record
 * claims, at the δ each record states. Calls fn for every release in log
 * order. Does not verify the log: call mfl_audit_verify first. Returns the
 * number of releases whose claim disagrees (≥ 0), or -1 with err. */
long mfl_privacy_audit_log(const char *path, mfl_privacy_release_fn *fn, void *arg, char *err,
                           size_t errlen);

#endif
