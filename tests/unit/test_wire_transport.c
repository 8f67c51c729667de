/* The CURVE transport end to end on 127.0.0.1: real sockets, real keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wire/client.h"
#include "wire/keys.h"
#include "wire/message.h"
#include "wire/server.h"
#include "wire/update_sign.h"

#define T_WAIT 5000 /* ms: generous upper bounds, never expected to be reached */

typedef struct {
    char dir[256];
    char allow[300];
    mfl_identity_t *coord, *alice, *bob, *mallory;
    mfl_server_t *server;
} fx_t;

static mfl_identity_t *s_make(const char *dir, const char *name)
{
    char err[512] = "", path[512];
    assert_int_equal(mfl_keys_generate(dir, name, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    mfl_identity_t *id = mfl_identity_load(path, err, sizeof err);
    if (!id)
        fail_msg("%s", err);
    return id;
}

static void s_copy_pub(const char *dir, const char *allow, const char *name)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp %s/%s.pub %s/", dir, name, allow);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/mfl-wire-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->allow, sizeof fx->allow, "%s/allow", fx->dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", fx->allow);
    assert_int_equal(system(cmd), 0);
    fx->coord = s_make(fx->dir, "coordinator");
    fx->alice = s_make(fx->dir, "alice");
    fx->bob = s_make(fx->dir, "bob");
    fx->mallory = s_make(fx->dir, "mallory");
    s_copy_pub(fx->dir, fx->allow, "alice");
    s_copy_pub(fx->dir, fx->allow, "bob");
    mfl_server_opts_t o;
    mfl_server_opts_default(&o);
    o.limits.max_total_bytes = 8u << 20; /* 2M floats: lets the oversize test stay small */
    char err[512] = "";
    fx->server = mfl_server_new("tcp://127.0.0.1:*", fx->coord, fx->allow, &o, err, sizeof err);
    if (!fx->server)
        fail_msg("%s", err);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    mfl_server_destroy(&fx->server);
    mfl_identity_destroy(&fx->coord);
    mfl_identity_destroy(&fx->alice);
    mfl_identity_destroy(&fx->bob);
    mfl_identity_destroy(&fx->mallory);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static mfl_client_t *s_client(fx_t *fx, const mfl_identity_t *id, const mfl_identity_t *pinned)
{
    char err[512] = "";
    mfl_client_opts_t o;
    mfl_client_opts_default(&o);
    o.heartbeat_ms = 500;
    o.send_timeout_ms = 1000;
    mfl_client_t *c = mfl_client_new(mfl_server_endpoint(fx->server), id,
                                     mfl_identity_public(pinned), &o, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    return c;
}

/* A client for `id` pinning the coordinator's key, connected (or the test
 * fails with the reason). */
static mfl_client_t *s_connected(fx_t *fx, const mfl_identity_t *id)
{
    char err[512] = "";
    mfl_client_t *c = s_client(fx, id, fx->coord);
    if (mfl_client_wait_connected(c, T_WAIT, err, sizeof err) != 0)
        fail_msg("%s", err);
    return c;
}

static void s_send_hello(mfl_client_t *c, const char *site)
{
    Metafl__Hello h = METAFL__HELLO__INIT;
    h.site = (char *)site;
    h.software_version = (char *)"test";
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__HELLO;
    env.body_case = METAFL__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    char err[512] = "";
    if (mfl_client_send(c, &env, NULL, 0, NULL, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
}

static void s_send_tensor(mfl_client_t *c, const mfl_tensor_t *t)
{
    Metafl__Bye b = METAFL__BYE__INIT; /* any body: the checks under test are on the frames */
    b.reason = (char *)"tensor";
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__BYE;
    env.body_case = METAFL__ENVELOPE__BODY_BYE;
    env.bye = &b;
    char err[512] = "";
    if (mfl_client_send(c, &env, t, 1, NULL, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
}

/* Server side: the next message must be rejected with `want`; the client
 * must then receive a Reject carrying the same reason. */
static void s_expect_reject(fx_t *fx, mfl_client_t *c, int want)
{
    mfl_msg_t *m = NULL;
    int reason = -1;
    char err[512] = "";
    mfl_recv_result_t r = mfl_server_recv(fx->server, T_WAIT, &m, &reason, err, sizeof err);
    if (r != MFL_RECV_REJECTED)
        fail_msg("expected a rejection (%s), got result %d", mfl_reject_reason_name(want), r);
    assert_null(m);
    if (reason != want)
        fail_msg("rejected as %s (%s), expected %s", mfl_reject_reason_name(reason), err,
                 mfl_reject_reason_name(want));
    assert_true(strlen(err) > 0);
    r = mfl_client_recv(c, T_WAIT, &m, NULL, err, sizeof err);
    assert_int_equal(r, MFL_RECV_OK);
    assert_int_equal(mfl_msg_kind(m), METAFL__MESSAGE_KIND__REJECT);
    assert_int_equal(mfl_msg_envelope(m)->reject->reason, want);
    mfl_msg_destroy(&m);
}

/* A well-behaved Hello must be served: Welcome comes back. */
static void s_expect_served(fx_t *fx, mfl_client_t *c, const char *site)
{
    s_send_hello(c, site);
    mfl_msg_t *m = NULL;
    char err[512] = "";
    mfl_recv_result_t r = mfl_server_recv(fx->server, T_WAIT, &m, NULL, err, sizeof err);
    if (r != MFL_RECV_OK)
        fail_msg("hello from %s not served: result %d: %s", site, r, err);
    assert_int_equal(mfl_msg_kind(m), METAFL__MESSAGE_KIND__HELLO);
    assert_string_equal(mfl_msg_site(m), site);
    Metafl__Welcome w = METAFL__WELCOME__INIT;
    w.coordinator = (char *)"coordinator";
    w.current_round = 7;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__WELCOME;
    env.body_case = METAFL__ENVELOPE__BODY_WELCOME;
    env.welcome = &w;
    if (mfl_server_reply(fx->server, m, &env, NULL, 0, NULL, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
    mfl_msg_destroy(&m);
    r = mfl_client_recv(c, T_WAIT, &m, NULL, err, sizeof err);
    assert_int_equal(r, MFL_RECV_OK);
    assert_int_equal(mfl_msg_kind(m), METAFL__MESSAGE_KIND__WELCOME);
    assert_int_equal(mfl_msg_envelope(m)->welcome->current_round, 7);
    mfl_msg_destroy(&m);
}

static atomic_int s_released;
static void s_release(void *hint)
{
    (void)hint;
    atomic_fetch_add(&s_released, 1);
}

static void test_hello_welcome_and_1m_tensor_round_trip(void **state)
{
    fx_t *fx = *state;
    mfl_client_t *c = s_connected(fx, fx->alice);
    char err[512] = "";
    s_expect_served(fx, c, "alice");
    assert_true(mfl_server_last_seen(fx->server, "alice") > 0);
    assert_int_equal(mfl_server_last_seen(fx->server, "bob"), 0);

    const uint64_t n = 1000000;
    float *theta = malloc(n * sizeof *theta);
    for (uint64_t i = 0; i < n; i++)
        theta[i] = (float)sin((double)i) * 0.01f;
    mfl_tensor_t t = mfl_tensor_vec("theta", theta, n);
    t.ndim = 2;
    t.shape[0] = 1000;
    t.shape[1] = 1000;

    /* coordinator -> site, zero-copy */
    Metafl__RoundTask rt = METAFL__ROUND_TASK__INIT;
    rt.round = 1;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__ROUND_TASK;
    env.body_case = METAFL__ENVELOPE__BODY_ROUND_TASK;
    env.round_task = &rt;
    atomic_store(&s_released, 0);
    if (mfl_server_send(fx->server, "alice", &env, &t, 1, s_release, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
    mfl_msg_t *m = NULL;
    assert_int_equal(mfl_client_recv(c, T_WAIT, &m, NULL, err, sizeof err), MFL_RECV_OK);
    assert_int_equal(mfl_msg_kind(m), METAFL__MESSAGE_KIND__ROUND_TASK);
    assert_int_equal(mfl_msg_tensor_count(m), 1);
    const mfl_tensor_t *got = mfl_msg_tensor(m, 0);
    assert_string_equal(got->name, "theta");
    assert_int_equal(got->ndim, 2);
    assert_int_equal(got->shape[1], 1000);
    assert_int_equal(got->count, n);
    assert_memory_equal(got->data, theta, n * 4);
    assert_int_equal(atomic_load(&s_released), 1); /* delivered, so released */

    /* site -> coordinator: send the received bytes back (copying path) */
    mfl_tensor_t back = *got;
    back.blake2b = NULL;
    s_send_tensor(c, &back);
    mfl_msg_destroy(&m);
    assert_int_equal(mfl_server_recv(fx->server, T_WAIT, &m, NULL, err, sizeof err),
                     MFL_RECV_OK);
    assert_string_equal(mfl_msg_site(m), "alice");
    assert_int_equal(mfl_msg_tensor(m, 0)->count, n);
    assert_memory_equal(mfl_msg_tensor(m, 0)->data, theta, n * 4);
    mfl_msg_destroy(&m);
    free(theta);
    mfl_client_destroy(&c);
}

static void test_unknown_key_never_gets_a_message_through(void **state)
{
    fx_t *fx = *state;
    mfl_client_t *c = s_client(fx, fx->mallory, fx->coord);
    char err[512] = "";
    assert_int_equal(mfl_client_wait_connected(c, 3000, err, sizeof err), -1);
    assert_non_null(strstr(err, "refused our key 'mallory'"));
    Metafl__Hello h = METAFL__HELLO__INIT;
    h.site = (char *)"mallory";
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__HELLO;
    env.body_case = METAFL__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    assert_int_equal(mfl_client_send(c, &env, NULL, 0, NULL, NULL, err, sizeof err), -1);
    mfl_msg_t *m = NULL;
    assert_int_equal(mfl_server_recv(fx->server, 300, &m, NULL, err, sizeof err),
                     MFL_RECV_TIMEOUT);
    assert_int_equal(mfl_server_stats(fx->server).received, 0);
    mfl_client_destroy(&c);
}

static void test_wrong_pinned_coordinator_key_fails_clearly(void **state)
{
    fx_t *fx = *state;
    mfl_client_t *c = s_client(fx, fx->alice, fx->bob); /* pins bob's key as the server's */
    char err[512] = "";
    assert_int_equal(mfl_client_wait_connected(c, 3000, err, sizeof err), -1);
    if (!strstr(err, "pinned coordinator key ('bob'"))
        fail_msg("unclear error: %s", err);
    mfl_msg_t *m = NULL;
    assert_int_equal(mfl_server_recv(fx->server, 200, &m, NULL, err, sizeof err),
                     MFL_RECV_TIMEOUT);
    mfl_client_destroy(&c);
}

static void test_bad_messages_are_rejected_and_service_goes_on(void **state)
{
    fx_t *fx = *state;
    mfl_client_t *c = s_connected(fx, fx->alice);

    /* claims to be another site */
    s_send_hello(c, "bob");
    s_expect_reject(fx, c, METAFL__REJECT_REASON__REJECT_WRONG_SITE);

    /* tampered tensor: the bytes do not match the hash in the header */
    float v[1000];
    for (int i = 0; i < 1000; i++)
        v[i] = (float)i;
    uint8_t h[MFL_HASH_BYTES];
    mfl_tensor_hash(v, 1000, h);
    v[500] = 1e-3f; /* changed after hashing */
    mfl_tensor_t t = mfl_tensor_vec("delta", v, 1000);
    t.blake2b = h;
    s_send_tensor(c, &t);
    s_expect_reject(fx, c, METAFL__REJECT_REASON__REJECT_HASH);

    /* NaN-filled */
    for (int i = 0; i < 1000; i++)
        v[i] = NAN;
    t = mfl_tensor_vec("delta", v, 1000);
    s_send_tensor(c, &t);
    s_expect_reject(fx, c, METAFL__REJECT_REASON__REJECT_NONFINITE);

    /* oversized: 3M floats = 12 MB against the server's 8 MB */
    float *big = calloc(3000000, sizeof *big);
    t = mfl_tensor_vec("big", big, 3000000);
    s_send_tensor(c, &t);
    s_expect_reject(fx, c, METAFL__REJECT_REASON__REJECT_TOO_LARGE);
    free(big);

    /* still served */
    s_expect_served(fx, c, "alice");
    assert_true(mfl_server_stats(fx->server).rejected >= 4);
    mfl_client_destroy(&c);
}

static void s_send_update(mfl_client_t *c, const mfl_identity_t *signer, uint32_t round,
                          const uint8_t nonce[16], const float *d, uint64_t n, int corrupt_sig)
{
    Metafl__UpdateHeader hdr = METAFL__UPDATE_HEADER__INIT;
    hdr.round = round;
    hdr.nonce.data = (uint8_t *)nonce;
    hdr.nonce.len = 16;
    hdr.site = (char *)mfl_identity_name(signer);
    hdr.n_samples = 42;
    mfl_tensor_t t = mfl_tensor_vec("delta", d, n);
    mfl_signed_update_t su;
    char err[512] = "";
    if (mfl_update_sign(signer, &hdr, &t, 1, &su, err, sizeof err) != 0)
        fail_msg("%s", err);
    if (corrupt_sig)
        su.signature[3] ^= 1;
    t.blake2b = su.hashes;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__UPDATE;
    env.body_case = METAFL__ENVELOPE__BODY_UPDATE;
    env.update = &su.update;
    if (mfl_client_send(c, &env, &t, 1, NULL, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
    mfl_signed_update_clear(&su);
}

static void test_signed_updates_verify_and_replays_are_caught(void **state)
{
    fx_t *fx = *state;
    mfl_client_t *c = s_connected(fx, fx->alice);
    char err[512] = "";
    uint8_t nonce1[16], nonce2[16];
    memset(nonce1, 0x11, 16);
    memset(nonce2, 0x22, 16);
    float d[256];
    for (int i = 0; i < 256; i++)
        d[i] = 0.001f * (float)i;

    /* a good update: verified by the server, the header is available */
    s_send_update(c, fx->alice, 3, nonce1, d, 256, 0);
    mfl_msg_t *m = NULL;
    assert_int_equal(mfl_server_recv(fx->server, T_WAIT, &m, NULL, err, sizeof err),
                     MFL_RECV_OK);
    const Metafl__UpdateHeader *h = mfl_msg_update_header(m);
    assert_non_null(h);
    assert_string_equal(h->site, "alice");
    assert_int_equal(h->n_samples, 42);
    int reason = 0;
    assert_int_equal(mfl_update_check_fresh(h, 3, nonce1, 16, &reason, err, sizeof err), 0);
    /* the same signed update replayed into a later round or another run */
    assert_int_equal(mfl_update_check_fresh(h, 4, nonce1, 16, &reason, err, sizeof err), -1);
    assert_int_equal(reason, METAFL__REJECT_REASON__REJECT_WRONG_ROUND);
    assert_int_equal(mfl_update_check_fresh(h, 3, nonce2, 16, &reason, err, sizeof err), -1);
    assert_int_equal(reason, METAFL__REJECT_REASON__REJECT_REPLAY);
    /* the coordinator's own reject reaches the site */
    assert_int_equal(mfl_server_reject(fx->server, m, METAFL__REJECT_REASON__REJECT_REPLAY, 3,
                                       err, err, sizeof err), 0);
    mfl_msg_destroy(&m);
    assert_int_equal(mfl_client_recv(c, T_WAIT, &m, NULL, err, sizeof err), MFL_RECV_OK);
    assert_int_equal(mfl_msg_envelope(m)->reject->reason, METAFL__REJECT_REASON__REJECT_REPLAY);
    mfl_msg_destroy(&m);

    /* a broken signature */
    s_send_update(c, fx->alice, 3, nonce1, d, 256, 1);
    s_expect_reject(fx, c, METAFL__REJECT_REASON__REJECT_SIGNATURE);
    /* bob's signed update sent over alice's connection: not alice's key */
    s_send_update(c, fx->bob, 3, nonce1, d, 256, 0);
    s_expect_reject(fx, c, METAFL__REJECT_REASON__REJECT_SIGNATURE);
    s_expect_served(fx, c, "alice");
    mfl_client_destroy(&c);
}

/* Big updates queued back to back are decoded two at a time (the second on
 * a helper thread, handed out by the next recv): each is still verified on
 * its own, a bad one in the middle is rejected, and the order is kept. */
static void test_queued_big_updates_keep_order_and_checks(void **state)
{
    fx_t *fx = *state;
    mfl_client_t *c = s_connected(fx, fx->alice);
    char err[512] = "";
    uint8_t nonce[16];
    memset(nonce, 0x33, 16);
    const uint64_t n = 300000; /* 1.2 MB: above the server's parallel-decode size */
    float *d = malloc(n * sizeof *d);
    for (uint64_t i = 0; i < n; i++)
        d[i] = 1e-6f * (float)i;
    s_send_update(c, fx->alice, 1, nonce, d, n, 0);
    s_send_update(c, fx->alice, 2, nonce, d, n, 1); /* broken signature */
    s_send_update(c, fx->alice, 3, nonce, d, n, 0);
    s_send_update(c, fx->alice, 4, nonce, d, n, 0);
    mfl_msg_t *m = NULL;
    int reason = 0;
    assert_int_equal(mfl_server_recv(fx->server, T_WAIT, &m, &reason, err, sizeof err),
                     MFL_RECV_OK);
    assert_int_equal(mfl_msg_update_header(m)->round, 1);
    assert_memory_equal(mfl_msg_tensor(m, 0)->data, d, n * sizeof *d);
    mfl_msg_destroy(&m);
    assert_int_equal(mfl_server_recv(fx->server, T_WAIT, &m, &reason, err, sizeof err),
                     MFL_RECV_REJECTED);
    assert_null(m);
    assert_int_equal(reason, METAFL__REJECT_REASON__REJECT_SIGNATURE);
    assert_non_null(strstr(err, "alice"));
    for (uint32_t round = 3; round <= 4; round++) {
        assert_int_equal(mfl_server_recv(fx->server, T_WAIT, &m, &reason, err, sizeof err),
                         MFL_RECV_OK);
        assert_int_equal(mfl_msg_update_header(m)->round, round);
        assert_string_equal(mfl_msg_site(m), "alice");
        assert_memory_equal(mfl_msg_tensor(m, 0)->data, d, n * sizeof *d);
        mfl_msg_destroy(&m);
    }
    /* the rejection reached the site */
    assert_int_equal(mfl_client_recv(c, T_WAIT, &m, NULL, err, sizeof err), MFL_RECV_OK);
    assert_int_equal(mfl_msg_envelope(m)->reject->reason,
                     METAFL__REJECT_REASON__REJECT_SIGNATURE);
    mfl_msg_destroy(&m);
    free(d);
    mfl_client_destroy(&c);
}

static void test_two_sites_are_routed_by_authenticated_id(void **state)
{
    fx_t *fx = *state;
    mfl_client_t *a = s_client(fx, fx->alice, fx->coord), *b = s_client(fx, fx->bob, fx->coord);
    char err[512] = "";
    if (mfl_client_wait_connected(a, T_WAIT, err, sizeof err) != 0 ||
        mfl_client_wait_connected(b, T_WAIT, err, sizeof err) != 0)
        fail_msg("%s", err);
    s_send_hello(a, "alice");
    s_send_hello(b, "bob");
    int seen_a = 0, seen_b = 0;
    for (int i = 0; i < 2; i++) {
        mfl_msg_t *m = NULL;
        assert_int_equal(mfl_server_recv(fx->server, T_WAIT, &m, NULL, err, sizeof err),
                         MFL_RECV_OK);
        seen_a += strcmp(mfl_msg_site(m), "alice") == 0;
        seen_b += strcmp(mfl_msg_site(m), "bob") == 0;
        mfl_msg_destroy(&m);
    }
    assert_int_equal(seen_a, 1);
    assert_int_equal(seen_b, 1);
    /* each site gets exactly its own message, addressed by site id */
    const char *sites[2] = {"alice", "bob"};
    for (int i = 0; i < 2; i++) {
        Metafl__Welcome w = METAFL__WELCOME__INIT;
        w.coordinator = (char *)"coordinator";
        w.run_id = (char *)sites[i];
        Metafl__Envelope env = METAFL__ENVELOPE__INIT;
        env.kind = METAFL__MESSAGE_KIND__WELCOME;
        env.body_case = METAFL__ENVELOPE__BODY_WELCOME;
        env.welcome = &w;
        if (mfl_server_send(fx->server, sites[i], &env, NULL, 0, NULL, NULL, err, sizeof err) != 0)
            fail_msg("%s", err);
    }
    mfl_msg_t *m = NULL;
    assert_int_equal(mfl_client_recv(a, T_WAIT, &m, NULL, err, sizeof err), MFL_RECV_OK);
    assert_string_equal(mfl_msg_envelope(m)->welcome->run_id, "alice");
    mfl_msg_destroy(&m);
    assert_int_equal(mfl_client_recv(b, T_WAIT, &m, NULL, err, sizeof err), MFL_RECV_OK);
    assert_string_equal(mfl_msg_envelope(m)->welcome->run_id, "bob");
    mfl_msg_destroy(&m);
    assert_int_equal(mfl_client_recv(a, 100, &m, NULL, err, sizeof err), MFL_RECV_TIMEOUT);
    /* an unknown site cannot be addressed */
    Metafl__Bye bye = METAFL__BYE__INIT;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__BYE;
    env.body_case = METAFL__ENVELOPE__BODY_BYE;
    env.bye = &bye;
    assert_int_equal(mfl_server_send(fx->server, "carol", &env, NULL, 0, NULL, NULL, err,
                                     sizeof err), -1);
    assert_non_null(strstr(err, "carol"));
    assert_true(mfl_server_last_seen(fx->server, "bob") > 0);
    mfl_client_destroy(&a);
    mfl_client_destroy(&b);
}

static void test_app_heartbeats_refresh_liveness_silently(void **state)
{
    fx_t *fx = *state;
    mfl_client_t *c = s_connected(fx, fx->alice); /* heartbeat_ms 500 */
    char err[512] = "";
    s_expect_served(fx, c, "alice");
    uint64_t t1 = mfl_server_last_seen(fx->server, "alice");
    uint64_t received = mfl_server_stats(fx->server).received;
    mfl_msg_t *m = NULL;
    /* the site waits for work; its recv sends heartbeats meanwhile */
    assert_int_equal(mfl_client_recv(c, 1200, &m, NULL, err, sizeof err), MFL_RECV_TIMEOUT);
    /* the coordinator never sees them as messages, only as liveness */
    assert_int_equal(mfl_server_recv(fx->server, 300, &m, NULL, err, sizeof err),
                     MFL_RECV_TIMEOUT);
    assert_true(mfl_server_stats(fx->server).received > received);
    assert_true(mfl_server_last_seen(fx->server, "alice") > t1);
    mfl_client_destroy(&c);
}

/* The connection guard's count of what a connection holds inside libzmq
 * (kernel bytes received minus the wire size of every message the server
 * took) must come back to the handshake's few hundred bytes once the
 * server has read everything: any drift per frame would, over a long
 * run, cut an honest site (the bound is max_message_bytes + 4 MiB). Small
 * and large frames (the two ZMTP header sizes). */
static void test_connection_backlog_count_is_exact_for_honest_traffic(void **state)
{
    fx_t *fx = *state;
    mfl_client_t *c = s_connected(fx, fx->alice);
    char err[512] = "";
    s_expect_served(fx, c, "alice");
    const uint64_t n = 300000; /* 1.2 MB frames (over 255 bytes: 9-byte ZMTP header) */
    float *x = calloc(n, sizeof *x);
    assert_non_null(x);
    for (int k = 0; k < 40; k++) {
        Metafl__Envelope env = METAFL__ENVELOPE__INIT;
        Metafl__Bye b = METAFL__BYE__INIT;
        b.reason = "x";
        env.kind = METAFL__MESSAGE_KIND__BYE;
        env.body_case = METAFL__ENVELOPE__BODY_BYE;
        env.bye = &b;
        mfl_tensor_t t = mfl_tensor_vec("x", x, (uint64_t)(k % 4 == 0 ? n : (uint64_t)k * 7));
        if (mfl_client_send(c, &env, &t, 1, NULL, NULL, err, sizeof err) != 0)
            fail_msg("%s", err);
    }
    for (int k = 0; k < 40; k++) {
        mfl_msg_t *m = NULL;
        assert_int_equal(mfl_server_recv(fx->server, T_WAIT, &m, NULL, err, sizeof err),
                         MFL_RECV_OK);
        mfl_msg_destroy(&m);
    }
    /* a few guard ticks after the last read */
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    mfl_server_stats_t st = mfl_server_stats(fx->server);
    assert_true(st.max_backlog_bytes > 0);      /* it did measure something */
    assert_true(st.backlog_bytes_now <= 2048);  /* the CURVE handshake, nothing more */
    assert_int_equal(st.conns_cut, 0);
    free(x);
    mfl_client_destroy(&c);
}

static void test_binding_a_taken_endpoint_fails_with_its_name(void **state)
{
    fx_t *fx = *state;
    char err[512] = "";
    mfl_server_t *again = mfl_server_new(mfl_server_endpoint(fx->server), fx->coord, fx->allow,
                                         NULL, err, sizeof err);
    assert_null(again);
    assert_non_null(strstr(err, mfl_server_endpoint(fx->server)));
    assert_null(mfl_server_new("tcp://127.0.0.1:*", fx->coord, "/nonexistent-allow-dir", NULL,
                               err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent-allow-dir"));
}

/* An allow-listed peer that speaks raw ZeroMQ, not the API: garbage and
 * floods are rejected, and the socket stays in step for the next message. */
static void test_raw_garbage_from_an_admitted_key_is_rejected(void **state)
{
    fx_t *fx = *state;
    void *ctx = zmq_ctx_new();
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, mfl_identity_public(fx->coord)->curve_pk_z85, 41);
    zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, mfl_identity_public(fx->alice)->curve_pk_z85, 41);
    zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, mfl_identity_curve_sk_z85(fx->alice), 41);
    assert_int_equal(zmq_connect(d, mfl_server_endpoint(fx->server)), 0);

    char err[512] = "";
    int reason = -1;
    mfl_msg_t *m = NULL;
    assert_int_equal(zmq_send(d, "\xff\xff\xff", 3, 0), 3);
    assert_int_equal(mfl_server_recv(fx->server, T_WAIT, &m, &reason, err, sizeof err),
                     MFL_RECV_REJECTED);
    assert_int_equal(reason, METAFL__REJECT_REASON__REJECT_BAD_MESSAGE);
    assert_non_null(strstr(err, "alice"));

    /* 1100 frames against a limit of 1024 */
    for (int i = 0; i < 1100; i++)
        assert_int_equal(zmq_send(d, "abcd", 4, i + 1 < 1100 ? ZMQ_SNDMORE : 0), 4);
    assert_int_equal(mfl_server_recv(fx->server, T_WAIT, &m, &reason, err, sizeof err),
                     MFL_RECV_REJECTED);
    assert_int_equal(reason, METAFL__REJECT_REASON__REJECT_TOO_LARGE);

    /* both rejections came back to this peer, as Reject envelopes */
    for (int k = 0; k < 2; k++) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        assert_true(zmq_msg_recv(&f, d, 0) >= 0);
        assert_false(zmq_msg_more(&f));
        int why = 0;
        mfl_msg_t *r = mfl_msg_decode(&f, 1, NULL, &why, err, sizeof err);
        zmq_msg_close(&f);
        assert_non_null(r);
        assert_int_equal(mfl_msg_kind(r), METAFL__MESSAGE_KIND__REJECT);
        mfl_msg_destroy(&r);
    }
    zmq_close(d);
    zmq_ctx_term(ctx);

    mfl_client_t *c = s_client(fx, fx->alice, fx->coord);
    if (mfl_client_wait_connected(c, T_WAIT, err, sizeof err) != 0)
        fail_msg("%s", err);
    s_expect_served(fx, c, "alice");
    mfl_client_destroy(&c);
}

/* A peer of protocol 1 (before upload flow control) is turned away at its
 * first message with a Reject it can read: version 1, REJECT_VERSION, text
 * naming both versions; not a silent drop that would leave it waiting. */
static void test_old_protocol_peer_gets_a_readable_version_reject(void **state)
{
    fx_t *fx = *state;
    mfl_client_t *c = s_connected(fx, fx->alice);
    char err[512] = "";
    Metafl__Hello h = METAFL__HELLO__INIT;
    h.site = (char *)"alice";
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.protocol_version = 1; /* what a metafl 1 site sends */
    env.kind = METAFL__MESSAGE_KIND__HELLO;
    env.body_case = METAFL__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    assert_int_equal(mfl_client_send(c, &env, NULL, 0, NULL, NULL, err, sizeof err), 0);
    mfl_msg_t *m = NULL;
    int reason = -1;
    assert_int_equal(mfl_server_recv(fx->server, T_WAIT, &m, &reason, err, sizeof err),
                     MFL_RECV_REJECTED);
    assert_int_equal(reason, METAFL__REJECT_REASON__REJECT_VERSION);
    assert_int_equal(mfl_client_recv(c, T_WAIT, &m, NULL, err, sizeof err), MFL_RECV_OK);
    const Metafl__Envelope *r = mfl_msg_envelope(m);
    assert_int_equal(r->kind, METAFL__MESSAGE_KIND__REJECT);
    assert_int_equal(r->protocol_version, MFL_WIRE_OLDEST_REJECT_VERSION);
    assert_int_equal(r->reject->reason, METAFL__REJECT_REASON__REJECT_VERSION);
    assert_non_null(strstr(r->reject->text, "protocol version 1"));
    mfl_msg_destroy(&m);
    mfl_client_destroy(&c);
}

/* UploadReady names no site: the server passes it on with the
 * authenticated one; UploadGrant from a site is a coordinator-only kind. */
static void test_upload_ready_passes_and_a_site_grant_is_refused(void **state)
{
    fx_t *fx = *state;
    mfl_client_t *c = s_connected(fx, fx->alice);
    char err[512] = "";
    uint8_t nonce[16] = {1, 2, 3};
    Metafl__UploadReady ur = METAFL__UPLOAD_READY__INIT;
    ur.round = 4;
    ur.nonce.data = nonce;
    ur.nonce.len = sizeof nonce;
    ur.update_bytes = 4000;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__UPLOAD_READY;
    env.body_case = METAFL__ENVELOPE__BODY_UPLOAD_READY;
    env.upload_ready = &ur;
    assert_int_equal(mfl_client_send(c, &env, NULL, 0, NULL, NULL, err, sizeof err), 0);
    mfl_msg_t *m = NULL;
    if (mfl_server_recv(fx->server, T_WAIT, &m, NULL, err, sizeof err) != MFL_RECV_OK)
        fail_msg("%s", err);
    assert_int_equal(mfl_msg_kind(m), METAFL__MESSAGE_KIND__UPLOAD_READY);
    assert_string_equal(mfl_msg_site(m), "alice");
    assert_int_equal(mfl_msg_envelope(m)->upload_ready->update_bytes, 4000);
    mfl_msg_destroy(&m);

    Metafl__UploadGrant g = METAFL__UPLOAD_GRANT__INIT;
    g.round = 4;
    Metafl__Envelope genv = METAFL__ENVELOPE__INIT;
    genv.kind = METAFL__MESSAGE_KIND__UPLOAD_GRANT;
    genv.body_case = METAFL__ENVELOPE__BODY_UPLOAD_GRANT;
    genv.upload_grant = &g;
    assert_int_equal(mfl_client_send(c, &genv, NULL, 0, NULL, NULL, err, sizeof err), 0);
    int reason = -1;
    assert_int_equal(mfl_server_recv(fx->server, T_WAIT, &m, &reason, err, sizeof err),
                     MFL_RECV_REJECTED);
    assert_int_equal(reason, METAFL__REJECT_REASON__REJECT_BAD_MESSAGE);
    mfl_client_destroy(&c);
}

static void s_on_connect(mfl_client_t *client, unsigned n, void *arg)
{
    (void)client;
    *(unsigned *)arg = n;
}

static void test_reconnect_calls_the_hook_again(void **state)
{
    fx_t *fx = *state;
    char endpoint[256], err[512] = "";
    snprintf(endpoint, sizeof endpoint, "%s", mfl_server_endpoint(fx->server));
    mfl_client_t *c = s_client(fx, fx->alice, fx->coord);
    unsigned seen = 0;
    mfl_client_on_connect(c, s_on_connect, &seen);
    if (mfl_client_wait_connected(c, T_WAIT, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(seen, 1);
    s_expect_served(fx, c, "alice");

    /* the coordinator restarts on the same port */
    mfl_server_destroy(&fx->server);
    fx->server = mfl_server_new(endpoint, fx->coord, fx->allow, NULL, err, sizeof err);
    if (!fx->server)
        fail_msg("%s", err);
    mfl_msg_t *m = NULL;
    for (int i = 0; i < 100 && seen < 2; i++)
        (void)mfl_client_recv(c, 100, &m, NULL, err, sizeof err);
    assert_int_equal(seen, 2);
    s_expect_served(fx, c, "alice");
    mfl_client_destroy(&c);
}

static void test_reload_admits_a_new_site(void **state)
{
    fx_t *fx = *state;
    mfl_identity_t *carol = s_make(fx->dir, "carol");
    char err[512] = "";
    mfl_client_t *c = s_client(fx, carol, fx->coord);
    assert_int_equal(mfl_client_wait_connected(c, 1000, err, sizeof err), -1);
    mfl_client_destroy(&c);
    s_copy_pub(fx->dir, fx->allow, "carol");
    assert_int_equal(mfl_server_reload(fx->server, err, sizeof err), 0);
    c = s_client(fx, carol, fx->coord);
    if (mfl_client_wait_connected(c, T_WAIT, err, sizeof err) != 0)
        fail_msg("%s", err);
    s_expect_served(fx, c, "carol");
    mfl_client_destroy(&c);
    mfl_identity_destroy(&carol);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_welcome_and_1m_tensor_round_trip, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_never_gets_a_message_through, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wrong_pinned_coordinator_key_fails_clearly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_messages_are_rejected_and_service_goes_on,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_signed_updates_verify_and_replays_are_caught, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queued_big_updates_keep_order_and_checks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_two_sites_are_routed_by_authenticated_id, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_app_heartbeats_refresh_liveness_silently, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_binding_a_taken_endpoint_fails_with_its_name, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_raw_garbage_from_an_admitted_key_is_rejected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_calls_the_hook_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_protocol_peer_gets_a_readable_version_reject,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_ready_passes_and_a_site_grant_is_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_admits_a_new_site, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_backlog_count_is_exact_for_honest_traffic,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
