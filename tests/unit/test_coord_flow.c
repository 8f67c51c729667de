/* Upload flow control: the slot/queue structure on its own, then the round
 * engine with flow control on, driven with a fake sink: at most W grants
 * at a time, FIFO, every slot-freeing event, and an update without a grant
 * refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "round/run_config.h"
#include "meta/learner.h"
#include "round/round_engine.h"
#include "round/status.h"
#include "round/upload_gate.h"

#include "engine_fake.h"

/* ---- the gate ---------------------------------------------------------- */

static void test_gate_grants_up_to_capacity_then_fifo(void **state)
{
    (void)state;
    mfl_upload_gate_t *g = mfl_upload_gate_new(2);
    assert_non_null(g);
    assert_int_equal(mfl_upload_gate_request(g, "a"), MFL_GATE_GRANTED);
    assert_int_equal(mfl_upload_gate_request(g, "b"), MFL_GATE_GRANTED);
    assert_int_equal(mfl_upload_gate_request(g, "c"), MFL_GATE_QUEUED);
    assert_int_equal(mfl_upload_gate_request(g, "d"), MFL_GATE_QUEUED);
    assert_int_equal(mfl_upload_gate_request(g, "e"), MFL_GATE_QUEUED);
    /* asking again keeps one's place (and a holder is told it holds) */
    assert_int_equal(mfl_upload_gate_request(g, "c"), MFL_GATE_QUEUED);
    assert_int_equal(mfl_upload_gate_request(g, "a"), MFL_GATE_GRANTED);
    assert_int_equal(mfl_upload_gate_in_flight(g), 2);
    assert_int_equal(mfl_upload_gate_waiting(g), 3);
    assert_null(mfl_upload_gate_next(g)); /* no free slot */

    assert_true(mfl_upload_gate_release(g, "a"));
    assert_string_equal(mfl_upload_gate_next(g), "c");
    assert_null(mfl_upload_gate_next(g));
    assert_true(mfl_upload_gate_holds(g, "c"));
    assert_false(mfl_upload_gate_holds(g, "a"));

    /* a waiting site that leaves gives up its place, not a slot */
    assert_false(mfl_upload_gate_release(g, "d"));
    assert_int_equal(mfl_upload_gate_waiting(g), 1);
    assert_true(mfl_upload_gate_release(g, "b"));
    assert_string_equal(mfl_upload_gate_next(g), "e");
    assert_int_equal(mfl_upload_gate_waiting(g), 0);

    /* a newcomer with a free slot and nobody waiting goes straight in */
    assert_true(mfl_upload_gate_release(g, "c"));
    assert_null(mfl_upload_gate_next(g));
    assert_int_equal(mfl_upload_gate_request(g, "f"), MFL_GATE_GRANTED);

    mfl_upload_gate_reset(g);
    assert_int_equal(mfl_upload_gate_in_flight(g), 0);
    assert_int_equal(mfl_upload_gate_waiting(g), 0);
    assert_false(mfl_upload_gate_holds(g, "e"));
    mfl_upload_gate_destroy(&g);
    assert_null(g);
    mfl_upload_gate_destroy(&g); /* NULL-safe */
}

static void test_gate_small_grants_take_no_slot(void **state)
{
    (void)state;
    mfl_upload_gate_t *g = mfl_upload_gate_new(1);
    assert_int_equal(mfl_upload_gate_request(g, "big1"), MFL_GATE_GRANTED);
    assert_int_equal(mfl_upload_gate_request(g, "big2"), MFL_GATE_QUEUED);
    /* small ones pass the queue, however many */
    assert_int_equal(mfl_upload_gate_request_small(g, "s1"), MFL_GATE_GRANTED);
    assert_int_equal(mfl_upload_gate_request_small(g, "s2"), MFL_GATE_GRANTED);
    assert_true(mfl_upload_gate_holds(g, "s1"));
    assert_int_equal(mfl_upload_gate_in_flight(g), 1);
    assert_int_equal(mfl_upload_gate_waiting(g), 1);
    /* releasing a small grant hands on no slot */
    assert_false(mfl_upload_gate_release(g, "s1"));
    assert_false(mfl_upload_gate_holds(g, "s1"));
    assert_null(mfl_upload_gate_next(g));
    /* a waiting site asking small leaves the queue */
    assert_int_equal(mfl_upload_gate_request_small(g, "big2"), MFL_GATE_GRANTED);
    assert_int_equal(mfl_upload_gate_waiting(g), 0);
    assert_int_equal(mfl_upload_gate_request_small(g, ""), MFL_GATE_ERROR);
    mfl_upload_gate_reset(g);
    assert_false(mfl_upload_gate_holds(g, "s2"));
    mfl_upload_gate_destroy(&g);
}

static void test_gate_refuses_bad_ids_and_zero_capacity(void **state)
{
    (void)state;
    assert_null(mfl_upload_gate_new(0));
    mfl_upload_gate_t *g = mfl_upload_gate_new(1);
    char longid[MFL_UPLOAD_GATE_SITE_MAX + 1];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    assert_int_equal(mfl_upload_gate_request(g, ""), MFL_GATE_ERROR);
    assert_int_equal(mfl_upload_gate_request(g, longid), MFL_GATE_ERROR);
    assert_int_equal(mfl_upload_gate_in_flight(g), 0);
    /* many waiters: the queue grows */
    char id[16];
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "s%03d", i);
        assert_int_equal(mfl_upload_gate_request(g, id), i ? MFL_GATE_QUEUED : MFL_GATE_GRANTED);
    }
    for (int i = 1; i < 100; i++) {
        snprintf(id, sizeof id, "s%03d", i - 1);
        assert_true(mfl_upload_gate_release(g, id));
        snprintf(id, sizeof id, "s%03d", i);
        assert_string_equal(mfl_upload_gate_next(g), id);
    }
    mfl_upload_gate_destroy(&g);
}

/* ---- the engine with flow control --------------------------------------- */

#define N_SITES 5

typedef struct {
    char dir[128];
    mfl_coord_config_t cfg;
    fake_t fake;
    mfl_engine_sink_t sink;
    mfl_learner_t *learner;
    float *delta;
    mfl_tensor_t t[8];
    size_t nt, n_state;
    uint64_t small_bytes; /* 0: every update takes a slot (this model's Δ is 84 bytes) */
} fixture_t;

static const char *const s_sites[N_SITES] = {"site-a", "site-b", "site-c", "site-d", "site-e"};

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/test_coord_flow.XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    engine_fake_config(&fx->cfg, 3, 2, N_SITES, 1000);
    fx->cfg.max_concurrent_uploads = 2;
    snprintf(fx->cfg.checkpoint_dir, sizeof fx->cfg.checkpoint_dir, "%s/ckpt", fx->dir);
    snprintf(fx->cfg.metrics_file, sizeof fx->cfg.metrics_file, "%s/metrics.jsonl", fx->dir);
    fx->sink = (mfl_engine_sink_t){&fx->fake, s_task, NULL, s_reject, s_closed, NULL, NULL};
    char err[256];
    fx->learner = mfl_learner_new(&fx->cfg.learner, 1, err, sizeof err);
    if (!fx->learner)
        return -1;
    fx->n_state = mfl_learner_n_state(fx->learner);
    fx->delta = malloc(fx->n_state * sizeof(float));
    for (size_t i = 0; i < fx->n_state; i++)
        fx->delta[i] = (float)((int)(i % 5) - 2) / 32.0f;
    fx->nt = mfl_learner_n_tensors(fx->learner);
    for (size_t i = 0; i < fx->nt; i++) {
        const mfl_tensor_info_t *ti = mfl_learner_tensor(fx->learner, i);
        fx->t[i] = mfl_tensor_info_view(ti, fx->delta);
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
    free(fx->delta);
    free(fx);
    return 0;
}

/* An engine with flow control, all sites joined, round 1 open. */
static mfl_round_engine_t *s_started(fixture_t *fx)
{
    char err[512] = "";
    mfl_round_engine_t *e = mfl_round_engine_new(&fx->cfg, &fx->sink, NULL, NULL, err, sizeof err);
    if (!e)
        fail_msg("engine: %s", err);
    assert_int_equal(mfl_round_engine_flow_control(e, s_grant, &fx->fake, fx->small_bytes), 0);
    for (int i = 0; i < N_SITES; i++)
        mfl_round_engine_site_hello(e, s_sites[i], 10, 0);
    mfl_round_engine_tick(e, 0);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
    return e;
}

static const event_t *s_last(const fake_t *f, int kind, const char *site)
{
    for (size_t i = f->n; i-- > 0;)
        if (f->ev[i].kind == kind && (!site || strcmp(f->ev[i].site, site) == 0))
            return &f->ev[i];
    return NULL;
}

static size_t s_count(const fake_t *f, int kind)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++)
        n += f->ev[i].kind == kind;
    return n;
}

static int s_ready(fixture_t *fx, mfl_round_engine_t *e, const char *site, uint64_t now)
{
    const event_t *t = s_last(&fx->fake, 'T', site);
    assert_non_null(t);
    return mfl_round_engine_upload_ready(e, site, t->round, t->nonce, 16,
                                         fx->n_state * sizeof(float), now);
}

static int s_update(fixture_t *fx, mfl_round_engine_t *e, const char *site, uint64_t now)
{
    const event_t *t = s_last(&fx->fake, 'T', site);
    assert_non_null(t);
    mfl_update_header_t h;
    memset(&h, 0, sizeof h);
    memcpy(h.nonce, t->nonce, 16);
    h.round = t->round;
    h.nonce_len = 16;
    snprintf(h.site, sizeof h.site, "%s", site);
    h.n_samples = 10;
    return mfl_round_engine_update(e, site, &h, fx->t, fx->nt, NULL, 0, NULL, 0, now);
}

static void test_more_sites_than_slots_all_upload_in_arrival_order(void **state)
{
    fixture_t *fx = *state;
    mfl_round_engine_t *e = s_started(fx);
    /* ready in the order e, c, a, d, b: e and c get the two slots */
    static const char *const order[N_SITES] = {"site-e", "site-c", "site-a", "site-d", "site-b"};
    for (int i = 0; i < N_SITES; i++)
        assert_int_equal(s_ready(fx, e, order[i], 10), 0);
    assert_int_equal(s_count(&fx->fake, 'G'), 2);
    assert_int_equal(mfl_round_engine_uploads_in_flight(e), 2);
    assert_int_equal(mfl_round_engine_uploads_waiting(e), 3);
    /* each arrival hands its slot to the longest-waiting site */
    for (int i = 0; i < N_SITES; i++) {
        const event_t *g = s_last(&fx->fake, 'G', order[i]);
        assert_non_null(g);
        assert_int_equal(g->round, 1);
        assert_memory_equal(g->nonce, s_last(&fx->fake, 'T', order[i])->nonce, 16);
        assert_true(mfl_round_engine_uploads_in_flight(e) <= 2);
        assert_int_equal(s_update(fx, e, order[i], 20 + (uint64_t)i), 0);
        if (i + 2 < N_SITES) {
            assert_int_equal(s_count(&fx->fake, 'G'), (size_t)i + 3);
            assert_string_equal(s_last(&fx->fake, 'G', NULL)->site, order[i + 2]);
        }
    }
    assert_int_equal(s_count(&fx->fake, 'G'), N_SITES);
    assert_int_equal(s_count(&fx->fake, 'R'), 0);
    assert_int_equal(fx->fake.closed, 1);
    assert_int_equal(mfl_round_engine_rounds_done(e), 1);
    mfl_round_engine_destroy(&e);
}

/* Operators watch flow control through status.json (metafl status): the
 * counts there are the engine's, while a round is being collected. */
static void test_status_shows_uploads_sending_and_waiting(void **state)
{
    fixture_t *fx = *state;
    mfl_round_engine_t *e = s_started(fx);
    for (int i = 0; i < N_SITES; i++)
        assert_int_equal(s_ready(fx, e, s_sites[i], 10), 0);
    char *text = mfl_status_render(e, &fx->cfg, "tcp://127.0.0.1:1", 11);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"uploads_in_flight\":2,\"uploads_waiting\":3,"));
    free(text);
    assert_int_equal(s_update(fx, e, s_sites[0], 12), 0);
    text = mfl_status_render(e, &fx->cfg, "tcp://127.0.0.1:1", 13);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"uploads_in_flight\":2,\"uploads_waiting\":2,"));
    free(text);
    mfl_round_engine_destroy(&e);
}

static void test_update_without_grant_is_refused(void **state)
{
    fixture_t *fx = *state;
    mfl_round_engine_t *e = s_started(fx);
    /* never asked */
    assert_int_equal(s_update(fx, e, "site-a", 10), -1);
    assert_int_equal(s_last(&fx->fake, 'R', "site-a")->reason,
                     MFL_REJECT_NOT_GRANTED);
    /* asked, but waiting behind two others */
    assert_int_equal(s_ready(fx, e, "site-b", 11), 0);
    assert_int_equal(s_ready(fx, e, "site-c", 11), 0);
    assert_int_equal(s_ready(fx, e, "site-a", 11), 0);
    assert_null(s_last(&fx->fake, 'G', "site-a"));
    assert_int_equal(s_update(fx, e, "site-a", 12), -1);
    assert_int_equal(s_last(&fx->fake, 'R', "site-a")->reason,
                     MFL_REJECT_NOT_GRANTED);
    /* refused without costing anyone a slot: site-a keeps its place */
    assert_int_equal(mfl_round_engine_uploads_in_flight(e), 2);
    assert_int_equal(mfl_round_engine_uploads_waiting(e), 1);
    assert_int_equal(s_update(fx, e, "site-b", 13), 0);
    assert_non_null(s_last(&fx->fake, 'G', "site-a"));
    assert_int_equal(s_update(fx, e, "site-a", 14), 0);
    mfl_round_engine_destroy(&e);
}

static void test_rejected_update_still_frees_its_slot(void **state)
{
    fixture_t *fx = *state;
    fx->cfg.max_concurrent_uploads = 1;
    mfl_round_engine_t *e = s_started(fx);
    assert_int_equal(s_ready(fx, e, "site-a", 10), 0);
    assert_int_equal(s_ready(fx, e, "site-b", 10), 0);
    /* site-a's update is bad (NaN): rejected, but it arrived: slot to b */
    fx->delta[0] = 0.0f / 0.0f;
    assert_int_equal(s_update(fx, e, "site-a", 11), -1);
    assert_int_equal(s_last(&fx->fake, 'R', "site-a")->reason,
                     MFL_REJECT_NONFINITE);
    assert_non_null(s_last(&fx->fake, 'G', "site-b"));
    fx->delta[0] = 0.0f;
    assert_int_equal(s_update(fx, e, "site-b", 12), 0);
    mfl_round_engine_destroy(&e);
}

static void test_slots_free_on_leave_restart_timeout_and_round_end(void **state)
{
    fixture_t *fx = *state;
    fx->cfg.max_concurrent_uploads = 1;
    fx->cfg.site_timeout_ms = 500;
    mfl_round_engine_t *e = s_started(fx);
    for (int i = 0; i < N_SITES; i++)
        assert_int_equal(s_ready(fx, e, s_sites[i], 10), 0);
    assert_non_null(s_last(&fx->fake, 'G', "site-a"));
    /* a granted site that leaves: the slot goes on */
    mfl_round_engine_site_gone(e, "site-a");
    assert_non_null(s_last(&fx->fake, 'G', "site-b"));
    /* a granted site that restarts (new Hello) asks again later */
    mfl_round_engine_site_hello(e, "site-b", 10, 20);
    assert_non_null(s_last(&fx->fake, 'G', "site-c"));
    assert_false(mfl_round_engine_uploads_in_flight(e) > 1);
    /* a granted site that falls silent: freed when it times out */
    for (int i = 1; i < N_SITES; i++)
        if (strcmp(s_sites[i], "site-c") != 0)
            mfl_round_engine_site_seen(e, s_sites[i], 400);
    mfl_round_engine_tick(e, 600);
    assert_non_null(s_last(&fx->fake, 'G', "site-d"));
    /* a granted site that never uploads holds its slot only until the
     * deadline: d and e report nothing, the round closes or is abandoned,
     * and the next attempt starts with every slot free */
    assert_int_equal(s_update(fx, e, "site-d", 700), 0);
    assert_non_null(s_last(&fx->fake, 'G', "site-e"));
    assert_int_equal(mfl_round_engine_uploads_in_flight(e), 1);
    mfl_round_engine_tick(e, 1001);
    assert_true(mfl_round_engine_phase(e) != MFL_ENGINE_ROUND);
    for (int i = 0; i < N_SITES; i++)
        mfl_round_engine_site_hello(e, s_sites[i], 10, 1001);
    mfl_round_engine_tick(e, 1002);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
    assert_int_equal(mfl_round_engine_uploads_in_flight(e), 0);
    assert_int_equal(mfl_round_engine_uploads_waiting(e), 0);
    /* a grant for the old attempt is worth nothing now */
    assert_int_equal(s_ready(fx, e, "site-e", 1003), 0);
    assert_non_null(s_last(&fx->fake, 'G', "site-e"));
    assert_int_equal(s_last(&fx->fake, 'G', "site-e")->round, mfl_round_engine_round(e));
    mfl_round_engine_destroy(&e);
}

/* A site that asks and never sends (while staying alive) loses its slot
 * after site_timeout if another site waits; a chunked upload that moves
 * keeps it. Before, it held the slot to the deadline: W such sites asking
 * first starved every honest site of every attempt. */
static void test_a_slot_held_without_sending_is_handed_on(void **state)
{
    fixture_t *fx = *state;
    fx->cfg.max_concurrent_uploads = 1;
    fx->cfg.site_timeout_ms = 300;
    mfl_round_engine_t *e = s_started(fx);
    assert_int_equal(s_ready(fx, e, "site-a", 10), 0);
    mfl_round_engine_tick(e, 20); /* site-a's slot clock starts */
    assert_int_equal(s_ready(fx, e, "site-b", 30), 0);
    assert_null(s_last(&fx->fake, 'G', "site-b"));
    for (int i = 0; i < N_SITES; i++) /* all alive: no one is dropped as silent */
        mfl_round_engine_site_seen(e, s_sites[i], 300);
    mfl_round_engine_tick(e, 310);
    assert_null(s_last(&fx->fake, 'G', "site-b")); /* 290 ms: not yet */
    mfl_round_engine_tick(e, 330);
    assert_non_null(s_last(&fx->fake, 'G', "site-b"));
    assert_int_equal(mfl_round_engine_uploads_in_flight(e), 1);
    /* site-a's update now comes without a grant */
    assert_int_equal(s_update(fx, e, "site-a", 340), -1);
    assert_int_equal(s_last(&fx->fake, 'R', "site-a")->reason, MFL_REJECT_NOT_GRANTED);
    /* site-b's chunks keep coming: its slot stays while site-c waits */
    mfl_round_engine_tick(e, 340);
    assert_int_equal(s_ready(fx, e, "site-c", 350), 0);
    for (int i = 0; i < N_SITES; i++)
        mfl_round_engine_site_seen(e, s_sites[i], 600);
    mfl_round_engine_upload_progress(e, "site-b", 600);
    mfl_round_engine_tick(e, 700);
    assert_null(s_last(&fx->fake, 'G', "site-c"));
    assert_int_equal(s_update(fx, e, "site-b", 710), 0);
    assert_non_null(s_last(&fx->fake, 'G', "site-c"));
    assert_int_equal(s_update(fx, e, "site-c", 720), 0);
    mfl_round_engine_destroy(&e);
}

static void test_unreachable_grantee_hands_its_slot_on(void **state)
{
    fixture_t *fx = *state;
    fx->cfg.max_concurrent_uploads = 1;
    mfl_round_engine_t *e = s_started(fx);
    assert_int_equal(s_ready(fx, e, "site-a", 10), 0);
    assert_int_equal(s_ready(fx, e, "site-b", 10), 0);
    assert_int_equal(s_ready(fx, e, "site-c", 10), 0);
    fx->fake.grant_fails = 1; /* b's grant cannot be sent: c gets the slot */
    assert_int_equal(s_update(fx, e, "site-a", 11), 0);
    assert_null(s_last(&fx->fake, 'G', "site-b"));
    assert_non_null(s_last(&fx->fake, 'G', "site-c"));
    assert_int_equal(mfl_round_engine_uploads_in_flight(e), 1);
    mfl_round_engine_destroy(&e);
}

static void test_bad_upload_requests_are_rejected_with_their_reason(void **state)
{
    fixture_t *fx = *state;
    mfl_round_engine_t *e = s_started(fx);
    const event_t *t = s_last(&fx->fake, 'T', "site-a");
    uint8_t nonce[16];
    memcpy(nonce, t->nonce, 16);
    uint64_t bytes = fx->n_state * sizeof(float);
    assert_int_equal(mfl_round_engine_upload_ready(e, "site-a", 2, nonce, 16, bytes, 5), -1);
    assert_int_equal(s_last(&fx->fake, 'R', "site-a")->reason,
                     MFL_REJECT_WRONG_ROUND);
    nonce[0] ^= 1;
    assert_int_equal(mfl_round_engine_upload_ready(e, "site-a", 1, nonce, 16, bytes, 5), -1);
    assert_int_equal(s_last(&fx->fake, 'R', "site-a")->reason,
                     MFL_REJECT_REPLAY);
    nonce[0] ^= 1;
    assert_int_equal(mfl_round_engine_upload_ready(e, "site-a", 1, nonce, 16, bytes + 4, 5), -1);
    assert_int_equal(s_last(&fx->fake, 'R', "site-a")->reason,
                     MFL_REJECT_SHAPE);
    assert_int_equal(mfl_round_engine_upload_ready(e, "site-x", 1, nonce, 16, bytes, 5), -1);
    assert_int_equal(s_last(&fx->fake, 'R', "site-x")->reason,
                     MFL_REJECT_NOT_SELECTED);
    assert_int_equal(s_count(&fx->fake, 'G'), 0);
    assert_int_equal(mfl_round_engine_uploads_waiting(e), 0);
    /* after its update is in, a second request is a duplicate */
    assert_int_equal(s_ready(fx, e, "site-a", 6), 0);
    assert_int_equal(s_update(fx, e, "site-a", 7), 0);
    assert_int_equal(s_ready(fx, e, "site-a", 8), -1);
    assert_int_equal(s_last(&fx->fake, 'R', "site-a")->reason,
                     MFL_REJECT_DUPLICATE);
    mfl_round_engine_destroy(&e);
}

static void test_small_updates_need_no_grant_and_asking_takes_no_slot(void **state)
{
    fixture_t *fx = *state;
    fx->cfg.max_concurrent_uploads = 1;
    fx->small_bytes = fx->n_state * sizeof(float); /* this Δ counts as small */
    mfl_round_engine_t *e = s_started(fx);
    /* a site that asks anyway is granted at once, nobody queues */
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_ready(fx, e, s_sites[i], 10), 0);
    assert_int_equal(s_count(&fx->fake, 'G'), 3);
    assert_int_equal(mfl_round_engine_uploads_in_flight(e), 0);
    assert_int_equal(mfl_round_engine_uploads_waiting(e), 0);
    /* and the others just send: accepted without a grant */
    for (int i = 0; i < N_SITES; i++)
        assert_int_equal(s_update(fx, e, s_sites[i], 11), 0);
    assert_int_equal(s_count(&fx->fake, 'R'), 0);
    assert_int_equal(fx->fake.closed, 1);
    mfl_round_engine_destroy(&e);
}

static void test_without_flow_control_updates_need_no_grant(void **state)
{
    fixture_t *fx = *state;
    char err[512] = "";
    mfl_round_engine_t *e = mfl_round_engine_new(&fx->cfg, &fx->sink, NULL, NULL, err, sizeof err);
    assert_non_null(e);
    for (int i = 0; i < N_SITES; i++)
        mfl_round_engine_site_hello(e, s_sites[i], 10, 0);
    mfl_round_engine_tick(e, 0);
    for (int i = 0; i < N_SITES; i++)
        assert_int_equal(s_update(fx, e, s_sites[i], 5), 0);
    assert_int_equal(fx->fake.closed, 1);
    assert_int_equal(s_count(&fx->fake, 'G'), 0);
    mfl_round_engine_destroy(&e);
}

/* A site asked for int8 updates announces P bytes, not 4·P: the size
 * check follows the encoding its task asked for (issue 17). */
static void test_upload_request_size_follows_the_asked_encoding(void **state)
{
    fixture_t *fx = *state;
    fx->cfg.upload_encoding = 2; /* int8 */
    char err[512] = "";
    mfl_round_engine_t *e = mfl_round_engine_new(&fx->cfg, &fx->sink, NULL, NULL, err, sizeof err);
    if (!e)
        fail_msg("engine: %s", err);
    assert_int_equal(mfl_round_engine_flow_control(e, s_grant, &fx->fake, fx->small_bytes), 0);
    mfl_round_engine_site_encodings(e, "site-a", 0x7);
    for (int i = 0; i < N_SITES; i++)
        mfl_round_engine_site_hello(e, s_sites[i], 10, 0);
    mfl_round_engine_tick(e, 0);
    const event_t *t = s_last(&fx->fake, 'T', "site-a");
    assert_non_null(t);
    /* 4·P from an int8 site: refused */
    assert_int_equal(mfl_round_engine_upload_ready(e, "site-a", t->round, t->nonce, 16,
                                                   fx->n_state * sizeof(float), 5),
                     -1);
    assert_int_equal(s_last(&fx->fake, 'R', "site-a")->reason,
                     MFL_REJECT_SHAPE);
    /* P bytes: granted; site-b (not offering int8) still announces 4·P */
    assert_int_equal(mfl_round_engine_upload_ready(e, "site-a", t->round, t->nonce, 16,
                                                   fx->n_state, 6),
                     0);
    assert_non_null(s_last(&fx->fake, 'G', "site-a"));
    assert_int_equal(s_ready(fx, e, "site-b", 7), 0);
    mfl_round_engine_destroy(&e);
}

/* Chunked uploads (docs/WIRE.md "Chunked uploads"): a Δ above
 * chunked_upload_bytes is asked in chunks; an update signed otherwise than
 * its task asked is refused (REJECT_CHUNK), one in chunks is taken through
 * a reader and folds like the same update in memory. */
typedef struct {
    const float *v;
    size_t n;
} s_flat_t;

static int s_flat_read(void *ctx, size_t offset, float *out, size_t n, char *err, size_t errlen)
{
    const s_flat_t *f = ctx;
    if (offset + n > f->n) {
        snprintf(err, errlen, "past the end");
        return -1;
    }
    memcpy(out, f->v + offset, n * sizeof(float));
    return 0;
}

static void test_chunked_uploads_are_asked_and_checked(void **state)
{
    fixture_t *fx = *state;
    fx->cfg.chunked_upload_bytes = 16; /* this model's Δ is 84 bytes */
    fx->cfg.upload_chunk_bytes = 4096;
    mfl_round_engine_t *e = s_started(fx);
    const event_t *t = s_last(&fx->fake, 'T', "site-a");
    assert_int_equal(t->upload_chunk_values, 1024);
    /* a whole update not signed for chunks: refused, its slot freed */
    assert_int_equal(s_ready(fx, e, "site-a", 1), 0);
    assert_int_equal(s_update(fx, e, "site-a", 2), -1);
    assert_int_equal(s_last(&fx->fake, 'R', "site-a")->reason, MFL_REJECT_CHUNK);
    assert_int_equal(mfl_round_engine_uploads_in_flight(e), 0);
    /* begun with the asked size, then complete through a reader */
    mfl_update_header_t h;
    memset(&h, 0, sizeof h);
    t = s_last(&fx->fake, 'T', "site-b");
    memcpy(h.nonce, t->nonce, 16);
    h.round = t->round;
    h.nonce_len = 16;
    snprintf(h.site, sizeof h.site, "site-b");
    h.n_samples = 10;
    h.chunk_values = 512; /* not what the task asked */
    uint32_t enc = 9;
    uint64_t cv = 0;
    assert_int_equal(s_ready(fx, e, "site-b", 3), 0);
    assert_int_equal(mfl_round_engine_update_begin(e, "site-b", &h, NULL, 0, NULL, 0, &enc, &cv,
                                                   4), -1);
    assert_int_equal(s_last(&fx->fake, 'R', "site-b")->reason, MFL_REJECT_CHUNK);
    h.chunk_values = 1024;
    assert_int_equal(s_ready(fx, e, "site-b", 5), 0);
    assert_int_equal(mfl_round_engine_update_begin(e, "site-b", &h, NULL, 0, NULL, 0, &enc, &cv,
                                                   6), 0);
    assert_int_equal(enc, 0);
    assert_int_equal(cv, 1024);
    assert_int_equal(mfl_round_engine_uploads_in_flight(e), 1); /* held until the end */
    s_flat_t f = {fx->delta, fx->n_state};
    assert_int_equal(mfl_round_engine_update_read(e, "site-b", &h, s_flat_read, &f, NULL, 0,
                                                  NULL, 0, 7), 0);
    assert_int_equal(mfl_round_engine_uploads_in_flight(e), 0);
    /* a second one from the same site: a duplicate */
    assert_int_equal(mfl_round_engine_update_begin(e, "site-b", &h, NULL, 0, NULL, 0, &enc, &cv,
                                                   8), -1);
    assert_int_equal(s_last(&fx->fake, 'R', "site-b")->reason, MFL_REJECT_DUPLICATE);
    mfl_round_engine_destroy(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gate_grants_up_to_capacity_then_fifo),
        cmocka_unit_test(test_gate_small_grants_take_no_slot),
        cmocka_unit_test(test_gate_refuses_bad_ids_and_zero_capacity),
        cmocka_unit_test_setup_teardown(test_status_shows_uploads_sending_and_waiting, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_more_sites_than_slots_all_upload_in_arrival_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_without_grant_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected_update_still_frees_its_slot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_slots_free_on_leave_restart_timeout_and_round_end,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_slot_held_without_sending_is_handed_on, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_grantee_hands_its_slot_on, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_upload_requests_are_rejected_with_their_reason,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_small_updates_need_no_grant_and_asking_takes_no_slot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_request_size_follows_the_asked_encoding,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_uploads_are_asked_and_checked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_without_flow_control_updates_need_no_grant, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
