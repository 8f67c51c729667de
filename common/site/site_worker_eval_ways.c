/* N-way evaluation for a gradient method whose softmax head is narrower
 * than the site's label space (mfl_algo_episodic_head): the hospital's
 * labelled images, k per class, adapt θ on N-way tasks of its own classes.
 * See mfl_site_worker_eval_ways() in site_worker_internal.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "site/site_worker_internal.h"

#define S_MAX_SUBSETS 16 /* N-class subsets scored per evaluation */

typedef struct {
    double w, loss, acc, auroc, sens, spec, w_bin;
} s_acc_t;

static void s_add(s_acc_t *a, const mfl_eval_metrics_t *m)
{
    double w = (double)m->n;
    a->w += w;
    a->loss += w * m->loss;
    a->acc += w * m->accuracy;
    if (isfinite(m->auroc)) {
        a->w_bin += w;
        a->auroc += w * m->auroc;
        a->sens += w * m->sensitivity;
        a->spec += w * m->specificity;
    }
}

static void s_mean(const s_acc_t *a, mfl_eval_metrics_t *m)
{
    memset(m, 0, sizeof *m);
    m->loss = a->w > 0 ? a->loss / a->w : NAN;
    m->accuracy = a->w > 0 ? a->acc / a->w : NAN;
    m->auroc = a->w_bin > 0 ? a->auroc / a->w_bin : NAN;
    m->sensitivity = a->w_bin > 0 ? a->sens / a->w_bin : NAN;
    m->specificity = a->w_bin > 0 ? a->spec / a->w_bin : NAN;
    m->sens_at_spec90 = NAN; /* not a mean of per-task operating points */
    m->rmse = m->mae = m->r2 = NAN;
    m->n = (size_t)a->w;
}

/* The rows of `from` whose class is subset[j] (the indices in `rows`,
 * n_rows of them), relabelled j. */
static mfl_dataset_t *s_task_set(const mfl_dataset_t *from, const size_t *rows, size_t n_rows,
                                 const size_t *subset, size_t n_way)
{
    size_t *idx = malloc((n_rows ? n_rows : 1) * sizeof *idx), k = 0;
    if (!idx)
        return NULL;
    for (size_t i = 0; i < n_rows; i++)
        for (size_t j = 0; j < n_way; j++)
            if (from->y[rows[i]] == (float)subset[j])
                idx[k++] = rows[i];
    mfl_dataset_t *d = mfl_dataset_subset(from, idx, k);
    free(idx);
    if (!d)
        return NULL;
    for (size_t i = 0; i < d->n; i++)
        for (size_t j = 0; j < n_way; j++)
            if (d->y[i] == (float)subset[j]) {
                d->y[i] = (float)j;
                break;
            }
    d->n_classes = n_way;
    d->channels = from->channels;
    d->height = from->height;
    d->width = from->width;
    return d;
}

/* Next N-subset of 0..M-1 in lexicographic order; false after the last. */
static bool s_next_subset(size_t *s, size_t n, size_t m)
{
    size_t i = n;
    while (i > 0 && s[i - 1] == m - n + i - 1)
        i--;
    if (i == 0)
        return false;
    s[i - 1]++;
    for (size_t j = i; j < n; j++)
        s[j] = s[j - 1] + 1;
    return true;
}

static double s_choose(size_t m, size_t n)
{
    double c = 1;
    for (size_t i = 0; i < n; i++)
        c = c * (double)(m - i) / (double)(i + 1);
    return c;
}

int mfl_site_worker_eval_ways(mfl_site_worker_t *self, size_t support_cases, size_t k_default,
                              int steps, int local_steps, float lr, mfl_rng_t *rng,
                              const float *theta, mfl_site_eval_result_t *out, char *err,
                              size_t errlen)
{
    const mfl_dataset_t *train = self->train;
    const mfl_dataset_t *query = self->heldout && self->heldout->n ? self->heldout : train;
    size_t n_way = mfl_learner_n_outputs(self->learner), nc = train->n_classes;
    size_t *tc = calloc(nc, sizeof *tc), *qc = calloc(nc, sizeof *qc);
    size_t *present = calloc(nc, sizeof *present);
    size_t *sup = malloc((train->n ? train->n : 1) * sizeof *sup);
    size_t *qrows = malloc((query->n ? query->n : 1) * sizeof *qrows);
    size_t *perm = malloc((train->n ? train->n : 1) * sizeof *perm);
    mfl_dataset_t *s = NULL, *q = NULL;
    int rc = -1;
    char sub[256];
    if (!tc || !qc || !present || !sup || !qrows || !perm) {
        mfl_errf(err, errlen, "out of memory");
        goto out_free;
    }
    mfl_dataset_class_counts(train, tc);
    mfl_dataset_class_counts(query, qc);
    size_t m = 0;
    for (size_t c = 0; c < nc; c++)
        if (tc[c] && qc[c])
            present[m++] = c;
    if (m == 0 || m < n_way) {
        mfl_errf(err, errlen, "site '%s': %zu of its classes have training and held-out "
                 "images, but the model's head is %zu-way (N-way tasks of the site's own "
                 "classes)", self->site, m, n_way);
        goto out_free;
    }
    /* k labelled images per class: support_cases spread over the site's
     * classes (at least one each), else the task's k_shot. The same seeded
     * choice at every evaluation. */
    size_t kpc = support_cases ? support_cases / m : k_default;
    if (kpc == 0)
        kpc = 1;
    for (size_t i = 0; i < train->n; i++)
        perm[i] = i;
    mfl_rng_shuffle(rng, perm, train->n);
    size_t n_sup = 0;
    for (size_t j = 0; j < m; j++)
        for (size_t i = 0, got = 0; i < train->n && got < kpc; i++)
            if (train->y[perm[i]] == (float)present[j]) {
                sup[n_sup++] = perm[i];
                got++;
            }
    for (size_t i = 0; i < query->n; i++)
        qrows[i] = i;
    mfl_learner_init_state(self->learner, self->scratch, mfl_rng_u64(rng));

    /* Every N-subset of the site's classes (or S_MAX_SUBSETS random ones). */
    bool all = s_choose(m, n_way) <= S_MAX_SUBSETS;
    size_t pos[64], subset[64];
    if (n_way > 64) {
        mfl_errf(err, errlen, "site '%s': a %zu-way head is wider than the 64 classes N-way "
                 "evaluation handles", self->site, n_way);
        goto out_free;
    }
    for (size_t j = 0; j < n_way; j++)
        pos[j] = j;
    s_acc_t a_ad = {0}, a_before = {0}, a_local = {0};
    for (size_t t = 0; t < S_MAX_SUBSETS; t++) {
        if (all && t > 0 && !s_next_subset(pos, n_way, m))
            break;
        if (!all) {
            size_t p[256];
            size_t mm = m < 256 ? m : 256;
            for (size_t j = 0; j < mm; j++)
                p[j] = j;
            mfl_rng_shuffle(rng, p, mm);
            for (size_t j = 0; j < n_way; j++)
                pos[j] = p[j];
        }
        for (size_t j = 0; j < n_way; j++)
            subset[j] = present[pos[j]];
        s = s_task_set(train, sup, n_sup, subset, n_way);
        q = s ? s_task_set(query, qrows, query->n, subset, n_way) : NULL;
        if (!s || !q) {
            mfl_errf(err, errlen, "out of memory building an N-way task");
            goto out_free;
        }
        mfl_eval_metrics_t ad, before, local;
        if (mfl_learner_evaluate(self->learner, theta, s, q, steps, lr, NULL, &ad, sub,
                                 sizeof sub) ||
            mfl_learner_evaluate(self->learner, theta, s, q, 0, lr, NULL, &before, sub,
                                 sizeof sub) ||
            mfl_learner_evaluate(self->learner, self->scratch, s, q, local_steps, lr, NULL,
                                 &local, sub, sizeof sub)) {
            mfl_errf(err, errlen, "site '%s': %zu-way evaluation: %s", self->site, n_way, sub);
            goto out_free;
        }
        s_add(&a_ad, &ad);
        s_add(&a_before, &before);
        s_add(&a_local, &local);
        mfl_dataset_destroy(&s);
        mfl_dataset_destroy(&q);
    }
    s_mean(&a_ad, &out->adapted);
    s_mean(&a_before, &out->before);
    s_mean(&a_local, &out->local_only);
    out->n_support = n_sup;
    rc = 0;
out_free:
    mfl_dataset_destroy(&s);
    mfl_dataset_destroy(&q);
    free(tc);
    free(qc);
    free(present);
    free(sup);
    free(qrows);
    free(perm);
    return rc;
}
