/* The round engine drives secure aggregation's phases (round_engine.h,
 * "Secure aggregation over a transport") with five in-process site state
 * machines behind a fake transport: the round ends with θ bit-identical to
 * the plain engine fed the same updates; a site that drops after sharing
 * is recovered at the masked phase's deadline (θ = plain over the other
 * four); a masked input of the wrong length and a second one are rejected
 * with their reasons and the sum stays exact; a plain update is refused;
 * three sites gone after advertising abandon the attempt (θ unchanged,
 * every site told) and the round is retried with a new nonce. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "fed/aggregate.h"
#include "meta/learner.h"
#include "round/round_engine.h"
#include "round/run_config.h"
#include "round/status.h"
#include "secagg/secagg_site.h"
#include "secagg/secagg_update.h"

#include "engine_fake.h"

#define N 5
static char s_dir[128];
static const char *const SITES[N] = {"site-a", "site-b", "site-c", "site-d", "site-e"};

/* The fake transport: per site, an inbox of the engine's messages. */
typedef struct {
    uint8_t pk[N][32], sk[N][64];
    mfl_secagg_wire_t *inbox[N][8];
    size_t n_in[N];
    fake_t sink;
    mfl_round_task_t task; /* the last RoundTask, with its setup */
    size_t n_tasks;
    size_t ends, ends_abandoned;
} net_t;

static int s_idx(const char *site)
{
    for (int i = 0; i < N; i++)
        if (strcmp(SITES[i], site) == 0)
            return i;
    fail_msg("unknown site %s", site);
    return -1;
}

static int s_key(void *ctx, const char *site, uint8_t pk[32])
{
    memcpy(pk, ((net_t *)ctx)->pk[s_idx(site)], 32);
    return 0;
}

static int s_send(void *ctx, const char *site, const mfl_secagg_wire_t *m)
{
    net_t *net = ctx;
    int i = s_idx(site);
    if (m->kind == MFL_MSG_SECAGG_END) {
        net->ends++;
        net->ends_abandoned += m->abandoned;
    }
    assert_true(net->n_in[i] < 8);
    mfl_secagg_wire_t *copy = malloc(sizeof *copy);
    memcpy(copy, m, sizeof *copy);
    net->inbox[i][net->n_in[i]++] = copy;
    return 0;
}

static int s_task_spy(void *ctx, const char *site, const mfl_round_task_t *task,
                      const mfl_tensor_t *t, size_t nt)
{
    net_t *net = ctx;
    net->task = *task;
    net->n_tasks++;
    return s_task(&net->sink, site, task, t, nt);
}

static void s_reject_spy(void *ctx, const char *site, mfl_reject_t r, uint32_t round,
                         const char *text)
{
    s_reject(&((net_t *)ctx)->sink, site, r, round, text);
}

static void s_closed_spy(void *ctx, const mfl_round_summary_t *m)
{
    s_closed(&((net_t *)ctx)->sink, m);
}

static void s_config(mfl_coord_config_t *c, const char *sub, bool secure)
{
    engine_fake_config(c, 2, 3, N, 10000);
    c->secagg_enabled = secure;
    c->secagg_threshold = 3;
    snprintf(c->checkpoint_dir, sizeof c->checkpoint_dir, "%s/%s/ckpt", s_dir, sub);
    snprintf(c->metrics_file, sizeof c->metrics_file, "%s/%s.jsonl", s_dir, sub);
}

/* Upload grants the engine sent (flow control), in order. */
typedef struct {
    int site[16];
    size_t n;
    uint32_t round;
} grants_t;
static grants_t s_grant_log;

static int s_grant_spy(void *ctx, const char *site, uint32_t round, const uint8_t *nonce,
                   size_t nonce_len)
{
    (void)ctx;
    (void)nonce;
    assert_int_equal(nonce_len, 16);
    assert_true(s_grant_log.n < 16);
    s_grant_log.site[s_grant_log.n++] = s_idx(site);
    s_grant_log.round = round;
    return 0;
}

static mfl_round_engine_t *s_engine_flow(const mfl_coord_config_t *c, net_t *net, bool flow);

static mfl_round_engine_t *s_engine(const mfl_coord_config_t *c, net_t *net)
{
    return s_engine_flow(c, net, false);
}

static mfl_round_engine_t *s_engine_flow(const mfl_coord_config_t *c, net_t *net, bool flow)
{
    mfl_engine_sink_t sink = {net, s_task_spy, NULL, s_reject_spy, s_closed_spy, NULL, NULL};
    char err[512];
    mfl_round_engine_t *e = mfl_round_engine_new(c, &sink, NULL, NULL, err, sizeof err);
    if (!e)
        fail_msg("engine: %s", err);
    if (c->secagg_enabled) {
        mfl_engine_secagg_io_t io = {net, s_key, s_send};
        mfl_round_engine_secagg_io(e, &io);
    }
    if (flow)
        assert_int_equal(mfl_round_engine_flow_control(e, s_grant_spy, NULL, 0), 0);
    for (int i = 0; i < N; i++)
        mfl_round_engine_site_hello(e, SITES[i], 1000, 0);
    mfl_round_engine_tick(e, 0);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
    return e;
}

static void s_delta(float *d, size_t n, int k)
{
    for (size_t i = 0; i < n; i++)
        d[i] = (float)((int)((i * (size_t)(k + 3)) % 11) - 5) / (8.0f + (float)k);
}
static double s_weight(int k) { return 10.0 + 7.0 * k; }

/* The plain engine fed the updates of the sites in `in`: its θ after one round. */
static void s_plain_theta(const bool in[N], float *theta_out, size_t P)
{
    static mfl_coord_config_t c;
    static int run;
    char sub[32];
    snprintf(sub, sizeof sub, "plain%d", run++);
    s_config(&c, sub, false);
    net_t *net = calloc(1, sizeof *net);
    mfl_round_engine_t *e = s_engine(&c, net);
    char err[256];
    mfl_learner_t *learner = mfl_learner_new(&c.learner, 1, err, sizeof err);
    float *d = malloc(P * sizeof *d);
    for (int k = 0; k < N; k++) {
        if (!in[k])
            continue;
        s_delta(d, P, k);
        mfl_update_header_t h;
        memset(&h, 0, sizeof h);
        h.round = mfl_round_engine_round(e);
        memcpy(h.nonce, mfl_round_engine_nonce(e), 16);
        h.nonce_len = 16;
        snprintf(h.site, sizeof h.site, "%s", SITES[k]);
        h.n_samples = (uint64_t)s_weight(k);
        mfl_tensor_t t[8];
        size_t nt = mfl_learner_n_tensors(learner);
        for (size_t i = 0; i < nt; i++)
            t[i] = mfl_tensor_info_view(mfl_learner_tensor(learner, i), d);
        assert_int_equal(mfl_round_engine_update(e, SITES[k], &h, t, nt, NULL, 0, NULL, 0, 1), 0);
    }
    mfl_round_engine_tick(e, 20000); /* deadline: closes with what is in */
    assert_int_equal(mfl_round_engine_rounds_done(e), 1);
    memcpy(theta_out, mfl_round_engine_theta(e), P * sizeof *theta_out);
    mfl_round_engine_destroy(&e);
    mfl_learner_destroy(&learner);
    free(d);
    free(net);
}

/* What each site does: 0 honest; 1 gone after sharing (no masked input
 * or later); 2 gone after advertising; 3 sends a short masked input first;
 * 4 sends its masked input twice. With `ask` every site masks into its own
 * yk and asks for an upload grant (UploadReady) instead of sending. */
typedef struct {
    mfl_secagg_site_t *sm[N];
    int behaviour[N];
    uint64_t *x[N], *y;
    size_t L;
    bool ask;
    uint64_t *yk[N];
} sites_t;

static void s_sites_start(sites_t *s, net_t *net, const mfl_round_engine_t *e, size_t P)
{
    assert_true(net->task.has_secagg);
    assert_int_equal(net->task.secagg.n_sites, N);
    assert_int_equal(net->task.secagg.length, P + 1);
    for (int i = 0; i < N; i++)
        assert_string_equal(net->task.secagg.sites[i], SITES[i]);
    mfl_secagg_params_t p;
    memset(&p, 0, sizeof p);
    p.scope.round = net->task.round;
    memcpy(p.scope.nonce, net->task.nonce, 16);
    p.n_sites = N;
    p.threshold = net->task.secagg.threshold;
    p.neighbours = net->task.secagg.neighbours;
    p.length = net->task.secagg.length;
    s->L = (size_t)p.length;
    mfl_aggregate_t *enc = mfl_aggregate_new(P);
    float *d = malloc(P * sizeof *d);
    char err[256];
    for (int i = 0; i < N; i++) {
        s->sm[i] = mfl_secagg_site_new(&p, (uint32_t)i + 1, net->sk[i],
                                       (const uint8_t(*)[32])net->pk, err, sizeof err);
        assert_non_null(s->sm[i]);
        s->x[i] = malloc(s->L * 8);
        s_delta(d, P, i);
        assert_int_equal(mfl_secagg_update_encode(enc, d, s_weight(i), s->x[i], err, sizeof err), 0);
    }
    s->y = malloc(s->L * 8);
    free(d);
    mfl_aggregate_destroy(&enc);
    (void)e;
}

static void s_sites_free(sites_t *s)
{
    for (int i = 0; i < N; i++) {
        mfl_secagg_site_destroy(&s->sm[i]);
        free(s->x[i]);
        free(s->yk[i]);
    }
    free(s->y);
}

/* The site's message back, through the engine; returns the engine's rc. */
static int s_reply(mfl_round_engine_t *e, net_t *net, int i, mfl_secagg_wire_t *out,
                   const uint64_t *words, size_t n_words)
{
    out->round = net->task.round;
    memcpy(out->nonce, net->task.nonce, 16);
    return mfl_round_engine_secagg_msg(e, SITES[i], out, words, n_words, 1);
}

/* Every site answers what is in its inbox, until no inbox has anything. */
static void s_pump(mfl_round_engine_t *e, net_t *net, sites_t *s)
{
    mfl_secagg_wire_t *out = calloc(1, sizeof *out);
    char err[256];
    for (int progress = 1; progress;) {
        progress = 0;
        for (int i = 0; i < N; i++) {
            while (net->n_in[i]) {
                mfl_secagg_wire_t *in = net->inbox[i][0];
                memmove(&net->inbox[i][0], &net->inbox[i][1], --net->n_in[i] * sizeof in);
                progress = 1;
                memset(out, 0, sizeof *out);
                int b = s->behaviour[i];
                switch (in->kind) {
                case MFL_MSG_SECAGG_KEYS:
                    if (b == 2)
                        break;
                    assert_int_equal(mfl_secagg_site_share(s->sm[i], in->adverts, in->n_adverts,
                                                           out->boxes, &out->n_boxes, err,
                                                           sizeof err),
                                     MFL_SECAGG_OK);
                    out->kind = MFL_MSG_SECAGG_SHARES;
                    assert_int_equal(s_reply(e, net, i, out, NULL, 0), 0);
                    break;
                case MFL_MSG_SECAGG_SHARES:
                    if (b == 1 || b == 2)
                        break;
                    if (s->ask) { /* masked now, sent on the grant */
                        s->yk[i] = malloc(s->L * 8);
                        assert_int_equal(mfl_secagg_site_mask(s->sm[i], in->boxes, in->n_boxes,
                                                              s->x[i], s->yk[i], err, sizeof err),
                                         MFL_SECAGG_OK);
                        assert_int_equal(mfl_round_engine_upload_ready(
                                             e, SITES[i], net->task.round, net->task.nonce, 16,
                                             s->L * 8, 1),
                                         0);
                        break;
                    }
                    assert_int_equal(mfl_secagg_site_mask(s->sm[i], in->boxes, in->n_boxes,
                                                          s->x[i], s->y, err, sizeof err),
                                     MFL_SECAGG_OK);
                    out->kind = MFL_MSG_SECAGG_MASKED;
                    if (b == 3) /* one word short: refused, then the right one */
                        assert_int_equal(s_reply(e, net, i, out, s->y, s->L - 1), -1);
                    assert_int_equal(s_reply(e, net, i, out, s->y, s->L), 0);
                    if (b == 4) /* twice: the second refused, the first kept */
                        assert_int_equal(s_reply(e, net, i, out, s->y, s->L), -1);
                    break;
                case MFL_MSG_SECAGG_SURVIVORS:
                    out->kind = MFL_MSG_SECAGG_SIGNOFF;
                    out->n_signoffs = 1;
                    assert_int_equal(mfl_secagg_site_signoff(s->sm[i], in->survivors,
                                                             in->n_survivors, &out->signoffs[0],
                                                             err, sizeof err),
                                     MFL_SECAGG_OK);
                    assert_int_equal(s_reply(e, net, i, out, NULL, 0), 0);
                    break;
                case MFL_MSG_SECAGG_UNMASK: {
                    mfl_secagg_unmask_req_t req = {in->survivors, in->n_survivors, in->signoffs,
                                                   in->n_signoffs, in->dropped, in->n_dropped};
                    out->kind = MFL_MSG_SECAGG_REVEALS;
                    assert_int_equal(mfl_secagg_site_unmask(s->sm[i], &req, out->reveals,
                                                            &out->n_reveals, err, sizeof err),
                                     MFL_SECAGG_OK);
                    assert_int_equal(s_reply(e, net, i, out, NULL, 0), 0);
                    break;
                }
                case MFL_MSG_SECAGG_END:
                    break;
                default:
                    fail_msg("site %d got kind %d", i, in->kind);
                }
                free(in);
            }
        }
    }
    free(out);
}

/* Phase 1 for every site that advertises at all. */
static void s_advertise(mfl_round_engine_t *e, net_t *net, sites_t *s)
{
    mfl_secagg_wire_t *out = calloc(1, sizeof *out);
    char err[256];
    for (int i = 0; i < N; i++) {
        memset(out, 0, sizeof *out);
        out->kind = MFL_MSG_SECAGG_KEYS;
        out->n_adverts = 1;
        assert_int_equal(mfl_secagg_site_advertise(s->sm[i], &out->adverts[0], err, sizeof err),
                         MFL_SECAGG_OK);
        assert_int_equal(s_reply(e, net, i, out, NULL, 0), 0);
    }
    free(out);
}

/* Sites 1-3 of five advertise and are gone (U2 = 2 < t = 3): the engine
 * is left in the share phase, waiting for its deadline. */
static void s_three_gone_after_advertising(sites_t *s, mfl_round_engine_t *e, net_t *net,
                                           size_t P)
{
    const int gone[N] = {0, 2, 2, 2, 0};
    memset(s, 0, sizeof *s);
    memcpy(s->behaviour, gone, sizeof s->behaviour);
    s_sites_start(s, net, e, P);
    s_advertise(e, net, s);
    s_pump(e, net, s);
    assert_string_equal(mfl_round_engine_secagg_phase(e), "share");
}

static size_t s_count(const fake_t *f, int reason)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++)
        n += f->ev[i].kind == 'R' && f->ev[i].reason == reason;
    return n;
}

static void s_net_free(net_t *net)
{
    for (int i = 0; i < N; i++)
        for (size_t k = 0; k < net->n_in[i]; k++)
            free(net->inbox[i][k]);
    free(net);
}

static net_t *s_net(void)
{
    net_t *net = calloc(1, sizeof *net);
    for (int i = 0; i < N; i++)
        crypto_sign_keypair(net->pk[i], net->sk[i]);
    return net;
}

/* Runs one secure round with the given behaviours; checks θ against the
 * plain engine over the sites in `in`. */
static void s_run(const int behaviour[N], const bool in[N], const char *sub)
{
    static mfl_coord_config_t c;
    s_config(&c, sub, true);
    net_t *net = s_net();
    mfl_round_engine_t *e = s_engine(&c, net);
    const size_t P = mfl_round_engine_n_state(e);
    assert_string_equal(mfl_round_engine_secagg_phase(e), "advertise");
    char *st = mfl_status_render(e, &c, NULL, 0); /* what `metafl status` shows */
    assert_non_null(st);
    assert_non_null(strstr(st, "\"secagg_phase\":\"advertise\""));
    free(st);
    sites_t s;
    memset(&s, 0, sizeof s);
    memcpy(s.behaviour, behaviour, sizeof s.behaviour);
    s_sites_start(&s, net, e, P);
    s_advertise(e, net, &s);
    s_pump(e, net, &s);
    if (mfl_round_engine_rounds_done(e) == 0) {
        /* someone dropped: the masked phase ends at the round's deadline */
        assert_string_equal(mfl_round_engine_secagg_phase(e), "masked");
        mfl_round_engine_tick(e, 9999);
        assert_int_equal(mfl_round_engine_rounds_done(e), 0);
        mfl_round_engine_tick(e, 10000);
        s_pump(e, net, &s);
    }
    assert_int_equal(mfl_round_engine_rounds_done(e), 1);
    assert_null(mfl_round_engine_secagg_phase(e));
    st = mfl_status_render(e, &c, NULL, 0);
    assert_non_null(strstr(st, "\"secagg_phase\":null"));
    free(st);
    assert_int_equal(net->ends, N);
    assert_int_equal(net->ends_abandoned, 0);
    float *want = malloc(P * sizeof *want);
    s_plain_theta(in, want, P);
    assert_memory_equal(mfl_round_engine_theta(e), want, P * sizeof *want);
    size_t n_in = 0;
    for (int i = 0; i < N; i++)
        n_in += in[i];
    assert_int_equal(net->sink.last.n_accepted, n_in);
    if (behaviour[0] == 3)
        assert_int_equal(s_count(&net->sink, MFL_REJECT_SECAGG_LENGTH), 1);
    if (behaviour[1] == 4)
        assert_int_equal(s_count(&net->sink, MFL_REJECT_DUPLICATE), 1);
    free(want);
    s_sites_free(&s);
    mfl_round_engine_destroy(&e);
    s_net_free(net);
}

static void test_secure_round_matches_plain(void **state)
{
    (void)state;
    const int honest[N] = {0, 0, 0, 0, 0};
    const bool all[N] = {1, 1, 1, 1, 1};
    s_run(honest, all, "honest");
}

static void test_dropout_after_sharing_is_recovered(void **state)
{
    (void)state;
    const int drop[N] = {0, 0, 1, 0, 0};
    const bool in[N] = {1, 1, 0, 1, 1};
    s_run(drop, in, "dropout");
}

static void test_hostile_masked_inputs_rejected_sum_exact(void **state)
{
    (void)state;
    const int hostile[N] = {3, 4, 0, 0, 0};
    const bool all[N] = {1, 1, 1, 1, 1};
    s_run(hostile, all, "hostile");
}

static void test_plain_update_refused_and_too_few_abandon(void **state)
{
    (void)state;
    static mfl_coord_config_t c;
    s_config(&c, "abandon", true);
    net_t *net = s_net();
    mfl_round_engine_t *e = s_engine(&c, net);
    const size_t P = mfl_round_engine_n_state(e);
    float *theta0 = malloc(P * sizeof *theta0);
    memcpy(theta0, mfl_round_engine_theta(e), P * sizeof *theta0);
    uint8_t nonce1[16];
    memcpy(nonce1, mfl_round_engine_nonce(e), 16);
    /* a plain update: refused, never looked at */
    mfl_update_header_t h;
    memset(&h, 0, sizeof h);
    h.round = mfl_round_engine_round(e);
    memcpy(h.nonce, nonce1, 16);
    h.nonce_len = 16;
    snprintf(h.site, sizeof h.site, "%s", SITES[0]);
    h.n_samples = 1;
    assert_int_equal(mfl_round_engine_update(e, SITES[0], &h, NULL, 0, NULL, 0, NULL, 0, 1), -1);
    assert_int_equal(s_count(&net->sink, MFL_REJECT_SECAGG_PHASE), 1);
    /* a site not selected / a message for another attempt */
    mfl_secagg_wire_t *m = calloc(1, sizeof *m);
    m->kind = MFL_MSG_SECAGG_KEYS;
    m->round = h.round;
    memcpy(m->nonce, nonce1, 16);
    m->nonce[0] ^= 1;
    assert_int_equal(mfl_round_engine_secagg_msg(e, SITES[0], m, NULL, 0, 1), -1);
    assert_int_equal(s_count(&net->sink, MFL_REJECT_SECAGG_PHASE), 2);
    /* three of five gone after advertising: U2 = 2 < t = 3 */
    sites_t s;
    s_three_gone_after_advertising(&s, e, net, P);
    /* the share phase started at 1 ms (the last advert) and lasts
     * max(1 s, rounds.deadline / 4) = 2.5 s */
    mfl_round_engine_tick(e, 2500);
    assert_string_equal(mfl_round_engine_secagg_phase(e), "share");
    mfl_round_engine_tick(e, 2501);
    assert_null(mfl_round_engine_secagg_phase(e));
    assert_int_equal(net->ends, N);
    assert_int_equal(net->ends_abandoned, N);
    assert_int_equal(mfl_round_engine_rounds_done(e), 0);
    assert_memory_equal(mfl_round_engine_theta(e), theta0, P * sizeof *theta0);
    /* retried: a new attempt with a new nonce, and its setup in the task */
    size_t tasks = net->n_tasks;
    mfl_round_engine_tick(e, 2600);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
    assert_int_equal(net->n_tasks, tasks + N);
    assert_true(net->task.has_secagg);
    assert_memory_not_equal(mfl_round_engine_nonce(e), nonce1, 16);
    assert_string_equal(mfl_round_engine_secagg_phase(e), "advertise");
    /* a site outside the attempt (last: being seen makes it a site) */
    m->round = mfl_round_engine_round(e);
    memcpy(m->nonce, mfl_round_engine_nonce(e), 16);
    assert_int_equal(mfl_round_engine_secagg_msg(e, "site-z", m, NULL, 0, 2700), -1);
    assert_int_equal(s_count(&net->sink, MFL_REJECT_NOT_SELECTED), 1);
    free(m);
    s_sites_free(&s);
    free(theta0);
    mfl_round_engine_destroy(&e);
    s_net_free(net);
}

/* secure_aggregation.phase_deadline_s: the share phase ends at the
 * configured deadline (0.7 s), not the derived 2.5 s; abandoned as above. */
/* With upload flow control on, the setup tells the sites to ask before
 * sending their masked input (masked_grant); the engine grants
 * max_concurrent_uploads (2) at a time, each masked input taken hands its
 * slot to the next site waiting, an UploadReady of the wrong size is
 * refused (REJECT_SHAPE), and the round ends with θ bit-identical to the
 * plain engine's over all five sites. */
static void test_masked_inputs_wait_for_grants(void **state)
{
    (void)state;
    static mfl_coord_config_t c;
    s_config(&c, "grants", true);
    c.max_concurrent_uploads = 2;
    net_t *net = s_net();
    memset(&s_grant_log, 0, sizeof s_grant_log);
    mfl_round_engine_t *e = s_engine_flow(&c, net, true);
    const size_t P = mfl_round_engine_n_state(e);
    assert_true(net->task.secagg.masked_grant);
    sites_t s;
    memset(&s, 0, sizeof s);
    s.ask = true;
    s_sites_start(&s, net, e, P);
    /* a request of the wrong size: refused */
    assert_int_equal(mfl_round_engine_upload_ready(e, SITES[0], net->task.round, net->task.nonce,
                                                   16, s.L * 8 - 8, 1),
                     -1);
    assert_int_equal(s_count(&net->sink, MFL_REJECT_SHAPE), 1);
    s_advertise(e, net, &s);
    s_pump(e, net, &s);
    assert_string_equal(mfl_round_engine_secagg_phase(e), "masked");
    assert_int_equal(s_grant_log.n, 2);
    assert_int_equal(mfl_round_engine_uploads_in_flight(e), 2);
    assert_int_equal(mfl_round_engine_uploads_waiting(e), 3);
    mfl_secagg_wire_t *out = calloc(1, sizeof *out);
    for (size_t k = 0; k < N; k++) {
        assert_true(k < s_grant_log.n); /* each masked input taken grants the next */
        int i = s_grant_log.site[k];
        assert_int_equal(s_grant_log.round, net->task.round);
        memset(out, 0, sizeof *out);
        out->kind = MFL_MSG_SECAGG_MASKED;
        assert_int_equal(s_reply(e, net, i, out, s.yk[i], s.L), 0);
        assert_true(mfl_round_engine_uploads_in_flight(e) <= 2);
    }
    free(out);
    assert_int_equal(s_grant_log.n, N);
    s_pump(e, net, &s);
    assert_int_equal(mfl_round_engine_rounds_done(e), 1);
    const bool all[N] = {true, true, true, true, true};
    float *want = malloc(P * sizeof *want);
    s_plain_theta(all, want, P);
    assert_memory_equal(mfl_round_engine_theta(e), want, P * sizeof *want);
    free(want);
    s_sites_free(&s);
    mfl_round_engine_destroy(&e);
    s_net_free(net);
}

static void test_configured_phase_deadline(void **state)
{
    (void)state;
    static mfl_coord_config_t c;
    s_config(&c, "phase", true);
    c.secagg_phase_ms = 700;
    net_t *net = s_net();
    mfl_round_engine_t *e = s_engine(&c, net);
    const size_t P = mfl_round_engine_n_state(e);
    sites_t s;
    s_three_gone_after_advertising(&s, e, net, P);
    mfl_round_engine_tick(e, 700);
    assert_string_equal(mfl_round_engine_secagg_phase(e), "share");
    mfl_round_engine_tick(e, 702);
    assert_null(mfl_round_engine_secagg_phase(e));
    assert_int_equal(net->ends_abandoned, N);
    s_sites_free(&s);
    mfl_round_engine_destroy(&e);
    s_net_free(net);
}

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/test_round_secagg_phases.XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secure_round_matches_plain),
        cmocka_unit_test(test_dropout_after_sharing_is_recovered),
        cmocka_unit_test(test_hostile_masked_inputs_rejected_sum_exact),
        cmocka_unit_test(test_plain_update_refused_and_too_few_abandon),
        cmocka_unit_test(test_configured_phase_deadline),
        cmocka_unit_test(test_masked_inputs_wait_for_grants),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
