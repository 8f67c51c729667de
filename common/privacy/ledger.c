/* Privacy ledgers from audit logs; see ledger.h. */
#include "privacy/ledger.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "core/log.h"

/* ---- the site's own ledger ------------------------------------------ */

typedef struct {
    const char *site;
    const uint8_t *pk;
    const char *peer;
    const uint8_t *peer_pk;
} s_key_t;

static int s_own_key(void *arg, const char *name, uint8_t pk[32], char *err, size_t errlen)
{
    const s_key_t *k = arg;
    if (k->peer && k->peer_pk && strcmp(name, k->peer) == 0) {
        memcpy(pk, k->peer_pk, 32);
        return 0;
    }
    if (strcmp(name, k->site) != 0)
        return mfl_errf(err, errlen, "'%s' is not this site (%s): a site's log holds only its "
                        "own records", name, k->site), -1;
    memcpy(pk, k->pk, 32);
    return 0;
}

typedef struct {
    const char *site;
    mfl_privacy_accountant_t *spent;
    mfl_privacy_ledger_info_t *info;
    char err[256];
} s_read_t;

static int s_read_one(void *arg, size_t line_no, const mfl_audit_record_t *rec)
{
    s_read_t *r = arg;
    r->info->n_records++;
    if (rec->kind == MFL_AUDIT_LEDGER_STARTED)
        r->info->started = true;
    if (rec->kind == MFL_AUDIT_TASK_DECLINED)
        r->info->n_declined++;
    if (rec->kind != MFL_AUDIT_UPDATE_SENT || !rec->has_privacy || !(rec->privacy.sigma > 0))
        return 0;
    char sub[200];
    if (mfl_privacy_accountant_add(r->spent, rec->privacy.q, rec->privacy.sigma,
                                   (double)rec->privacy.steps, sub, sizeof sub)) {
        snprintf(r->err, sizeof r->err, "line %zu: %s", line_no, sub);
        return 1;
    }
    r->info->n_releases++;
    return 0;
}

int mfl_privacy_ledger_read(const char *path, const char *site, const uint8_t sign_pk[32],
                            const char *peer, const uint8_t *peer_pk,
                            mfl_privacy_accountant_t *spent, mfl_privacy_ledger_info_t *info,
                            char *err, size_t errlen)
{
    memset(info, 0, sizeof *info);
    s_key_t key = {site, sign_pk, peer, peer_pk};
    mfl_audit_report_t report;
    if (mfl_audit_verify_with(path, s_own_key, &key, &report) != 0)
        return mfl_errf(err, errlen, "%s", report.message), -1;
    s_read_t r = {site, spent, info, ""};
    int rc = mfl_audit_foreach(path, s_read_one, &r, err, errlen);
    if (rc < 0)
        return -1;
    if (rc > 0)
        return mfl_errf(err, errlen, "%s: %s", path, r.err), -1;
    return 0;
}

/* ---- the auditor's recomputation ------------------------------------ */

typedef struct {
    char site[MFL_AUDIT_NAME_MAX + 1];
    mfl_privacy_accountant_t acc;
} s_site_acc_t;

typedef struct {
    char site[MFL_AUDIT_NAME_MAX + 1];
    uint64_t round;
    uint8_t nonce[MFL_AUDIT_NONCE_MAX];
    size_t nonce_len;
} s_seen_t;

typedef struct {
    mfl_privacy_release_fn *fn;
    void *arg;
    s_site_acc_t *sites;
    size_t n_sites, cap_sites;
    s_seen_t *seen;
    size_t n_seen, cap_seen;
    long n_bad;
    char err[256];
} s_audit_t;

static s_site_acc_t *s_site(s_audit_t *a, const char *site)
{
    for (size_t i = 0; i < a->n_sites; i++)
        if (strcmp(a->sites[i].site, site) == 0)
            return &a->sites[i];
    if (a->n_sites == a->cap_sites) {
        size_t cap = a->cap_sites ? 2 * a->cap_sites : 8;
        s_site_acc_t *s = realloc(a->sites, cap * sizeof *s);
        if (!s)
            return NULL;
        a->sites = s;
        a->cap_sites = cap;
    }
    s_site_acc_t *s = &a->sites[a->n_sites++];
    snprintf(s->site, sizeof s->site, "%s", site);
    mfl_privacy_accountant_init(&s->acc, NULL, 0, NULL, 0);
    return s;
}

/* true if (site, round, nonce) was counted before; records it otherwise. */
static int s_seen_before(s_audit_t *a, const mfl_audit_record_t *rec, bool *before)
{
    for (size_t i = 0; i < a->n_seen; i++) {
        const s_seen_t *s = &a->seen[i];
        if (s->round == rec->round && s->nonce_len == rec->nonce_len &&
            memcmp(s->nonce, rec->nonce, rec->nonce_len) == 0 && strcmp(s->site, rec->site) == 0) {
            *before = true;
            return 0;
        }
    }
    *before = false;
    if (a->n_seen == a->cap_seen) {
        size_t cap = a->cap_seen ? 2 * a->cap_seen : 64;
        s_seen_t *s = realloc(a->seen, cap * sizeof *s);
        if (!s)
            return -1;
        a->seen = s;
        a->cap_seen = cap;
    }
    s_seen_t *s = &a->seen[a->n_seen++];
    snprintf(s->site, sizeof s->site, "%s", rec->site);
    s->round = rec->round;
    s->nonce_len = rec->nonce_len;
    memcpy(s->nonce, rec->nonce, rec->nonce_len);
    return 0;
}

static int s_audit_one(void *arg, size_t line_no, const mfl_audit_record_t *rec)
{
    s_audit_t *a = arg;
    if (rec->kind != MFL_AUDIT_UPDATE_SENT && rec->kind != MFL_AUDIT_UPDATE_ACCEPTED &&
        rec->kind != MFL_AUDIT_UPDATE_REJECTED)
        return 0;
    if (!rec->has_privacy || !(rec->privacy.sigma > 0))
        return 0;
    bool before;
    if (s_seen_before(a, rec, &before))
        return snprintf(a->err, sizeof a->err, "out of memory"), 1;
    if (before)
        return 0;
    s_site_acc_t *s = s_site(a, rec->site);
    if (!s)
        return snprintf(a->err, sizeof a->err, "out of memory"), 1;
    mfl_privacy_release_t r = {line_no, rec->seq, rec->site, rec->round, rec->privacy.q,
                               rec->privacy.sigma, rec->privacy.delta, rec->privacy.steps,
                               rec->privacy.epsilon, NAN, false};
    char sub[200];
    if (mfl_privacy_accountant_add(&s->acc, r.q, r.sigma, (double)r.steps, sub, sizeof sub) ||
        mfl_privacy_accountant_epsilon(&s->acc, r.delta, MFL_RDP_CONVERT_BALLE2020,
                                       &r.recomputed, NULL, sub, sizeof sub)) {
        /* A record whose parameters cannot be accounted disagrees by definition. */
        r.recomputed = NAN;
        r.disagrees = true;
    } else {
        r.disagrees = !(fabs(r.claimed - r.recomputed) <= 1e-6 * fmax(1.0, r.recomputed));
    }
    if (r.disagrees)
        a->n_bad++;
    if (a->fn)
        a->fn(a->arg, &r);
    return 0;
}

long mfl_privacy_audit_log(const char *path, mfl_privacy_release_fn *fn, void *arg, char *err,
                           size_t errlen)
{
    s_audit_t a;
    memset(&a, 0, sizeof a);
    a.fn = fn;
    a.arg = arg;
    int rc = mfl_audit_foreach(path, s_audit_one, &a, err, errlen);
    free(a.sites);
    free(a.seen);
    if (rc < 0)
        return -1;
    if (rc > 0)
        return mfl_errf(err, errlen, "%s: %s", path, a.err), -1;
    return a.n_bad;
}
