/* A site's data, from its config: load (CSV with the config's schema, or a
 * built-in source), split into training / held-out rows with the config's
 * seed, standardise with the training rows' own statistics, and build the
 * worker. Errors name FILE:LINE (and the column) of the offending cell. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "config/csv_schema_yaml.h"
#include "data/csv.h"
#include "data/heart.h"
#include "data/wdbc.h"
#include "site/site_config.h"
#include "site/site_worker_internal.h"

/* The built-in sources: WDBC through its own loader (data/wdbc.h), UCI
 * heart through the CSV loader with FLamby's schema (data/heart.h). */

/* Canonical schema text for the Hello's schema hash: the feature names in
 * order (sites whose loaders produce the same features hash equal, whatever
 * their file layout). */
static char *s_schema_text(const mfl_site_config_t *cfg, const mfl_csv_stats_t *st)
{
    size_t len = 64;
    for (size_t i = 0; i < st->n_features; i++)
        len += (st->feature_names && st->feature_names[i] ? strlen(st->feature_names[i]) : 8) + 1;
    char *t = malloc(len);
    if (!t)
        return NULL;
    (void)cfg;
    size_t o = (size_t)snprintf(t, len, "table\n");
    for (size_t i = 0; i < st->n_features && o < len; i++) {
        const char *nm = st->feature_names && st->feature_names[i] ? st->feature_names[i] : "?";
        o += (size_t)snprintf(t + o, len - o, "%s\n", nm);
    }
    return t;
}

mfl_site_worker_t *mfl_site_worker_new(const struct mfl_site_config *cfg, char *err,
                                       size_t errlen)
{
    mfl_csv_schema_t schema;
    memset(&schema, 0, sizeof(schema));
    mfl_csv_stats_t stats;
    memset(&stats, 0, sizeof(stats));
    mfl_dataset_t *all = NULL;
    char *wdbc_names[MFL_WDBC_N_FEATURES];
    switch (cfg->data_kind) {
    case MFL_SITE_DATA_CSV:
        if (!cfg->doc)
            return mfl_errf(err, errlen, "%s: data.schema was not loaded", cfg->file), NULL;
        if (mfl_csv_schema_from_yaml(cfg->doc, "data.schema", &schema, err, errlen))
            return NULL;
        break;
    case MFL_SITE_DATA_WDBC:
        all = mfl_wdbc_load(cfg->data_path, err, errlen);
        if (!all)
            return NULL;
        for (size_t i = 0; i < MFL_WDBC_N_FEATURES; i++)
            wdbc_names[i] = (char *)mfl_wdbc_feature_name(i);
        stats.feature_names = wdbc_names; /* borrowed: never cleared below */
        stats.n_features = MFL_WDBC_N_FEATURES;
        break;
    case MFL_SITE_DATA_HEART:
        /* FLamby's preprocessing of one raw hospital file (data/heart.h). */
        schema = *mfl_heart_csv_schema();
        schema.owned = NULL; /* static: never freed here */
        break;
    }
    bool owned_stats = cfg->data_kind != MFL_SITE_DATA_WDBC;
    if (!all) {
        all = mfl_csv_load(cfg->data_path, &schema, &stats, err, errlen);
        mfl_csv_schema_clear(&schema);
        if (!all) {
            mfl_csv_stats_clear(&stats);
            return NULL;
        }
    }
    if (all->n < 2 || all->n_classes < 2) {
        mfl_errf(err, errlen, "%s: %zu usable rows with %zu classes; a site needs at least 2 "
                 "rows and a classification label", cfg->data_path, all->n, all->n_classes);
        mfl_dataset_destroy(&all);
        if (owned_stats)
            mfl_csv_stats_clear(&stats);
        return NULL;
    }
    char *schema_text = s_schema_text(cfg, &stats);
    if (owned_stats)
        mfl_csv_stats_clear(&stats);

    mfl_dataset_t *train = NULL, *heldout = NULL;
    mfl_rng_t rng;
    mfl_rng_seed(&rng, cfg->split_seed, 0x5157u /* "split" stream */);
    if (cfg->train_fraction >= 1.0) {
        train = all;
        all = NULL;
    } else if (mfl_dataset_split(all, cfg->train_fraction, &rng, &train, &heldout)) {
        mfl_dataset_destroy(&all);
        free(schema_text);
        return mfl_errf(err, errlen, "out of memory splitting %s", cfg->data_path), NULL;
    }
    mfl_dataset_destroy(&all);
    if (!train || train->n == 0) {
        mfl_dataset_destroy(&train);
        mfl_dataset_destroy(&heldout);
        free(schema_text);
        return mfl_errf(err, errlen, "%s: no training rows after the %.2f split",
                        cfg->data_path, cfg->train_fraction), NULL;
    }
    if (cfg->standardize == MFL_SITE_STD_SITE) {
        /* Statistics of the training rows only, applied to both splits: the
         * held-out rows play the part of future patients. */
        size_t nf = train->n_features;
        float *mean = malloc(nf * sizeof(float)), *sd = malloc(nf * sizeof(float));
        if (!mean || !sd) {
            free(mean);
            free(sd);
            mfl_dataset_destroy(&train);
            mfl_dataset_destroy(&heldout);
            free(schema_text);
            return mfl_errf(err, errlen, "out of memory"), NULL;
        }
        mfl_dataset_feature_stats(train, mean, sd);
        mfl_dataset_standardize(train, mean, sd);
        if (heldout)
            mfl_dataset_standardize(heldout, mean, sd);
        free(mean);
        free(sd);
    }
    mfl_site_worker_opts_t opts = {.local_only_min_steps = (int)cfg->local_only_steps,
                                   .eval_support = cfg->eval_support};
    mfl_site_worker_t *w = mfl_site_worker_new_internal(cfg->site_id, train, heldout, NULL,
                                                        schema_text, &opts, err, errlen);
    free(schema_text);
    if (w && mfl_site_worker_set_privacy(w, &cfg->privacy, err, errlen)) {
        mfl_site_worker_destroy(&w);
        return NULL;
    }
    /* With a DP mode the budget spent must come from the audit log (the
     * agent reads it); until then no DP task runs. */
    if (w && cfg->privacy.mode != MFL_PRIVACY_MODE_NONE)
        mfl_site_worker_set_ledger(w, NULL, "the site's audit log has not been read yet");
    return w;
}
