/* The site worker: a round (θ → signed Δ) and an evaluation (θ → report),
 * with no transport and no global state. See site_worker.h for the contract.
 *
 * Data loading from a site config lives in site_data.c; this file only sees
 * data sets already in memory. */
#include "site/site_worker.h"

#include <math.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/bigmem.h"
#include "core/log.h"
#include "data/csv_canon.h"
#include "fed/vec.h"
#include "meta/treatment.h"
#include "site/site_worker_internal.h"

/* Learner rows per forward pass: the learner splits larger sets into chunks
 * of this many rows, so memory stays bounded for big sites. */
#define S_MAX_BATCH 512
/* A local-only model gets at least this many steps: adaptation from a good
 * initialisation needs few steps, training from scratch needs more, and the
 * comparison should not handicap the hospital's alternative. */
#define S_LOCAL_ONLY_MIN_STEPS 100

static mfl_site_worker_t *s_fail_new(mfl_site_worker_t *self, mfl_dataset_t *train,
                                     mfl_dataset_t *heldout)
{
    mfl_dataset_destroy(&train);
    mfl_dataset_destroy(&heldout);
    mfl_site_worker_destroy(&self);
    return NULL;
}

/* The canonical schema text (the loader's, or one made from the data's
 * shape) and its hash, which the Hello carries. */
static int s_set_schema(mfl_site_worker_t *self, const char *schema_text)
{
    const mfl_dataset_t *d = self->train;
    self->schema_text = schema_text ? strdup(schema_text)
                                    : mfl_schema_canonical_plain(NULL, d->n_features, d->channels,
                                                                 d->height, d->width,
                                                                 d->n_classes);
    if (!self->schema_text)
        return -1;
    mfl_schema_hash(self->schema_text, self->schema_hash);
    return 0;
}

/* eval.treatment_arms: the label must be arm × outcome (2 classes per arm)
 * and every arm must have training rows (its propensity is their share). */
static int s_check_treatment(const mfl_site_worker_t *self, char *err, size_t errlen)
{
    size_t arms = self->opts.treatment_arms;
    double p[MFL_TREATMENT_MAX_ARMS];
    if (!arms)
        return 0;
    if (arms > MFL_TREATMENT_MAX_ARMS || self->train->n_classes != 2 * arms)
        return mfl_errf(err, errlen, "site '%s': eval.treatment_arms %zu needs a label of %zu "
                        "classes (class = arm * 2 + good outcome), the data has %zu",
                        self->site, arms, 2 * arms, self->train->n_classes), -1;
    if (mfl_treatment_propensity(self->train->y, self->train->n, arms, p))
        return mfl_errf(err, errlen, "site '%s': eval.treatment_arms %zu: some arm has no "
                        "patient in the training split (%zu rows), so its policy value "
                        "cannot be estimated", self->site, arms, self->train->n), -1;
    return 0;
}

mfl_site_worker_t *mfl_site_worker_new_internal(const char *site_id, mfl_dataset_t *train,
                                                mfl_dataset_t *heldout, const uint8_t *sign_sk,
                                                const char *schema_text,
                                                const mfl_site_worker_opts_t *opts, char *err,
                                                size_t errlen)
{
    if (sodium_init() < 0)
        return mfl_errf(err, errlen, "libsodium failed to initialise"),
               s_fail_new(NULL, train, heldout);
    if (!site_id || !*site_id || strlen(site_id) >= MFL_SITE_ID_MAX)
        return mfl_errf(err, errlen, "site id must be 1..%d characters", MFL_SITE_ID_MAX - 1),
               s_fail_new(NULL, train, heldout);
    if (!train || train->n == 0 || train->n_features == 0)
        return mfl_errf(err, errlen, "site '%s': the training split is empty", site_id),
               s_fail_new(NULL, train, heldout);
    if (heldout && heldout->n_features != train->n_features)
        return mfl_errf(err, errlen, "site '%s': held-out rows have %zu features, training "
                        "rows %zu", site_id, heldout->n_features, train->n_features),
               s_fail_new(NULL, train, heldout);
    mfl_site_worker_t *self = calloc(1, sizeof(*self));
    if (!self)
        return mfl_errf(err, errlen, "out of memory"), s_fail_new(NULL, train, heldout);
    snprintf(self->site, sizeof(self->site), "%s", site_id);
    self->train = train;
    self->heldout = heldout;
    if (opts)
        self->opts = *opts;
    self->encodings_offered = MFL_SITE_ENCODINGS_ALL;
    if (self->opts.local_only_min_steps <= 0)
        self->opts.local_only_min_steps = S_LOCAL_ONLY_MIN_STEPS;
    if (s_check_treatment(self, err, errlen))
        return s_fail_new(self, NULL, NULL);
    mfl_privacy_policy_defaults(&self->policy);
    mfl_privacy_accountant_init(&self->spent, NULL, 0, NULL, 0);
    self->ledger_known = true; /* in memory, from zero: see mfl_site_worker_set_ledger */
    if (sign_sk && mfl_site_worker_set_signing_key(self, sign_sk))
        return mfl_errf(err, errlen, "out of secure memory for the signing key"),
               s_fail_new(self, NULL, NULL);
    if (s_set_schema(self, schema_text) < 0)
        return mfl_errf(err, errlen, "out of memory"), s_fail_new(self, NULL, NULL);
    return self;
}

mfl_site_worker_t *mfl_site_worker_new_from_data(const char *site_id, mfl_dataset_t *train,
                                                 mfl_dataset_t *heldout,
                                                 const uint8_t *sign_sk, char *err,
                                                 size_t errlen)
{
    return mfl_site_worker_new_internal(site_id, train, heldout, sign_sk, NULL, NULL, err,
                                        errlen);
}

void mfl_site_worker_set_audit_head(mfl_site_worker_t *self, uint64_t seq,
                                    const uint8_t *head)
{
    self->has_audit_head = head != NULL;
    self->audit_seq = head ? seq : 0;
    if (head)
        memcpy(self->audit_head, head, 32);
}

int mfl_site_worker_set_signing_key(mfl_site_worker_t *self, const uint8_t *sign_sk)
{
    if (self->sign_sk) {
        sodium_free(self->sign_sk); /* wipes before freeing */
        self->sign_sk = NULL;
    }
    if (!sign_sk)
        return 0;
    self->sign_sk = sodium_malloc(MFL_SITE_SIGN_SK_BYTES);
    if (!self->sign_sk)
        return -1;
    memcpy(self->sign_sk, sign_sk, MFL_SITE_SIGN_SK_BYTES);
    sodium_mprotect_readonly(self->sign_sk);
    return 0;
}

int mfl_site_worker_set_privacy(mfl_site_worker_t *self, const mfl_privacy_policy_t *policy,
                                char *err, size_t errlen)
{
    if (mfl_privacy_policy_check(policy, err, errlen))
        return -1;
    self->policy = *policy;
    return 0;
}

void mfl_site_worker_set_ledger(mfl_site_worker_t *self, const mfl_privacy_accountant_t *spent,
                                const char *why)
{
    self->ledger_known = spent != NULL;
    if (spent)
        self->spent = *spent;
    else
        mfl_privacy_accountant_init(&self->spent, NULL, 0, NULL, 0);
    snprintf(self->ledger_why, sizeof self->ledger_why, "%s", why ? why : "");
}

double mfl_site_worker_epsilon_spent(const mfl_site_worker_t *self)
{
    double eps = NAN;
    if (self->ledger_known &&
        mfl_privacy_accountant_epsilon(&self->spent, self->policy.delta,
                                       MFL_RDP_CONVERT_BALLE2020, &eps, NULL, NULL, 0))
        eps = NAN;
    return eps;
}

const mfl_privacy_policy_t *mfl_site_worker_policy(const mfl_site_worker_t *self)
{
    return &self->policy;
}

void mfl_site_worker_destroy(mfl_site_worker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_site_worker_t *self = *self_p;
    free(self->schema_text);
    free(self->data_report);
    mfl_learner_destroy(&self->learner);
    mfl_dataset_destroy(&self->train);
    mfl_dataset_destroy(&self->heldout);
    mfl_dataset_destroy(&self->fit);
    mfl_dataset_destroy(&self->val);
    mfl_dataset_destroy(&self->raw_train);
    mfl_dataset_destroy(&self->raw_heldout);
    free(self->own_mean);
    free(self->own_scale);
    if (self->sign_sk)
        sodium_free(self->sign_sk); /* wipes before freeing */
    free(self->delta);
    free(self->scratch);
    free(self->header);
    free(self->hashes);
    free(self->chunk_hashes);
    free(self->residual);
    free(self->residual_next);
    free(self->encoded);
    free(self->scales);
    free(self);
    *self_p = NULL;
}

const char *mfl_site_worker_site(const mfl_site_worker_t *self)
{
    return self->site;
}

size_t mfl_site_worker_n_train(const mfl_site_worker_t *self)
{
    return self->train->n;
}

size_t mfl_site_worker_n_heldout(const mfl_site_worker_t *self)
{
    return self->heldout ? self->heldout->n : 0;
}

size_t mfl_site_worker_n_features(const mfl_site_worker_t *self)
{
    return self->train->n_features;
}

const uint8_t *mfl_site_worker_schema_hash(const mfl_site_worker_t *self)
{
    return self->schema_hash;
}

const char *mfl_site_worker_schema_text(const mfl_site_worker_t *self)
{
    return self->schema_text;
}

const char *mfl_site_worker_data_report(const mfl_site_worker_t *self)
{
    return self->data_report;
}

size_t mfl_site_worker_n_classes(const mfl_site_worker_t *self)
{
    return self->train->n_classes;
}

size_t mfl_site_worker_class_counts(const mfl_site_worker_t *self, uint64_t *counts,
                                    size_t max)
{
    size_t nc = self->train->n_classes;
    if (nc == 0 || nc > max)
        return 0;
    memset(counts, 0, nc * sizeof *counts);
    for (size_t i = 0; i < self->train->n; i++) {
        float y = self->train->y[i];
        if (y >= 0 && (size_t)y < nc)
            counts[(size_t)y]++;
    }
    return nc;
}

uint64_t mfl_site_worker_stream(const char *site_id, uint32_t round)
{
    /* FNV-1a over the id, then a splitmix-style mix with the round, so
     * neighbouring rounds and similar names give unrelated streams. */
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)site_id; p && *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    uint64_t z = h ^ ((uint64_t)round * 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

size_t mfl_site_worker_n_tensors(const mfl_site_worker_t *self)
{
    return self->learner ? mfl_learner_n_tensors(self->learner) : 0;
}

const mfl_tensor_info_t *mfl_site_worker_tensor(const mfl_site_worker_t *self, size_t index)
{
    if (!self->learner || index >= mfl_learner_n_tensors(self->learner))
        return NULL;
    return mfl_learner_tensor(self->learner, index);
}

/* Field by field (padding and float representations make a byte compare
 * unreliable): true if a learner built from `a` serves `b` too. */
static bool s_same_config(const mfl_learner_config_t *a, const mfl_learner_config_t *b)
{
    return a->algo == b->algo && strcmp(a->model_spec, b->model_spec) == 0 &&
           a->loss == b->loss && a->pos_weight == b->pos_weight &&
           a->inner_steps == b->inner_steps && a->inner_lr == b->inner_lr &&
           a->meta_batch == b->meta_batch && a->outer_steps == b->outer_steps &&
           a->outer_lr == b->outer_lr && a->outer_optim == b->outer_optim &&
           a->batch_size == b->batch_size && a->local_epochs == b->local_epochs &&
           strcmp(a->relation_spec, b->relation_spec) == 0;
}

/* The whole pages inside [p, p + bytes) given back to the kernel: they
 * read as zeros afterwards, and cost no memory until written again. */
static void s_drop_pages(void *p, size_t bytes)
{
    long ps = sysconf(_SC_PAGESIZE);
    if (!p || ps <= 0)
        return;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)ps - 1) & ~((uintptr_t)ps - 1);
    uintptr_t b = ((uintptr_t)p + bytes) & ~((uintptr_t)ps - 1);
    if (b > a)
        (void)madvise((void *)a, b - a, MADV_DONTNEED);
}

void mfl_site_worker_release_update(mfl_site_worker_t *self)
{
    if (self)
        mfl_site_worker_drop_update_pages(self);
}

void mfl_site_worker_take_update(mfl_site_worker_t *self, float **delta, uint8_t **encoded)
{
    *delta = self->delta;
    *encoded = self->encoded;
    self->delta = NULL;
    self->encoded = NULL;
}

void mfl_site_worker_drop_update_pages(mfl_site_worker_t *self)
{
    if (self->n_state < MFL_SITE_DROP_PAGES_PARAMS)
        return;
    s_drop_pages(self->delta, self->n_state * sizeof(float));
    if (self->encoded)
        s_drop_pages(self->encoded, 2 * self->n_state);
}

/* (Re)builds the learner when the task asks for another model or algorithm. */
int mfl_site_worker_prepare(mfl_site_worker_t *self, const mfl_task_algorithm_t *spec,
                            const char *model_spec, size_t n_theta, char *err, size_t errlen)
{
    mfl_learner_config_t config;
    memset(&config, 0, sizeof(config));
    if (mfl_task_algorithm_to_learner(spec, model_spec, &config, err, errlen))
        return -1;
    if (!self->learner || !s_same_config(&config, &self->learner_config)) {
        mfl_learner_destroy(&self->learner);
        char sub[256];
        self->learner = mfl_learner_new(&config, S_MAX_BATCH, sub, sizeof(sub));
        if (!self->learner)
            return mfl_errf(err, errlen, "site '%s': cannot build the learner: %s",
                            self->site, sub), -1;
        self->learner_config = config;
        size_t ns = mfl_learner_n_state(self->learner);
        float *d = realloc(self->delta, ns * sizeof(float));
        if (!d)
            return mfl_learner_destroy(&self->learner), mfl_errf(err, errlen, "out of memory"),
                   -1;
        self->delta = d;
        mfl_mem_advise_huge(d, ns * sizeof(float)); /* re-faulted every round */
        float *s = realloc(self->scratch, ns * sizeof(float));
        if (!s)
            return mfl_learner_destroy(&self->learner), mfl_errf(err, errlen, "out of memory"),
                   -1;
        self->scratch = s;
        mfl_mem_advise_huge(s, ns * sizeof(float));
        self->n_state = ns;
        /* another model: the old rounding errors belong to the old one */
        free(self->residual);
        free(self->residual_next);
        self->residual = self->residual_next = NULL;
        self->residual_round = 0;
    }
    if (!self->delta) { /* handed over with the last update (take_update) */
        self->delta = malloc((self->n_state ? self->n_state : 1) * sizeof(float));
        if (!self->delta)
            return mfl_errf(err, errlen, "out of memory"), -1;
        mfl_mem_advise_huge(self->delta, self->n_state * sizeof(float));
    }
    if (n_theta != self->n_state)
        return mfl_errf(err, errlen, "site '%s': θ has %zu floats but model '%s' with '%s' "
                        "needs %zu", self->site, n_theta, model_spec, spec->name,
                        self->n_state), -1;
    return 0;
}

/* Both run over all of θ or Δ every round: vectorised passes (fed/vec.h). */
int mfl_site_check_finite(const float *v, size_t n)
{
    return mfl_vec_first_nonfinite(v, n) < n ? -1 : 0;
}

double mfl_site_l2(const float *v, size_t n)
{
    return sqrt(mfl_vec_sumsq(v, n));
}

void mfl_site_worker_set_encodings(mfl_site_worker_t *self, uint32_t mask)
{
    self->encodings_offered = (mask | 1u) & MFL_SITE_ENCODINGS_ALL;
}

uint32_t mfl_site_worker_encodings(const mfl_site_worker_t *self)
{
    return self->encodings_offered;
}
