/* Model selection's validation rows at a site: a stratified, seeded split of
 * the training rows into fit and validation parts, swapped in while a
 * selection task runs (docs/SELECTION.md). The held-out test rows are not
 * read here at all: selection never sees them. */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "site/site_worker_internal.h"

#define S_VALIDATION_STREAM 0x76616c6964ull /* "valid" */

int mfl_site_worker_validation(mfl_site_worker_t *self, double fraction, uint64_t seed,
                               const mfl_dataset_t **fit, const mfl_dataset_t **val,
                               char *err, size_t errlen)
{
    if (!(fraction > 0 && fraction <= MFL_TASK_VALIDATION_MAX))
        return mfl_errf(err, errlen, "site '%s': validation fraction %g is not in (0, %g]",
                        self->site, fraction, MFL_TASK_VALIDATION_MAX), -1;
    if (!self->fit || self->val_fraction != fraction || self->val_seed != seed) {
        mfl_dataset_destroy(&self->fit);
        mfl_dataset_destroy(&self->val);
        mfl_rng_t rng;
        mfl_rng_seed(&rng, seed, mfl_site_worker_stream(self->site, 0) ^ S_VALIDATION_STREAM);
        mfl_dataset_t *v = NULL, *f = NULL;
        if (mfl_dataset_split(self->train, fraction, &rng, &v, &f) < 0)
            return mfl_errf(err, errlen, "site '%s': out of memory splitting validation rows",
                            self->site), -1;
        if (!v->n || !f->n) {
            mfl_errf(err, errlen, "site '%s': %zu training rows cannot give both a validation "
                     "part (fraction %g: %zu rows) and rows to train on", self->site,
                     self->train->n, fraction, v->n);
            mfl_dataset_destroy(&v);
            mfl_dataset_destroy(&f);
            return -1;
        }
        /* A subset counts its own classes: keep the site's, so a class
         * missing from a small part still has its output. */
        v->n_classes = f->n_classes = self->train->n_classes;
        v->channels = f->channels = self->train->channels;
        v->height = f->height = self->train->height;
        v->width = f->width = self->train->width;
        self->fit = f;
        self->val = v;
        self->val_fraction = fraction;
        self->val_seed = seed;
        mfl_info("site %s: model selection holds out %zu of %zu training rows for validation "
                 "(fraction %g, seed %llu, stratified); test rows untouched", self->site, v->n,
                 self->train->n, fraction, (unsigned long long)seed);
    }
    if (fit)
        *fit = self->fit;
    if (val)
        *val = self->val;
    return 0;
}

int mfl_site_validation_enter(mfl_site_worker_t *self, const mfl_task_selection_t *sel,
                              mfl_site_data_swap_t *saved, char *err, size_t errlen)
{
    memset(saved, 0, sizeof *saved);
    if (!sel->candidate)
        return 0;
    if (mfl_site_worker_validation(self, sel->validation_fraction, sel->validation_seed, NULL,
                                   NULL, err, errlen) < 0)
        return -1;
    saved->train = self->train;
    saved->heldout = self->heldout;
    saved->swapped = true;
    self->train = self->fit;
    self->heldout = self->val;
    return 0;
}

void mfl_site_validation_leave(mfl_site_worker_t *self, const mfl_site_data_swap_t *saved)
{
    if (!saved->swapped)
        return;
    self->train = saved->train;
    self->heldout = saved->heldout;
}
