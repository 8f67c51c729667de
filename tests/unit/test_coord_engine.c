/* The coordinator's round engine, driven with a fake sink and synthetic
 * updates: selection, every rejection reason it owns, deadline close with
 * min_sites, abandon + retry, order independence, resume, evaluation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "round/run_config.h"
#include "core/log.h"
#include "meta/learner.h"
#include "audit/audit.h"
#include "core/json.h"
#include "fed/checkpoint.h"
#include "round/round_engine.h"
#include "round/status.h"

#include "engine_fake.h"

/* Per-test state: a temp dir, a config, a fake sink. */
typedef struct {
    char dir[128];
    mfl_coord_config_t cfg;
    fake_t fake;
    mfl_engine_sink_t sink;
    mfl_learner_t *learner; /* the same layout as the engine's, to build Δ */
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/test_coord_engine.XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    engine_fake_config(&fx->cfg, 3, 2, 3, 1000);
    fx->cfg.eval_deadline_ms = 500;
    snprintf(fx->cfg.checkpoint_dir, sizeof fx->cfg.checkpoint_dir, "%s/ckpt", fx->dir);
    snprintf(fx->cfg.metrics_file, sizeof fx->cfg.metrics_file, "%s/metrics.jsonl", fx->dir);
    fx->sink = (mfl_engine_sink_t){&fx->fake, s_task, s_eval, s_reject, s_closed,
                                   s_eval_report, s_finished};
    char err[256];
    fx->learner = mfl_learner_new(&fx->cfg.learner, 1, err, sizeof err);
    if (!fx->learner) {
        fprintf(stderr, "learner: %s\n", err);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", fx->dir);
    mfl_learner_destroy(&fx->learner);
    free(fx);
    return 0;
}

static mfl_round_engine_t *s_engine(fixture_t *fx)
{
    char err[512] = "";
    mfl_round_engine_t *e = mfl_round_engine_new(&fx->cfg, &fx->sink, NULL, NULL, err, sizeof err);
    if (!e)
        fprintf(stderr, "engine: %s\n", err);
    assert_non_null(e);
    return e;
}

/* A Δ for `site` in `round`: a deterministic pattern, scaled. */
typedef struct {
    float *flat;
    mfl_tensor_t t[8];
    size_t n;
} delta_t;

static void s_delta(fixture_t *fx, delta_t *d, float scale)
{
    size_t n_state = mfl_learner_n_state(fx->learner);
    d->flat = malloc(n_state * sizeof(float));
    for (size_t i = 0; i < n_state; i++)
        d->flat[i] = scale * (float)((int)(i % 7) - 3) / 16.0f;
    d->n = mfl_learner_n_tensors(fx->learner);
    assert_true(d->n <= 8);
    for (size_t i = 0; i < d->n; i++) {
        const mfl_tensor_info_t *ti = mfl_learner_tensor(fx->learner, i);
        d->t[i] = mfl_tensor_info_view(ti, d->flat);
    }
}

static void s_delta_free(delta_t *d) { free(d->flat); }

typedef struct {
    mfl_update_header_t h;
} header_t;

static void s_header(header_t *hh, const char *site, uint32_t round, const uint8_t *nonce,
                     uint64_t n)
{
    memset(&hh->h, 0, sizeof hh->h);
    memcpy(hh->h.nonce, nonce, 16);
    hh->h.round = round;
    hh->h.nonce_len = 16;
    snprintf(hh->h.site, sizeof hh->h.site, "%s", site);
    hh->h.n_samples = n;
    hh->h.has_metrics = true;
    hh->h.metrics.loss_before = 0.7;
    hh->h.metrics.loss_after = 0.5;
}

static const event_t *s_last_task(const fake_t *f, const char *site)
{
    for (size_t i = f->n; i-- > 0;) {
        if (f->ev[i].kind == 'T' && strcmp(f->ev[i].site, site) == 0)
            return &f->ev[i];
    }
    return NULL;
}

static int s_last_reject(const fake_t *f)
{
    for (size_t i = f->n; i-- > 0;) {
        if (f->ev[i].kind == 'R')
            return f->ev[i].reason;
    }
    return -1;
}

static void s_join3(mfl_round_engine_t *e, uint64_t now)
{
    mfl_round_engine_site_hello(e, "site-c", 10, now);
    mfl_round_engine_site_hello(e, "site-a", 10, now);
    mfl_round_engine_site_hello(e, "site-b", 10, now);
}

static int s_send(fixture_t *fx, mfl_round_engine_t *e, const char *site, float scale,
                  uint64_t n, uint64_t now)
{
    const event_t *t = s_last_task(&fx->fake, site);
    assert_non_null(t);
    header_t hh;
    delta_t d;
    s_header(&hh, site, t->round, t->nonce, n);
    s_delta(fx, &d, scale);
    int rc = mfl_round_engine_update(e, site, &hh.h, d.t, d.n, NULL, 0, NULL, 0, now);
    s_delta_free(&d);
    return rc;
}

/* All three sites send a Δ (scale, n = 10) for their last task at `now`;
 * each must be accepted. */
static void s_send3(fixture_t *fx, mfl_round_engine_t *e, float scale, uint64_t now)
{
    static const char *const sites[3] = {"site-a", "site-b", "site-c"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_send(fx, e, sites[i], scale, 10, now), 0);
}

/* A fresh engine with the three sites joined at 0 and round 1 started. */
static mfl_round_engine_t *s_started(fixture_t *fx)
{
    mfl_round_engine_t *e = s_engine(fx);
    s_join3(e, 0);
    mfl_round_engine_tick(e, 0);
    return e;
}

static void test_round_opens_only_when_enough_sites_and_selects_all(void **state)
{
    fixture_t *fx = *state;
    mfl_round_engine_t *e = s_engine(fx);
    mfl_round_engine_site_hello(e, "site-a", 10, 1000);
    mfl_round_engine_site_hello(e, "site-b", 10, 1000);
    mfl_round_engine_tick(e, 1000);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_WAITING);
    assert_int_equal(fx->fake.n, 0);
    mfl_round_engine_site_hello(e, "site-c", 10, 1001);
    mfl_round_engine_tick(e, 1001);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
    assert_int_equal(fx->fake.n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(fx->fake.ev[i].kind, 'T');
        assert_int_equal(fx->fake.ev[i].round, 1);
        assert_memory_equal(fx->fake.ev[i].nonce, fx->fake.ev[0].nonce, 16);
        assert_true(fx->fake.ev[i].seed == mfl_round_seed(fx->cfg.seed, 1));
    }
    assert_true(mfl_round_engine_is_selected(e, "site-a"));
    mfl_round_engine_destroy(&e);
}

static void test_fraction_selection_is_seeded(void **state)
{
    fixture_t *fx = *state;
    fx->cfg.sites_fraction = 0.5;
    fx->cfg.min_sites = 1;
    fx->cfg.wait_for_sites = 6;
    const char *names[] = {"h1", "h2", "h3", "h4", "h5", "h6"};
    char picked[2][6];
    for (int run = 0; run < 2; run++) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s/ckpt%d", fx->dir, run);
        snprintf(fx->cfg.checkpoint_dir, sizeof fx->cfg.checkpoint_dir, "%s", sub);
        mfl_round_engine_t *e = s_engine(fx);
        for (int i = 5; i >= 0; i--) /* connection order must not matter */
            mfl_round_engine_site_hello(e, names[run ? 5 - i : i], 1, 10);
        mfl_round_engine_tick(e, 10);
        int n = 0;
        for (int i = 0; i < 6; i++) {
            picked[run][i] = mfl_round_engine_is_selected(e, names[i]);
            n += picked[run][i];
        }
        assert_int_equal(n, 3);
        mfl_round_engine_destroy(&e);
    }
    assert_memory_equal(picked[0], picked[1], 6);
}

static void test_rejections_name_their_reason_and_engine_keeps_serving(void **state)
{
    fixture_t *fx = *state;
    fx->cfg.norm_bound = 5.0;
    fx->cfg.wait_for_sites = 2;
    mfl_round_engine_t *e = s_engine(fx);
    mfl_round_engine_site_hello(e, "site-a", 10, 0);
    mfl_round_engine_site_hello(e, "site-b", 10, 0);
    mfl_round_engine_tick(e, 0);
    const event_t *t = s_last_task(&fx->fake, "site-a");
    assert_non_null(t);
    uint8_t nonce[16];
    memcpy(nonce, t->nonce, 16);
    header_t hh;
    delta_t d;
    s_delta(fx, &d, 1.0f);

    /* authenticated peer differs from the header's site */
    s_header(&hh, "site-a", 1, nonce, 10);
    assert_int_equal(mfl_round_engine_update(e, "site-b", &hh.h, d.t, d.n, NULL, 0, NULL, 0, 1),
                     -1);
    assert_int_equal(s_last_reject(&fx->fake), MFL_REJECT_WRONG_SITE);
    /* wrong round */
    s_header(&hh, "site-a", 2, nonce, 10);
    assert_int_equal(mfl_round_engine_update(e, "site-a", &hh.h, d.t, d.n, NULL, 0, NULL, 0, 1),
                     -1);
    assert_int_equal(s_last_reject(&fx->fake), MFL_REJECT_WRONG_ROUND);
    /* right round, other nonce: a replay */
    uint8_t other[16];
    memcpy(other, nonce, 16);
    other[3] ^= 1;
    s_header(&hh, "site-a", 1, other, 10);
    assert_int_equal(mfl_round_engine_update(e, "site-a", &hh.h, d.t, d.n, NULL, 0, NULL, 0, 1),
                     -1);
    assert_int_equal(s_last_reject(&fx->fake), MFL_REJECT_REPLAY);
    /* a site that connected after selection */
    mfl_round_engine_site_hello(e, "site-z", 10, 1);
    s_header(&hh, "site-z", 1, nonce, 10);
    assert_int_equal(mfl_round_engine_update(e, "site-z", &hh.h, d.t, d.n, NULL, 0, NULL, 0, 1),
                     -1);
    assert_int_equal(s_last_reject(&fx->fake), MFL_REJECT_NOT_SELECTED);
    /* shape: one tensor missing, then a wrong element count */
    s_header(&hh, "site-a", 1, nonce, 10);
    assert_int_equal(
        mfl_round_engine_update(e, "site-a", &hh.h, d.t, d.n - 1, NULL, 0, NULL, 0, 1), -1);
    assert_int_equal(s_last_reject(&fx->fake), MFL_REJECT_SHAPE);
    d.t[0].count--;
    assert_int_equal(mfl_round_engine_update(e, "site-a", &hh.h, d.t, d.n, NULL, 0, NULL, 0, 1),
                     -1);
    assert_int_equal(s_last_reject(&fx->fake), MFL_REJECT_SHAPE);
    d.t[0].count++;
    /* NaN */
    float keep = d.flat[1];
    d.flat[1] = NAN;
    assert_int_equal(mfl_round_engine_update(e, "site-a", &hh.h, d.t, d.n, NULL, 0, NULL, 0, 1),
                     -1);
    assert_int_equal(s_last_reject(&fx->fake), MFL_REJECT_NONFINITE);
    d.flat[1] = INFINITY;
    assert_int_equal(mfl_round_engine_update(e, "site-a", &hh.h, d.t, d.n, NULL, 0, NULL, 0, 1),
                     -1);
    assert_int_equal(s_last_reject(&fx->fake), MFL_REJECT_NONFINITE);
    d.flat[1] = keep;
    /* norm over the bound */
    d.flat[0] = 100.0f;
    assert_int_equal(mfl_round_engine_update(e, "site-a", &hh.h, d.t, d.n, NULL, 0, NULL, 0, 1),
                     -1);
    assert_int_equal(s_last_reject(&fx->fake), MFL_REJECT_NORM);
    d.flat[0] = 0.1f;
    /* finally a good one, then the same again: duplicate */
    assert_int_equal(mfl_round_engine_update(e, "site-a", &hh.h, d.t, d.n, NULL, 0, NULL, 0, 1),
                     0);
    assert_int_equal(mfl_round_engine_update(e, "site-a", &hh.h, d.t, d.n, NULL, 0, NULL, 0, 1),
                     -1);
    assert_int_equal(s_last_reject(&fx->fake), MFL_REJECT_DUPLICATE);
    assert_int_equal(mfl_round_engine_rejections(e), 10);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
    /* and the round still completes */
    s_header(&hh, "site-b", 1, nonce, 10);
    assert_int_equal(mfl_round_engine_update(e, "site-b", &hh.h, d.t, d.n, NULL, 0, NULL, 0, 2),
                     0);
    assert_int_equal(fx->fake.closed, 1);
    assert_int_equal(fx->fake.last.n_rejected, 10);
    s_delta_free(&d);
    mfl_round_engine_destroy(&e);
}

static void test_deadline_closes_with_min_sites(void **state)
{
    fixture_t *fx = *state;
    mfl_round_engine_t *e = s_engine(fx);
    s_join3(e, 100);
    mfl_round_engine_tick(e, 100);
    assert_int_equal(s_send(fx, e, "site-a", 1.0f, 10, 200), 0);
    assert_int_equal(s_send(fx, e, "site-b", 1.0f, 10, 300), 0);
    mfl_round_engine_tick(e, 1099);
    assert_int_equal(fx->fake.closed, 0);
    mfl_round_engine_tick(e, 1100);
    assert_int_equal(fx->fake.closed, 1);
    assert_true(fx->fake.last.at_deadline);
    assert_int_equal(fx->fake.last.n_accepted, 2);
    assert_int_equal(fx->fake.last.n_selected, 3);
    assert_int_equal(mfl_round_engine_rounds_done(e), 1);
    /* the next round opens with the two live sites and the silent one */
    mfl_round_engine_tick(e, 1101);
    assert_int_equal(mfl_round_engine_round(e), 2);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
    mfl_round_engine_destroy(&e);
}

static void test_too_few_sites_abandons_and_retries_with_theta_unchanged(void **state)
{
    fixture_t *fx = *state;
    mfl_round_engine_t *e = s_engine(fx);
    size_t n = mfl_round_engine_n_state(e);
    float *before = malloc(n * sizeof(float));
    memcpy(before, mfl_round_engine_theta(e), n * sizeof(float));
    s_join3(e, 0);
    mfl_round_engine_tick(e, 0);
    uint8_t first_nonce[16];
    memcpy(first_nonce, s_last_task(&fx->fake, "site-a")->nonce, 16);
    assert_int_equal(s_send(fx, e, "site-a", 1.0f, 10, 10), 0);
    mfl_round_engine_tick(e, 1000);
    assert_int_equal(fx->fake.closed, 0);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_WAITING);
    assert_int_equal(mfl_round_engine_round(e), 1);
    assert_memory_equal(before, mfl_round_engine_theta(e), n * sizeof(float));
    mfl_round_engine_tick(e, 1001); /* retry: same round, fresh nonce */
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
    const event_t *t = s_last_task(&fx->fake, "site-a");
    assert_int_equal(t->round, 1);
    assert_memory_not_equal(t->nonce, first_nonce, 16);
    /* an answer to the abandoned attempt is a replay now */
    header_t hh;
    delta_t d;
    s_header(&hh, "site-b", 1, first_nonce, 10);
    s_delta(fx, &d, 1.0f);
    assert_int_equal(
        mfl_round_engine_update(e, "site-b", &hh.h, d.t, d.n, NULL, 0, NULL, 0, 1002), -1);
    assert_int_equal(s_last_reject(&fx->fake), MFL_REJECT_REPLAY);
    s_delta_free(&d);
    s_send3(fx, e, 1.0f, 1003);
    assert_int_equal(fx->fake.closed, 1);
    assert_int_equal(fx->fake.last.attempt, 2);
    free(before);
    mfl_round_engine_destroy(&e);
}

/* The θ hook sees θ right after each server step (what the next tasks
 * carry), and only when θ changed: not on an abandoned round. */
typedef struct {
    int calls;
    float *copy;
    size_t n;
    uint8_t *digest;
} theta_seen_t;

static void s_on_theta(void *ctx, const mfl_tensor_t *t, const uint8_t *hashes,
                       size_t n)
{
    theta_seen_t *ts = ctx;
    ts->calls++;
    /* The hashes handed over are each tensor's BLAKE2b (what the broadcast
     * sends unhashed again), and their digest is the model hash. */
    for (size_t i = 0; i < n; i++) {
        uint8_t h[32];
        crypto_generichash(h, 32, (const unsigned char *)t[i].data, t[i].count * sizeof(float),
                           NULL, 0);
        assert_memory_equal(h, hashes + 32 * i, 32);
    }
    free(ts->digest);
    ts->digest = malloc(32);
    mfl_audit_update_digest(hashes, n, ts->digest);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += t[i].count;
    free(ts->copy);
    ts->copy = malloc(total * sizeof(float));
    ts->n = total;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(ts->copy + off, t[i].data, t[i].count * sizeof(float));
        off += t[i].count;
    }
}

static void test_theta_hook_sees_each_new_theta(void **state)
{
    fixture_t *fx = *state;
    mfl_round_engine_t *e = s_engine(fx);
    theta_seen_t ts = {0, NULL, 0, NULL};
    mfl_round_engine_on_theta(e, s_on_theta, &ts);
    s_join3(e, 0);
    mfl_round_engine_tick(e, 0);
    assert_int_equal(s_send(fx, e, "site-a", 1.0f, 10, 10), 0);
    mfl_round_engine_tick(e, 1000); /* deadline with one of min_sites: abandoned */
    assert_int_equal(ts.calls, 0);
    mfl_round_engine_tick(e, 1001);
    s_send3(fx, e, 1.0f, 1002);
    assert_int_equal(fx->fake.closed, 1);
    assert_int_equal(ts.calls, 1);
    assert_int_equal(ts.n, mfl_round_engine_n_state(e));
    assert_memory_equal(ts.copy, mfl_round_engine_theta(e), ts.n * sizeof(float));
    /* Round 2's tasks carry the digest of the hashes the hook was given. */
    mfl_round_engine_tick(e, 1003);
    const event_t *t2 = NULL;
    for (size_t i = 0; i < fx->fake.n; i++)
        if (fx->fake.ev[i].kind == 'T' && fx->fake.ev[i].round == 2)
            t2 = &fx->fake.ev[i];
    assert_non_null(t2);
    assert_memory_equal(t2->model_hash, ts.digest, 32);
    free(ts.copy);
    free(ts.digest);
    mfl_round_engine_destroy(&e);
}

/* θ after a round is θ + β · Σ wᵢΔᵢ / Σ wᵢ, the same whatever the order. */
static void test_aggregation_is_weighted_and_order_independent(void **state)
{
    fixture_t *fx = *state;
    const char *sites[3] = {"site-a", "site-b", "site-c"};
    const float scale[3] = {1.0f, -0.5f, 0.25f};
    const uint64_t weight[3] = {10, 30, 7};
    const int orders[2][3] = {{0, 1, 2}, {2, 0, 1}};
    float *result[2];
    size_t n = 0;
    for (int run = 0; run < 2; run++) {
        snprintf(fx->cfg.checkpoint_dir, sizeof fx->cfg.checkpoint_dir, "%s/ord%d", fx->dir, run);
        /* A run of its own: its own metrics file too (an engine refuses to
         * start from θ₀ next to another run's round lines). */
        snprintf(fx->cfg.metrics_file, sizeof fx->cfg.metrics_file, "%s/ord%d.jsonl", fx->dir,
                 run);
        mfl_round_engine_t *e = s_engine(fx);
        n = mfl_round_engine_n_state(e);
        float *theta0 = malloc(n * sizeof(float));
        memcpy(theta0, mfl_round_engine_theta(e), n * sizeof(float));
        /* Each site declares at Hello the rows it then claims (a claim
         * above the declaration would be capped to it). */
        for (int i = 0; i < 3; i++)
            mfl_round_engine_site_hello(e, sites[i], weight[i], 0);
        mfl_round_engine_tick(e, 0);
        for (int k = 0; k < 3; k++) {
            int i = orders[run][k];
            assert_int_equal(s_send(fx, e, sites[i], scale[i], weight[i], 5), 0);
        }
        assert_int_equal(mfl_round_engine_rounds_done(e), 1);
        result[run] = malloc(n * sizeof(float));
        memcpy(result[run], mfl_round_engine_theta(e), n * sizeof(float));
        delta_t d;
        s_delta(fx, &d, 1.0f);
        double wsum = 10 + 30 + 7;
        double s = (10 * 1.0 - 30 * 0.5 + 7 * 0.25) / wsum;
        for (size_t j = 0; j < n; j++)
            assert_true(fabs(result[run][j] - (theta0[j] + s * d.flat[j])) < 1e-6);
        s_delta_free(&d);
        free(theta0);
        mfl_round_engine_destroy(&e);
    }
    assert_memory_equal(result[0], result[1], n * sizeof(float));
    free(result[0]);
    free(result[1]);
}

/* The three sites' updates of one round, as contiguous tensors or (as the
 * coordinator's wire leaves a tensor that came in several frames) as runs
 * of 3 floats with data NULL; clip: a norm bound that scales every update.
 * Returns θ after the round (malloc'd). */
static float *s_round_from(fixture_t *fx, int runs, int clip, const char *tag)
{
    const char *sites[3] = {"site-a", "site-b", "site-c"};
    const float scale[3] = {1.0f, -0.5f, 0.25f};
    snprintf(fx->cfg.checkpoint_dir, sizeof fx->cfg.checkpoint_dir, "%s/%s", fx->dir, tag);
    snprintf(fx->cfg.metrics_file, sizeof fx->cfg.metrics_file, "%s/%s.jsonl", fx->dir, tag);
    fx->cfg.norm_bound = clip ? 0.3 : 0;
    fx->cfg.norm_clip = clip;
    mfl_round_engine_t *e = s_started(fx);
    for (int i = 0; i < 3; i++) {
        const event_t *t = s_last_task(&fx->fake, sites[i]);
        assert_non_null(t);
        header_t hh;
        delta_t d;
        s_header(&hh, sites[i], t->round, t->nonce, 10);
        s_delta(fx, &d, scale[i]);
        mfl_tensor_piece_t pieces[64];
        size_t np = 0;
        for (size_t k = 0; runs && k < d.n; k++) {
            mfl_tensor_t *v = &d.t[k];
            v->pieces = pieces + np;
            for (uint64_t at = 0; at < v->count; at += 3) {
                assert_true(np < 64);
                pieces[np++] = (mfl_tensor_piece_t){v->data + at,
                                                    v->count - at < 3 ? v->count - at : 3};
                v->n_pieces++;
            }
            v->data = NULL;
        }
        assert_int_equal(
            mfl_round_engine_update(e, sites[i], &hh.h, d.t, d.n, NULL, 0, NULL, 0, 5), 0);
        s_delta_free(&d);
    }
    assert_int_equal(mfl_round_engine_rounds_done(e), 1);
    size_t n = mfl_round_engine_n_state(e);
    float *theta = malloc(n * sizeof(float));
    memcpy(theta, mfl_round_engine_theta(e), n * sizeof(float));
    mfl_round_engine_destroy(&e);
    return theta;
}

static void test_update_in_runs_folds_like_contiguous(void **state)
{
    fixture_t *fx = *state;
    size_t n = mfl_learner_n_state(fx->learner);
    for (int clip = 0; clip < 2; clip++) {
        float *a = s_round_from(fx, 0, clip, clip ? "flat-clip" : "flat");
        float *b = s_round_from(fx, 1, clip, clip ? "runs-clip" : "runs");
        assert_memory_equal(a, b, n * sizeof(float));
        free(a);
        free(b);
    }
    /* a NaN in a later run is refused with its flat index */
    snprintf(fx->cfg.checkpoint_dir, sizeof fx->cfg.checkpoint_dir, "%s/nan", fx->dir);
    snprintf(fx->cfg.metrics_file, sizeof fx->cfg.metrics_file, "%s/nan.jsonl", fx->dir);
    fx->cfg.norm_bound = 0;
    mfl_round_engine_t *e = s_started(fx);
    const event_t *t = s_last_task(&fx->fake, "site-a");
    header_t hh;
    delta_t d;
    s_header(&hh, "site-a", t->round, t->nonce, 10);
    s_delta(fx, &d, 1.0f);
    d.flat[4] = NAN;
    mfl_tensor_piece_t pieces[2] = {{d.t[0].data, 3}, {d.t[0].data + 3, d.t[0].count - 3}};
    d.t[0].pieces = pieces;
    d.t[0].n_pieces = 2;
    d.t[0].data = NULL;
    assert_int_equal(mfl_round_engine_update(e, "site-a", &hh.h, d.t, d.n, NULL, 0, NULL, 0, 5),
                     -1);
    assert_int_equal(s_last_reject(&fx->fake), MFL_REJECT_NONFINITE);
    s_delta_free(&d);
    mfl_round_engine_destroy(&e);
}

static void test_resume_continues_from_the_last_checkpoint(void **state)
{
    fixture_t *fx = *state;
    fx->cfg.server = mfl_optim_defaults(MFL_OPTIM_ADAM, 0.1f);
    mfl_round_engine_t *e = s_engine(fx);
    s_join3(e, 0);
    uint64_t now = 0;
    for (int r = 0; r < 2; r++) {
        mfl_round_engine_tick(e, ++now);
        for (int i = 0; i < 3; i++) /* each update one tick later: not s_send3 */
            assert_int_equal(s_send(fx, e, (const char *[]){"site-a", "site-b", "site-c"}[i],
                                    1.0f + (float)r, 10, ++now), 0);
    }
    assert_int_equal(mfl_round_engine_rounds_done(e), 2);
    size_t n = mfl_round_engine_n_state(e);
    float *theta = malloc(n * sizeof(float));
    memcpy(theta, mfl_round_engine_theta(e), n * sizeof(float));
    mfl_round_engine_destroy(&e);

    e = s_engine(fx);
    assert_int_equal(mfl_round_engine_rounds_done(e), 2);
    assert_int_equal(mfl_round_engine_round(e), 3);
    assert_memory_equal(theta, mfl_round_engine_theta(e), n * sizeof(float));
    mfl_round_engine_destroy(&e);

    /* a checkpoint written for another seed is refused, not silently used */
    fx->cfg.seed++;
    char err[512] = "";
    e = mfl_round_engine_new(&fx->cfg, &fx->sink, NULL, NULL, err, sizeof err);
    assert_null(e);
    assert_non_null(strstr(err, "seed"));
    free(theta);
}

static void test_run_ends_with_final_evaluation(void **state)
{
    fixture_t *fx = *state;
    fx->cfg.rounds = 1;
    mfl_round_engine_t *e = s_started(fx);
    s_send3(fx, e, 1.0f, 1);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_EVAL);
    const char *sites[3] = {"site-a", "site-b", "site-c"};
    for (int i = 0; i < 3; i++) {
        const event_t *ev = NULL;
        for (size_t k = 0; k < fx->fake.n; k++) {
            if (fx->fake.ev[k].kind == 'E' && strcmp(fx->fake.ev[k].site, sites[i]) == 0)
                ev = &fx->fake.ev[k];
        }
        assert_non_null(ev);
        mfl_eval_report_t r;
        memset(&r, 0, sizeof r);
        snprintf(r.site, sizeof r.site, "%s", sites[i]);
        r.round = ev->round;
        memcpy(r.nonce, ev->nonce, 16);
        r.nonce_len = 16;
        r.accuracy = 0.8;
        assert_int_equal(fx->fake.finished, 0);
        assert_int_equal(mfl_round_engine_eval_report(e, sites[i], &r, 2), 0);
        /* a second report from the same site is refused */
        if (i == 0)
            assert_int_equal(mfl_round_engine_eval_report(e, sites[i], &r, 2), -1);
    }
    assert_int_equal(fx->fake.evals, 3);
    assert_int_equal(fx->fake.finished, 1);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_DONE);
    mfl_round_engine_destroy(&e);
}

static void test_restarted_site_gets_its_task_again(void **state)
{
    fixture_t *fx = *state;
    mfl_round_engine_t *e = s_started(fx);
    size_t before = fx->fake.n;
    mfl_round_engine_site_hello(e, "site-b", 10, 50);
    assert_int_equal(fx->fake.n, before + 1);
    assert_int_equal(fx->fake.ev[before].kind, 'T');
    assert_string_equal(fx->fake.ev[before].site, "site-b");
    assert_memory_equal(fx->fake.ev[before].nonce, fx->fake.ev[0].nonce, 16);
    mfl_round_engine_destroy(&e);
}

/* eval.every: an evaluation between rounds; its deadline lets the run go
 * on when a site does not answer. Pause holds the next round; abort ends. */
static void test_periodic_eval_pause_and_abort(void **state)
{
    fixture_t *fx = *state;
    fx->cfg.eval_every = 1;
    mfl_round_engine_t *e = s_started(fx);
    s_send3(fx, e, 1.0f, 1);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_EVAL);
    size_t evals = 0;
    for (size_t k = 0; k < fx->fake.n; k++)
        evals += fx->fake.ev[k].kind == 'E';
    assert_int_equal(evals, 3);
    mfl_round_engine_pause(e, true);
    mfl_round_engine_tick(e, 1 + fx->cfg.eval_deadline_ms); /* nobody reported */
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_WAITING);
    mfl_round_engine_tick(e, 2000);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_WAITING); /* paused */
    mfl_round_engine_pause(e, false);
    mfl_round_engine_tick(e, 2001);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
    assert_int_equal(mfl_round_engine_round(e), 2);
    mfl_round_engine_abort(e);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ABORTED);
    assert_int_equal(fx->fake.finished, 1);
    assert_int_equal(mfl_round_engine_rounds_done(e), 1);
    mfl_round_engine_destroy(&e);
}

/* A site silent for site_timeout is no longer selected; it comes back
 * with its next message. */
static void test_silent_site_times_out_and_comes_back(void **state)
{
    fixture_t *fx = *state;
    fx->cfg.site_timeout_ms = 5000;
    fx->cfg.rounds = 5;
    mfl_round_engine_t *e = s_started(fx);
    s_send3(fx, e, 1.0f, 10);
    mfl_round_engine_site_seen(e, "site-a", 5500);
    mfl_round_engine_site_seen(e, "site-b", 5500);
    mfl_round_engine_tick(e, 6000); /* site-c last seen at 10 */
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
    assert_true(mfl_round_engine_is_selected(e, "site-a"));
    assert_false(mfl_round_engine_is_selected(e, "site-c"));
    bool connected = true;
    assert_non_null(mfl_round_engine_site_at(e, 2, NULL, &connected));
    assert_false(connected);
    mfl_round_engine_site_seen(e, "site-c", 6001);
    assert_non_null(mfl_round_engine_site_at(e, 2, NULL, &connected));
    assert_true(connected);
    mfl_round_engine_destroy(&e);
}

/* Restarted after its last round: the final evaluation waits for sites. */
static void test_resumed_finished_run_waits_then_evaluates(void **state)
{
    fixture_t *fx = *state;
    fx->cfg.rounds = 1;
    mfl_round_engine_t *e = s_started(fx);
    s_send3(fx, e, 1.0f, 1);
    mfl_round_engine_destroy(&e);
    e = s_engine(fx);
    mfl_round_engine_tick(e, 100);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_WAITING);
    s_join3(e, 101);
    mfl_round_engine_tick(e, 101);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_EVAL);
    assert_int_equal(mfl_round_engine_rounds_done(e), 1);
    mfl_round_engine_destroy(&e);
}

/* The number of EvalTasks sent to `site` so far. */
static size_t s_evals_sent(const fake_t *f, const char *site)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++)
        n += f->ev[i].kind == 'E' && strcmp(f->ev[i].site, site) == 0;
    return n;
}

/* Answers the last EvalTask sent to `site`; returns the engine's verdict. */
static int s_eval_answer(fixture_t *fx, mfl_round_engine_t *e, const char *site, uint64_t now)
{
    const event_t *ev = NULL;
    for (size_t k = 0; k < fx->fake.n; k++) {
        if (fx->fake.ev[k].kind == 'E' && strcmp(fx->fake.ev[k].site, site) == 0)
            ev = &fx->fake.ev[k];
    }
    assert_non_null(ev);
    mfl_eval_report_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.site, sizeof r.site, "%s", site);
    r.round = ev->round;
    memcpy(r.nonce, ev->nonce, 16);
    r.nonce_len = 16;
    r.accuracy = 0.9;
    return mfl_round_engine_eval_report(e, site, &r, now);
}

/* Trains `rounds` rounds with the three fixture sites, then destroys the
 * engine without answering the final evaluation (a coordinator stopped
 * after its last round). */
static void s_train_and_stop(fixture_t *fx, uint32_t rounds)
{
    fx->cfg.rounds = rounds;
    mfl_round_engine_t *e = s_engine(fx);
    s_join3(e, 0);
    for (uint32_t r = 0; r < rounds; r++) {
        mfl_round_engine_tick(e, 1 + r);
        s_send3(fx, e, 1.0f, 1 + r);
    }
    assert_int_equal(mfl_round_engine_rounds_done(e), rounds);
    mfl_round_engine_destroy(&e);
    memset(&fx->fake, 0, sizeof fx->fake);
}

/* The demo's join session: a run resumed with every round done waits for
 * wait_for_sites connected sites (one is not enough for two), sends them
 * the final θ, evaluates a site that joins late (one that never trained)
 * too, and finishes once all of them reported. */
static void test_resumed_final_eval_waits_for_wait_for_sites_and_late_joiner(void **state)
{
    fixture_t *fx = *state;
    s_train_and_stop(fx, 2);
    fx->cfg.wait_for_sites = 2;
    mfl_round_engine_t *e = s_engine(fx);
    assert_int_equal(mfl_round_engine_rounds_done(e), 2);
    mfl_round_engine_tick(e, 1000);
    mfl_round_engine_site_hello(e, "site-a", 10, 1001);
    mfl_round_engine_tick(e, 1001);
    mfl_round_engine_tick(e, 60000); /* waiting has no deadline, like the first round */
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_WAITING);
    assert_int_equal(s_evals_sent(&fx->fake, "site-a"), 0);
    mfl_round_engine_site_hello(e, "site-b", 10, 60001);
    mfl_round_engine_tick(e, 60001);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_EVAL);
    assert_int_equal(s_evals_sent(&fx->fake, "site-a"), 1);
    assert_int_equal(s_evals_sent(&fx->fake, "site-b"), 1);
    assert_int_equal(fx->fake.ev[0].round, 2); /* evaluates θ after round 2 */
    /* a hospital that never trained joins while the evaluation is open */
    mfl_round_engine_site_hello(e, "site-new", 10, 60002);
    assert_int_equal(s_evals_sent(&fx->fake, "site-new"), 1);
    assert_int_equal(s_eval_answer(fx, e, "site-a", 60003), 0);
    assert_int_equal(s_eval_answer(fx, e, "site-b", 60003), 0);
    assert_int_equal(fx->fake.finished, 0); /* site-new has not answered */
    assert_int_equal(s_eval_answer(fx, e, "site-new", 60004), 0);
    assert_int_equal(fx->fake.evals, 3);
    assert_int_equal(fx->fake.finished, 1);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_DONE);
    assert_int_equal(mfl_round_engine_rounds_done(e), 2);
    /* no round was opened for the late joiner */
    for (size_t k = 0; k < fx->fake.n; k++)
        assert_int_not_equal(fx->fake.ev[k].kind, 'T');
    mfl_round_engine_destroy(&e);
}

/* The resumed final evaluation has the rounds' deadline semantics: once
 * open, a site that does not answer within eval_deadline_ms does not hold
 * the run; the run finishes at the deadline. */
static void test_resumed_final_eval_ends_at_its_deadline(void **state)
{
    fixture_t *fx = *state;
    s_train_and_stop(fx, 1);
    fx->cfg.wait_for_sites = 1;
    mfl_round_engine_t *e = s_engine(fx);
    mfl_round_engine_site_hello(e, "site-c", 10, 500);
    mfl_round_engine_tick(e, 500);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_EVAL);
    mfl_round_engine_tick(e, 500 + fx->cfg.eval_deadline_ms - 1);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_EVAL);
    mfl_round_engine_tick(e, 500 + fx->cfg.eval_deadline_ms);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_DONE);
    assert_int_equal(fx->fake.finished, 1);
    assert_int_equal(fx->fake.evals, 0);
    /* a report after the evaluation closed is refused */
    assert_int_equal(s_eval_answer(fx, e, "site-c", 500 + fx->cfg.eval_deadline_ms), -1);
    mfl_round_engine_destroy(&e);
}

/* status.json is valid JSON and says what the engine knows. */
static void test_status_document_is_json_with_sites_and_last_round(void **state)
{
    fixture_t *fx = *state;
    mfl_round_engine_t *e = s_started(fx);
    s_send3(fx, e, 1.0f, 1);
    mfl_round_engine_site_gone(e, "site-b");
    char *text = mfl_status_render(e, &fx->cfg, "tcp://127.0.0.1:1", 5);
    assert_non_null(text);
    char err[128];
    mfl_json_t *root = mfl_json_parse(text, strlen(text), err, sizeof err);
    if (!root)
        fprintf(stderr, "%s\n%s\n", err, text);
    assert_non_null(root);
    double v = 0;
    assert_int_equal(mfl_json_number(mfl_json_get(root, "rounds_done"), &v), 0);
    assert_true(v == 1);
    assert_string_equal(mfl_json_string(mfl_json_get(root, "phase")), "waiting"); /* until the next tick */
    const mfl_json_t *sites = mfl_json_get(root, "sites");
    assert_int_equal(mfl_json_array_len(sites), 3);
    bool connected = true;
    assert_int_equal(mfl_json_bool(mfl_json_get(mfl_json_array_at(sites, 1), "connected"),
                                   &connected), 0);
    assert_false(connected); /* site-b, sorted second */
    const mfl_json_t *last = mfl_json_get(root, "last_round");
    assert_int_equal(mfl_json_number(mfl_json_get(last, "accepted"), &v), 0);
    assert_true(v == 3);
    mfl_json_destroy(&root);
    free(text);
    mfl_round_engine_destroy(&e);
}

/* An operator abort is not a failure: its own phase (status says
 * "aborted"), a run_aborted audit record, and an update from the round in
 * flight is dropped without counting as a rejection. */
static int s_collect_kinds(void *arg, size_t line_no, const mfl_audit_record_t *rec)
{
    (void)line_no;
    char *kinds = arg;
    size_t len = strlen(kinds);
    snprintf(kinds + len, 512 - len, "%s,", mfl_audit_kind_name(rec->kind));
    if (rec->kind == MFL_AUDIT_RUN_ABORTED)
        assert_non_null(strstr(rec->reason, "aborted by the operator after 0 of 3 rounds"));
    return 0;
}

static int s_one_key(void *arg, const char *name, uint8_t pk[32], char *err, size_t errlen)
{
    if (strcmp(name, "coord") != 0) {
        snprintf(err, errlen, "no key for '%s'", name);
        return -1;
    }
    memcpy(pk, arg, 32);
    return 0;
}

/* An engine that writes its audit log to DIR/coord.audit, signed with a
 * fresh key pair (pk, sk; name "coord"), with the three sites joined. */
static mfl_round_engine_t *s_audited_engine(fixture_t *fx, uint8_t pk[32], uint8_t sk[64])
{
    assert_true(sodium_init() >= 0);
    crypto_sign_keypair(pk, sk);
    snprintf(fx->cfg.audit_log, sizeof fx->cfg.audit_log, "%s/coord.audit", fx->dir);
    char err[512] = "";
    mfl_round_engine_t *e = mfl_round_engine_new(&fx->cfg, &fx->sink, "coord", sk, err,
                                                 sizeof err);
    assert_non_null(e);
    s_join3(e, 0);
    return e;
}

static void test_abort_is_its_own_phase_and_audited(void **state)
{
    fixture_t *fx = *state;
    uint8_t pk[32], sk[64];
    char err[512] = "";
    mfl_round_engine_t *e = s_audited_engine(fx, pk, sk);
    mfl_round_engine_tick(e, 0);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
    assert_int_equal(s_send(fx, e, "site-a", 1.0f, 10, 1), 0);
    mfl_round_engine_abort(e);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ABORTED);
    assert_string_equal(mfl_engine_phase_name(MFL_ENGINE_ABORTED), "aborted");
    assert_int_equal(fx->fake.finished, 1);
    mfl_round_engine_abort(e); /* a second abort changes nothing */
    assert_int_equal(fx->fake.finished, 1);
    /* site-b finishes the round it was given after the abort */
    size_t sent = fx->fake.n;
    assert_int_equal(s_send(fx, e, "site-b", 1.0f, 10, 2), -1);
    assert_int_equal(fx->fake.n, sent); /* dropped: no Reject, the Bye said why */
    assert_int_equal(mfl_round_engine_rejections(e), 0);
    mfl_round_engine_tick(e, 5000); /* no round opens after an abort */
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ABORTED);
    assert_int_equal(mfl_round_engine_rounds_done(e), 0);

    char *text = mfl_status_render(e, &fx->cfg, "tcp://127.0.0.1:1", 5);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"phase\":\"aborted\""));
    free(text);
    mfl_round_engine_destroy(&e);

    char kinds[512] = "";
    assert_int_equal(mfl_audit_foreach(fx->cfg.audit_log, s_collect_kinds, kinds, err,
                                       sizeof err), 0);
    assert_non_null(strstr(kinds, "round_opened,update_accepted,run_aborted,"));
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(fx->cfg.audit_log, s_one_key, pk, &rep), 0);
}

/* The engine's audit log syncs once per round (deferred mode), but every
 * record is written as it happens: while the engine still runs, a reader
 * sees the whole closed round, checkpoint and all; the log verifies. */
static void test_audit_records_are_written_before_the_round_sync(void **state)
{
    fixture_t *fx = *state;
    uint8_t pk[32], sk[64];
    char err[512] = "";
    mfl_round_engine_t *e = s_audited_engine(fx, pk, sk);
    mfl_round_engine_tick(e, 0);
    assert_int_equal(s_send(fx, e, "site-a", 1.0f, 10, 1), 0);
    char kinds[512] = "";
    assert_int_equal(mfl_audit_foreach(fx->cfg.audit_log, s_collect_kinds, kinds, err,
                                       sizeof err), 0);
    assert_string_equal(kinds, "log_opened,round_opened,update_accepted,");
    assert_int_equal(s_send(fx, e, "site-b", 1.0f, 10, 2), 0);
    assert_int_equal(s_send(fx, e, "site-c", 1.0f, 10, 3), 0);
    assert_int_equal(mfl_round_engine_rounds_done(e), 1);
    kinds[0] = '\0';
    assert_int_equal(mfl_audit_foreach(fx->cfg.audit_log, s_collect_kinds, kinds, err,
                                       sizeof err), 0);
    assert_non_null(strstr(kinds, "round_opened,update_accepted,update_accepted,"
                                  "update_accepted,round_closed,"));
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(fx->cfg.audit_log, s_one_key, pk, &rep), 0);
    mfl_round_engine_destroy(&e);
    assert_int_equal(mfl_audit_verify_with(fx->cfg.audit_log, s_one_key, pk, &rep), 0);
}

/* A θ of ≥ 1 MiB takes the close's threaded paths (θ hash, audit sync
 * beside the checkpoint write, checkpoint fsync on a helper). Right after
 * each close the checkpoint of that round is already in place (what a
 * restart after kill -9 finds), the audit log verifies and reads in order,
 * and a new engine resumes with the same θ, bit for bit. */
static void test_big_theta_close_is_checkpointed_at_once_and_resumes(void **state)
{
    fixture_t *fx = *state;
    snprintf(fx->cfg.learner.model_spec, sizeof fx->cfg.learner.model_spec, "mlp:3-70000-1");
    char err[512] = "";
    mfl_learner_destroy(&fx->learner);
    fx->learner = mfl_learner_new(&fx->cfg.learner, 1, err, sizeof err);
    assert_non_null(fx->learner);
    assert_true(mfl_learner_n_state(fx->learner) >= ((size_t)1 << 18));
    uint8_t pk[32], sk[64];
    mfl_round_engine_t *e = s_audited_engine(fx, pk, sk);
    uint64_t now = 0;
    size_t n = mfl_round_engine_n_state(e);
    for (uint32_t r = 1; r <= 2; r++) {
        mfl_round_engine_tick(e, ++now);
        s_send3(fx, e, 1.0f + (float)r, ++now);
        assert_int_equal(mfl_round_engine_rounds_done(e), r);
        mfl_checkpoint_t ck;
        assert_int_equal(mfl_checkpoint_latest(fx->cfg.checkpoint_dir, &ck, NULL, 0, err,
                                               sizeof err), 1);
        assert_int_equal(ck.round, r);
        assert_int_equal(ck.n_params, n);
        assert_memory_equal(ck.theta, mfl_round_engine_theta(e), n * sizeof(float));
        mfl_checkpoint_clear(&ck);
    }
    float *theta = malloc(n * sizeof(float));
    memcpy(theta, mfl_round_engine_theta(e), n * sizeof(float));
    char kinds[512] = "";
    assert_int_equal(mfl_audit_foreach(fx->cfg.audit_log, s_collect_kinds, kinds, err,
                                       sizeof err), 0);
    assert_non_null(strstr(kinds, "round_opened,update_accepted,update_accepted,"
                                  "update_accepted,round_closed,round_opened,update_accepted,"
                                  "update_accepted,update_accepted,round_closed,"));
    mfl_round_engine_destroy(&e);
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(fx->cfg.audit_log, s_one_key, pk, &rep), 0);

    e = mfl_round_engine_new(&fx->cfg, &fx->sink, "coord", sk, err, sizeof err);
    assert_non_null(e);
    assert_int_equal(mfl_round_engine_rounds_done(e), 2);
    assert_memory_equal(theta, mfl_round_engine_theta(e), n * sizeof(float));
    mfl_round_engine_destroy(&e);
    free(theta);
}

/* rounds.upload_encoding is asked only of sites that offered it, and an
 * update in any other encoding than its task asked for is refused. */
static void test_update_encoding_is_negotiated_per_site(void **state)
{
    fixture_t *fx = *state;
    fx->cfg.upload_encoding = 2; /* int8 */
    mfl_round_engine_t *e = s_engine(fx);
    mfl_round_engine_site_encodings(e, "site-a", 0x7);      /* offers fp16 + int8 */
    mfl_round_engine_site_encodings(e, "site-b", 0x1 | 0x2); /* fp16 only */
    s_join3(e, 0);                                           /* site-c: never said */
    mfl_round_engine_tick(e, 0);
    assert_int_equal(s_last_task(&fx->fake, "site-a")->update_encoding, 2);
    assert_int_equal(s_last_task(&fx->fake, "site-b")->update_encoding, 0);
    assert_int_equal(s_last_task(&fx->fake, "site-c")->update_encoding, 0);
    /* site-a answers in float32: refused; in int8: folded */
    assert_int_equal(s_send(fx, e, "site-a", 1.0f, 10, 5), -1);
    assert_int_equal(s_last_reject(&fx->fake), MFL_REJECT_ENCODING);
    const event_t *t = s_last_task(&fx->fake, "site-a");
    header_t hh;
    delta_t d;
    s_header(&hh, "site-a", t->round, t->nonce, 10);
    s_delta(fx, &d, 1.0f);
    for (size_t i = 0; i < d.n; i++)
        d.t[i].encoding = 2;
    assert_int_equal(mfl_round_engine_update(e, "site-a", &hh.h, d.t, d.n, NULL, 0, NULL, 0, 6),
                     0);
    /* site-b (asked for float32) answering in int8: refused */
    t = s_last_task(&fx->fake, "site-b");
    s_header(&hh, "site-b", t->round, t->nonce, 10);
    assert_int_equal(mfl_round_engine_update(e, "site-b", &hh.h, d.t, d.n, NULL, 0, NULL, 0, 7),
                     -1);
    assert_int_equal(s_last_reject(&fx->fake), MFL_REJECT_ENCODING);
    s_delta_free(&d);
    assert_int_equal(s_send(fx, e, "site-b", 1.0f, 10, 8), 0);
    assert_int_equal(s_send(fx, e, "site-c", 1.0f, 10, 9), 0);
    assert_int_equal(fx->fake.closed, 1);
    mfl_round_engine_destroy(&e);
}

/* Compressed broadcast (rounds.broadcast_encoding): round 1 goes out in
 * full; from round 2 a site that holds the last round's model (its update
 * was accepted) and offered the encoding gets the int8 difference to it,
 * any other the model in full; a site that cannot apply its difference
 * gets the full model once; a restarted coordinator keeps θ̂ (checkpoint)
 * so a site naming it in its Hello gets a difference again. */
static void test_broadcast_difference_to_sites_that_hold_the_model(void **state)
{
    fixture_t *fx = *state;
    fx->cfg.broadcast_encoding = 2; /* int8 */
    mfl_round_engine_t *e = s_engine(fx);
    mfl_round_engine_site_broadcast(e, "site-a", 0x7, NULL);
    mfl_round_engine_site_broadcast(e, "site-b", 0x1, NULL); /* offers none */
    mfl_round_engine_site_broadcast(e, "site-c", 0x7, NULL);
    s_join3(e, 0);
    mfl_round_engine_tick(e, 1);
    for (int i = 0; i < 3; i++) {
        const event_t *t = s_last_task(&fx->fake, (const char *[]){"site-a", "site-b",
                                                                   "site-c"}[i]);
        assert_false(t->has_base);
        assert_int_equal(t->tensor_encoding, 0);
    }
    uint8_t m1[32];
    memcpy(m1, s_last_task(&fx->fake, "site-a")->model_hash, 32);
    s_send3(fx, e, 1.0f, 2);
    assert_int_equal(fx->fake.closed, 1);
    mfl_round_engine_tick(e, 3);
    const event_t *a = s_last_task(&fx->fake, "site-a");
    const event_t *b = s_last_task(&fx->fake, "site-b");
    const event_t *c = s_last_task(&fx->fake, "site-c");
    assert_int_equal(a->round, 2);
    assert_true(a->has_base && c->has_base);
    assert_memory_equal(a->base, m1, 32);
    assert_int_equal(a->tensor_encoding, 2);
    assert_false(b->has_base);
    assert_int_equal(b->tensor_encoding, 0);
    assert_memory_equal(a->model_hash, b->model_hash, 32); /* the same θ̂ either way */
    assert_memory_not_equal(a->model_hash, m1, 32);
    /* θ̂ is θ rounded: close to it, not equal */
    size_t n = mfl_round_engine_n_state(e);
    const float *th = mfl_round_engine_theta(e), *hat = mfl_round_engine_broadcast_theta(e);
    assert_memory_not_equal(th, hat, n * sizeof(float));
    double maxabs = 0, maxerr = 0;
    for (size_t i = 0; i < n; i++) {
        maxabs = fmax(maxabs, fabs((double)th[i]));
        maxerr = fmax(maxerr, fabs((double)th[i] - hat[i]));
    }
    assert_true(maxerr < 0.05 * maxabs + 1e-6);
    /* site-c cannot apply its difference: the task again, in full; once */
    size_t before = fx->fake.n;
    assert_int_equal(mfl_round_engine_site_need_model(e, "site-c", c->round, c->nonce, 16,
                                                      "no base"), 0);
    assert_int_equal(fx->fake.n, before + 1);
    c = s_last_task(&fx->fake, "site-c");
    assert_false(c->has_base);
    assert_int_equal(c->tensor_encoding, 0);
    assert_int_equal(mfl_round_engine_site_need_model(e, "site-c", c->round, c->nonce, 16,
                                                      "no base"), -1);
    uint8_t stale[16] = {0};
    assert_int_equal(mfl_round_engine_site_need_model(e, "site-a", 2, stale, 16, "x"), -1);
    uint8_t m2[32];
    memcpy(m2, a->model_hash, 32);
    s_send3(fx, e, 1.0f, 4);
    assert_int_equal(fx->fake.closed, 2);
    mfl_round_engine_destroy(&e);

    /* restarted: θ̂ of round 2 came back from the checkpoint; site-a names
     * it and gets a difference to it, site-c names another model */
    e = s_engine(fx);
    assert_int_equal(mfl_round_engine_rounds_done(e), 2);
    uint8_t other[32];
    memset(other, 0x5a, sizeof other);
    mfl_round_engine_site_broadcast(e, "site-a", 0x7, m2);
    mfl_round_engine_site_broadcast(e, "site-c", 0x7, other);
    s_join3(e, 10);
    mfl_round_engine_tick(e, 11);
    a = s_last_task(&fx->fake, "site-a");
    c = s_last_task(&fx->fake, "site-c");
    assert_int_equal(a->round, 3);
    assert_true(a->has_base);
    assert_memory_equal(a->base, m2, 32);
    assert_false(c->has_base);
    mfl_round_engine_destroy(&e);
}

int main(void)
{
    mfl_log_set_level(MFL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_opens_only_when_enough_sites_and_selects_all,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_fraction_selection_is_seeded, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_rejections_name_their_reason_and_engine_keeps_serving, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_closes_with_min_sites, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_too_few_sites_abandons_and_retries_with_theta_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_theta_hook_sees_each_new_theta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_encoding_is_negotiated_per_site, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broadcast_difference_to_sites_that_hold_the_model,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_in_runs_folds_like_contiguous, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_aggregation_is_weighted_and_order_independent,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_continues_from_the_last_checkpoint, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_big_theta_close_is_checkpointed_at_once_and_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_ends_with_final_evaluation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restarted_site_gets_its_task_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_status_document_is_json_with_sites_and_last_round,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_periodic_eval_pause_and_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_is_its_own_phase_and_audited, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_audit_records_are_written_before_the_round_sync,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_resumed_finished_run_waits_then_evaluates, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_resumed_final_eval_waits_for_wait_for_sites_and_late_joiner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resumed_final_eval_ends_at_its_deadline, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_silent_site_times_out_and_comes_back, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
