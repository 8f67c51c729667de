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
    engine_fake_config(&fx->cfg, 3, 2, 3, 60000);
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
    mfl_update_header_t h;
    memset(&h, 0, sizeof h);
    memcpy(h.nonce, t->nonce, 16);
    h.nonce_len = 16;
    h.round = t->round + round_off;
    snprintf(h.site, sizeof h.site, "%s", site);
    h.n_samples = 10;
    h.has_metrics = true;
    h.metrics.loss_before = 0.7;
    h.metrics.loss_after = 0.5;
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
                     MFL_REJECT_AUDIT_UNAVAILABLE);
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

/* ---- items 6 and 9: what a restart finds ----------------------------- */

/* Runs `closes` rounds with the three sites (each update accepted), then
 * destroys the engine as a stop would. */
static void s_run_rounds(fx_t *fx, uint32_t closes)
{
    mfl_round_engine_t *e = s_engine(fx);
    s_join3(e, 0);
    for (uint32_t r = 0; r < closes; r++) {
        mfl_round_engine_tick(e, 1 + r);
        for (int i = 0; i < 3; i++)
            assert_int_equal(s_send(fx, e, s_sites[i], 1.0f, 0, 1 + r), 0);
    }
    assert_int_equal(mfl_round_engine_rounds_done(e), closes);
    mfl_round_engine_destroy(&e);
}

/* Keeps the first `keep` lines of `path` (the rest is what a crash left
 * unwritten). Returns the lines dropped. */
static size_t s_keep_lines(const char *path, size_t keep)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *text = calloc(1, 1 << 20);
    size_t len = fread(text, 1, (1 << 20) - 1, f), lines = 0, cut = len;
    fclose(f);
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n' && ++lines == keep && cut == len)
            cut = i + 1;
    }
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, cut, f), cut);
    fclose(f);
    free(text);
    return lines - keep;
}

static size_t s_count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = 0;
    for (int c; (c = fgetc(f)) != EOF;)
        n += c == '\n';
    fclose(f);
    return n;
}

/* Every checkpoint corrupt: the engine refuses to start (instead of θ₀ on
 * top of the old records) and names the files and the two ways on. */
static void test_no_loadable_checkpoint_refuses_start(void **state)
{
    fx_t *fx = *state;
    s_run_rounds(fx, 2);
    for (int r = 1; r <= 2; r++) {
        char path[1100];
        snprintf(path, sizeof path, "%s/round-%08d.ckpt", fx->cfg.checkpoint_dir, r);
        FILE *f = fopen(path, "r+");
        assert_non_null(f);
        assert_int_equal(fseek(f, 200, SEEK_SET), 0);
        int c = fgetc(f);
        assert_int_equal(fseek(f, 200, SEEK_SET), 0);
        fputc(c ^ 0x55, f);
        fclose(f);
    }
    char err[2048] = "";
    assert_null(s_engine_try(fx, err, sizeof err));
    assert_non_null(strstr(err, "refusing to start: 2 checkpoint file(s)"));
    assert_non_null(strstr(err, "round-00000002.ckpt, round-00000001.ckpt"));
    assert_non_null(strstr(err, "restore a checkpoint"));
    assert_non_null(strstr(err, "new run directory"));

    /* The directory deleted while the audit log and metrics remain. */
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->cfg.checkpoint_dir);
    assert_int_equal(system(cmd), 0);
    err[0] = '\0';
    assert_null(s_engine_try(fx, err, sizeof err));
    assert_non_null(strstr(err, "no checkpoint in"));
    assert_non_null(strstr(err, fx->cfg.audit_log));
    assert_non_null(strstr(err, fx->cfg.metrics_file));
    size_t closed_lines = s_count_lines(fx->cfg.audit_log);

    /* A new run directory is the explicit way to start again. */
    snprintf(fx->cfg.checkpoint_dir, sizeof fx->cfg.checkpoint_dir, "%s/new/ckpt", fx->dir);
    snprintf(fx->cfg.audit_log, sizeof fx->cfg.audit_log, "%s/new/audit.log", fx->dir);
    snprintf(fx->cfg.metrics_file, sizeof fx->cfg.metrics_file, "%s/new/m.jsonl", fx->dir);
    mfl_round_engine_t *e = s_engine(fx);
    assert_int_equal(mfl_round_engine_rounds_done(e), 0);
    mfl_round_engine_destroy(&e);
    char old_log[600];
    snprintf(old_log, sizeof old_log, "%s/audit.log", fx->dir);
    assert_int_equal(s_count_lines(old_log), closed_lines); /* untouched */
}

static int s_closed_of(void *arg, size_t line_no, const mfl_audit_record_t *rec)
{
    (void)line_no;
    char *out = arg;
    if (rec->kind == MFL_AUDIT_ROUND_CLOSED) {
        size_t len = strlen(out);
        snprintf(out + len, 1024 - len, "%llu%s,", (unsigned long long)rec->round,
                 strstr(rec->reason, "reconciled") ? "(reconciled)" : "");
    }
    return 0;
}

/* A crash after checkpoint 2 was renamed into place, before round 2's
 * round_closed record and metrics line: the restart writes both from the
 * checkpoint, so every round on disk has its records; the log verifies. */
static void test_restart_writes_the_records_a_crash_left_out(void **state)
{
    fx_t *fx = *state;
    s_run_rounds(fx, 2);
    /* The log ends ... round_closed(2); metrics: round 1, round 2. */
    size_t n = s_count_lines(fx->cfg.audit_log);
    s_keep_lines(fx->cfg.audit_log, n - 1);
    assert_int_equal(s_keep_lines(fx->cfg.metrics_file, 1), 1);
    char closed[1024] = "", err[512];
    assert_int_equal(mfl_audit_foreach(fx->cfg.audit_log, s_closed_of, closed, err, sizeof err),
                     0);
    assert_string_equal(closed, "1,");

    mfl_round_engine_t *e = s_engine(fx);
    assert_int_equal(mfl_round_engine_rounds_done(e), 2);
    mfl_round_engine_destroy(&e);
    closed[0] = '\0';
    assert_int_equal(mfl_audit_foreach(fx->cfg.audit_log, s_closed_of, closed, err, sizeof err),
                     0);
    assert_string_equal(closed, "1,2(reconciled),");
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(fx->cfg.audit_log, s_one_key, fx->pk, &rep), 0);
    FILE *f = fopen(fx->cfg.metrics_file, "r");
    char line[1024];
    int round2 = 0;
    while (fgets(line, sizeof line, f))
        round2 += strncmp(line, "{\"event\":\"round\",\"round\":2,", 27) == 0 &&
                  strstr(line, "\"reconciled\":true") != NULL;
    fclose(f);
    assert_int_equal(round2, 1);

    /* A second restart finds nothing missing and writes nothing more. */
    size_t lines = s_count_lines(fx->cfg.metrics_file);
    e = s_engine(fx);
    mfl_round_engine_destroy(&e);
    assert_int_equal(s_count_lines(fx->cfg.metrics_file), lines);
    closed[0] = '\0';
    assert_int_equal(mfl_audit_foreach(fx->cfg.audit_log, s_closed_of, closed, err, sizeof err),
                     0);
    assert_string_equal(closed, "1,2(reconciled),");

    /* A checkpoint copied into a new run directory (to evaluate it, as
     * the demo's join session does) did not run there: nothing is
     * "reconciled" into the new directory's records. */
    char cmd[3300];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/join' && cp -r '%s' '%s/join/ckpt'", fx->dir,
             fx->cfg.checkpoint_dir, fx->dir);
    assert_int_equal(system(cmd), 0);
    snprintf(fx->cfg.checkpoint_dir, sizeof fx->cfg.checkpoint_dir, "%s/join/ckpt", fx->dir);
    snprintf(fx->cfg.audit_log, sizeof fx->cfg.audit_log, "%s/join/audit.log", fx->dir);
    snprintf(fx->cfg.metrics_file, sizeof fx->cfg.metrics_file, "%s/join/m.jsonl", fx->dir);
    e = s_engine(fx);
    assert_int_equal(mfl_round_engine_rounds_done(e), 2);
    mfl_round_engine_destroy(&e);
    assert_int_equal(s_count_lines(fx->cfg.metrics_file), 0);
    closed[0] = '\0';
    assert_int_equal(mfl_audit_foreach(fx->cfg.audit_log, s_closed_of, closed, err, sizeof err),
                     0);
    assert_string_equal(closed, "");
}

/* A run that finished (last round closed, final evaluation answered)
 * and is started again ends at once: no second final evaluation. */
static void test_finished_run_restarted_does_not_evaluate_again(void **state)
{
    fx_t *fx = *state;
    fx->cfg.rounds = 1;
    mfl_round_engine_t *e = s_engine(fx);
    s_join3(e, 0);
    mfl_round_engine_tick(e, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_send(fx, e, s_sites[i], 1.0f, 0, 1), 0);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_EVAL);
    for (int i = 0; i < 3; i++) {
        const event_t *ev = NULL;
        for (size_t k = 0; k < fx->fake.n; k++)
            if (fx->fake.ev[k].kind == 'E' && strcmp(fx->fake.ev[k].site, s_sites[i]) == 0)
                ev = &fx->fake.ev[k];
        assert_non_null(ev);
        mfl_eval_report_t r;
        memset(&r, 0, sizeof r);
        snprintf(r.site, sizeof r.site, "%s", s_sites[i]);
        r.round = ev->round;
        memcpy(r.nonce, ev->nonce, 16);
        r.nonce_len = 16;
        assert_int_equal(mfl_round_engine_eval_report(e, s_sites[i], &r, 2), 0);
    }
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_DONE);
    assert_int_equal(fx->fake.finished, 1);
    mfl_round_engine_destroy(&e);

    size_t before = fx->fake.n;
    e = s_engine(fx);
    s_join3(e, 10);
    mfl_round_engine_tick(e, 10);
    mfl_round_engine_tick(e, 20);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_DONE);
    assert_int_equal(fx->fake.finished, 2);
    assert_int_equal(fx->fake.n, before); /* no task of any kind */
    mfl_round_engine_destroy(&e);
}

/* ---- item 13: update_rejected records, bounded ------------------------ */

typedef struct {
    size_t rejected;     /* update_rejected records (all of site-a) */
    size_t capped;       /* records saying the rest are not recorded */
    size_t norm;         /* REJECT_NORM reasons */
} s_rejects_t;

static int s_count_rejects(void *arg, size_t line_no, const mfl_audit_record_t *rec)
{
    (void)line_no;
    s_rejects_t *c = arg;
    if (rec->kind != MFL_AUDIT_UPDATE_REJECTED)
        return 0;
    assert_string_equal(rec->site, "site-a");
    c->rejected++;
    c->capped += strstr(rec->reason, "are not recorded") != NULL;
    c->norm += strncmp(rec->reason, "REJECT_NORM: ", 13) == 0;
    return 0;
}

/* A rejected update leaves an update_rejected record naming the reason; a
 * site that keeps sending bad updates gets MFL_ENGINE_REJECT_RECORDS (4)
 * records and one more saying the rest are not recorded, per round: 50
 * bad updates cost 5 lines, not 50. The log verifies. */
static void test_rejected_updates_are_recorded_within_a_bound(void **state)
{
    fx_t *fx = *state;
    fx->cfg.norm_bound = 2.0;
    mfl_round_engine_t *e = s_engine(fx);
    s_join3(e, 0);
    mfl_round_engine_tick(e, 0);
    assert_int_equal(s_send(fx, e, "site-a", 100.0f, 0, 1), -1); /* over the norm bound */
    for (int i = 0; i < 49; i++)
        assert_int_equal(s_send(fx, e, "site-a", 1.0f, 1, 2), -1); /* wrong round */
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_send(fx, e, s_sites[i], 1.0f, 0, 3), 0);
    assert_int_equal(fx->fake.closed, 1);
    mfl_round_engine_tick(e, 4); /* round 2: the bound starts again */
    for (int i = 0; i < 10; i++)
        assert_int_equal(s_send(fx, e, "site-a", 1.0f, 5, 5), -1);
    mfl_round_engine_destroy(&e);

    s_rejects_t c = {0, 0, 0};
    char err[512];
    assert_int_equal(mfl_audit_foreach(fx->cfg.audit_log, s_count_rejects, &c, err, sizeof err),
                     0);
    /* Round 1: the norm rejection, 3 wrong-round ones, the capped one;
     * round 2: 4 and the capped one. */
    assert_int_equal(c.rejected, 10);
    assert_int_equal(c.norm, 1);
    assert_int_equal(c.capped, 2);
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(fx->cfg.audit_log, s_one_key, fx->pk, &rep), 0);
    assert_true(rep.n_records < 30);
}

/* ---- item 14: a failed run counts the rounds on disk ------------------ */

/* Round 2's checkpoint cannot be written (its directory became a file):
 * the run fails, and says 1 round done (the one saved), not 2; status
 * agrees. */
static void test_failed_checkpoint_does_not_count_its_round(void **state)
{
    fx_t *fx = *state;
    mfl_round_engine_t *e = s_engine(fx);
    s_join3(e, 0);
    mfl_round_engine_tick(e, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_send(fx, e, s_sites[i], 1.0f, 0, 1), 0);
    assert_int_equal(mfl_round_engine_rounds_done(e), 1);
    char cmd[3200];
    snprintf(cmd, sizeof cmd, "mv '%s' '%s.saved' && touch '%s'", fx->cfg.checkpoint_dir,
             fx->cfg.checkpoint_dir, fx->cfg.checkpoint_dir);
    assert_int_equal(system(cmd), 0);
    mfl_round_engine_tick(e, 2);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_send(fx, e, s_sites[i], 1.0f, 0, 2), 0);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_FAILED);
    assert_int_equal(mfl_round_engine_rounds_done(e), 1);
    char *json = mfl_status_render(e, &fx->cfg, NULL, 1);
    assert_non_null(strstr(json, "\"phase\":\"failed\""));
    assert_non_null(strstr(json, "\"rounds_done\":1,"));
    free(json);
    mfl_round_engine_destroy(&e);
}

/* ---- item 15: poisoning ---------------------------------------------- */

/* `site` sends the flat Δ `flat` (n_samples n) for its last task. */
static int s_send_flat(fx_t *fx, mfl_round_engine_t *e, const char *site, const float *flat,
                       uint64_t n, uint64_t now)
{
    const event_t *t = s_last_task(&fx->fake, site);
    assert_non_null(t);
    size_t nt = mfl_learner_n_tensors(fx->learner);
    mfl_tensor_t tens[8];
    assert_true(nt <= 8);
    for (size_t i = 0; i < nt; i++)
        tens[i] = mfl_tensor_info_view(mfl_learner_tensor(fx->learner, i), flat);
    mfl_update_header_t h;
    memset(&h, 0, sizeof h);
    memcpy(h.nonce, t->nonce, 16);
    h.nonce_len = 16;
    h.round = t->round;
    snprintf(h.site, sizeof h.site, "%s", site);
    h.n_samples = n;
    return mfl_round_engine_update(e, site, &h, tens, nt, NULL, 0, NULL, 0, now);
}

typedef enum { ATTACK_NONE, ATTACK_SCALE, ATTACK_FLIP } attack_t;

/* Five sites pull θ toward θ* (each Δ = ½(θ* − θ) plus a small per-site,
 * per-round offset); site "h5" attacks: scaled (Δ × 30) or sign-flipped
 * (Δ × −10), claiming 10 samples like the others. 15 rounds; returns
 * ‖θ − θ*‖ / ‖θ₀ − θ*‖ (the honest run shrinks it ~ 2^-15), or infinity
 * if θ diverged so far that updates were refused. */
static double s_poison_run(fx_t *fx, mfl_agg_kind_t agg, bool clip, attack_t attack)
{
    static const char *const names[5] = {"h1", "h2", "h3", "h4", "h5"};
    char sub[600];
    static int run;
    snprintf(sub, sizeof sub, "%s/poison%d", fx->dir, run++);
    snprintf(fx->cfg.checkpoint_dir, sizeof fx->cfg.checkpoint_dir, "%s/ckpt", sub);
    snprintf(fx->cfg.metrics_file, sizeof fx->cfg.metrics_file, "%s/m.jsonl", sub);
    snprintf(fx->cfg.audit_log, sizeof fx->cfg.audit_log, "%s/audit.log", sub);
    fx->cfg.rounds = 15;
    fx->cfg.min_sites = 5;
    fx->cfg.wait_for_sites = 5;
    fx->cfg.aggregator = agg;
    fx->cfg.trim_fraction = 0.2;
    fx->cfg.krum_f = 1;
    fx->cfg.krum_m = 0;
    fx->cfg.norm_clip = clip;
    fx->cfg.norm_bound = clip ? 1.0 : 0.0;
    memset(&fx->fake, 0, sizeof fx->fake); /* each run's own events */
    mfl_round_engine_t *e = s_engine(fx);
    size_t n = mfl_round_engine_n_state(e);
    float *target = malloc(n * sizeof(float)), *d = malloc(n * sizeof(float));
    double e0 = 0;
    for (size_t j = 0; j < n; j++) {
        target[j] = 0.5f * (float)((int)(j % 5) - 2);
        double t = (double)target[j] - mfl_round_engine_theta(e)[j];
        e0 += t * t;
    }
    for (int i = 0; i < 5; i++)
        mfl_round_engine_site_hello(e, names[i], 10, 0);
    bool diverged = false;
    for (uint32_t r = 1; r <= fx->cfg.rounds && !diverged; r++) {
        mfl_round_engine_tick(e, r);
        assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
        for (int i = 0; i < 5; i++) {
            const float *th = mfl_round_engine_theta(e);
            for (size_t j = 0; j < n; j++) {
                double jitter = 0.01 * (double)((int)((j * 7 + (size_t)i * 3 + r) % 5) - 2);
                d[j] = (float)(0.5 * ((double)target[j] - th[j]) + jitter);
            }
            if (i == 4 && attack != ATTACK_NONE)
                for (size_t j = 0; j < n; j++)
                    d[j] *= attack == ATTACK_SCALE ? 30.0f : -10.0f;
            /* θ blown up so far that an update leaves the aggregate's
             * range (or is not finite): refused, the run has diverged. */
            if (s_send_flat(fx, e, names[i], d, 10, r) < 0) {
                diverged = true;
                break;
            }
        }
        assert_true(diverged || mfl_round_engine_rounds_done(e) == r);
    }
    double err2 = diverged ? INFINITY : 0;
    for (size_t j = 0; j < n; j++) {
        double t = (double)target[j] - mfl_round_engine_theta(e)[j];
        err2 += t * t;
    }
    mfl_round_engine_destroy(&e);
    free(target);
    free(d);
    return sqrt(err2 / e0);
}

/* One of five sites poisons its updates. With the plain mean the final
 * model is far from where the honest sites lead (it diverges); median,
 * trimmed mean and Multi-Krum keep it there (within the honest sites'
 * own spread); clipping to the norm bound keeps the damage bounded. The
 * numbers are printed (docs/AGGREGATION.md quotes them). */
static void test_one_poisoning_site_of_five_with_and_without_defence(void **state)
{
    fx_t *fx = *state;
    static const struct {
        mfl_agg_kind_t agg;
        bool clip;
        const char *name;
    } rules[] = {{MFL_AGG_MEAN, false, "mean"},
                 {MFL_AGG_MEAN, true, "mean + clip to bound 1"},
                 {MFL_AGG_MEDIAN, false, "median"},
                 {MFL_AGG_TRIMMED_MEAN, false, "trimmed_mean 0.2"},
                 {MFL_AGG_MULTI_KRUM, false, "multi_krum f=1"}};
    double honest = s_poison_run(fx, MFL_AGG_MEAN, false, ATTACK_NONE);
    printf("    poisoning, 5 sites, 15 rounds, relative error ‖θ−θ*‖/‖θ₀−θ*‖ "
           "(no attacker, mean: %.2e)\n", honest);
    assert_true(honest < 1e-2);
    for (size_t k = 0; k < sizeof rules / sizeof *rules; k++) {
        double scaled = s_poison_run(fx, rules[k].agg, rules[k].clip, ATTACK_SCALE);
        double flipped = s_poison_run(fx, rules[k].agg, rules[k].clip, ATTACK_FLIP);
        printf("    %-24s scaled ×30: %9.3g   sign-flipped ×−10: %9.3g\n", rules[k].name,
               scaled, flipped);
        if (k == 0) { /* undefended: the attacker wins */
            assert_true(scaled > 1.0);
            assert_true(flipped > 1.0);
        } else if (rules[k].clip) { /* clipping bounds the damage, does not remove it */
            assert_true(scaled < 0.2);
            assert_true(flipped < 0.2);
        } else { /* robust rules: the honest sites' model, near θ* */
            assert_true(scaled < 0.02);
            assert_true(flipped < 0.02);
        }
    }
}

/* A site claiming more samples than it declared at Hello counts with what
 * it declared (and at most server.max_weight); the record says so. */
static int s_weight_note(void *arg, size_t line_no, const mfl_audit_record_t *rec)
{
    (void)line_no;
    if (rec->kind == MFL_AUDIT_UPDATE_ACCEPTED && strstr(rec->reason, "capped by"))
        snprintf(arg, 256, "%.64s: %.180s", rec->site, rec->reason);
    return 0;
}

static void test_site_weight_is_capped_and_recorded(void **state)
{
    fx_t *fx = *state;
    fx->cfg.rounds = 1;
    fx->cfg.max_weight = 20;
    mfl_round_engine_t *e = s_engine(fx);
    mfl_round_engine_site_hello(e, "site-a", 10, 0);
    mfl_round_engine_site_hello(e, "site-b", 10, 0);
    mfl_round_engine_site_hello(e, "site-c", 1000, 0);
    mfl_round_engine_tick(e, 0);
    size_t n = mfl_round_engine_n_state(e);
    float *theta0 = malloc(n * sizeof(float)), *d = calloc(n, sizeof(float));
    memcpy(theta0, mfl_round_engine_theta(e), n * sizeof(float));
    d[0] = 1.0f;
    assert_int_equal(s_send_flat(fx, e, "site-a", d, 10, 1), 0);
    assert_int_equal(s_send_flat(fx, e, "site-b", d, 10, 1), 0);
    d[0] = -2.0f; /* claims 1 000 000 samples, declared 1000, capped at 20 */
    assert_int_equal(s_send_flat(fx, e, "site-c", d, 1000000, 1), 0);
    /* (10·1 + 10·1 + 20·(−2)) / 40 = −0.5 */
    assert_true(fabs(mfl_round_engine_theta(e)[0] - (theta0[0] - 0.5f)) < 1e-5);
    assert_true(fabs(fx->fake.last.total_weight - 40.0) < 1e-9);
    mfl_round_engine_destroy(&e);
    char note[256] = "", err[256];
    assert_int_equal(mfl_audit_foreach(fx->cfg.audit_log, s_weight_note, note, err, sizeof err),
                     0);
    assert_string_equal(note, "site-c: weight 20 (claims 1000000 samples; capped by "
                              "server.max_weight)");
    free(theta0);
    free(d);
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
        cmocka_unit_test_setup_teardown(test_no_loadable_checkpoint_refuses_start, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_restart_writes_the_records_a_crash_left_out,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_finished_run_restarted_does_not_evaluate_again,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected_updates_are_recorded_within_a_bound,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_checkpoint_does_not_count_its_round,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_one_poisoning_site_of_five_with_and_without_defence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_site_weight_is_capped_and_recorded, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
