/* The site worker: a round is deterministic given (θ, task, site), its Δ
 * lowers the site's own loss, the header is signed over what was sent,
 * and evaluation reports adapted / before / local-only scores. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "fed/quant.h"
#include "metafl.pb-c.h" /* to read the signed header as the coordinator does */
#include "site/site_worker.h"

#define NF 4

/* A separable binary problem with a little label noise: y = [w·x + b > 0]. */
static mfl_dataset_t *s_make_data(size_t n, uint64_t seed)
{
    mfl_dataset_t *d = mfl_dataset_new(n, NF);
    assert_non_null(d);
    d->n_classes = 2;
    mfl_rng_t r;
    mfl_rng_seed(&r, seed, 1);
    const float w[NF] = {1.5f, -2.0f, 0.7f, 0.0f};
    for (size_t i = 0; i < n; i++) {
        float s = 0.3f;
        for (size_t j = 0; j < NF; j++) {
            float v = mfl_rng_normal(&r);
            d->x[i * NF + j] = v;
            s += w[j] * v;
        }
        s += 0.3f * mfl_rng_normal(&r);
        d->y[i] = s > 0 ? 1.0f : 0.0f;
    }
    return d;
}

static mfl_site_worker_t *s_worker(const char *site, const uint8_t *sk)
{
    char err[256] = "";
    mfl_site_worker_t *w = mfl_site_worker_new_from_data(site, s_make_data(200, 7),
                                                         s_make_data(100, 8), sk, err,
                                                         sizeof(err));
    if (!w)
        fail_msg("worker: %s", err);
    return w;
}

typedef struct {
    mfl_round_task_t task;
    uint8_t nonce[16];
} s_task_t;

static void s_task_init(s_task_t *t, const char *algo, uint64_t seed)
{
    memset(&t->task, 0, sizeof t->task);
    snprintf(t->task.algorithm.name, sizeof t->task.algorithm.name, "%s", algo);
    snprintf(t->task.algorithm.loss, sizeof t->task.algorithm.loss, "bce");
    t->task.algorithm.batch_size = 32;
    for (size_t i = 0; i < sizeof(t->nonce); i++)
        t->nonce[i] = (uint8_t)(i * 13 + 1);
    t->task.round = 3;
    memcpy(t->task.nonce, t->nonce, sizeof t->nonce);
    t->task.nonce_len = sizeof(t->nonce);
    snprintf(t->task.model_spec, sizeof t->task.model_spec, "mlp:4-8-1");
    t->task.seed = seed;
}

/* The evaluation task for t's model and algorithm. */
static mfl_eval_task_t s_eval_task(const s_task_t *t, uint32_t round, uint32_t steps, float lr)
{
    mfl_eval_task_t ev;
    memset(&ev, 0, sizeof ev);
    ev.round = round;
    memcpy(ev.nonce, t->task.nonce, t->task.nonce_len);
    ev.nonce_len = t->task.nonce_len;
    memcpy(ev.model_spec, t->task.model_spec, sizeof ev.model_spec);
    ev.algorithm = t->task.algorithm;
    ev.adapt_steps = steps;
    ev.adapt_lr = lr;
    return ev;
}

/* θ sized for the task's learner, from a fixed seed. */
static float *s_theta(size_t *n)
{
    mfl_learner_config_t c;
    memset(&c, 0, sizeof(c));
    mfl_learner_config_defaults(&c, MFL_ALGO_REPTILE);
    snprintf(c.model_spec, sizeof(c.model_spec), "mlp:4-8-1");
    c.loss = MFL_LOSS_BCE;
    char err[256];
    mfl_learner_t *l = mfl_learner_new(&c, 64, err, sizeof(err));
    assert_non_null(l);
    *n = mfl_learner_n_state(l);
    float *theta = malloc(*n * sizeof(float));
    assert_non_null(theta);
    mfl_learner_init_state(l, theta, 99);
    mfl_learner_destroy(&l);
    return theta;
}

static void test_same_task_and_site_give_identical_delta_bits(void **state)
{
    (void)state;
    size_t n;
    float *theta = s_theta(&n);
    s_task_t t;
    s_task_init(&t, "reptile", 1234);
    mfl_site_worker_t *a = s_worker("hospital-a", NULL);
    mfl_site_worker_t *b = s_worker("hospital-a", NULL);
    mfl_site_worker_t *c = s_worker("hospital-b", NULL);
    mfl_site_round_result_t ra, rb, rc;
    char err[256] = "";
    assert_int_equal(mfl_site_worker_round(a, &t.task, theta, n, &ra, err, sizeof(err)), 0);
    assert_int_equal(mfl_site_worker_round(b, &t.task, theta, n, &rb, err, sizeof(err)), 0);
    assert_int_equal(mfl_site_worker_round(c, &t.task, theta, n, &rc, err, sizeof(err)), 0);
    assert_int_equal(ra.n_delta, n);
    assert_memory_equal(ra.delta, rb.delta, n * sizeof(float));
    assert_int_equal(ra.header_len, rb.header_len);
    assert_memory_equal(ra.header, rb.header, ra.header_len);
    /* Another site id draws another task stream from the same data. */
    assert_true(memcmp(ra.delta, rc.delta, n * sizeof(float)) != 0);
    /* Another round seed, too. */
    s_task_init(&t, "reptile", 1235);
    assert_int_equal(mfl_site_worker_round(b, &t.task, theta, n, &rb, err, sizeof(err)), 0);
    assert_true(memcmp(ra.delta, rb.delta, n * sizeof(float)) != 0);
    mfl_site_worker_destroy(&a);
    mfl_site_worker_destroy(&b);
    mfl_site_worker_destroy(&c);
    assert_null(a);
    free(theta);
}

/* Mean BCE loss of θ over the worker's own data, through the learner's
 * evaluation with 0 steps (no adaptation). */
static double s_loss(mfl_site_worker_t *w, s_task_t *t, const float *theta, size_t n)
{
    mfl_eval_task_t ev = s_eval_task(t, t->task.round, 0, 0.0f);
    mfl_site_eval_result_t r;
    char err[256] = "";
    if (mfl_site_worker_eval(w, &ev, theta, n, &r, err, sizeof(err)))
        fail_msg("eval: %s", err);
    return r.before.loss;
}

static void test_round_delta_lowers_the_sites_own_loss(void **state)
{
    (void)state;
    const char *algos[] = {"reptile", "fomaml", "fedavg"};
    for (size_t a = 0; a < sizeof(algos) / sizeof(algos[0]); a++) {
        size_t n;
        float *theta = s_theta(&n);
        s_task_t t;
        s_task_init(&t, algos[a], 42);
        mfl_site_worker_t *w = s_worker("hospital-a", NULL);
        double before = s_loss(w, &t, theta, n);
        mfl_site_round_result_t r;
        char err[256] = "";
        if (mfl_site_worker_round(w, &t.task, theta, n, &r, err, sizeof(err)))
            fail_msg("%s: %s", algos[a], err);
        float *next = malloc(n * sizeof(float));
        assert_non_null(next);
        for (size_t i = 0; i < n; i++)
            next[i] = theta[i] + r.delta[i];
        double after = s_loss(w, &t, next, n);
        if (!(after < before))
            fail_msg("%s: loss %g -> %g did not go down", algos[a], before, after);
        assert_true(r.delta_norm > 0);
        assert_true(r.metrics.n_samples > 0);
        free(next);
        free(theta);
        mfl_site_worker_destroy(&w);
    }
}

static void test_header_is_signed_and_names_round_nonce_site(void **state)
{
    (void)state;
    assert_true(sodium_init() >= 0);
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(pk, sk);
    size_t n;
    float *theta = s_theta(&n);
    s_task_t t;
    s_task_init(&t, "reptile", 5);
    mfl_site_worker_t *w = s_worker("hospital-c", sk);
    mfl_site_round_result_t r;
    char err[256] = "";
    assert_int_equal(mfl_site_worker_round(w, &t.task, theta, n, &r, err, sizeof(err)), 0);
    assert_int_equal(r.signature_len, 64);
    assert_int_equal(crypto_sign_verify_detached(r.signature, r.header, r.header_len, pk), 0);
    Metafl__UpdateHeader *h = metafl__update_header__unpack(NULL, r.header_len, r.header);
    assert_non_null(h);
    assert_int_equal(h->round, 3);
    assert_string_equal(h->site, "hospital-c");
    assert_int_equal(h->nonce.len, 16);
    assert_memory_equal(h->nonce.data, t.nonce, 16);
    assert_int_equal(h->n_samples, 200);
    assert_true(fabs(h->delta_norm - r.delta_norm) < 1e-12);
    /* One hash per tensor, over exactly the Δ bytes that are sent. */
    assert_int_equal(h->n_tensor_hashes, mfl_site_worker_n_tensors(w));
    for (size_t i = 0; i < h->n_tensor_hashes; i++) {
        const mfl_tensor_info_t *ti = mfl_site_worker_tensor(w, i);
        uint8_t want[32];
        crypto_generichash(want, 32, (const unsigned char *)(r.delta + ti->offset),
                           ti->count * sizeof(float), NULL, 0);
        assert_memory_equal(h->tensor_hashes[i].data, want, 32);
    }
    metafl__update_header__free_unpacked(h, NULL);
    free(theta);
    mfl_site_worker_destroy(&w);
}

static void test_privacy_clips_delta_to_the_bound(void **state)
{
    (void)state;
    size_t n;
    float *theta = s_theta(&n);
    s_task_t t;
    s_task_init(&t, "reptile", 5);
    t.task.privacy.enabled = true;
    t.task.privacy.clip_norm = 1e-3;
    t.task.privacy.noise_multiplier = 0;
    mfl_site_worker_t *w = s_worker("hospital-a", NULL);
    mfl_site_round_result_t r;
    char err[256] = "";
    assert_int_equal(mfl_site_worker_round(w, &t.task, theta, n, &r, err, sizeof(err)), 0);
    assert_true(r.pre_clip_norm > 1e-3);
    assert_true(fabs(r.delta_norm - 1e-3) < 1e-6);
    free(theta);
    mfl_site_worker_destroy(&w);
}

static void test_wrong_theta_size_and_unknown_algorithm_are_refused(void **state)
{
    (void)state;
    size_t n;
    float *theta = s_theta(&n);
    s_task_t t;
    s_task_init(&t, "reptile", 5);
    mfl_site_worker_t *w = s_worker("hospital-a", NULL);
    mfl_site_round_result_t r;
    char err[256] = "";
    assert_int_equal(mfl_site_worker_round(w, &t.task, theta, n - 1, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "needs"));
    s_task_init(&t, "sgd-magic", 5);
    assert_int_equal(mfl_site_worker_round(w, &t.task, theta, n, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "sgd-magic"));
    s_task_init(&t, "reptile", 5);
    theta[0] = NAN;
    assert_int_equal(mfl_site_worker_round(w, &t.task, theta, n, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "NaN"));
    free(theta);
    mfl_site_worker_destroy(&w);
}

static void test_eval_reports_adapted_before_and_local_only(void **state)
{
    (void)state;
    size_t n;
    float *theta = s_theta(&n);
    s_task_t t;
    s_task_init(&t, "reptile", 5);
    t.task.algorithm.k_shot = 10;
    mfl_eval_task_t ev = s_eval_task(&t, 4, 20, 0.1f);
    mfl_site_worker_t *w = s_worker("hospital-e", NULL);
    mfl_site_eval_result_t r1, r2;
    char err[256] = "";
    assert_int_equal(mfl_site_worker_eval(w, &ev, theta, n, &r1, err, sizeof(err)), 0);
    assert_int_equal(mfl_site_worker_eval(w, &ev, theta, n, &r2, err, sizeof(err)), 0);
    assert_int_equal(r1.n_support, 10);
    assert_int_equal(r1.adapted.n, 100);
    assert_true(r1.adapted.accuracy >= 0 && r1.adapted.accuracy <= 1);
    assert_true(r1.local_only.auroc >= 0 && r1.local_only.auroc <= 1);
    /* Adapting on 10 cases of a learnable problem beats an untrained θ. */
    assert_true(r1.adapted.loss < r1.before.loss);
    assert_memory_equal(&r1, &r2, sizeof(r1));
    mfl_eval_report_t rep;
    mfl_site_worker_fill_report(w, &ev, &r1, &rep);
    assert_string_equal(rep.site, "hospital-e");
    assert_int_equal(rep.n_support, 10);
    assert_true(rep.accuracy == r1.adapted.accuracy);
    assert_true(rep.auroc_local == r1.local_only.auroc);
    free(theta);
    mfl_site_worker_destroy(&w);
}

/* A site keeping 4 of a label file's 10 classes (an image hospital with
 * data.classes): k = 4 labelled cases hold one of each of its 4 classes,
 * not 4 rows that may miss some (the rule counted the file's 10 classes,
 * found 10 > k and let a random 4 through). Clusters far apart: ProtoNets
 * with one prototype per class score every held-out row right, and a
 * missing class would cap accuracy at 0.75. */
static void test_eval_support_holds_every_class_the_site_has(void **state)
{
    (void)state;
    const float present[4] = {1, 4, 6, 8};
    mfl_dataset_t *d[2];
    mfl_rng_t r;
    mfl_rng_seed(&r, 21, 1);
    for (int k = 0; k < 2; k++) {
        d[k] = mfl_dataset_new(80, NF);
        assert_non_null(d[k]);
        d[k]->n_classes = 10;
        for (size_t i = 0; i < 80; i++) {
            d[k]->y[i] = present[i % 4];
            for (size_t j = 0; j < NF; j++)
                d[k]->x[i * NF + j] = (j == i % 4 ? 6.0f : 0.0f) + 0.1f * mfl_rng_normal(&r);
        }
    }
    char err[256] = "";
    mfl_site_worker_t *w = mfl_site_worker_new_from_data("hospital-k", d[0], d[1], NULL, err,
                                                         sizeof err);
    if (!w)
        fail_msg("worker: %s", err);
    mfl_learner_config_t c;
    memset(&c, 0, sizeof c);
    mfl_learner_config_defaults(&c, MFL_ALGO_PROTONET);
    snprintf(c.model_spec, sizeof c.model_spec, "mlp:4-8");
    mfl_learner_t *l = mfl_learner_new(&c, 64, err, sizeof err);
    assert_non_null(l);
    size_t n = mfl_learner_n_state(l);
    float *theta = malloc(n * sizeof(float));
    assert_non_null(theta);
    mfl_learner_init_state(l, theta, 5);
    mfl_learner_destroy(&l);
    s_task_t t;
    s_task_init(&t, "protonet", 5);
    snprintf(t.task.model_spec, sizeof t.task.model_spec, "mlp:4-8");
    t.task.algorithm.k_shot = 4;
    mfl_eval_task_t ev = s_eval_task(&t, 1, 0, 0.1f);
    mfl_site_eval_result_t res;
    if (mfl_site_worker_eval(w, &ev, theta, n, &res, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(res.n_support, 4);
    if (!(res.adapted.accuracy > 0.95))
        fail_msg("accuracy %.3f: the 4 support rows miss a class", res.adapted.accuracy);
    free(theta);
    mfl_site_worker_destroy(&w);
}

/* Class 1 has x0 = ±3, class 0 has x0 ≈ 0, the other features are
 * noise: the class means are the same point, so prototypes in a random
 * embedding are near chance; an embedding trained on |x0| separates. */
static mfl_dataset_t *s_make_ring(size_t n, uint64_t seed)
{
    mfl_dataset_t *d = mfl_dataset_new(n, NF);
    assert_non_null(d);
    d->n_classes = 2;
    mfl_rng_t r;
    mfl_rng_seed(&r, seed, 1);
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i % 2);
        d->y[i] = (float)c;
        float sign = mfl_rng_below(&r, 2) ? 1.0f : -1.0f;
        d->x[i * NF] = (c ? 3.0f * sign : 0.0f) + 0.3f * mfl_rng_normal(&r);
        for (size_t j = 1; j < NF; j++)
            d->x[i * NF + j] = 3.0f * mfl_rng_normal(&r);
    }
    return d;
}

/* A metric method's local-only model is trained (episodes split from the
 * support set alone), not the untrained embedding the evaluation used to
 * report: here the untrained embedding is near chance and the trained
 * local-only model well above it; training changes θ (steps 0 does not);
 * and the adapted / as-received scores are those of θ with the support as
 * prototypes, as before. */
static void test_metric_local_only_is_trained_on_the_support(void **state)
{
    (void)state;
    char err[256] = "";
    mfl_site_worker_t *w = mfl_site_worker_new_from_data("hospital-r", s_make_ring(200, 31),
                                                         s_make_ring(200, 32), NULL, err,
                                                         sizeof err);
    if (!w)
        fail_msg("worker: %s", err);
    mfl_learner_config_t c;
    memset(&c, 0, sizeof c);
    mfl_learner_config_defaults(&c, MFL_ALGO_PROTONET);
    snprintf(c.model_spec, sizeof c.model_spec, "mlp:4-16-8");
    mfl_learner_t *l = mfl_learner_new(&c, 64, err, sizeof err);
    assert_non_null(l);
    size_t n = mfl_learner_n_state(l);
    float *theta = malloc(n * sizeof(float)), *fresh = malloc(n * sizeof(float));
    assert_non_null(theta);
    assert_non_null(fresh);
    mfl_learner_init_state(l, theta, 5);
    s_task_t t;
    s_task_init(&t, "protonet", 5);
    snprintf(t.task.model_spec, sizeof t.task.model_spec, "mlp:4-16-8");
    t.task.algorithm.k_shot = 40;
    mfl_eval_task_t ev = s_eval_task(&t, 1, 200, 0.05f);
    mfl_site_eval_result_t res, again;
    if (mfl_site_worker_eval(w, &ev, theta, n, &res, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(mfl_site_worker_eval(w, &ev, theta, n, &again, err, sizeof err), 0);
    assert_memory_equal(&res, &again, sizeof res);
    assert_int_equal(res.n_support, 40);
    /* θ here is an untrained embedding too: adapted = as received, near chance. */
    assert_true(res.adapted.accuracy == res.before.accuracy);
    if (!(res.adapted.accuracy < 0.65))
        fail_msg("untrained embedding scored %.3f: the data set does not test this",
                 res.adapted.accuracy);
    if (!(res.local_only.accuracy > 0.8))
        fail_msg("local only %.3f: not trained on the support (untrained %.3f)",
                 res.local_only.accuracy, res.adapted.accuracy);

    /* The learner's step itself: 0 steps leave θ alone, 200 change it. */
    mfl_dataset_t *sup = s_make_ring(40, 33), *q = s_make_ring(200, 34);
    mfl_sampler_t *split = mfl_sampler_new_class_split(sup, err, sizeof err);
    assert_non_null(split);
    mfl_rng_t rng;
    mfl_rng_seed(&rng, 1, 2);
    memcpy(fresh, theta, n * sizeof(float));
    assert_int_equal(mfl_learner_train_sgd(l, fresh, split, &rng, 0, 0.05f, err, sizeof err), 0);
    assert_memory_equal(fresh, theta, n * sizeof(float));
    assert_int_equal(mfl_learner_train_sgd(l, fresh, split, &rng, 200, 0.05f, err, sizeof err),
                     0);
    assert_true(memcmp(fresh, theta, n * sizeof(float)) != 0);
    mfl_eval_metrics_t m0, m1;
    assert_int_equal(mfl_learner_evaluate(l, theta, sup, q, 0, 0, NULL, &m0, err, sizeof err), 0);
    assert_int_equal(mfl_learner_evaluate(l, fresh, sup, q, 0, 0, NULL, &m1, err, sizeof err), 0);
    if (!(m1.accuracy > m0.accuracy + 0.15))
        fail_msg("trained %.3f vs untrained %.3f", m1.accuracy, m0.accuracy);
    /* Bad input is refused, not run. */
    assert_int_equal(mfl_learner_train_sgd(l, fresh, split, &rng, -1, 0.05f, err, sizeof err),
                     -1);
    mfl_sampler_destroy(&split);
    /* One class, or no class with 2 rows: no episode to split. */
    mfl_dataset_t *one = mfl_dataset_new(2, NF);
    assert_non_null(one);
    one->n_classes = 2;
    memset(one->x, 0, 2 * NF * sizeof(float));
    one->y[0] = 0;
    one->y[1] = 1;
    assert_null(mfl_sampler_new_class_split(one, err, sizeof err));
    one->y[1] = 0;
    assert_null(mfl_sampler_new_class_split(one, err, sizeof err));
    mfl_dataset_destroy(&one);
    mfl_dataset_destroy(&sup);
    mfl_dataset_destroy(&q);
    free(fresh);
    free(theta);
    mfl_learner_destroy(&l);
    mfl_site_worker_destroy(&w);
}

/* A gradient method with a head narrower than the site's classes (2
 * outputs, 3 classes here) trains on 2-way episodes and is scored on every
 * 2-class subset of the site's classes: n counts each held-out row once
 * per subset it is in (2 of 3), the support is k per class (support_cases
 * unset: the task's k_shot), and the adapted model beats an untrained θ. */
static void test_narrow_head_rounds_and_evals_on_n_way_tasks(void **state)
{
    (void)state;
    mfl_dataset_t *d[2];
    mfl_rng_t r;
    mfl_rng_seed(&r, 22, 1);
    for (int k = 0; k < 2; k++) {
        d[k] = mfl_dataset_new(90, NF);
        assert_non_null(d[k]);
        d[k]->n_classes = 3;
        for (size_t i = 0; i < 90; i++) {
            d[k]->y[i] = (float)(i % 3);
            for (size_t j = 0; j < NF; j++)
                d[k]->x[i * NF + j] = (j == i % 3 ? 2.0f : 0.0f) + 0.5f * mfl_rng_normal(&r);
        }
    }
    char err[256] = "";
    mfl_site_worker_t *w = mfl_site_worker_new_from_data("hospital-n", d[0], d[1], NULL, err,
                                                         sizeof err);
    if (!w)
        fail_msg("worker: %s", err);
    s_task_t t;
    s_task_init(&t, "maml", 5);
    snprintf(t.task.algorithm.loss, sizeof t.task.algorithm.loss, "softmax_ce");
    snprintf(t.task.model_spec, sizeof t.task.model_spec, "mlp:4-8-2");
    t.task.algorithm.k_shot = 3;
    t.task.algorithm.n_query = 2;
    t.task.algorithm.inner_steps = 2;
    t.task.algorithm.inner_lr = 0.1f;
    t.task.algorithm.meta_batch = 2;
    t.task.algorithm.outer_steps = 1;
    t.task.algorithm.outer_lr = 0.01f;
    snprintf(t.task.algorithm.outer_optim, sizeof t.task.algorithm.outer_optim, "adam");
    mfl_learner_config_t c;
    memset(&c, 0, sizeof c);
    mfl_learner_config_defaults(&c, MFL_ALGO_MAML);
    snprintf(c.model_spec, sizeof c.model_spec, "mlp:4-8-2");
    mfl_learner_t *l = mfl_learner_new(&c, 64, err, sizeof err);
    assert_non_null(l);
    size_t n = mfl_learner_n_state(l);
    float *theta = malloc(n * sizeof(float));
    assert_non_null(theta);
    mfl_learner_init_state(l, theta, 6);
    mfl_learner_destroy(&l);
    mfl_site_round_result_t rr;
    if (mfl_site_worker_round(w, &t.task, theta, n, &rr, err, sizeof err))
        fail_msg("round: %s", err);
    assert_int_equal(rr.metrics.n_tasks, 2);
    mfl_eval_task_t ev = s_eval_task(&t, 1, 20, 0.2f);
    mfl_site_eval_result_t a, b;
    if (mfl_site_worker_eval(w, &ev, theta, n, &a, err, sizeof err))
        fail_msg("eval: %s", err);
    assert_int_equal(mfl_site_worker_eval(w, &ev, theta, n, &b, err, sizeof err), 0);
    assert_memory_equal(&a, &b, sizeof a);
    assert_int_equal(a.n_support, 9);
    assert_int_equal(a.adapted.n, 2 * 90);
    assert_true(a.adapted.accuracy > 0.8 && a.adapted.accuracy <= 1);
    assert_true(a.adapted.loss < a.before.loss);
    assert_true(a.local_only.accuracy >= 0 && a.local_only.accuracy <= 1);
    free(theta);
    mfl_site_worker_destroy(&w);
}

/* Every algorithm the agent advertises runs a round and an evaluation on
 * a tabular site (metric methods: 2-way episodes, an embedding model). */
static void test_every_algorithm_runs_a_round_and_an_eval(void **state)
{
    (void)state;
    const char *algos[] = {"fedavg",   "reptile",  "fomaml",   "maml",
                           "meta_sgd", "protonet", "matching", "relation"};
    for (size_t a = 0; a < sizeof(algos) / sizeof(algos[0]); a++) {
        int metric = a >= 5;
        mfl_learner_config_t c;
        memset(&c, 0, sizeof(c));
        char err[256] = "";
        mfl_site_worker_t *w = s_worker("hospital-a", NULL);
        s_task_t t;
        s_task_init(&t, algos[a], 9);
        t.task.algorithm.outer_steps = 2;
        t.task.algorithm.k_shot = 5;
        t.task.algorithm.n_query = 5;
        if (metric) {
            snprintf(t.task.model_spec, sizeof t.task.model_spec, "mlp:4-8-4");
            snprintf(t.task.algorithm.loss, sizeof t.task.algorithm.loss, "softmax_ce");
        }
        if (strcmp(algos[a], "relation") == 0)
            snprintf(t.task.algorithm.relation_spec, sizeof t.task.algorithm.relation_spec,
                     "mlp:8-8-1");
        if (mfl_task_algorithm_to_learner(&t.task.algorithm, t.task.model_spec, &c, err,
                                          sizeof(err)))
            fail_msg("%s: %s", algos[a], err);
        mfl_learner_t *l = mfl_learner_new(&c, 64, err, sizeof(err));
        if (!l)
            fail_msg("%s: %s", algos[a], err);
        size_t n = mfl_learner_n_state(l);
        float *theta = malloc(n * sizeof(float));
        assert_non_null(theta);
        mfl_learner_init_state(l, theta, 3);
        mfl_learner_destroy(&l);
        mfl_site_round_result_t r;
        if (mfl_site_worker_round(w, &t.task, theta, n, &r, err, sizeof(err)))
            fail_msg("%s round: %s", algos[a], err);
        assert_int_equal(r.n_delta, n);
        assert_true(isfinite(r.delta_norm) && r.delta_norm > 0);
        mfl_eval_task_t ev = s_eval_task(&t, 1, 5, 0.05f);
        mfl_site_eval_result_t e;
        if (mfl_site_worker_eval(w, &ev, theta, n, &e, err, sizeof(err)))
            fail_msg("%s eval: %s", algos[a], err);
        assert_true(e.adapted.accuracy >= 0 && e.adapted.accuracy <= 1);
        assert_int_equal(e.adapted.n, 100);
        free(theta);
        mfl_site_worker_destroy(&w);
    }
}

/* A lossy round (RoundTask.update_encoding): the bytes decode to the Δ
 * the result reports, the signed hashes cover the bytes, the rounding
 * error is carried to the next round (not lost), a retried round encodes
 * exactly like its first attempt, and an encoding the site does not offer
 * fails the round. */
static void test_encoded_round_signs_the_bytes_and_feeds_the_error_back(void **state)
{
    (void)state;
    size_t n;
    float *theta = s_theta(&n);
    s_task_t t;
    s_task_init(&t, "reptile", 77);
    mfl_site_worker_t *plain = s_worker("hospital-q", NULL);
    mfl_site_worker_t *w = s_worker("hospital-q", NULL);
    mfl_site_round_result_t r, p;
    char err[256] = "";
    assert_int_equal(mfl_site_worker_round(plain, &t.task, theta, n, &p, err, sizeof err), 0);
    float *exact = malloc(n * sizeof(float)), *dec = malloc(n * sizeof(float));
    assert_true(exact && dec);
    memcpy(exact, p.delta, n * sizeof(float));
    t.task.update_encoding = MFL_QUANT_INT8;
    assert_int_equal(mfl_site_worker_round(w, &t.task, theta, n, &r, err, sizeof err), 0);
    assert_int_equal(r.encoding, MFL_QUANT_INT8);
    Metafl__UpdateHeader *h = metafl__update_header__unpack(NULL, r.header_len, r.header);
    assert_non_null(h);
    double err_sum = 0;
    for (size_t i = 0; i < mfl_site_worker_n_tensors(w); i++) {
        const mfl_tensor_info_t *ti = mfl_site_worker_tensor(w, i);
        const uint8_t *bytes = r.encoded + ti->offset; /* int8: one byte each */
        assert_int_equal(mfl_quant_decode(MFL_QUANT_INT8, bytes, ti->count, r.scales[i],
                                          dec + ti->offset), 0);
        uint8_t want[32];
        crypto_generichash(want, 32, bytes, ti->count, NULL, 0);
        assert_memory_equal(h->tensor_hashes[i].data, want, 32);
        for (size_t j = 0; j < ti->count; j++) {
            /* within one step of the tensor's scale of the exact Δ */
            double e = fabs((double)dec[ti->offset + j] - exact[ti->offset + j]);
            assert_true(e <= r.scales[i] * 1.0001);
            err_sum += e;
        }
    }
    assert_memory_equal(r.delta, dec, n * sizeof(float));
    assert_true(err_sum > 0); /* it is lossy */
    assert_true(fabs(h->delta_norm - r.delta_norm) < 1e-12);
    metafl__update_header__free_unpacked(h, NULL);
    /* A retry of round 3 (another attempt) gives the same bytes. */
    uint8_t *first = malloc(n);
    assert_non_null(first);
    memcpy(first, r.encoded, n);
    assert_int_equal(mfl_site_worker_round(w, &t.task, theta, n, &r, err, sizeof err), 0);
    assert_memory_equal(r.encoded, first, n);
    /* Round 4 as float32: the exact Δ of round 4 plus what round 3 lost,
     * so rounds 3 + 4 sum to the exact Δs (to float rounding). */
    t.task.round = 4;
    t.task.update_encoding = MFL_QUANT_FP32;
    assert_int_equal(mfl_site_worker_round(plain, &t.task, theta, n, &p, err, sizeof err), 0);
    assert_int_equal(mfl_site_worker_round(w, &t.task, theta, n, &r, err, sizeof err), 0);
    assert_int_equal(r.encoding, MFL_QUANT_FP32);
    for (size_t j = 0; j < n; j++) {
        double sum = (double)dec[j] + r.delta[j], want = (double)exact[j] + p.delta[j];
        assert_true(fabs(sum - want) <= 1e-6 * (1 + fabs(want)));
    }
    /* Not offered: refused with the key to change. */
    mfl_site_worker_set_encodings(w, 1u << MFL_QUANT_FP16);
    t.task.round = 5;
    t.task.update_encoding = MFL_QUANT_INT8;
    assert_int_equal(mfl_site_worker_round(w, &t.task, theta, n, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "upload.encodings"));
    assert_int_equal(mfl_site_worker_encodings(w), 1u | (1u << MFL_QUANT_FP16));
    free(first);
    free(exact);
    free(dec);
    free(theta);
    mfl_site_worker_destroy(&w);
    mfl_site_worker_destroy(&plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_task_and_site_give_identical_delta_bits),
        cmocka_unit_test(test_round_delta_lowers_the_sites_own_loss),
        cmocka_unit_test(test_header_is_signed_and_names_round_nonce_site),
        cmocka_unit_test(test_privacy_clips_delta_to_the_bound),
        cmocka_unit_test(test_wrong_theta_size_and_unknown_algorithm_are_refused),
        cmocka_unit_test(test_eval_reports_adapted_before_and_local_only),
        cmocka_unit_test(test_metric_local_only_is_trained_on_the_support),
        cmocka_unit_test(test_eval_support_holds_every_class_the_site_has),
        cmocka_unit_test(test_narrow_head_rounds_and_evals_on_n_way_tasks),
        cmocka_unit_test(test_every_algorithm_runs_a_round_and_an_eval),
        cmocka_unit_test(test_encoded_round_signs_the_bytes_and_feeds_the_error_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
