/* The site agent driven in-process against a real wire server (CURVE on
 * 127.0.0.1, the coordinator's own transport adapter, an allow-list),
 * with the coordinator's side played by hand so the test sees every
 * message: the agent dials out and says Hello with its training rows and
 * schema hash; a RoundTask gets a signed Update whose header names the
 * site, round and nonce and whose Δ has the task's tensor layout, after an
 * update_sent record that verifies in the site's audit log; a task with an
 * unknown algorithm is refused without an update and the agent keeps
 * serving; an EvalTask gets an EvalReport for its round and nonce, after
 * which an agent told to exit after evaluation says DONE. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit/audit.h"
#include "coordinator/coord_wire.h"
#include "core/fileio.h"
#include "meta/learner.h"
#include "site-agent/agent.h"
#include "site/site_config.h"
#include "wire/keys.h"

#include "tmpdir.h"

#define T_WAIT_MS 15000 /* generous upper bound, never expected to be reached */
#define S_MODEL "mlp:3-8-1"

typedef struct {
    char dir[256];
    mfl_coord_wire_t *wire;
    mfl_site_config_t cfg;
    mfl_site_agent_t *agent;
    mfl_learner_t *learner;
    float *theta;
    mfl_tensor_t views[16];
    size_t nt;
    uint8_t theta_hash[32];
} fx_t;

static void s_path(const fx_t *fx, char *out, size_t cap, const char *rel)
{
    snprintf(out, cap, "%s/%s", fx->dir, rel);
}

static void s_write(const fx_t *fx, const char *rel, const char *text, size_t len)
{
    char path[512], err[256] = "";
    s_path(fx, path, sizeof path, rel);
    if (mfl_file_write_atomic(path, text, len, err, sizeof err) != 0)
        fail_msg("%s", err);
}

/* 120 deterministic rows y = [x1 + 0.5 x2 - x3 > 0]. */
static void s_csv(const fx_t *fx)
{
    size_t cap = 64 + 120 * 48, n = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    n += (size_t)snprintf(text + n, cap - n, "x1,x2,x3,y\n");
    for (int i = 0; i < 120; i++) {
        double x1 = ((i * 37) % 41) / 10.0 - 2, x2 = ((i * 11) % 23) / 5.5 - 2,
               x3 = ((i * 7) % 19) / 4.5 - 2;
        n += (size_t)snprintf(text + n, cap - n, "%.3f,%.3f,%.3f,%d\n", x1, x2, x3,
                              x1 + 0.5 * x2 - x3 > 0);
    }
    s_write(fx, "rows.csv", text, n);
    free(text);
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    char err[512] = "", path[512], path2[512];
    assert_int_equal(s_tmpdir_make(fx->dir, sizeof fx->dir, "agent-flow"), 0);
    s_path(fx, path, sizeof path, "keys");
    assert_int_equal(mkdir(path, 0700), 0);
    s_path(fx, path2, sizeof path2, "allow");
    assert_int_equal(mkdir(path2, 0700), 0);
    assert_int_equal(mfl_keys_generate(path, "coordinator", err, sizeof err), 0);
    assert_int_equal(mfl_keys_generate(path, "site-a", err, sizeof err), 0);
    char *pub = NULL;
    size_t pub_len = 0;
    s_path(fx, path, sizeof path, "keys/site-a.pub");
    assert_int_equal(mfl_file_read_all(path, 4096, &pub, &pub_len, err, sizeof err), 0);
    s_write(fx, "allow/site-a.pub", pub, pub_len);
    free(pub);
    s_csv(fx);

    s_path(fx, path, sizeof path, "keys/coordinator.key");
    fx->wire = mfl_coord_wire_new("tcp://127.0.0.1:*", path, path2, 16u << 20, 500, err,
                                  sizeof err);
    if (!fx->wire)
        fail_msg("%s", err);
    char yaml[2048];
    int n = snprintf(yaml, sizeof yaml,
                     "site:\n  id: site-a\n  key_file: keys/site-a.key\n"
                     "coordinator:\n  endpoint: %s\n  public_key: keys/coordinator.pub\n"
                     "data:\n  source: csv\n  path: rows.csv\n  train_fraction: 0.75\n"
                     "  split_seed: 3\n  schema:\n    header: true\n    columns:\n"
                     "      - x1\n      - x2\n      - x3\n"
                     "      - {name: y, kind: label, rule: class, n_classes: 2}\n"
                     "runtime:\n  threads: 1\n"
                     "audit:\n  log: run/audit.log\n"
                     "limits:\n  heartbeat_s: 0.5\n",
                     mfl_coord_wire_endpoint(fx->wire));
    s_write(fx, "site.yaml", yaml, (size_t)n);
    s_path(fx, path, sizeof path, "site.yaml");
    if (mfl_site_config_load(path, &fx->cfg, err, sizeof err) != 0)
        fail_msg("%s", err);
    mfl_site_agent_opts_t opts = {.exit_after_eval = true, .max_rounds = 0};
    fx->agent = mfl_site_agent_new(&fx->cfg, &opts, err, sizeof err);
    if (!fx->agent)
        fail_msg("%s", err);

    /* θ as a coordinator would send it: the learner's tensors. */
    mfl_learner_config_t lc;
    mfl_learner_config_defaults(&lc, MFL_ALGO_REPTILE);
    snprintf(lc.model_spec, sizeof lc.model_spec, S_MODEL);
    lc.loss = MFL_LOSS_BCE;
    fx->learner = mfl_learner_new(&lc, 64, err, sizeof err);
    assert_non_null(fx->learner);
    size_t ns = mfl_learner_n_state(fx->learner);
    fx->theta = malloc(ns * sizeof(float));
    assert_non_null(fx->theta);
    mfl_learner_init_state(fx->learner, fx->theta, 7);
    crypto_generichash(fx->theta_hash, 32, (const unsigned char *)fx->theta,
                       ns * sizeof(float), NULL, 0);
    fx->nt = mfl_learner_n_tensors(fx->learner);
    assert_true(fx->nt <= 16);
    for (size_t i = 0; i < fx->nt; i++)
        fx->views[i] = mfl_tensor_info_view(mfl_learner_tensor(fx->learner, i), fx->theta);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    mfl_site_agent_destroy(&fx->agent);
    mfl_site_config_clear(&fx->cfg);
    mfl_coord_wire_destroy(&fx->wire);
    mfl_learner_destroy(&fx->learner);
    free(fx->theta);
    s_tmpdir_remove(fx->dir);
    free(fx);
    return 0;
}

/* Steps the agent and the wire until the wire receives a message of
 * `kind` (others are released; an UploadReady is granted); fails after
 * T_WAIT_MS. *status (optional) becomes MFL_AGENT_DONE once a step said so. */
static mfl_wire_event_t s_until(fx_t *fx, mfl_msg_kind_t kind, mfl_agent_status_t *status)
{
    char err[512] = "";
    for (int waited = 0; waited < T_WAIT_MS; waited += 20) {
        mfl_agent_status_t st = mfl_site_agent_step(fx->agent, 10, err, sizeof err);
        if (status && st == MFL_AGENT_DONE)
            *status = st;
        if (st == MFL_AGENT_FATAL)
            fail_msg("agent: %s", err);
        mfl_wire_event_t ev;
        int rc = mfl_coord_wire_recv(fx->wire, 10, &ev, err, sizeof err);
        if (rc < 0)
            fail_msg("wire: %s", err);
        if (rc == 1 && ev.kind == kind)
            return ev;
        if (rc == 1 && ev.kind == MFL_MSG_UPLOAD_READY) {
            assert_int_equal(mfl_coord_wire_send_grant(fx->wire, ev.site, ev.upload_ready.round,
                                                       ev.upload_ready.nonce,
                                                       ev.upload_ready.nonce_len, err,
                                                       sizeof err),
                             0);
        }
    }
    fail_msg("no message of kind %d", (int)kind);
    mfl_wire_event_t none;
    memset(&none, 0, sizeof none);
    return none;
}

static void s_task(const fx_t *fx, mfl_round_task_t *t, uint32_t round, const char *algo)
{
    memset(t, 0, sizeof *t);
    t->round = round;
    for (int i = 0; i < 16; i++)
        t->nonce[i] = (uint8_t)(round * 16 + i);
    t->nonce_len = 16;
    snprintf(t->model_spec, sizeof t->model_spec, S_MODEL);
    memcpy(t->model_hash, fx->theta_hash, 32);
    t->model_hash_len = 32;
    mfl_task_algorithm_from_learner(mfl_learner_config(fx->learner), 0, 0, 0, &t->algorithm);
    snprintf(t->algorithm.name, sizeof t->algorithm.name, "%s", algo);
    t->seed = 42;
}

static int s_key(void *arg, const char *name, uint8_t pk[32], char *err, size_t errlen)
{
    const fx_t *fx = arg;
    char path[512];
    snprintf(path, sizeof path, "%s/keys/%s.pub", fx->dir, name);
    mfl_public_key_t k;
    if (mfl_public_key_load(path, &k, err, errlen) != 0)
        return -1;
    memcpy(pk, k.sign_pk, 32);
    return 0;
}

static void test_agent_answers_hello_task_and_eval_over_curve(void **state)
{
    fx_t *fx = *state;
    char err[512] = "";

    /* Hello: the site dials out and announces its rows and schema. */
    mfl_wire_event_t ev = s_until(fx, MFL_MSG_HELLO, NULL);
    assert_string_equal(ev.site, "site-a"); /* Hello.site equal to it: checked by the wire */
    assert_int_equal(ev.hello.n_train, 90); /* 0.75 of 120 rows */
    assert_int_equal(ev.hello.schema_hash_len, 32);
    assert_string_equal(ev.hello.software_version, MFL_VERSION);
    assert_int_equal(mfl_site_agent_hellos_sent(fx->agent), 1);
    assert_int_equal(mfl_coord_wire_send_welcome(fx->wire, "site-a", 1, 500, "run-test", err,
                                                 sizeof err),
                     0);

    /* A round: a signed update of the task's layout. */
    mfl_round_task_t task;
    s_task(fx, &task, 1, "reptile");
    assert_int_equal(mfl_coord_wire_send_round_task(fx->wire, "site-a", &task, fx->views, fx->nt,
                                                    err, sizeof err),
                     0);
    ev = s_until(fx, MFL_MSG_UPDATE, NULL);
    assert_non_null(ev.update_header); /* signature and hashes verified by the wire */
    assert_string_equal(ev.update_header->site, "site-a");
    assert_int_equal(ev.update_header->round, 1);
    assert_int_equal(ev.update_header->nonce_len, 16);
    assert_memory_equal(ev.update_header->nonce, task.nonce, 16);
    assert_int_equal(ev.update_header->n_samples, 90);
    assert_int_equal(ev.n_tensors, fx->nt);
    for (size_t i = 0; i < fx->nt; i++) {
        assert_string_equal(ev.tensors[i].name, fx->views[i].name);
        assert_int_equal(ev.tensors[i].ndim, fx->views[i].ndim);
        assert_int_equal(ev.tensors[i].count, fx->views[i].count);
    }
    assert_int_equal(mfl_site_agent_updates_sent(fx->agent), 1);
    mfl_coord_wire_release(fx->wire);

    /* The update_sent record was on disk before the update left. */
    char path[512];
    snprintf(path, sizeof path, "%s/run/audit.log", fx->dir);
    mfl_audit_report_t report;
    int vrc = mfl_audit_verify_with(path, s_key, fx, &report);
    if (vrc != 0)
        fail_msg("%s", report.message);
    assert_int_equal(report.n_records, 2); /* log_opened, update_sent */
    assert_int_equal(report.n_site_sigs, 1);

    /* An unknown algorithm: refused at the site, no update, still serving. */
    s_task(fx, &task, 2, "sgd-magic");
    assert_int_equal(mfl_coord_wire_send_round_task(fx->wire, "site-a", &task, fx->views, fx->nt,
                                                    err, sizeof err),
                     0);
    for (int i = 0; i < 30; i++) {
        assert_int_equal(mfl_site_agent_step(fx->agent, 10, err, sizeof err), MFL_AGENT_CONTINUE);
        mfl_wire_event_t other;
        if (mfl_coord_wire_recv(fx->wire, 10, &other, err, sizeof err) == 1)
            assert_int_not_equal(other.kind, MFL_MSG_UPDATE);
    }
    assert_int_equal(mfl_site_agent_updates_sent(fx->agent), 1);

    /* Evaluation: a report for this round and nonce, then DONE. */
    mfl_eval_task_t et;
    memset(&et, 0, sizeof et);
    et.round = 2;
    for (int i = 0; i < 16; i++)
        et.nonce[i] = (uint8_t)(0xe0 + i);
    et.nonce_len = 16;
    snprintf(et.model_spec, sizeof et.model_spec, S_MODEL);
    memcpy(et.model_hash, fx->theta_hash, 32);
    et.model_hash_len = 32;
    mfl_task_algorithm_from_learner(mfl_learner_config(fx->learner), 0, 5, 0, &et.algorithm);
    et.adapt_steps = 5;
    et.adapt_lr = 0.05f;
    assert_int_equal(mfl_coord_wire_send_eval_task(fx->wire, "site-a", &et, fx->views, fx->nt,
                                                   err, sizeof err),
                     0);
    mfl_agent_status_t st = MFL_AGENT_CONTINUE;
    ev = s_until(fx, MFL_MSG_EVAL_REPORT, &st);
    assert_non_null(ev.eval_report);
    assert_string_equal(ev.eval_report->site, "site-a");
    assert_int_equal(ev.eval_report->round, 2);
    assert_memory_equal(ev.eval_report->nonce, et.nonce, 16);
    assert_int_equal(ev.eval_report->n, 30); /* the held-out quarter */
    assert_true(ev.eval_report->accuracy >= 0 && ev.eval_report->accuracy <= 1);
    assert_int_equal(st, MFL_AGENT_DONE);
    assert_int_equal(mfl_site_agent_reports_sent(fx->agent), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_agent_answers_hello_task_and_eval_over_curve, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
