/* Robust aggregation in the round engine (issue 10, item 15): with
 * server.aggregator median, trimmed_mean or multi_krum the engine keeps
 * each accepted Δ (4·P bytes per update, at most server.max_updates of
 * them: the selection is capped) and aggregates them at the close, in
 * site-id order, unweighted; with mean it folds each update into the
 * streaming fixed-point aggregate (O(P) for any number of sites). */
#include <math.h>
#include <stdlib.h>

#include "core/log.h"
#include "round/round_engine_internal.h"

void mfl_engine_robust_reset(mfl_round_engine_t *self)
{
    for (size_t i = 0; i < self->n_sites; i++) {
        free(self->sites[i].delta);
        self->sites[i].delta = NULL;
    }
}

int mfl_engine_robust_mean(mfl_round_engine_t *self, float *mean, char *err, size_t errlen)
{
    const float **d = malloc((self->n_sites ? self->n_sites : 1) * sizeof *d);
    if (!d) {
        mfl_errf(err, errlen, "out of memory");
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < self->n_sites; i++)
        if (self->sites[i].delta)
            d[k++] = self->sites[i].delta;
    int rc = -1;
    const mfl_coord_config_t *c = &self->config;
    switch (c->aggregator) {
    case MFL_AGG_MEDIAN:
        rc = mfl_robust_median(d, k, self->n_state, mean, err, errlen);
        break;
    case MFL_AGG_TRIMMED_MEAN:
        rc = mfl_robust_trimmed_mean(d, k, self->n_state,
                                     (size_t)floor(c->trim_fraction * (double)k), mean, err,
                                     errlen);
        break;
    case MFL_AGG_MULTI_KRUM: {
        size_t m = c->krum_m ? c->krum_m : (k > c->krum_f ? k - c->krum_f : 1);
        if (m > k)
            m = k;
        rc = mfl_robust_multi_krum(d, k, self->n_state, c->krum_f, m, mean, NULL, err,
                                   errlen);
        break;
    }
    case MFL_AGG_MEAN:
        mfl_errf(err, errlen, "mean is not a robust aggregator");
        break;
    }
    free(d);
    return rc;
}
