/* Cross-checking the two sides' audit logs (issue 10, item 8): each side
 * holds signed chain heads of the other, so cutting the newest records off
 * one log, or rewriting it, shows against the other. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "core/log.h"
#include "wire/task.h"

/* One head a log holds of its peer, with where it was found. */
typedef struct {
    char peer[MFL_AUDIT_NAME_MAX + 1];
    uint64_t seq;
    uint8_t head[32];
    size_t line;
} s_claim_t;

/* A secagg_masked record: which masked input, and its hash. */
typedef struct {
    uint64_t round;
    uint8_t nonce[MFL_AUDIT_NONCE_MAX];
    size_t nonce_len;
    char site[MFL_AUDIT_NAME_MAX + 1];
    uint8_t hash[32];
    size_t line;
} s_masked_t;

typedef struct {
    char writer[MFL_AUDIT_NAME_MAX + 1];
    s_masked_t *masked;
    size_t n_masked, cap_masked;
    uint8_t (*hash)[32];    /* hash of record i+1 */
    uint64_t n, cap;
    s_claim_t *claims;
    size_t n_claims, cap_claims;
    int oom;
} s_log_t;

static void s_claim(s_log_t *l, const char *peer, uint64_t seq, const uint8_t head[32],
                    size_t line)
{
    if (seq == 0)
        return; /* an empty log: nothing to prove */
    if (l->n_claims == l->cap_claims) {
        size_t cap = l->cap_claims ? 2 * l->cap_claims : 64;
        s_claim_t *c = realloc(l->claims, cap * sizeof *c);
        if (!c) {
            l->oom = 1;
            return;
        }
        l->claims = c;
        l->cap_claims = cap;
    }
    s_claim_t *c = &l->claims[l->n_claims++];
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->seq = seq;
    memcpy(c->head, head, 32);
    c->line = line;
}

static int s_each(void *arg, size_t line_no, const mfl_audit_record_t *rec)
{
    s_log_t *l = arg;
    if (!l->writer[0])
        snprintf(l->writer, sizeof l->writer, "%s", rec->writer);
    if (l->n == l->cap) {
        uint64_t cap = l->cap ? 2 * l->cap : 1024;
        uint8_t(*h)[32] = realloc(l->hash, cap * sizeof *h);
        if (!h) {
            l->oom = 1;
            return 1;
        }
        l->hash = h;
        l->cap = cap;
    }
    memcpy(l->hash[l->n++], rec->hash, 32);
    if (rec->kind == MFL_AUDIT_SECAGG_MASKED && rec->has_delta_hash) {
        if (l->n_masked == l->cap_masked) {
            size_t cap = l->cap_masked ? 2 * l->cap_masked : 64;
            s_masked_t *m = realloc(l->masked, cap * sizeof *m);
            if (!m) {
                l->oom = 1;
                return 1;
            }
            l->masked = m;
            l->cap_masked = cap;
        }
        s_masked_t *m = &l->masked[l->n_masked++];
        m->round = rec->round;
        memcpy(m->nonce, rec->nonce, sizeof m->nonce);
        m->nonce_len = rec->nonce_len;
        snprintf(m->site, sizeof m->site, "%s", rec->site);
        memcpy(m->hash, rec->delta_hash, 32);
        m->line = line_no;
    }
    if (rec->kind == MFL_AUDIT_PEER_HEAD && rec->has_delta_hash) {
        s_claim(l, rec->site, rec->n, rec->delta_hash, line_no);
    } else if (rec->kind == MFL_AUDIT_UPDATE_ACCEPTED && rec->signed_header_len > 0) {
        /* The site's head travels inside what it signed. (Rejected
         * updates are not trusted for this: they may be the bad part.) */
        static _Thread_local mfl_update_header_t h;
        char err[160];
        if (mfl_update_header_decode(rec->signed_header, rec->signed_header_len, &h, err,
                                     sizeof err) == 0 &&
            h.has_audit_head)
            s_claim(l, rec->site, h.audit_seq, h.audit_head, line_no);
    }
    return l->oom;
}

static int s_load(const char *path, s_log_t *l, char *msg, size_t len)
{
    memset(l, 0, sizeof *l);
    if (mfl_audit_foreach(path, s_each, l, msg, len) != 0)
        return -1;
    if (l->oom) {
        mfl_errf(msg, len, "%s: out of memory", path);
        return -1;
    }
    return 0;
}

/* Checks what `a` holds of `b`. 0, or -1 with msg; *matched counts. */
static int s_check(const char *path_a, const s_log_t *a, const char *path_b, const s_log_t *b,
                   size_t *matched, char *msg, size_t len)
{
    for (size_t i = 0; i < a->n_claims; i++) {
        const s_claim_t *c = &a->claims[i];
        if (strcmp(c->peer, b->writer) != 0)
            continue;
        if (c->seq > b->n) {
            mfl_errf(msg, len, "%s is TRUNCATED: %s:%zu holds %s's signed head at record %"
                     PRIu64 ", but the log has only %" PRIu64 " records (at least %" PRIu64
                     " cut off its end)", path_b, path_a, c->line, b->writer, c->seq, b->n,
                     c->seq - b->n);
            return -1;
        }
        if (memcmp(b->hash[c->seq - 1], c->head, 32) != 0) {
            mfl_errf(msg, len, "%s is FORKED or rewritten: record %" PRIu64 " is not the one "
                     "%s signed as its head (held at %s:%zu)", path_b, c->seq, b->writer,
                     path_a, c->line);
            return -1;
        }
        (*matched)++;
    }
    return 0;
}

/* Secure aggregation: every masked input both logs record (same round,
 * attempt nonce and site) has the same hash on both sides. An input only
 * one side holds is not an error (lost on the way, or refused). 0, or -1
 * with msg; *matched counts. */
static int s_check_masked(const char *path_a, const s_log_t *a, const char *path_b,
                          const s_log_t *b, size_t *matched, char *msg, size_t len)
{
    for (size_t i = 0; i < a->n_masked; i++) {
        const s_masked_t *x = &a->masked[i];
        for (size_t j = 0; j < b->n_masked; j++) {
            const s_masked_t *y = &b->masked[j];
            if (x->round != y->round || x->nonce_len != y->nonce_len ||
                memcmp(x->nonce, y->nonce, x->nonce_len) != 0 || strcmp(x->site, y->site) != 0)
                continue;
            if (memcmp(x->hash, y->hash, 32) != 0) {
                mfl_errf(msg, len, "masked input of site %s in round %" PRIu64 " DIFFERS: %s:%zu "
                         "and %s:%zu record different hashes", x->site, x->round, path_a,
                         x->line, path_b, y->line);
                return -1;
            }
            (*matched)++;
        }
    }
    return 0;
}

int mfl_audit_cross_check(const char *path_a, const char *path_b, char *msg, size_t len)
{
    s_log_t a, b;
    int rc = -1;
    memset(&b, 0, sizeof b);
    if (s_load(path_a, &a, msg, len) < 0 || s_load(path_b, &b, msg, len) < 0)
        goto out;
    size_t ab = 0, ba = 0;
    if (s_check(path_a, &a, path_b, &b, &ab, msg, len) < 0 ||
        s_check(path_b, &b, path_a, &a, &ba, msg, len) < 0)
        goto out;
    size_t masked = 0;
    if (s_check_masked(path_a, &a, path_b, &b, &masked, msg, len) < 0)
        goto out;
    if (ab + ba == 0) {
        mfl_errf(msg, len, "%s (%s) and %s (%s) hold no head of each other: nothing to "
                 "cross-check (logs of another run, or written before heads were exchanged)",
                 path_a, a.writer, path_b, b.writer);
        goto out;
    }
    snprintf(msg, len, "ok: %s and %s agree: %zu head(s) of %s found in %s's log, %zu of %s "
             "in %s's; neither is truncated or forked up to them", path_a, path_b, ab,
             b.writer, a.writer, ba, a.writer, b.writer);
    if (masked) {
        size_t at = strlen(msg);
        snprintf(msg + at, len > at ? len - at : 0,
                 "; %zu masked input(s) recorded by both with the same hash", masked);
    }
    rc = 0;
out:
    free(a.hash);
    free(a.claims);
    free(a.masked);
    free(b.hash);
    free(b.claims);
    free(b.masked);
    return rc;
}
