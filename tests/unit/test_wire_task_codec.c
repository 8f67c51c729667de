/* The task codec: a task survives plain → message → bytes → message →
 * plain unchanged; a learner config survives config → AlgorithmSpec →
 * config; a field longer than its plain cap is refused, naming it, never
 * cut; a task without an algorithm is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "wire/task_codec.h"

static mfl_round_task_t s_task(void)
{
    mfl_round_task_t t;
    memset(&t, 0, sizeof t);
    t.round = 7;
    for (int i = 0; i < 16; i++)
        t.nonce[i] = (uint8_t)(0x30 + i);
    t.nonce_len = 16;
    strcpy(t.model_spec, "cnn4:1x28x28:16:0:p3");
    memset(t.model_hash, 0xab, 32);
    t.model_hash_len = 32;
    mfl_learner_config_t l;
    mfl_learner_config_defaults(&l, MFL_ALGO_RELATION);
    strcpy(l.model_spec, t.model_spec);
    strcpy(l.relation_spec, "relconv:32x3x3:16:8");
    l.outer_optim = MFL_OPTIM_ADAM;
    mfl_task_algorithm_from_learner(&l, 5, 1, 15, &t.algorithm);
    t.privacy.enabled = true;
    t.privacy.clip_norm = 0.5;
    t.privacy.noise_multiplier = 1.3;
    t.privacy.target_delta = 1e-5;
    t.deadline_unix_ms = 1796200000000ull;
    t.seed = 0x1122334455667788ull;
    return t;
}

static void test_round_task_survives_the_wire(void **state)
{
    (void)state;
    mfl_round_task_t t = s_task(), back;
    mfl_round_task_msg_t m;
    mfl_round_task_to_msg(&t, &m);
    size_t n = metafl__round_task__get_packed_size(&m.msg);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    metafl__round_task__pack(&m.msg, buf);
    Metafl__RoundTask *u = metafl__round_task__unpack(NULL, n, buf);
    assert_non_null(u);
    char err[160] = "";
    assert_int_equal(mfl_round_task_from_msg(u, &back, err, sizeof err), 0);
    assert_memory_equal(&back, &t, sizeof t); /* both zeroed first: padding equal too */
    metafl__round_task__free_unpacked(u, NULL);
    free(buf);
}

/* RoundTask.broadcast_base (compressed broadcast): 32 bytes survive the
 * wire; absent stays absent; any other length is refused by name. */
static void test_broadcast_base_survives_or_is_refused(void **state)
{
    (void)state;
    mfl_round_task_t t = s_task(), back;
    t.has_broadcast_base = true;
    for (int i = 0; i < 32; i++)
        t.broadcast_base[i] = (uint8_t)(0xc0 + i);
    mfl_round_task_msg_t m;
    mfl_round_task_to_msg(&t, &m);
    char err[160] = "";
    assert_int_equal(mfl_round_task_from_msg(&m.msg, &back, err, sizeof err), 0);
    assert_memory_equal(&back, &t, sizeof t);
    m.msg.broadcast_base.len = 31;
    assert_int_equal(mfl_round_task_from_msg(&m.msg, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, "broadcast_base"));
    m.msg.broadcast_base.len = 0;
    assert_int_equal(mfl_round_task_from_msg(&m.msg, &back, err, sizeof err), 0);
    assert_false(back.has_broadcast_base);
}

static void test_learner_config_survives_the_algorithm_spec(void **state)
{
    (void)state;
    for (int a = MFL_ALGO_FEDAVG; a <= MFL_ALGO_RELATION; a++) {
        mfl_learner_config_t l, back;
        mfl_learner_config_defaults(&l, (mfl_algo_kind_t)a);
        strcpy(l.model_spec, "mlp:4-8-2");
        l.inner_steps = 3;
        l.outer_lr = 0.25f;
        mfl_task_algorithm_t spec;
        mfl_task_algorithm_from_learner(&l, 2, 3, 4, &spec);
        assert_int_equal(spec.n_way, 2);
        assert_int_equal(spec.k_shot, 3);
        assert_int_equal(spec.n_query, 4);
        char err[160] = "";
        memset(&back, 0, sizeof back);
        if (mfl_task_algorithm_to_learner(&spec, l.model_spec, &back, err, sizeof err) != 0)
            fail_msg("%s: %s", mfl_algo_name((mfl_algo_kind_t)a), err);
        assert_int_equal(back.algo, l.algo);
        assert_string_equal(back.model_spec, l.model_spec);
        assert_int_equal(back.inner_steps, 3);
        assert_true(back.outer_lr == 0.25f);
        assert_int_equal(back.loss, l.loss);
        assert_int_equal(back.outer_optim, l.outer_optim);
    }
}

static void test_too_long_fields_are_refused_not_cut(void **state)
{
    (void)state;
    mfl_round_task_t t = s_task(), back;
    mfl_round_task_msg_t m;
    mfl_round_task_to_msg(&t, &m);
    char err[160] = "";
    uint8_t nonce[MFL_TASK_NONCE_MAX + 1];
    memset(nonce, 1, sizeof nonce);
    m.msg.nonce.data = nonce;
    m.msg.nonce.len = sizeof nonce;
    assert_int_equal(mfl_round_task_from_msg(&m.msg, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, "nonce"));

    mfl_round_task_to_msg(&t, &m);
    char name[MFL_TASK_TEXT_MAX + 1];
    memset(name, 'x', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    m.algorithm.relation_spec = name;
    assert_int_equal(mfl_round_task_from_msg(&m.msg, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, "algorithm.relation_spec"));

    mfl_round_task_to_msg(&t, &m);
    m.msg.algorithm = NULL;
    assert_int_equal(mfl_round_task_from_msg(&m.msg, &back, err, sizeof err), -1);
    assert_string_equal(err, "task has no algorithm");

    /* an update header naming a site longer than a site id can be */
    Metafl__UpdateHeader h = METAFL__UPDATE_HEADER__INIT;
    char site[MFL_TASK_SITE_MAX + 2];
    memset(site, 's', sizeof site - 1);
    site[sizeof site - 1] = '\0';
    h.site = site;
    mfl_update_header_t plain;
    assert_int_equal(mfl_update_header_from_msg(&h, &plain, err, sizeof err), -1);
    assert_non_null(strstr(err, "site"));
}

static void test_update_digest_errors_are_kept_not_fatal(void **state)
{
    (void)state;
    Metafl__UpdateHeader h = METAFL__UPDATE_HEADER__INIT;
    uint8_t short_hash[31] = {0};
    ProtobufCBinaryData hashes[1] = {{sizeof short_hash, short_hash}};
    h.site = (char *)"site-a";
    h.n_tensor_hashes = 1;
    h.tensor_hashes = hashes;
    mfl_update_header_t plain;
    char err[160] = "";
    assert_int_equal(mfl_update_header_from_msg(&h, &plain, err, sizeof err), 0);
    assert_string_equal(plain.digest_error, "tensor hash 0 is 31 bytes, not 32");
    assert_string_equal(plain.site, "site-a");
}

/* "Not sent" is explicit on the wire: the list survives encode/decode, a
 * measured 0 is not "not sent", and a header that lists a field yet gives
 * it a value is refused both ways, naming the field. */
static void test_not_sent_statistics_are_explicit(void **state)
{
    (void)state;
    char err[160] = "";
    mfl_update_header_t h, back;
    memset(&h, 0, sizeof h);
    h.round = 3;
    strcpy(h.site, "site-a");
    h.has_metrics = h.has_privacy = true;
    h.not_sent = MFL_STAT_LOSSES | MFL_STAT_PRE_CLIP_NORM;
    h.n_samples = 120;
    h.metrics.n_tasks = 4;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(mfl_update_header_encode(&h, NULL, 0, &buf, &len, err, sizeof err), 0);
    assert_int_equal(mfl_update_header_decode(buf, len, &back, err, sizeof err), 0);
    assert_int_equal(back.not_sent, MFL_STAT_LOSSES | MFL_STAT_PRE_CLIP_NORM);
    assert_true(back.n_samples == 120 && back.metrics.n_tasks == 4);
    /* all sent, losses measured as exactly 0: nothing listed */
    h.not_sent = 0;
    assert_int_equal(mfl_update_header_encode(&h, NULL, 0, &buf, &len, err, sizeof err), 0);
    assert_int_equal(mfl_update_header_decode(buf, len, &back, err, sizeof err), 0);
    assert_int_equal(back.not_sent, 0);
    /* the encoder refuses to withhold and send the same field */
    h.not_sent = MFL_STAT_N_SAMPLES;
    assert_int_equal(mfl_update_header_encode(&h, NULL, 0, &buf, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "not_sent"));
    free(buf);
    /* and so does the decoder, naming the field */
    Metafl__UpdateHeader m = METAFL__UPDATE_HEADER__INIT;
    Metafl__UpdateMetrics met = METAFL__UPDATE_METRICS__INIT;
    Metafl__UpdateStat list[1] = {METAFL__UPDATE_STAT__UPDATE_STAT_LOSS_AFTER};
    m.site = (char *)"site-a";
    met.loss_after = 0.25;
    m.metrics = &met;
    m.n_not_sent = 1;
    m.not_sent = list;
    assert_int_equal(mfl_update_header_from_msg(&m, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, "metrics.loss_after"));
    /* an unknown statistic is refused, not ignored */
    list[0] = (Metafl__UpdateStat)9;
    met.loss_after = 0;
    assert_int_equal(mfl_update_header_from_msg(&m, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, "not_sent"));
}

/* Distributed noise (PrivacyRecord 210-211) survives encode/decode; a
 * share count without the σ it is accounted at, or over the SecAgg site
 * limit, is refused naming the field. */
static void test_distributed_noise_fields_survive_or_are_refused(void **state)
{
    (void)state;
    char err[200] = "";
    mfl_update_header_t h, back;
    memset(&h, 0, sizeof h);
    h.round = 2;
    strcpy(h.site, "site-a");
    h.has_privacy = h.privacy.applied = true;
    h.privacy.noise_multiplier = 1.0;
    h.privacy.noise_shares = 4;
    h.privacy.sum_noise_multiplier = 2.0;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(mfl_update_header_encode(&h, NULL, 0, &buf, &len, err, sizeof err), 0);
    assert_int_equal(mfl_update_header_decode(buf, len, &back, err, sizeof err), 0);
    assert_true(back.privacy.noise_shares == 4 && back.privacy.sum_noise_multiplier == 2.0 &&
                back.privacy.noise_multiplier == 1.0);
    free(buf);
    Metafl__UpdateHeader m = METAFL__UPDATE_HEADER__INIT;
    Metafl__PrivacyRecord pr = METAFL__PRIVACY_RECORD__INIT;
    m.site = (char *)"site-a";
    m.privacy = &pr;
    pr.applied = true;
    pr.noise_shares = 4; /* no sum_noise_multiplier */
    assert_int_equal(mfl_update_header_from_msg(&m, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, "privacy.noise_shares"));
    pr.sum_noise_multiplier = 2.0;
    pr.noise_shares = MFL_TASK_SECAGG_MAX_SITES + 1;
    assert_int_equal(mfl_update_header_from_msg(&m, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, "privacy.noise_shares"));
    pr.noise_shares = 3;
    assert_int_equal(mfl_update_header_from_msg(&m, &back, err, sizeof err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_task_survives_the_wire),
        cmocka_unit_test(test_broadcast_base_survives_or_is_refused),
        cmocka_unit_test(test_learner_config_survives_the_algorithm_spec),
        cmocka_unit_test(test_too_long_fields_are_refused_not_cut),
        cmocka_unit_test(test_update_digest_errors_are_kept_not_fatal),
        cmocka_unit_test(test_not_sent_statistics_are_explicit),
        cmocka_unit_test(test_distributed_noise_fields_survive_or_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
