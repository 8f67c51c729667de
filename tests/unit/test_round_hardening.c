/* The round engine under a misbehaving host (issue 10): a system clock
 * that steps, an audit log that cannot be written, checkpoints that do not
 * load, a crash between a checkpoint and its records, and rejected
 * updates that must leave bounded audit records. Driven with the fake
 * sink and synthetic updates, like test_coord_engine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "core/log.h"
#include "meta/learner.h"
#include "round/round_engine.h"
#include "round/run_config.h"
#include "round/status.h"

#include "engine_fake.h"
#include "tmpdir.h"

typedef struct {
    char dir[256];
    mfl_coord_config_t cfg;
    fake_t fake;
    mfl_engine_sink_t sink;
    mfl_learner_t *learner;
    uint8_t pk[32], sk[64];
} fx_t;

/* A clock the test sets: wall and monotonic move independently. */
typedef struct {
    uint64_t wall, mono;
} test_clock_t;

static uint64_t s_wall(void *ctx) { return ((test_clock_t *)ctx)->wall; }
static uint64_t s_mono(void *ctx) { return ((test_clock_t *)ctx)->mono; }

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    if (!fx || s_tmpdir_make(fx->dir, sizeof fx->dir, "round-hardening") < 0)
        return -1;
    mfl_coord_config_defaults(&fx->cfg);
    mfl_learner_config_defaults(&fx->cfg.learner, MFL_ALGO_REPTILE);
    snprintf(fx->cfg.learner.model_spec, sizeof fx->cfg.learner.model_spec, "mlp:3-4-1");
    fx->cfg.learner.loss = MFL_LOSS_BCE;
    fx->cfg.rounds = 3;
    fx->cfg.min_sites = 2;
    fx->cfg.wait_for_sites = 3;
    fx->cfg.deadline_ms = 60000;
    fx->cfg.site_timeout_ms = 0;
    fx->cfg.eval_deadline_ms = 500;
    snprintf(fx->cfg.checkpoint_dir, sizeof fx->cfg.checkpoint_dir, "%s/ckpt", fx->dir);
    snprintf(fx->cfg.metrics_file, sizeof fx->cfg.metrics_file, "%s/metrics.jsonl", fx->dir);
    snprintf(fx->cfg.audit_log, sizeof fx->cfg.audit_log, "%s/audit.log", fx->dir);
    fx->sink = (mfl_engine_sink_t){&fx->fake, s_task, s_eval, s_reject, s_closed,
                                   s_eval_report, s_finished};
    crypto_sign_keypair(fx->pk, fx->sk);
    char err[256];
    fx->learner = mfl_learner_new(&fx->cfg.learner, 1, err, sizeof err);
    if (!fx->learner)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "chmod -R u+w '%s' 2>/dev/null", fx->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "chmod failed on %s\n", fx->dir);
    s_tmpdir_remove(fx->dir);
    mfl_learner_destroy(&fx->learner);
    free(fx);
    return 0;
}

static mfl_round_engine_t *s_engine_try(fx_t *fx, char *err, size_t errlen)
{
    return mfl_round_engine_new(&fx->cfg, &fx->sink, "coord", fx->sk, err, errlen);
}

static mfl_round_engine_t *s_engine(fx_t *fx)
{
    char err[1024] = "";
    mfl_round_engine_t *e = s_engine_try(fx, err, sizeof err);
    if (!e)
        fail_msg("engine: %s", err);
    return e;
}

static const event_t *s_last_task(const fake_t *f, const char *site)
{
    for (size_t i = f->n; i-- > 0;) {
        if (f->ev[i].kind == 'T' && strcmp(f->ev[i].site, site) == 0)
            return &f->ev[i];
    }
    return NULL;
}

static const char *const s_sites[3] = {"site-a", "site-b", "site-c"};

static void s_join3(mfl_round_engine_t *e, uint64_t now)
{
    for (int i = 0; i < 3; i++)
        mfl_round_engine_site_hello(e, s_sites[i], 10, now);
}

/* `site` answers its last task with Δ = scale · pattern (n = 10) at `now`
 * (monotonic); returns the engine's verdict. `round_off` != 0 sends it for
 * a wrong round (a rejected update). */
static int s_send(fx_t *fx, mfl_round_engine_t *e, const char *site, float scale,
                  uint32_t round_off, uint64_t now)
{
    const event_t *t = s_last_task(&fx->fake, site);
    assert_non_null(t);
    size_t n_state = mfl_learner_n_state(fx->learner);
    size_t nt = mfl_learner_n_tensors(fx->learner);
    float *flat = malloc(n_state * sizeof(float));
    mfl_tensor_t tens[8];
    assert_true(nt <= 8);
    for (size_t i = 0; i < n_state; i++)
        flat[i] = scale * (float)((int)(i % 7) - 3) / 16.0f;
    for (size_t i = 0; i < nt; i++) {
        const mfl_tensor_info_t *ti = mfl_learner_tensor(fx->learner, i);
        tens[i] = mfl_tensor_info_view(ti, flat);
    }
    Metafl__UpdateHeader h;
    Metafl__UpdateMetrics m;
    uint8_t nonce[16];
    metafl__update_header__init(&h);
    metafl__update_metrics__init(&m);
    memcpy(nonce, t->nonce, 16);
    h.round = t->round + round_off;
    h.nonce.data = nonce;
    h.nonce.len = 16;
    h.site = (char *)site;
    h.n_samples = 10;
    m.loss_before = 0.7;
    m.loss_after = 0.5;
    h.metrics = &m;
    int rc = mfl_round_engine_update(e, site, &h, tens, nt, NULL, 0, NULL, 0, now);
    free(flat);
    return rc;
}

/* ---- item 7: intervals on the monotonic clock ------------------------ */

/* The wall clock steps +1 h, then -2 h, in the middle of a 60 s round and
 * with a 5 s site timeout: the round neither closes early nor stays open
 * late, no site is declared gone, and only what is written down (the
 * task's deadline for display, status times) follows the wall clock. */
static void test_wall_clock_steps_change_no_decision(void **state)
{
    fx_t *fx = *state;
    fx->cfg.site_timeout_ms = 5000;
    test_clock_t clk = {1800000000000ull, 1000};
    mfl_engine_clock_t c = {&clk, s_wall, s_mono};
    mfl_round_engine_t *e = s_engine(fx);
    mfl_round_engine_set_clock(e, &c);
    s_join3(e, clk.mono);
    mfl_round_engine_tick(e, clk.mono);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
    const event_t *t = s_last_task(&fx->fake, "site-a");
    assert_non_null(t);
    assert_true(t->deadline_unix_ms == 1800000000000ull + 60000);

    /* +1 h: on the wall clock the deadline passed long ago. */
    clk.wall += 3600000;
    clk.mono += 2000;
    for (int i = 0; i < 3; i++)
        mfl_round_engine_site_seen(e, s_sites[i], clk.mono);
    mfl_round_engine_tick(e, clk.mono);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
    assert_int_equal(fx->fake.closed, 0);
    assert_int_equal(s_send(fx, e, "site-a", 1.0f, 0, clk.mono), 0);
    assert_int_equal(s_send(fx, e, "site-b", 1.0f, 0, clk.mono), 0);
    char *json = mfl_status_render(e, &fx->cfg, NULL, clk.wall);
    assert_non_null(json);
    char want[96];
    snprintf(want, sizeof want, "\"last_seen_unix_ms\":%llu",
             (unsigned long long)clk.wall);
    assert_non_null(strstr(json, want)); /* display: today's wall time */
    free(json);

    /* -2 h: on the wall clock the deadline is an hour away. */
    clk.wall -= 7200000;
    for (uint64_t at = 4000; at < 61000; at += 4000) {
        clk.mono = at;
        for (int i = 0; i < 3; i++)
            mfl_round_engine_site_seen(e, s_sites[i], clk.mono);
        mfl_round_engine_tick(e, clk.mono);
        assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
    }
    for (size_t i = 0; i < mfl_round_engine_n_sites(e); i++) {
        bool connected = false;
        assert_non_null(mfl_round_engine_site_at(e, i, NULL, &connected));
        assert_true(connected);
    }
    clk.mono = 61000; /* 60 s after the open, on the monotonic clock */
    mfl_round_engine_tick(e, clk.mono);
    assert_int_equal(fx->fake.closed, 1);
    assert_true(fx->fake.last.at_deadline);
    assert_int_equal(fx->fake.last.n_accepted, 2);
    mfl_round_engine_destroy(&e);
}

/* ---- item 5: no update folded, no round opened or closed without its
 * record ----------------------------------------------------------- */

static int s_one_key(void *arg, const char *name, uint8_t pk[32], char *err, size_t errlen)
{
    if (strcmp(name, "coord") != 0) {
        snprintf(err, errlen, "no key for '%s'", name);
        return -1;
    }
    memcpy(pk, arg, 32);
    return 0;
}

static int s_collect_kinds(void *arg, size_t line_no, const mfl_audit_record_t *rec)
{
    (void)line_no;
    char *kinds = arg;
    size_t len = strlen(kinds);
    snprintf(kinds + len, 2048 - len, "%s%s,", mfl_audit_kind_name(rec->kind),
             rec->kind == MFL_AUDIT_LOG_OPENED && strstr(rec->reason, "writing again")
                 ? "(again)"
                 : "");
    return 0;
}

static off_t s_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* A real write failure without privileges: the file size limit (EFBIG),
 * as a full volume gives ENOSPC. Applies to every file this process
 * writes; the audit log is the biggest one here. */
static void s_fsize_limit(rlim_t limit)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rl.rlim_cur = limit;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

/* The log stops taking writes in the middle of round 1: the update that
 * arrives then is refused (REJECT_AUDIT_UNAVAILABLE), not folded; the
 * round holds at its deadline; status says why. Once the log takes
 * writes again (retried each second) a note records the gap, the refused
 * site sends again, and the round closes with exactly the three updates on
 * record; the log verifies. */
static void test_unwritable_audit_log_refuses_updates_until_it_works(void **state)
{
    fx_t *fx = *state;
    signal(SIGXFSZ, SIG_IGN);
    fx->cfg.rounds = 1;
    mfl_round_engine_t *e = s_engine(fx);
    s_join3(e, 0);
    mfl_round_engine_tick(e, 0);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
    assert_int_equal(s_send(fx, e, "site-b", 1.0f, 0, 10), 0);
    s_fsize_limit((rlim_t)s_size(fx->cfg.audit_log));
    assert_int_equal(s_send(fx, e, "site-a", 1.0f, 0, 20), -1);
    assert_int_equal(fx->fake.ev[fx->fake.n - 1].reason,
                     METAFL__REJECT_REASON__REJECT_AUDIT_UNAVAILABLE);
    assert_non_null(mfl_round_engine_audit_error(e));
    char *json = mfl_status_render(e, &fx->cfg, NULL, 1);
    assert_non_null(strstr(json, "\"audit_error\":\""));
    free(json);
    mfl_round_engine_tick(e, 1000); /* the outage is timed from here */
    mfl_round_engine_tick(e, 2000); /* first retry: still unwritable */
    assert_int_equal(s_send(fx, e, "site-c", 1.0f, 0, 2500), -1);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);

    s_fsize_limit(RLIM_INFINITY);
    mfl_round_engine_tick(e, 3000);
    assert_null(mfl_round_engine_audit_error(e));
    assert_int_equal(fx->fake.closed, 0);
    assert_int_equal(s_send(fx, e, "site-a", 1.0f, 0, 3100), 0);
    assert_int_equal(s_send(fx, e, "site-c", 1.0f, 0, 3200), 0);
    assert_int_equal(fx->fake.closed, 1);
    assert_int_equal(fx->fake.last.n_accepted, 3);
    mfl_round_engine_destroy(&e);

    char kinds[2048] = "", err[512];
    assert_int_equal(mfl_audit_foreach(fx->cfg.audit_log, s_collect_kinds, kinds, err,
                                       sizeof err), 0);
    assert_string_equal(kinds, "log_opened,round_opened,update_accepted,log_opened(again),"
                               "update_accepted,update_accepted,round_closed,");
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(fx->cfg.audit_log, s_one_key, fx->pk, &rep), 0);
}

/* The log never takes writes again: a round past its deadline neither
 * closes nor is abandoned (neither could be recorded); after
 * audit_give_up_ms the run fails (the daemon then exits non-zero), with θ
 * as last checkpointed. */
static void test_audit_log_unwritable_too_long_fails_the_run(void **state)
{
    fx_t *fx = *state;
    signal(SIGXFSZ, SIG_IGN);
    fx->cfg.audit_give_up_ms = 5000;
    fx->cfg.deadline_ms = 1000;
    mfl_round_engine_t *e = s_engine(fx);
    s_join3(e, 0);
    mfl_round_engine_tick(e, 0);
    s_fsize_limit((rlim_t)s_size(fx->cfg.audit_log));
    assert_int_equal(s_send(fx, e, "site-a", 1.0f, 0, 10), -1);
    for (uint64_t t = 100; t < 5100; t += 500) {
        mfl_round_engine_tick(e, t);
        assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
        assert_int_equal(fx->fake.closed, 0);
    }
    mfl_round_engine_tick(e, 5200);
    s_fsize_limit(RLIM_INFINITY);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_FAILED);
    assert_int_equal(fx->fake.finished, 1);
    assert_int_equal(mfl_round_engine_rounds_done(e), 0);
    mfl_round_engine_destroy(&e);
}

int main(void)
{
    mfl_log_set_level(MFL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wall_clock_steps_change_no_decision, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_unwritable_audit_log_refuses_updates_until_it_works, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_log_unwritable_too_long_fails_the_run,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
