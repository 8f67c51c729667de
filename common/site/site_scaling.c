/* Federated standardisation at a site (data.standardize: federated,
 * docs/DATA.md): the site keeps its rows unscaled beside the scaled ones,
 * reports the moments of its fit rows when asked (EvalTask.moments) and
 * scales with the consortium's pooled mean and scale whenever a task
 * carries them, with its own training rows' statistics when a task does
 * not. Only the count and per-feature sums and sums of squares leave the
 * site; the test rows are never part of them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "site/site_worker_internal.h"

#define S_VALIDATION_STREAM 0x76616c6964ull /* "valid": as site_validation.c */

static mfl_dataset_t *s_copy(const mfl_dataset_t *d)
{
    const mfl_dataset_t *one[1] = {d};
    mfl_dataset_t *c = mfl_dataset_concat(one, 1);
    if (c) {
        c->n_classes = d->n_classes;
        c->channels = d->channels;
        c->height = d->height;
        c->width = d->width;
    }
    return c;
}

/* train / heldout := raw scaled with (mean, scale); the validation split
 * (a function of the labels and its seed only) is rebuilt on demand. */
static int s_rescale(mfl_site_worker_t *self, const float *mean, const float *scale, char *err,
                     size_t errlen)
{
    mfl_dataset_t *tr = s_copy(self->raw_train);
    mfl_dataset_t *he = self->raw_heldout ? s_copy(self->raw_heldout) : NULL;
    if (!tr || (self->raw_heldout && !he)) {
        mfl_dataset_destroy(&tr);
        mfl_dataset_destroy(&he);
        return mfl_errf(err, errlen, "site '%s': out of memory rescaling its rows", self->site),
               -1;
    }
    mfl_dataset_standardize(tr, mean, scale);
    tr->n_classes = self->train->n_classes;
    if (he) {
        mfl_dataset_standardize(he, mean, scale);
        he->n_classes = self->heldout ? self->heldout->n_classes : he->n_classes;
    }
    mfl_dataset_destroy(&self->train);
    mfl_dataset_destroy(&self->heldout);
    mfl_dataset_destroy(&self->fit);
    mfl_dataset_destroy(&self->val);
    self->train = tr;
    self->heldout = he;
    return 0;
}

int mfl_site_worker_enable_federated_scaling(mfl_site_worker_t *self,
                                             const mfl_dataset_t *raw_train,
                                             const mfl_dataset_t *raw_heldout, char *err,
                                             size_t errlen)
{
    size_t nf = self->train->n_features;
    if (!raw_train || raw_train->n != self->train->n || raw_train->n_features != nf ||
        (raw_heldout && (!self->heldout || raw_heldout->n != self->heldout->n ||
                         raw_heldout->n_features != nf)))
        return mfl_errf(err, errlen, "site '%s': the unscaled rows do not match its data",
                        self->site), -1;
    if (nf > MFL_TASK_SCALING_MAX)
        return mfl_errf(err, errlen, "site '%s': data.standardize: federated takes at most %d "
                        "features; the data has %zu", self->site, MFL_TASK_SCALING_MAX, nf), -1;
    mfl_dataset_destroy(&self->raw_train);
    mfl_dataset_destroy(&self->raw_heldout);
    free(self->own_mean);
    free(self->own_scale);
    self->own_mean = malloc(nf * sizeof(float));
    self->own_scale = malloc(nf * sizeof(float));
    self->raw_train = s_copy(raw_train);
    self->raw_heldout = raw_heldout ? s_copy(raw_heldout) : NULL;
    if (!self->own_mean || !self->own_scale || !self->raw_train ||
        (raw_heldout && !self->raw_heldout))
        return mfl_errf(err, errlen, "site '%s': out of memory", self->site), -1;
    /* Its own scaling, exactly as data.standardize: site computes it. */
    mfl_dataset_feature_stats(self->raw_train, self->own_mean, self->own_scale);
    self->scaled_pooled = false;
    return s_rescale(self, self->own_mean, self->own_scale, err, errlen);
}

int mfl_site_scaling_apply(mfl_site_worker_t *self, const mfl_task_scaling_t *sc, char *err,
                           size_t errlen)
{
    if (!sc->n) {
        if (!self->scaled_pooled)
            return 0;
        self->scaled_pooled = false;
        mfl_info("site %s: back to its own feature scaling (the task carries none)",
                 self->site);
        return s_rescale(self, self->own_mean, self->own_scale, err, errlen);
    }
    if (!self->raw_train)
        return mfl_errf(err, errlen, "site '%s': the task asks for the consortium's feature "
                        "scaling (the coordinator's data.standardize: federated), but this "
                        "site's data.standardize is not federated", self->site), -1;
    size_t nf = self->raw_train->n_features;
    if (sc->n != nf)
        return mfl_errf(err, errlen, "site '%s': the task's scaling has %u features, the data "
                        "%zu", self->site, sc->n, nf), -1;
    if (self->scaled_pooled && memcmp(self->pooled.mean, sc->mean, nf * sizeof(float)) == 0 &&
        memcmp(self->pooled.scale, sc->scale, nf * sizeof(float)) == 0)
        return 0;
    if (s_rescale(self, sc->mean, sc->scale, err, errlen) < 0)
        return -1;
    self->pooled = *sc;
    self->scaled_pooled = true;
    mfl_info("site %s: features scaled with the consortium's pooled mean and scale "
             "(%zu features)", self->site, nf);
    return 0;
}

int mfl_site_worker_moments(mfl_site_worker_t *self, double fraction, uint64_t seed,
                            char *err, size_t errlen)
{
    if (!self->raw_train)
        return mfl_errf(err, errlen, "site '%s': asked for its fit rows' moments (the "
                        "coordinator's data.standardize: federated), but this site's "
                        "data.standardize is not federated: it shares no moments",
                        self->site), -1;
    const mfl_dataset_t *rows = self->raw_train;
    mfl_dataset_t *fit = NULL, *val = NULL;
    if (fraction > 0) {
        if (!(fraction <= MFL_TASK_VALIDATION_MAX))
            return mfl_errf(err, errlen, "site '%s': validation fraction %g", self->site,
                            fraction), -1;
        /* The very split site_validation.c makes (labels and seed only). */
        mfl_rng_t rng;
        mfl_rng_seed(&rng, seed, mfl_site_worker_stream(self->site, 0) ^ S_VALIDATION_STREAM);
        if (mfl_dataset_split(self->raw_train, fraction, &rng, &val, &fit) < 0)
            return mfl_errf(err, errlen, "site '%s': out of memory", self->site), -1;
        rows = fit;
    }
    size_t nf = rows->n_features, n = rows->n;
    for (size_t j = 0; j < nf; j++) {
        double s = 0, ss = 0;
        for (size_t i = 0; i < n; i++) {
            double v = rows->x[i * nf + j];
            s += v;
            ss += v * v;
        }
        self->moments_sum[j] = s;
        self->moments_sum_sq[j] = ss;
    }
    self->n_moments = (uint32_t)nf;
    self->moments_n = n;
    mfl_info("site %s: sends the count (%zu) and per-feature sums and sums of squares of its "
             "fit rows (%zu features; %s); test rows untouched", self->site, n, nf,
             fraction > 0 ? "validation rows left out" : "all training rows");
    mfl_dataset_destroy(&fit);
    mfl_dataset_destroy(&val);
    return 0;
}
