/* The coordinator's transport adapter sends θ as the engine's tensor views,
 * as they are: a tensor of MFL_TENSOR_MAX_DIMS dimensions arrives with its
 * whole shape, and one with more is refused with an error naming it, never
 * sent with a cut shape (the adapter used to clamp ndim to the wire's
 * maximum when it copied the engine's views). Real CURVE sockets on
 * 127.0.0.1, one raw site client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/coord_wire.h"
#include "wire/client.h"
#include "wire/keys.h"

#include "tmpdir.h"

#define T_WAIT_MS 10000 /* generous upper bound, never expected to be reached */

typedef struct {
    char dir[256];
    mfl_coord_wire_t *wire;
    mfl_identity_t *id;
    mfl_client_t *client;
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    char err[512] = "", path[400], path2[400];
    assert_int_equal(s_tmpdir_make(fx->dir, sizeof fx->dir, "coord-wire"), 0);
    snprintf(path, sizeof path, "%s/keys", fx->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path2, sizeof path2, "%s/allow", fx->dir);
    assert_int_equal(mkdir(path2, 0700), 0);
    assert_int_equal(mfl_keys_generate(path, "coordinator", err, sizeof err), 0);
    assert_int_equal(mfl_keys_generate(path2, "site-a", err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/keys/coordinator.key", fx->dir);
    fx->wire = mfl_coord_wire_new("tcp://127.0.0.1:*", path, path2, 1u << 20, 500, err,
                                  sizeof err);
    if (!fx->wire)
        fail_msg("%s", err);
    mfl_public_key_t coord_pub;
    snprintf(path, sizeof path, "%s/keys/coordinator.pub", fx->dir);
    assert_int_equal(mfl_public_key_load(path, &coord_pub, err, sizeof err), 0);
    /* the site's secret key lives beside its public one in allow/ here */
    snprintf(path, sizeof path, "%s/allow/site-a.key", fx->dir);
    fx->id = mfl_identity_load(path, err, sizeof err);
    assert_non_null(fx->id);
    fx->client = mfl_client_new(mfl_coord_wire_endpoint(fx->wire), fx->id, &coord_pub, NULL,
                                err, sizeof err);
    if (!fx->client)
        fail_msg("%s", err);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    mfl_client_destroy(&fx->client);
    mfl_identity_destroy(&fx->id);
    mfl_coord_wire_destroy(&fx->wire);
    s_tmpdir_remove(fx->dir);
    free(fx);
    return 0;
}

/* The site says Hello and the adapter receives it, so it knows the route. */
static void s_hello(fx_t *fx)
{
    char err[512] = "";
    if (mfl_client_wait_connected(fx->client, T_WAIT_MS, err, sizeof err) != 0)
        fail_msg("%s", err);
    Metafl__Hello h = METAFL__HELLO__INIT;
    h.site = (char *)"site-a";
    h.software_version = (char *)MFL_VERSION;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__HELLO;
    env.body_case = METAFL__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    if (mfl_client_send(fx->client, &env, NULL, 0, NULL, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
    for (int waited = 0; waited < T_WAIT_MS; waited += 20) {
        mfl_wire_event_t ev;
        int rc = mfl_coord_wire_recv(fx->wire, 20, &ev, err, sizeof err);
        if (rc < 0)
            fail_msg("%s", err);
        if (rc == 1 && ev.kind == MFL_MSG_HELLO) {
            assert_string_equal(ev.site, "site-a");
            mfl_coord_wire_release(fx->wire);
            return;
        }
    }
    fail_msg("no Hello");
}

static void test_round_task_keeps_every_dimension_and_refuses_too_many(void **state)
{
    fx_t *fx = *state;
    char err[512] = "";
    s_hello(fx);

    enum { N = 1 << MFL_TENSOR_MAX_DIMS }; /* 2 along every dimension */
    float data[N];
    for (int i = 0; i < N; i++)
        data[i] = (float)i / N;
    mfl_tensor_t t;
    memset(&t, 0, sizeof t);
    t.name = "deep";
    t.ndim = MFL_TENSOR_MAX_DIMS;
    t.count = 1;
    for (size_t d = 0; d < MFL_TENSOR_MAX_DIMS; d++) {
        t.shape[d] = 2;
        t.count *= t.shape[d];
    }
    assert_int_equal(t.count, N);
    t.data = data;

    mfl_round_task_t task;
    memset(&task, 0, sizeof task);
    task.round = 1;
    task.model_hash[0] = 1;
    task.model_hash_len = 32;

    /* MFL_TENSOR_MAX_DIMS dimensions: sent, every one arrives */
    if (mfl_coord_wire_send_round_task(fx->wire, "site-a", &task, &t, 1, err, sizeof err) != 0)
        fail_msg("%s", err);
    mfl_msg_t *m = NULL;
    for (int waited = 0; !m && waited < T_WAIT_MS; waited += 20)
        if (mfl_client_recv(fx->client, 20, &m, NULL, err, sizeof err) != MFL_RECV_OK)
            m = NULL;
    assert_non_null(m);
    assert_int_equal(mfl_msg_kind(m), METAFL__MESSAGE_KIND__ROUND_TASK);
    assert_int_equal(mfl_msg_tensor_count(m), 1);
    const mfl_tensor_t *got = mfl_msg_tensor(m, 0);
    assert_int_equal(got->ndim, MFL_TENSOR_MAX_DIMS);
    for (size_t d = 0; d < MFL_TENSOR_MAX_DIMS; d++)
        assert_int_equal(got->shape[d], t.shape[d]);
    assert_memory_equal(got->data, data, sizeof data);
    mfl_msg_destroy(&m);

    /* one more: refused with the tensor named, nothing sent */
    t.ndim = MFL_TENSOR_MAX_DIMS + 1;
    err[0] = '\0';
    assert_int_equal(
        mfl_coord_wire_send_round_task(fx->wire, "site-a", &task, &t, 1, err, sizeof err), -1);
    char want[64];
    snprintf(want, sizeof want, "%d dimensions (max %d)", MFL_TENSOR_MAX_DIMS + 1,
             MFL_TENSOR_MAX_DIMS);
    if (!strstr(err, "'deep'") || !strstr(err, want))
        fail_msg("error does not name the tensor and its dimensions: %s", err);
    assert_int_equal(mfl_client_recv(fx->client, 200, &m, NULL, err, sizeof err),
                     MFL_RECV_TIMEOUT);
}

/* The adapter's copy of θ lives only while a send holds it: once the site
 * has all of θ, the next receive drops it (the engine's θ is the only copy
 * through the collection); a later send of the same θ copies it again,
 * with the hashes kept from the first (the site verifies them). */
static void test_snapshot_dropped_after_its_broadcast(void **state)
{
    fx_t *fx = *state;
    char err[512] = "";
    s_hello(fx);
    enum { N = 100000 }; /* several 64 KiB broadcast frames */
    float *data = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++)
        data[i] = (float)i / N;
    mfl_tensor_t t = mfl_tensor_vec("w", data, N);
    mfl_round_task_t task;
    memset(&task, 0, sizeof task);
    task.round = 1;
    task.model_hash[0] = 7;
    task.model_hash_len = 32;
    for (int send = 0; send < 2; send++) {
        if (mfl_coord_wire_send_round_task(fx->wire, "site-a", &task, &t, 1, err, sizeof err))
            fail_msg("%s", err);
        mfl_msg_t *m = NULL;
        for (int waited = 0; !m && waited < T_WAIT_MS; waited += 20)
            if (mfl_client_recv(fx->client, 20, &m, NULL, err, sizeof err) != MFL_RECV_OK)
                m = NULL;
        assert_non_null(m); /* the decoder checked every tensor hash */
        assert_int_equal(mfl_msg_tensor(m, 0)->count, N);
        assert_memory_equal(mfl_msg_tensor(m, 0)->data, data, N * sizeof(float));
        mfl_msg_destroy(&m);
        /* all of θ arrived, so ZeroMQ released every frame: the next
         * receive drops the copy (poll: the release may come a moment
         * after the bytes) */
        size_t held = 1;
        for (int waited = 0; held && waited < T_WAIT_MS; waited += 20) {
            mfl_wire_event_t ev;
            if (mfl_coord_wire_recv(fx->wire, 20, &ev, err, sizeof err) < 0)
                fail_msg("%s", err);
            held = mfl_coord_wire_snapshot_bytes(fx->wire);
        }
        assert_int_equal(held, 0);
    }
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_task_keeps_every_dimension_and_refuses_too_many,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_dropped_after_its_broadcast, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
