/* Fuzzes secure aggregation's two state machines with hostile messages: an
 * honest attempt of 5 sites (t = 3) runs phase by phase, and before each
 * phase ends the input injects messages of that phase to the coordinator
 * from any site index (a malicious site, or a forged sender), and hostile
 * lists, boxes and unmask requests to site 1 (a lying coordinator).
 * Nothing may crash or read out of bounds; a sum exists only when the
 * attempt is done; site 1 never reveals both kinds of share of one peer.
 *
 * Input: records [kind][from][len lo][len hi][len bytes], kind % 8 picks
 * the message. */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secagg/secagg_server.h"
#include "secagg/secagg_site.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N 5
#define L 6

static uint8_t s_roster[N][32], s_sk[N][64];
static int s_ready;

typedef struct {
    const uint8_t *p;
    size_t left;
} s_in_t;

/* The next record of the phase's kinds, or 0 when none is left. */
static int s_next(s_in_t *in, uint8_t *kind, uint8_t *from, const uint8_t **body, size_t *len)
{
    if (in->left < 4)
        return 0;
    *kind = in->p[0];
    *from = in->p[1];
    size_t n = (size_t)in->p[2] | (size_t)in->p[3] << 8;
    in->p += 4;
    in->left -= 4;
    if (n > in->left)
        n = in->left;
    *body = in->p;
    *len = n;
    in->p += n;
    in->left -= n;
    return 1;
}

/* Copies up to `cap` bytes of body into a zeroed buffer. */
static void s_fill(void *dst, size_t cap, const uint8_t *body, size_t len)
{
    memset(dst, 0, cap);
    memcpy(dst, body, len < cap ? len : cap);
}

static uint8_t s_revealed[N + 1]; /* kinds site 1 revealed per peer */

static void s_check_reveals(const mfl_secagg_reveal_t *rv, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        uint32_t p = rv[k].peer;
        if (p < 1 || p > N)
            abort();
        if (s_revealed[p] && s_revealed[p] != rv[k].kind)
            abort(); /* both kinds of share of one peer */
        s_revealed[p] = rv[k].kind;
    }
}

/* Hostile input for phase `phase` (1..5) to the coordinator and site 1. */
static void s_inject(s_in_t *in, int phase, mfl_secagg_server_t *srv, mfl_secagg_site_t *site1)
{
    char err[256];
    uint8_t kind, from;
    const uint8_t *body;
    size_t len;
    int budget = 4;
    while (budget-- > 0 && s_next(in, &kind, &from, &body, &len)) {
        uint32_t f = from % 8; /* also 0, 6, 7: out of range */
        switch ((kind + phase) % 8) {
        case 0: {
            mfl_secagg_advert_t a;
            s_fill(&a, sizeof a, body, len);
            (void)mfl_secagg_server_on_advert(srv, f, &a, err, sizeof err);
            break;
        }
        case 1: {
            mfl_secagg_share_ct_t c[N];
            s_fill(c, sizeof c, body, len);
            (void)mfl_secagg_server_on_shares(srv, f, c, len / sizeof c[0] % (N + 1), err,
                                              sizeof err);
            break;
        }
        case 2: {
            uint64_t y[L + 2];
            s_fill(y, sizeof y, body, len);
            (void)mfl_secagg_server_on_masked(srv, f, y, len / 8 % (L + 2), NULL, err, sizeof err);
            break;
        }
        case 3: {
            mfl_secagg_signoff_t s;
            s_fill(&s, sizeof s, body, len);
            (void)mfl_secagg_server_on_signoff(srv, f, &s, err, sizeof err);
            break;
        }
        case 4: {
            mfl_secagg_reveal_t r[N];
            s_fill(r, sizeof r, body, len);
            (void)mfl_secagg_server_on_reveals(srv, f, r, len / sizeof r[0] % (N + 1), err,
                                               sizeof err);
            break;
        }
        case 5: { /* a lying coordinator's key list to site 1 */
            mfl_secagg_advert_t a[N];
            mfl_secagg_share_ct_t out[N];
            size_t n_out;
            s_fill(a, sizeof a, body, len);
            (void)mfl_secagg_site_share(site1, a, len / sizeof a[0] % (N + 1), out, &n_out, err,
                                        sizeof err);
            break;
        }
        case 6: { /* boxes to site 1 */
            mfl_secagg_share_ct_t c[N];
            uint64_t x[L] = {0}, y[L];
            s_fill(c, sizeof c, body, len);
            (void)mfl_secagg_site_mask(site1, c, len / sizeof c[0] % (N + 1), x, y, err,
                                       sizeof err);
            break;
        }
        default: { /* an unmask request to site 1: lists from the body */
            uint32_t surv[N], drop[N];
            mfl_secagg_signoff_t so[N];
            size_t ns = len > 0 ? body[0] % (N + 1) : 0, nd = len > 1 ? body[1] % (N + 1) : 0;
            for (size_t k = 0; k < N; k++) {
                surv[k] = 2 + k < len ? body[2 + k] % 8 : (uint32_t)k + 1;
                drop[k] = 7 + k < len ? body[7 + k] % 8 : (uint32_t)k + 1;
            }
            s_fill(so, sizeof so, len > 12 ? body + 12 : body, len > 12 ? len - 12 : 0);
            mfl_secagg_unmask_req_t req = {surv, ns, so, ns, drop, nd};
            mfl_secagg_reveal_t rv[N];
            size_t nr = 0;
            if (mfl_secagg_site_unmask(site1, &req, rv, &nr, err, sizeof err) == MFL_SECAGG_OK)
                s_check_reveals(rv, nr);
            else if (nr != 0)
                abort();
            break;
        }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096 || sodium_init() < 0)
        return 0;
    if (!s_ready) {
        for (int i = 0; i < N; i++) {
            uint8_t seed[32] = {(uint8_t)(i + 1)};
            crypto_sign_seed_keypair(s_roster[i], s_sk[i], seed);
        }
        s_ready = 1;
    }
    memset(s_revealed, 0, sizeof s_revealed);
    s_in_t in = {data, size};
    char err[256];
    mfl_secagg_params_t p = {.n_sites = N, .threshold = 3, .length = L};
    p.scope.round = 1;
    mfl_secagg_server_t *srv = mfl_secagg_server_new(&p, (const uint8_t (*)[32])s_roster, err,
                                                     sizeof err);
    mfl_secagg_site_t *site[N + 1] = {0};
    for (uint32_t i = 1; i <= N; i++)
        site[i] = mfl_secagg_site_new(&p, i, s_sk[i - 1], (const uint8_t (*)[32])s_roster, err,
                                      sizeof err);
    if (!srv || !site[N])
        abort();
    /* Phase 1. */
    for (uint32_t i = 1; i <= N; i++) {
        mfl_secagg_advert_t a;
        if (mfl_secagg_site_advertise(site[i], &a, err, sizeof err) == MFL_SECAGG_OK)
            (void)mfl_secagg_server_on_advert(srv, i, &a, err, sizeof err);
    }
    s_inject(&in, 1, srv, site[1]);
    if (mfl_secagg_server_end_adverts(srv, err, sizeof err) < 0)
        goto out;
    size_t nu1;
    const mfl_secagg_advert_t *u1 = mfl_secagg_server_adverts(srv, &nu1);
    mfl_secagg_share_ct_t cts[N];
    for (uint32_t i = 1; i <= N; i++) {
        size_t nc;
        if (mfl_secagg_site_share(site[i], u1, nu1, cts, &nc, err, sizeof err) == MFL_SECAGG_OK)
            (void)mfl_secagg_server_on_shares(srv, i, cts, nc, err, sizeof err);
    }
    s_inject(&in, 2, srv, site[1]);
    if (mfl_secagg_server_end_shares(srv, err, sizeof err) < 0)
        goto out;
    for (uint32_t i = 1; i <= N; i++) {
        uint64_t x[L] = {(uint64_t)i, 2, 3, 4, 5, 6}, y[L];
        size_t nb = mfl_secagg_server_boxes_for(srv, i, cts);
        if (mfl_secagg_site_mask(site[i], cts, nb, x, y, err, sizeof err) == MFL_SECAGG_OK)
            (void)mfl_secagg_server_on_masked(srv, i, y, L, NULL, err, sizeof err);
    }
    s_inject(&in, 3, srv, site[1]);
    if (mfl_secagg_server_end_masked(srv, err, sizeof err) < 0)
        goto out;
    size_t ns;
    const uint32_t *surv = mfl_secagg_server_survivors(srv, &ns);
    for (uint32_t i = 1; i <= N; i++) {
        mfl_secagg_signoff_t s;
        if (mfl_secagg_site_signoff(site[i], surv, ns, &s, err, sizeof err) == MFL_SECAGG_OK)
            (void)mfl_secagg_server_on_signoff(srv, i, &s, err, sizeof err);
    }
    s_inject(&in, 4, srv, site[1]);
    if (mfl_secagg_server_end_signoffs(srv, err, sizeof err) < 0)
        goto out;
    s_inject(&in, 5, srv, site[1]); /* hostile requests may come before the real one */
    mfl_secagg_unmask_req_t req;
    mfl_secagg_server_unmask_request(srv, &req);
    for (uint32_t i = 1; i <= N; i++) {
        mfl_secagg_reveal_t rv[N];
        size_t nr;
        if (mfl_secagg_site_unmask(site[i], &req, rv, &nr, err, sizeof err) == MFL_SECAGG_OK) {
            if (i == 1)
                s_check_reveals(rv, nr);
            (void)mfl_secagg_server_on_reveals(srv, i, rv, nr, err, sizeof err);
        }
    }
    s_inject(&in, 5, srv, site[1]);
    (void)mfl_secagg_server_finish(srv, err, sizeof err);
out:;
    size_t count;
    const uint64_t *sum = mfl_secagg_server_sum(srv, &count);
    if ((sum != NULL) != (mfl_secagg_server_phase(srv) == MFL_SECAGG_PHASE_DONE))
        abort();
    for (uint32_t i = 1; i <= N; i++)
        mfl_secagg_site_destroy(&site[i]);
    mfl_secagg_server_destroy(&srv);
    return 0;
}
