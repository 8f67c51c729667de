/* The protocol with every party in-process (see secagg_local.h). */
#include "secagg/secagg_local.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "secagg/secagg_server.h"
#include "secagg/secagg_site.h"

uint32_t mfl_secagg_attempt_threshold(uint32_t n, uint32_t neighbours, uint32_t threshold)
{
    if (n < 1)
        return 0;
    uint32_t d = neighbours == 0 || neighbours >= n - 1 ? n - 1 : neighbours;
    uint32_t t = (d + 1) / 2 + 1;
    if (threshold > t)
        t = threshold;
    return t <= d + 1 ? t : 0;
}

int mfl_secagg_local_sum(const mfl_secagg_params_t *p, const uint8_t (*sign_sks)[64],
                         const uint8_t (*roster)[32], const void *const *inputs,
                         void *sum_out, uint8_t transcript[32], char *err, size_t errlen)
{
    if (mfl_secagg_params_check(p, err, errlen) < 0)
        return -1;
    const uint32_t n = p->n_sites;
    int rc = -1;
    mfl_secagg_server_t *srv = mfl_secagg_server_new(p, roster, err, errlen);
    mfl_secagg_site_t **site = calloc((size_t)n + 1, sizeof *site);
    mfl_secagg_share_ct_t *cts = calloc(n, sizeof *cts);
    mfl_secagg_reveal_t *rv = calloc(n, sizeof *rv);
    const size_t wb = mfl_secagg_word_bytes(p);
    void *y = malloc((size_t)p->length * wb);
    if (!srv || !site || !cts || !rv || !y) {
        if (srv)
            mfl_errf(err, errlen, "out of memory");
        goto out;
    }
    for (uint32_t i = 1; i <= n; i++)
        if (!(site[i] = mfl_secagg_site_new(p, i, sign_sks[i - 1], roster, err, errlen)))
            goto out;
#define S_OK(call)                                                                          \
    do {                                                                                    \
        if ((call) != MFL_SECAGG_OK)                                                        \
            goto out;                                                                       \
    } while (0)
    for (uint32_t i = 1; i <= n; i++) {
        mfl_secagg_advert_t a;
        S_OK(mfl_secagg_site_advertise(site[i], &a, err, errlen));
        S_OK(mfl_secagg_server_on_advert(srv, i, &a, err, errlen));
    }
    if (mfl_secagg_server_end_adverts(srv, err, errlen) < 0)
        goto out;
    size_t nu1;
    const mfl_secagg_advert_t *u1 = mfl_secagg_server_adverts(srv, &nu1);
    for (uint32_t i = 1; i <= n; i++) {
        size_t nc;
        S_OK(mfl_secagg_site_share(site[i], u1, nu1, cts, &nc, err, errlen));
        S_OK(mfl_secagg_server_on_shares(srv, i, cts, nc, err, errlen));
    }
    if (mfl_secagg_server_end_shares(srv, err, errlen) < 0)
        goto out;
    for (uint32_t i = 1; i <= n; i++) {
        size_t nb = mfl_secagg_server_boxes_for(srv, i, cts);
        S_OK(mfl_secagg_site_mask(site[i], cts, nb, inputs[i - 1], y, err, errlen));
        S_OK(mfl_secagg_server_on_masked(srv, i, y, (size_t)p->length, NULL, err, errlen));
    }
    if (mfl_secagg_server_end_masked(srv, err, errlen) < 0)
        goto out;
    size_t ns;
    const uint32_t *surv = mfl_secagg_server_survivors(srv, &ns);
    for (uint32_t i = 1; i <= n; i++) {
        mfl_secagg_signoff_t s;
        S_OK(mfl_secagg_site_signoff(site[i], surv, ns, &s, err, errlen));
        S_OK(mfl_secagg_server_on_signoff(srv, i, &s, err, errlen));
    }
    if (mfl_secagg_server_end_signoffs(srv, err, errlen) < 0)
        goto out;
    mfl_secagg_unmask_req_t req;
    mfl_secagg_server_unmask_request(srv, &req);
    for (uint32_t i = 1; i <= n; i++) {
        size_t nr;
        S_OK(mfl_secagg_site_unmask(site[i], &req, rv, &nr, err, errlen));
        S_OK(mfl_secagg_server_on_reveals(srv, i, rv, nr, err, errlen));
    }
#undef S_OK
    if (mfl_secagg_server_finish(srv, err, errlen) < 0)
        goto out;
    size_t count;
    const void *sum = mfl_secagg_server_sum(srv, &count);
    memcpy(sum_out, sum, (size_t)p->length * wb);
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    for (int ph = MFL_SECAGG_PHASE_ADVERTISE; ph <= MFL_SECAGG_PHASE_UNMASK; ph++) {
        uint8_t t[32];
        (void)mfl_secagg_server_transcript(srv, (mfl_secagg_phase_t)ph, t); /* all ended */
        crypto_generichash_update(&h, t, sizeof t);
    }
    crypto_generichash_final(&h, transcript, 32);
    rc = 0;
out:
    if (site)
        for (uint32_t i = 1; i <= n; i++)
            mfl_secagg_site_destroy(&site[i]);
    mfl_secagg_server_destroy(&srv);
    free(site);
    free(cts);
    free(rv);
    free(y);
    return rc;
}
