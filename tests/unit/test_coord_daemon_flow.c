/* Upload flow control through the real coordinator object and real CURVE
 * sockets on 127.0.0.1: two raw site clients speak the protocol by hand, so
 * they can also misbehave. With rounds.max_concurrent_uploads = 1:
 * an Update sent without a grant is refused (REJECT_NOT_GRANTED, and the
 * round does not count it); UploadReady gets UploadGrant for this round
 * and nonce; the second site is granted once the first site's update is
 * in; both updates are accepted and the round closes. */
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
#include "coordinator/coordinator.h"
#include "wire/client.h"
#include "wire/keys.h"
#include "wire/update_sign.h"

#define T_WAIT_MS 10000 /* generous upper bound, never expected to be reached */

typedef struct {
    char dir[128];
    mfl_coord_config_t cfg;
    mfl_coordinator_t *coord;
    mfl_identity_t *id[2];
    mfl_client_t *client[2];
    mfl_public_key_t coord_pub;
} fx_t;

static const char *const s_names[2] = {"site-a", "site-b"};

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    char err[512] = "", path[400], cmd[600];
    snprintf(fx->dir, sizeof fx->dir, "/tmp/test_coord_daemon_flow.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(cmd, sizeof cmd, "mkdir -p %s/keys %s/allow", fx->dir, fx->dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof path, "%s/keys", fx->dir);
    assert_int_equal(mfl_keys_generate(path, "coordinator", err, sizeof err), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(mfl_keys_generate(path, s_names[i], err, sizeof err), 0);
        snprintf(cmd, sizeof cmd, "cp %s/keys/%s.pub %s/allow/", fx->dir, s_names[i], fx->dir);
        assert_int_equal(system(cmd), 0);
    }
    snprintf(path, sizeof path, "%s/coordinator.yaml", fx->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "coordinator:\n  listen: tcp://127.0.0.1:*\n  key: keys/coordinator.key\n"
               "  allow_dir: allow\n  run_dir: run\n"
               /* Δ of 80 kB: over the small-update size, so it takes a slot */
               "model:\n  spec: mlp:3-4096-1\n  loss: bce\n"
               "rounds:\n  count: 1\n  min_sites: 2\n  wait_for_sites: 2\n"
               "  deadline_s: 30\n  max_concurrent_uploads: 1\n"
               "limits:\n  heartbeat_s: 0.5\n");
    fclose(f);
    if (mfl_coord_config_load(path, &fx->cfg, err, sizeof err) < 0)
        fail_msg("%s", err);
    assert_int_equal(fx->cfg.max_concurrent_uploads, 1);
    fx->coord = mfl_coordinator_new(&fx->cfg, err, sizeof err);
    if (!fx->coord)
        fail_msg("%s", err);
    snprintf(path, sizeof path, "%s/keys/coordinator.pub", fx->dir);
    assert_int_equal(mfl_public_key_load(path, &fx->coord_pub, err, sizeof err), 0);
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/keys/%s.key", fx->dir, s_names[i]);
        fx->id[i] = mfl_identity_load(path, err, sizeof err);
        assert_non_null(fx->id[i]);
        fx->client[i] = mfl_client_new(mfl_coordinator_endpoint(fx->coord), fx->id[i],
                                       &fx->coord_pub, NULL, err, sizeof err);
        if (!fx->client[i])
            fail_msg("%s", err);
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    for (int i = 0; i < 2; i++) {
        mfl_client_destroy(&fx->client[i]);
        mfl_identity_destroy(&fx->id[i]);
    }
    mfl_coordinator_destroy(&fx->coord);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", fx->dir);
    free(fx);
    return 0;
}

/* Steps the coordinator and polls client i until it receives a message of
 * `kind` (others are dropped); fails the test after T_WAIT_MS. */
static mfl_msg_t *s_until(fx_t *fx, int i, Metafl__MessageKind kind)
{
    char err[512] = "";
    for (int waited = 0; waited < T_WAIT_MS; waited += 20) {
        if (mfl_coordinator_step(fx->coord, 10, err, sizeof err) < 0)
            fail_msg("coordinator: %s", err);
        mfl_msg_t *m = NULL;
        if (mfl_client_recv(fx->client[i], 10, &m, NULL, err, sizeof err) == MFL_RECV_OK) {
            if (mfl_msg_kind(m) == kind)
                return m;
            mfl_msg_destroy(&m);
        }
    }
    fail_msg("%s: no message of kind %d", s_names[i], (int)kind);
    return NULL;
}

static void s_send(fx_t *fx, int i, Metafl__Envelope *env, const mfl_tensor_t *t, size_t nt)
{
    char err[512] = "";
    if (mfl_client_send(fx->client[i], env, t, nt, NULL, NULL, err, sizeof err) != 0)
        fail_msg("%s: %s", s_names[i], err);
}

static void s_hello(fx_t *fx, int i)
{
    char err[512] = "";
    if (mfl_client_wait_connected(fx->client[i], T_WAIT_MS, err, sizeof err) != 0)
        fail_msg("%s", err);
    Metafl__Hello h = METAFL__HELLO__INIT;
    h.site = (char *)s_names[i];
    h.software_version = (char *)MFL_VERSION;
    h.n_train = 10;
    /* The data a 3-input binary model reads (round/schema_gate.h). */
    static uint8_t hash[32] = { 1 };
    h.schema_hash.data = hash;
    h.schema_hash.len = sizeof hash;
    h.n_features = 3;
    h.n_classes = 2;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__HELLO;
    env.body_case = METAFL__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    s_send(fx, i, &env, NULL, 0);
}

static void s_upload_ready(fx_t *fx, int i, const Metafl__RoundTask *task, uint64_t bytes)
{
    Metafl__UploadReady ur = METAFL__UPLOAD_READY__INIT;
    ur.round = task->round;
    ur.nonce = task->nonce;
    ur.update_bytes = bytes;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__UPLOAD_READY;
    env.body_case = METAFL__ENVELOPE__BODY_UPLOAD_READY;
    env.upload_ready = &ur;
    s_send(fx, i, &env, NULL, 0);
}

/* A signed all-zero Δ shaped like the task's θ tensors. */
static void s_update(fx_t *fx, int i, const mfl_msg_t *task_msg)
{
    const Metafl__RoundTask *task = mfl_msg_envelope(task_msg)->round_task;
    size_t nt = mfl_msg_tensor_count(task_msg), total = 0;
    mfl_tensor_t t[16];
    assert_true(nt <= 16);
    for (size_t k = 0; k < nt; k++)
        total += mfl_msg_tensor(task_msg, k)->count;
    float *zeros = calloc(total, sizeof(float));
    size_t off = 0;
    for (size_t k = 0; k < nt; k++) {
        t[k] = *mfl_msg_tensor(task_msg, k);
        t[k].data = zeros + off;
        t[k].blake2b = NULL;
        off += t[k].count;
    }
    Metafl__UpdateHeader h = METAFL__UPDATE_HEADER__INIT;
    h.round = task->round;
    h.nonce = task->nonce;
    h.site = (char *)s_names[i];
    h.n_samples = 10;
    mfl_signed_update_t su;
    char err[512] = "";
    if (mfl_update_sign(fx->id[i], &h, t, nt, &su, err, sizeof err) != 0)
        fail_msg("%s", err);
    for (size_t k = 0; k < nt; k++)
        t[k].blake2b = su.hashes + MFL_HASH_BYTES * k;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__UPDATE;
    env.body_case = METAFL__ENVELOPE__BODY_UPDATE;
    env.update = &su.update;
    s_send(fx, i, &env, t, nt);
    mfl_signed_update_clear(&su);
    free(zeros);
}

static uint64_t s_bytes(const mfl_msg_t *task_msg)
{
    uint64_t b = 0;
    for (size_t k = 0; k < mfl_msg_tensor_count(task_msg); k++)
        b += 4 * mfl_msg_tensor(task_msg, k)->count;
    return b;
}

static void test_ungranted_update_refused_granted_ones_accepted(void **state)
{
    fx_t *fx = *state;
    s_hello(fx, 0);
    s_hello(fx, 1);
    mfl_msg_t *task[2];
    for (int i = 0; i < 2; i++)
        task[i] = s_until(fx, i, METAFL__MESSAGE_KIND__ROUND_TASK);
    const Metafl__RoundTask *rt0 = mfl_msg_envelope(task[0])->round_task;

    /* site-a skips the handshake: its update is refused and not counted */
    s_update(fx, 0, task[0]);
    mfl_msg_t *rj = s_until(fx, 0, METAFL__MESSAGE_KIND__REJECT);
    assert_int_equal(mfl_msg_envelope(rj)->reject->reason,
                     METAFL__REJECT_REASON__REJECT_NOT_GRANTED);
    assert_non_null(strstr(mfl_msg_envelope(rj)->reject->text, "grant"));
    mfl_msg_destroy(&rj);

    /* both ask; one slot: site-a first */
    s_upload_ready(fx, 0, rt0, s_bytes(task[0]));
    mfl_msg_t *g = s_until(fx, 0, METAFL__MESSAGE_KIND__UPLOAD_GRANT);
    assert_int_equal(mfl_msg_envelope(g)->upload_grant->round, rt0->round);
    assert_memory_equal(mfl_msg_envelope(g)->upload_grant->nonce.data, rt0->nonce.data, 16);
    mfl_msg_destroy(&g);
    s_upload_ready(fx, 1, mfl_msg_envelope(task[1])->round_task, s_bytes(task[1]));
    /* site-a's update is in: the slot goes to site-b */
    s_update(fx, 0, task[0]);
    g = s_until(fx, 1, METAFL__MESSAGE_KIND__UPLOAD_GRANT);
    mfl_msg_destroy(&g);
    s_update(fx, 1, task[1]);
    /* the round closed with both (1 round: the final evaluation follows) */
    mfl_msg_t *ev = s_until(fx, 1, METAFL__MESSAGE_KIND__EVAL_TASK);
    mfl_msg_destroy(&ev);
    char line[4096];
    FILE *f = fopen(fx->cfg.metrics_file, "r");
    assert_non_null(f);
    int found = 0;
    while (fgets(line, sizeof line, f))
        found += strstr(line, "\"event\":\"round\"") && strstr(line, "\"accepted\":2");
    fclose(f);
    assert_int_equal(found, 1);
    for (int i = 0; i < 2; i++)
        mfl_msg_destroy(&task[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ungranted_update_refused_granted_ones_accepted,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
