/* Task samplers: shapes, relabelling, disjoint class filters, determinism. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "meta/task.h"

/* 10 classes × 30 rows; feature 0 encodes the original class and feature 1
 * the row index, so a test can trace every task row back to its source. */
static mfl_dataset_t *s_labelled(void)
{
    mfl_dataset_t *d = mfl_dataset_new(300, 3);
    assert_non_null(d);
    d->n_classes = 10;
    for (size_t r = 0; r < 300; r++) {
        d->y[r] = (float)(r % 10);
        d->x[r * 3] = (float)(r % 10);
        d->x[r * 3 + 1] = (float)r;
        d->x[r * 3 + 2] = 0.5f;
    }
    return d;
}

static void test_episodes_have_shapes_and_relabelled_classes(void **state)
{
    (void)state;
    mfl_dataset_t *d = s_labelled();
    size_t classes[] = {0, 1, 2, 3, 4, 5};
    char err[200];
    mfl_sampler_t *s = mfl_sampler_new_episodes(d, classes, 6, 5, 3, 4, err, sizeof(err));
    assert_non_null(s);
    mfl_rng_t rng;
    mfl_rng_seed(&rng, 1, 0);
    mfl_task_t t = {0};
    for (int it = 0; it < 20; it++) {
        assert_int_equal(mfl_sampler_next(s, &rng, &t), 0);
        assert_int_equal(t.n_way, 5);
        assert_int_equal(t.support->n, 15);
        assert_int_equal(t.query->n, 20);
        assert_int_equal(t.support->n_features, 3);
        assert_int_equal(t.support->n_classes, 5);
        /* Each episode label maps to exactly one original class, from the
         * filter, and the same in support and query; no row repeats. */
        int orig[5] = {-1, -1, -1, -1, -1}, per[5] = {0};
        float seen_rows[35];
        size_t n_seen = 0;
        const mfl_dataset_t *sets[2] = {t.support, t.query};
        for (int k = 0; k < 2; k++) {
            for (size_t i = 0; i < sets[k]->n; i++) {
                int lab = (int)sets[k]->y[i];
                assert_true(lab >= 0 && lab < 5);
                int oc = (int)sets[k]->x[i * 3];
                assert_true(oc <= 5);
                if (orig[lab] < 0)
                    orig[lab] = oc;
                assert_int_equal(orig[lab], oc);
                if (k == 0)
                    per[lab]++;
                float row = sets[k]->x[i * 3 + 1];
                for (size_t j = 0; j < n_seen; j++)
                    assert_true(seen_rows[j] != row);
                seen_rows[n_seen++] = row;
            }
        }
        for (int j = 0; j < 5; j++) {
            assert_int_equal(per[j], 3);
            for (int k = 0; k < j; k++)
                assert_true(orig[j] != orig[k]);
        }
    }
    mfl_task_clear(&t);
    assert_null(t.support);
    mfl_sampler_destroy(&s);
    assert_null(s);
    mfl_dataset_destroy(&d);
}

static void test_class_filters_keep_train_and_test_disjoint(void **state)
{
    (void)state;
    mfl_dataset_t *d = s_labelled();
    size_t train[] = {0, 1, 2, 3, 4}, test[] = {5, 6, 7, 8, 9};
    mfl_sampler_t *a = mfl_sampler_new_episodes(d, train, 5, 5, 1, 2, NULL, 0);
    mfl_sampler_t *b = mfl_sampler_new_episodes(d, test, 5, 5, 1, 2, NULL, 0);
    assert_non_null(a);
    assert_non_null(b);
    mfl_rng_t rng;
    mfl_rng_seed(&rng, 2, 0);
    mfl_task_t t = {0};
    for (int it = 0; it < 30; it++) {
        assert_int_equal(mfl_sampler_next(a, &rng, &t), 0);
        for (size_t i = 0; i < t.query->n; i++)
            assert_true(t.query->x[i * 3] < 5);
        assert_int_equal(mfl_sampler_next(b, &rng, &t), 0);
        for (size_t i = 0; i < t.support->n; i++)
            assert_true(t.support->x[i * 3] >= 5);
    }
    mfl_task_clear(&t);
    mfl_sampler_destroy(&a);
    mfl_sampler_destroy(&b);
    mfl_dataset_destroy(&d);
}

static void test_episodes_refuse_too_few_classes(void **state)
{
    (void)state;
    mfl_dataset_t *d = s_labelled();
    size_t few[] = {0, 1, 2};
    char err[200] = "";
    assert_null(mfl_sampler_new_episodes(d, few, 3, 5, 1, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "5-way"));
    size_t ok[] = {0, 1, 2, 3, 4};
    /* 30 rows per class cannot give 20 + 20. */
    assert_null(mfl_sampler_new_episodes(d, ok, 5, 5, 20, 20, err, sizeof(err)));
    size_t bad[] = {42};
    assert_null(mfl_sampler_new_episodes(d, bad, 1, 2, 1, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "42"));
    mfl_dataset_destroy(&d);
}

static void test_same_seed_gives_same_tasks(void **state)
{
    (void)state;
    mfl_dataset_t *d = s_labelled();
    size_t cls[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    mfl_sampler_t *s1 = mfl_sampler_new_episodes(d, cls, 10, 5, 2, 3, NULL, 0);
    mfl_sampler_t *s2 = mfl_sampler_new_episodes(d, cls, 10, 5, 2, 3, NULL, 0);
    mfl_sampler_t *z1 = mfl_sampler_new_sinusoid(10, 5), *z2 = mfl_sampler_new_sinusoid(10, 5);
    mfl_rng_t r1, r2;
    mfl_rng_seed(&r1, 9, 3);
    mfl_rng_seed(&r2, 9, 3);
    mfl_task_t a = {0}, b = {0};
    int differs = 0;
    float first = NAN;
    for (int it = 0; it < 10; it++) {
        assert_int_equal(mfl_sampler_next(s1, &r1, &a), 0);
        assert_int_equal(mfl_sampler_next(s2, &r2, &b), 0);
        assert_memory_equal(a.support->x, b.support->x, a.support->n * 3 * sizeof(float));
        assert_memory_equal(a.query->y, b.query->y, a.query->n * sizeof(float));
        if (it == 0)
            first = a.support->x[1];
        differs |= a.support->x[1] != first;
        assert_int_equal(mfl_sampler_next(z1, &r1, &a), 0);
        assert_int_equal(mfl_sampler_next(z2, &r2, &b), 0);
        assert_memory_equal(a.support->y, b.support->y, 10 * sizeof(float));
    }
    assert_true(differs);
    /* A task depends only on the rng state, not on the sampler's history:
     * redrawing from a saved rng state on a used sampler repeats it. */
    mfl_rng_t saved = r1;
    assert_int_equal(mfl_sampler_next(s1, &r1, &a), 0);
    for (int it = 0; it < 5; it++)
        assert_int_equal(mfl_sampler_next(s1, &r1, &b), 0);
    assert_int_equal(mfl_sampler_next(s1, &saved, &b), 0);
    assert_memory_equal(a.support->x, b.support->x, a.support->n * 3 * sizeof(float));
    assert_memory_equal(a.query->x, b.query->x, a.query->n * 3 * sizeof(float));
    mfl_task_clear(&a);
    mfl_task_clear(&b);
    mfl_sampler_destroy(&s1);
    mfl_sampler_destroy(&s2);
    mfl_sampler_destroy(&z1);
    mfl_sampler_destroy(&z2);
    mfl_dataset_destroy(&d);
}

static void test_site_sampler_draws_disjoint_batches(void **state)
{
    (void)state;
    mfl_dataset_t *d = s_labelled();
    mfl_sampler_t *s = mfl_sampler_new_site(d, 40, 60, NULL, 0);
    assert_non_null(s);
    assert_ptr_equal(mfl_sampler_data(s), d);
    mfl_rng_t rng;
    mfl_rng_seed(&rng, 4, 0);
    mfl_task_t t = {0};
    assert_int_equal(mfl_sampler_next(s, &rng, &t), 0);
    assert_int_equal(t.support->n, 40);
    assert_int_equal(t.query->n, 60);
    assert_int_equal(t.n_way, 10);
    for (size_t i = 0; i < 40; i++) {
        size_t r = (size_t)t.support->x[i * 3 + 1];
        assert_true(t.support->y[i] == d->y[r]); /* labels not relabelled */
        for (size_t j = 0; j < 60; j++)
            assert_true(t.query->x[j * 3 + 1] != (float)r);
    }
    mfl_sampler_destroy(&s);
    /* 0 means every row. */
    s = mfl_sampler_new_site(d, 0, 0, NULL, 0);
    assert_int_equal(mfl_sampler_next(s, &rng, &t), 0);
    assert_int_equal(t.support->n, 300);
    assert_int_equal(t.query->n, 300);
    mfl_task_clear(&t);
    mfl_sampler_destroy(&s);
    mfl_dataset_destroy(&d);
}

static void test_sinusoid_tasks_share_amplitude_and_phase(void **state)
{
    (void)state;
    mfl_sampler_t *s = mfl_sampler_new_sinusoid(10, 20);
    assert_non_null(s);
    assert_null(mfl_sampler_data(s));
    assert_null(mfl_sampler_new_sinusoid(0, 1));
    mfl_rng_t rng;
    mfl_rng_seed(&rng, 5, 0);
    mfl_task_t t = {0};
    for (int it = 0; it < 50; it++) {
        assert_int_equal(mfl_sampler_next(s, &rng, &t), 0);
        assert_int_equal(t.support->n, 10);
        assert_int_equal(t.query->n, 20);
        assert_int_equal(t.n_way, 0);
        /* Fit A and φ from two support points by brute force over a grid
         * and check every query point lies on the same curve. */
        double best = 1e9, ba = 0, bp = 0;
        for (int ia = 0; ia <= 490; ia++) {
            for (int ip = 0; ip <= 314; ip++) {
                double a = 0.1 + ia * 0.01, p = ip * 0.01, e = 0;
                for (size_t i = 0; i < 10; i++) {
                    double r = a * sin(t.support->x[i] - p) - t.support->y[i];
                    e += r * r;
                }
                if (e < best) {
                    best = e;
                    ba = a;
                    bp = p;
                }
            }
            if (ia > 3 && ia % 50 == 0 && best < 1e-4)
                break;
        }
        for (size_t i = 0; i < 20; i++) {
            assert_true(t.query->x[i] >= -5.0f && t.query->x[i] < 5.0f);
            assert_true(fabs(ba * sin(t.query->x[i] - bp) - t.query->y[i]) < 0.1);
        }
        if (it >= 3)
            break; /* the grid fit is slow; a few tasks suffice */
    }
    mfl_task_clear(&t);
    mfl_sampler_destroy(&s);
}

/* A group (a patient) is the task: both halves come from one group, a
 * group of one row is never drawn, and every eligible group is drawn. */
static void test_group_tasks_stay_within_one_group(void **state)
{
    (void)state;
    mfl_dataset_t *d = mfl_dataset_new(11, 1);
    assert_int_equal(mfl_dataset_add_groups(d), 0);
    static const size_t g[11] = { 0, 0, 0, 0, 1, 1, 1, 2, 0, 1, 3 }; /* 2 and 3: one row */
    for (size_t r = 0; r < 11; r++) {
        d->group[r] = g[r];
        d->x[r] = (float)(100 * g[r] + r); /* the row's group is readable from x */
    }
    d->n_classes = 0;
    char err[256];
    mfl_sampler_t *s = mfl_sampler_new_groups(d, 0, err, sizeof err);
    if (!s)
        fail_msg("%s", err);
    mfl_rng_t rng;
    mfl_rng_seed(&rng, 7, 1);
    mfl_task_t t = { 0 };
    int seen[4] = { 0 };
    for (int i = 0; i < 200; i++) {
        assert_int_equal(mfl_sampler_next(s, &rng, &t), 0);
        size_t grp = (size_t)(t.support->x[0] / 100);
        assert_true(grp == 0 || grp == 1);
        seen[grp] = 1;
        size_t m = grp == 0 ? 5 : 4;
        assert_int_equal(t.support->n + t.query->n, m); /* halves of the whole group */
        for (size_t k = 0; k < t.support->n; k++)
            assert_int_equal((size_t)(t.support->x[k] / 100), grp);
        for (size_t k = 0; k < t.query->n; k++)
            assert_int_equal((size_t)(t.query->x[k] / 100), grp);
    }
    assert_true(seen[0] && seen[1]);
    mfl_task_clear(&t);
    mfl_sampler_destroy(&s);
    /* A split keeps each row's group. */
    size_t idx[2] = { 10, 4 };
    mfl_dataset_t *sub = mfl_dataset_subset(d, idx, 2);
    assert_int_equal(sub->group[0], 3);
    assert_int_equal(sub->group[1], 1);
    mfl_dataset_destroy(&sub);
    for (size_t r = 0; r < 11; r++)
        d->group[r] = r; /* every group of one row */
    assert_null(mfl_sampler_new_groups(d, 0, err, sizeof err));
    assert_non_null(strstr(err, "no group (patient) has 2 rows"));
    mfl_dataset_destroy(&d);
}

/* A class split: every row of the set in exactly one half, ceil(m/2) of
 * each class in the support (a one-row class: support only), original
 * labels kept, the same split for the same rng state, another one later. */
static void test_class_split_halves_every_class(void **state)
{
    (void)state;
    static const float y[7] = { 0, 0, 0, 2, 2, 3, 0 }; /* class 0: 4, 2: 2, 3: 1, 1: none */
    mfl_dataset_t *d = mfl_dataset_new(7, 1);
    assert_non_null(d);
    d->n_classes = 4;
    for (size_t r = 0; r < 7; r++) {
        d->y[r] = y[r];
        d->x[r] = (float)r;
    }
    char err[256];
    mfl_sampler_t *s = mfl_sampler_new_class_split(d, err, sizeof err);
    if (!s)
        fail_msg("%s", err);
    mfl_rng_t rng, again;
    mfl_rng_seed(&rng, 3, 1);
    mfl_task_t t = { 0 }, u = { 0 };
    int differs = 0;
    for (int i = 0; i < 20; i++) {
        again = rng;
        assert_int_equal(mfl_sampler_next(s, &rng, &t), 0);
        assert_int_equal(mfl_sampler_next(s, &again, &u), 0);
        assert_memory_equal(t.support->x, u.support->x, t.support->n * sizeof(float));
        assert_int_equal(t.support->n, 2 + 1 + 1);
        assert_int_equal(t.query->n, 2 + 1);
        assert_int_equal(t.n_way, 4);
        int seen[7] = { 0 }, q3 = 0;
        for (size_t k = 0; k < t.support->n; k++) {
            size_t r = (size_t)t.support->x[k];
            seen[r]++;
            assert_true(t.support->y[k] == y[r]);
        }
        for (size_t k = 0; k < t.query->n; k++) {
            size_t r = (size_t)t.query->x[k];
            seen[r]++;
            assert_true(t.query->y[k] == y[r]);
            q3 += y[r] == 3;
        }
        for (size_t r = 0; r < 7; r++)
            assert_int_equal(seen[r], 1);
        assert_int_equal(q3, 0);
        static float first[4];
        if (i == 0)
            memcpy(first, t.support->x, sizeof first);
        else
            differs |= memcmp(first, t.support->x, sizeof first) != 0;
    }
    assert_true(differs);
    mfl_task_clear(&t);
    mfl_task_clear(&u);
    mfl_sampler_destroy(&s);
    mfl_dataset_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_episodes_have_shapes_and_relabelled_classes),
        cmocka_unit_test(test_group_tasks_stay_within_one_group),
        cmocka_unit_test(test_class_split_halves_every_class),
        cmocka_unit_test(test_class_filters_keep_train_and_test_disjoint),
        cmocka_unit_test(test_episodes_refuse_too_few_classes),
        cmocka_unit_test(test_same_seed_gives_same_tasks),
        cmocka_unit_test(test_site_sampler_draws_disjoint_batches),
        cmocka_unit_test(test_sinusoid_tasks_share_amplitude_and_phase),
    };
    return cmocka_run_group_tests_name("meta_task", tests, NULL, NULL);
}
