/* Per-site adaptation chosen by cross-validation on the site's own support
 * cases (eval.adapt_search, docs/SELECTION.md): K stratified folds of the
 * support set, one SGD trajectory per (rate, fold) scored at the step
 * checkpoints, the lowest mean held-out-fold loss wins, a rate whose mean
 * loss has risen at two checkpoints in a row stops early. The test rows are
 * not read here. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "site/site_worker_internal.h"

#define S_FOLD_STREAM 0x63762d666f6c64ull /* "cv-fold" */
#define S_PATIENCE 2                     /* checkpoints of rising loss before a rate stops */

static const uint32_t s_steps[] = MFL_SITE_ADAPT_STEPS;
static const float s_rates[] = MFL_SITE_ADAPT_RATES;
#define S_N_STEPS (sizeof s_steps / sizeof *s_steps)
#define S_N_RATES (sizeof s_rates / sizeof *s_rates)

size_t mfl_site_adapt_folds(double validation_fraction, size_t n_support)
{
    if (!(validation_fraction > 0) || n_support < 2)
        return 0;
    double k = floor(1.0 / validation_fraction + 0.5);
    size_t folds = k < 2 ? 2 : k > MFL_SITE_ADAPT_MAX_FOLDS ? MFL_SITE_ADAPT_MAX_FOLDS : (size_t)k;
    return folds < n_support ? folds : n_support;
}

/* fold[i] for each support row: per class, a seeded shuffle dealt round
 * robin, continuing where the previous class stopped, so every fold gets
 * rows and each class is spread over the folds. */
static void s_assign(const mfl_dataset_t *support, size_t folds, uint64_t seed,
                     const char *site, size_t *order, size_t *fold)
{
    size_t n = support->n, at = 0;
    for (size_t i = 0; i < n; i++) {
        order[i] = i;
        fold[i] = SIZE_MAX;
    }
    mfl_rng_t rng;
    mfl_rng_seed(&rng, seed, mfl_site_worker_stream(site, 0) ^ S_FOLD_STREAM);
    mfl_rng_shuffle(&rng, order, n);
    size_t nc = support->n_classes ? support->n_classes : 1;
    for (size_t c = 0; c < nc; c++)
        for (size_t i = 0; i < n; i++) {
            size_t r = order[i];
            bool in = support->n_classes ? support->y[r] == (float)c : c == 0;
            if (in)
                fold[r] = at++ % folds;
        }
    for (size_t i = 0; i < n; i++) /* a label outside 0..n_classes-1: dealt on */
        if (fold[order[i]] == SIZE_MAX)
            fold[order[i]] = at++ % folds;
}

typedef struct {
    mfl_dataset_t *fit[MFL_SITE_ADAPT_MAX_FOLDS], *out[MFL_SITE_ADAPT_MAX_FOLDS];
    float *theta[MFL_SITE_ADAPT_MAX_FOLDS]; /* each fold's trajectory */
    float *next;
    size_t folds;
} s_cv_t;

static void s_cv_free(s_cv_t *cv)
{
    for (size_t f = 0; f < MFL_SITE_ADAPT_MAX_FOLDS; f++) {
        mfl_dataset_destroy(&cv->fit[f]);
        mfl_dataset_destroy(&cv->out[f]);
        free(cv->theta[f]);
    }
    free(cv->next);
    memset(cv, 0, sizeof *cv);
}

static int s_cv_build(s_cv_t *cv, const mfl_dataset_t *support, size_t folds, uint64_t seed,
                      const char *site, size_t n_state)
{
    size_t n = support->n;
    size_t *order = malloc(n * sizeof *order), *fold = malloc(n * sizeof *fold);
    size_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    int rc = -1;
    cv->folds = folds;
    cv->next = malloc(n_state * sizeof(float));
    if (!order || !fold || !a || !b || !cv->next)
        goto out;
    s_assign(support, folds, seed, site, order, fold);
    for (size_t f = 0; f < folds; f++) {
        size_t na = 0, nb = 0;
        for (size_t i = 0; i < n; i++) {
            if (fold[i] == f)
                b[nb++] = i;
            else
                a[na++] = i;
        }
        cv->fit[f] = mfl_dataset_subset(support, a, na);
        cv->out[f] = mfl_dataset_subset(support, b, nb);
        cv->theta[f] = malloc(n_state * sizeof(float));
        if (!cv->fit[f] || !cv->out[f] || !cv->theta[f])
            goto out;
        mfl_dataset_t *parts[2] = {cv->fit[f], cv->out[f]};
        for (int p = 0; p < 2; p++) { /* a part counts its own classes: keep the site's */
            parts[p]->n_classes = support->n_classes;
            parts[p]->channels = support->channels;
            parts[p]->height = support->height;
            parts[p]->width = support->width;
        }
    }
    rc = 0;
out:
    free(order);
    free(fold);
    free(a);
    free(b);
    return rc;
}

/* Mean held-out-fold loss (weighted by fold rows) after advancing every
 * fold's θ by `steps` steps of `lr`; NAN if any fold diverges. */
static double s_cv_advance(mfl_site_worker_t *self, s_cv_t *cv, uint32_t steps, float lr,
                           size_t n_state)
{
    double sum = 0;
    size_t rows = 0;
    char sub[256];
    for (size_t f = 0; f < cv->folds; f++) {
        mfl_eval_metrics_t m;
        if (mfl_learner_evaluate(self->learner, cv->theta[f], cv->fit[f], cv->out[f],
                                 (int)steps, lr, cv->next, &m, sub, sizeof sub) != 0 ||
            !isfinite(m.loss))
            return NAN;
        memcpy(cv->theta[f], cv->next, n_state * sizeof(float));
        sum += m.loss * (double)cv->out[f]->n;
        rows += cv->out[f]->n;
    }
    return rows ? sum / (double)rows : NAN;
}

int mfl_site_adapt_cv_loss(mfl_site_worker_t *self, const float *theta,
                           const mfl_dataset_t *support, uint64_t seed, double fraction,
                           uint32_t steps, float lr, double *loss, char *err, size_t errlen)
{
    *loss = NAN;
    size_t folds = mfl_site_adapt_folds(fraction, support->n);
    if (!folds)
        return mfl_errf(err, errlen, "site '%s': %zu support cases cannot be cross-validated "
                        "(at least 2 needed)", self->site, support->n), -1;
    size_t n_state = mfl_learner_n_state(self->learner);
    s_cv_t cv;
    memset(&cv, 0, sizeof cv);
    int rc = s_cv_build(&cv, support, folds, seed, self->site, n_state);
    if (rc == 0) {
        for (size_t f = 0; f < folds; f++)
            memcpy(cv.theta[f], theta, n_state * sizeof(float));
        *loss = s_cv_advance(self, &cv, steps, lr, n_state);
    } else {
        mfl_errf(err, errlen, "site '%s': out of memory building %zu folds", self->site, folds);
    }
    s_cv_free(&cv);
    return rc;
}

int mfl_site_adapt_search(mfl_site_worker_t *self, const float *theta,
                          const mfl_dataset_t *support, uint64_t seed, double fraction,
                          mfl_site_adapt_choice_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->loss = NAN;
    size_t folds = mfl_site_adapt_folds(fraction, support->n);
    if (!folds)
        return mfl_errf(err, errlen, "site '%s': %zu support cases cannot be cross-validated "
                        "(at least 2 needed)", self->site, support->n), -1;
    size_t n_state = mfl_learner_n_state(self->learner);
    s_cv_t cv;
    memset(&cv, 0, sizeof cv);
    if (s_cv_build(&cv, support, folds, seed, self->site, n_state) != 0) {
        s_cv_free(&cv);
        return mfl_errf(err, errlen, "site '%s': out of memory building %zu folds", self->site,
                        folds), -1;
    }
    out->folds = folds;
    double best = INFINITY;
    uint32_t bs = 0;
    float br = s_rates[0];
    size_t tried = 0;
    for (size_t r = 0; r < S_N_RATES; r++) {
        for (size_t f = 0; f < folds; f++)
            memcpy(cv.theta[f], theta, n_state * sizeof(float));
        double rate_best = INFINITY;
        int rising = 0;
        uint32_t at = 0;
        for (size_t s = 0; s < S_N_STEPS; s++) {
            if (s_steps[s] == 0 && r > 0)
                continue; /* no adaptation: scored once, with the first rate */
            double loss = s_cv_advance(self, &cv, s_steps[s] - at, s_rates[r], n_state);
            at = s_steps[s];
            if (!isfinite(loss))
                break; /* this rate diverges from here on: not a choice */
            tried++;
            /* Strictly lower wins: ties keep fewer steps, then the lower rate. */
            if (loss < best || (loss == best && s_steps[s] < bs)) {
                best = loss;
                bs = s_steps[s];
                br = s_rates[r];
            }
            if (loss < rate_best) {
                rate_best = loss;
                rising = 0;
            } else if (++rising >= S_PATIENCE) {
                break; /* early stopping: held-out loss keeps rising at this rate */
            }
        }
    }
    s_cv_free(&cv);
    if (!tried)
        return mfl_errf(err, errlen, "site '%s': no adaptation setting could be scored on "
                        "its %zu folds (every rate diverged)", self->site, folds), -1;
    out->steps = bs;
    out->lr = br;
    out->loss = best;
    out->tried = tried;
    return 0;
}
