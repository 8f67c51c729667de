/* Offline experiments: a spec (read from YAML by config/experiment_config.c)
 * → data + samplers + learner, a block-wise training loop and a fixed
 * evaluation protocol. */
#include "meta/experiment.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "data/heart.h"
#include "data/idx.h"
#include "meta/task.h"

#define S_FMNIST_DIR "/usr/share/datasets/fashion-mnist"

static int s_load_fmnist(mfl_experiment_t *self, const mfl_experiment_spec_t *spec, char *err,
                         size_t errlen)
{
    const char *dir = spec->data_dir[0] ? spec->data_dir : S_FMNIST_DIR;
    char img[1024], lab[1024];
    snprintf(img, sizeof(img), "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(lab, sizeof(lab), "%s/train-labels-idx1-ubyte.gz", dir);
    self->train_data = mfl_idx_load(img, lab, spec->max_train_rows, err, errlen);
    if (!self->train_data)
        return -1;
    snprintf(img, sizeof(img), "%s/t10k-images-idx3-ubyte.gz", dir);
    snprintf(lab, sizeof(lab), "%s/t10k-labels-idx1-ubyte.gz", dir);
    self->test_data = mfl_idx_load(img, lab, 0, err, errlen);
    return self->test_data ? 0 : -1;
}

static int s_load_heart(mfl_experiment_t *self, const mfl_experiment_spec_t *spec, char *err,
                        size_t errlen)
{
    const char *shared = spec->heart_shared[0] ? spec->heart_shared : mfl_heart_default_shared();
    size_t n = spec->n_sites;
    if (n == 0) {
        for (size_t i = 0; i < MFL_HEART_N_SITES; i++)
            snprintf(self->site_name[i], sizeof(self->site_name[i]), "%s",
                     mfl_heart_site_name(i));
        n = MFL_HEART_N_SITES;
    } else {
        for (size_t i = 0; i < n; i++)
            snprintf(self->site_name[i], sizeof(self->site_name[i]), "%s", spec->site_name[i]);
    }
    for (size_t i = 0; i < n; i++) {
        if (mfl_heart_load(shared, self->site_name[i], spec->standardize, &self->site_train[i],
                           &self->site_test[i], err, errlen))
            return -1;
        self->n_sites = i + 1;
    }
    return 0;
}

mfl_experiment_t *mfl_experiment_new(const mfl_experiment_spec_t *spec, char *err,
                                     size_t errlen)
{
    mfl_experiment_t *self = calloc(1, sizeof(*self));
    if (!self) {
        mfl_errf(err, errlen, "%s: out of memory", spec->path);
        return NULL;
    }
    snprintf(self->path, sizeof(self->path), "%s", spec->path);
    self->seed = spec->seed;
    self->kind = spec->kind;
    self->learner = spec->learner;
    self->max_batch = spec->max_batch;
    self->n_way = spec->n_way;
    self->k_shot = spec->k_shot;
    self->q_query = spec->q_query;
    self->support_size = spec->support_size;
    self->query_size = spec->query_size;
    memcpy(self->train_classes, spec->train_classes, sizeof self->train_classes);
    self->n_train_classes = spec->n_train_classes;
    memcpy(self->test_classes, spec->test_classes, sizeof self->test_classes);
    self->n_test_classes = spec->n_test_classes;
    self->train_steps = spec->train_steps;
    self->log_every = spec->log_every;
    self->eval_tasks = spec->eval_tasks;
    self->eval_steps = spec->eval_steps;
    self->eval_lr = spec->eval_lr;
    int rc = 0;
    if (self->kind == MFL_EXP_EPISODES)
        rc = s_load_fmnist(self, spec, err, errlen);
    else if (self->kind == MFL_EXP_SITES)
        rc = s_load_heart(self, spec, err, errlen);
    if (rc)
        mfl_experiment_destroy(&self);
    return self;
}

void mfl_experiment_destroy(mfl_experiment_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_experiment_t *self = *self_p;
    mfl_dataset_destroy(&self->train_data);
    mfl_dataset_destroy(&self->test_data);
    for (size_t i = 0; i < MFL_EXP_MAX_SITES; i++) {
        mfl_dataset_destroy(&self->site_train[i]);
        mfl_dataset_destroy(&self->site_test[i]);
    }
    free(self);
    *self_p = NULL;
}

mfl_learner_t *mfl_experiment_learner(const mfl_experiment_t *self, char *err, size_t errlen)
{
    mfl_learner_config_t c = self->learner;
    c.outer_steps = self->log_every;
    char sub[400];
    mfl_learner_t *l = mfl_learner_new(&c, self->max_batch, sub, sizeof(sub));
    if (!l)
        mfl_errf(err, errlen, "%s: learner.%s", self->path, sub);
    return l;
}

int mfl_experiment_train(const mfl_experiment_t *self, mfl_learner_t *learner, float *theta,
                         FILE *progress, mfl_exp_progress_t *log, size_t *n_log, char *err,
                         size_t errlen)
{
    size_t ns = mfl_learner_n_state(learner);
    int rc = -1;
    size_t n_samplers = self->kind == MFL_EXP_SITES ? self->n_sites : 1;
    mfl_sampler_t *samplers[MFL_EXP_MAX_SITES] = {0};
    float *delta = malloc(ns * sizeof(float)), *acc = malloc(ns * sizeof(float));
    if (!delta || !acc) {
        mfl_errf(err, errlen, "train: out of memory");
        goto out_free;
    }
    for (size_t i = 0; i < n_samplers; i++) {
        char sub[300] = "out of memory";
        if (self->kind == MFL_EXP_SINUSOID)
            samplers[i] = mfl_sampler_new_sinusoid(self->k_shot, self->q_query);
        else if (self->kind == MFL_EXP_EPISODES)
            samplers[i] = mfl_sampler_new_episodes(self->train_data, self->train_classes,
                                                   self->n_train_classes, self->n_way,
                                                   self->k_shot, self->q_query, sub,
                                                   sizeof(sub));
        else
            samplers[i] = mfl_sampler_new_site(self->site_train[i], self->support_size,
                                               self->query_size, sub, sizeof(sub));
        if (!samplers[i]) {
            mfl_errf(err, errlen, "%s: task: %s", self->path, sub);
            goto out_free;
        }
    }
    int blocks = (self->train_steps + self->log_every - 1) / self->log_every;
    /* One θ trajectory: the blocks are one run, not separate rounds (with
     * sites, every site shares the learner, so rounds restart instead). */
    mfl_learner_keep_outer_state(learner, n_samplers == 1);
    double t0 = mfl_clock_mono_s();
    if (n_log)
        *n_log = 0;
    for (int b = 0; b < blocks; b++) {
        memset(acc, 0, ns * sizeof(float));
        double wsum = 0, loss = 0;
        for (size_t i = 0; i < n_samplers; i++) {
            mfl_rng_t rng;
            mfl_rng_seed(&rng, self->seed, (uint64_t)b * 1000003u + i);
            mfl_train_metrics_t m;
            if (mfl_learner_meta_train(learner, theta, samplers[i], &rng, delta, &m, err,
                                       errlen))
                goto out_free;
            double w = n_samplers > 1 ? (double)m.n_samples : 1.0;
            for (size_t p = 0; p < ns; p++)
                acc[p] += (float)w * delta[p];
            wsum += w;
            loss += w * m.loss_after;
        }
        for (size_t p = 0; p < ns; p++)
            theta[p] += acc[p] / (float)wsum;
        mfl_exp_progress_t pr = {(b + 1) * self->log_every, loss / wsum, mfl_clock_mono_s() - t0};
        if (progress) {
            fprintf(progress, "step %7d/%d  meta-loss %.4f  %.1f s\n", pr.step,
                    blocks * self->log_every, pr.meta_loss, pr.seconds);
            fflush(progress);
        }
        if (log)
            log[b] = pr;
        if (n_log)
            *n_log = (size_t)b + 1;
    }
    rc = 0;
out_free:
    mfl_learner_keep_outer_state(learner, 0);
    for (size_t i = 0; i < n_samplers; i++)
        mfl_sampler_destroy(&samplers[i]);
    free(delta);
    free(acc);
    return rc;
}

typedef struct {
    double loss, acc, acc2, auroc, sens, spec;
    size_t n, n_loss, n_auroc, n_sens, n_spec;
} s_mean_t;

static void s_add(s_mean_t *s, const mfl_eval_metrics_t *m)
{
    s->n++;
    if (isfinite(m->loss)) {
        s->loss += m->loss;
        s->n_loss++;
    }
    double a = isnan(m->accuracy) ? 0 : m->accuracy;
    s->acc += a;
    s->acc2 += a * a;
    if (!isnan(m->auroc)) {
        s->auroc += m->auroc;
        s->n_auroc++;
    }
    if (!isnan(m->sensitivity)) {
        s->sens += m->sensitivity;
        s->n_sens++;
    }
    if (!isnan(m->specificity)) {
        s->spec += m->specificity;
        s->n_spec++;
    }
}

static double s_div(double a, size_t n) { return n ? a / (double)n : NAN; }

/* A metric method's scratch model (the from-scratch baseline): its
 * evaluation takes no gradient steps, so θ is first trained on the support
 * set alone, as a site's local-only model is (site_worker_eval.c):
 * max(steps, MFL_EXP_SCRATCH_METRIC_STEPS) SGD steps of `lr`, each on an
 * episode that splits every class of the support in two. A support with
 * one row per class gives no episode and stays untrained. `work` receives
 * the trained θ. */
static int s_train_scratch_metric(mfl_learner_t *l, const float *theta, float *work,
                                  const mfl_dataset_t *support, int steps, float lr,
                                  mfl_rng_t *rng, char *err, size_t errlen)
{
    memcpy(work, theta, mfl_learner_n_state(l) * sizeof(float));
    char why[128];
    mfl_sampler_t *split = mfl_sampler_new_class_split(support, why, sizeof why);
    if (!split)
        return 0;
    if (steps < MFL_EXP_SCRATCH_METRIC_STEPS)
        steps = MFL_EXP_SCRATCH_METRIC_STEPS;
    int rc = mfl_learner_train_sgd(l, work, split, rng, steps, lr, err, errlen);
    mfl_sampler_destroy(&split);
    return rc;
}

/* One evaluation; a diverged adaptation is a scored failure, not an error.
 * `work` (n_state floats) non-NULL: the scratch baseline, θ trained on the
 * support first when the method is a metric one (rng: its episodes). */
static int s_eval_one(mfl_learner_t *l, const float *theta, const mfl_dataset_t *s,
                      const mfl_dataset_t *q, int steps, float lr, float *work, mfl_rng_t *rng,
                      mfl_eval_metrics_t *m, size_t *n_failed, char *err, size_t errlen)
{
    if (work && mfl_learner_config(l)->algo >= MFL_ALGO_PROTONET) {
        int rc = s_train_scratch_metric(l, theta, work, s, steps, lr, rng, err, errlen);
        if (rc && !strstr(err, "diverged"))
            return -1;
        theta = work;
        if (rc) {
            memset(m, 0, sizeof(*m));
            m->loss = m->auroc = m->sensitivity = m->specificity = m->sens_at_spec90 = NAN;
            m->n = q->n;
            (*n_failed)++;
            return 0;
        }
    }
    if (mfl_learner_evaluate(l, theta, s, q, steps, lr, NULL, m, err, errlen)) {
        if (!strstr(err, "diverged"))
            return -1;
        memset(m, 0, sizeof(*m));
        m->loss = m->auroc = m->sensitivity = m->specificity = m->sens_at_spec90 = NAN;
        m->n = q->n;
        (*n_failed)++;
        return 0;
    }
    if (!isfinite(m->loss)) {
        (*n_failed)++;
        m->accuracy = 0;
    }
    return 0;
}

static int s_evaluate(const mfl_experiment_t *self, mfl_learner_t *learner,
                      const float *theta, int steps, float lr, bool scratch,
                      mfl_exp_eval_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    s_mean_t sum = {0};
    int regression = self->kind == MFL_EXP_SINUSOID;
    float *work = NULL;
    if (scratch && !(work = malloc(mfl_learner_n_state(learner) * sizeof(float))))
        return mfl_errf(err, errlen, "out of memory"), -1;
    /* The scratch model's training episodes: their own stream, so the
     * held-out tasks below are the same as mfl_experiment_evaluate's. */
    mfl_rng_t trng;
    mfl_rng_seed(&trng, self->seed, 0x5c7a);
    int rc = -1;
    if (self->kind == MFL_EXP_SITES) {
        for (size_t i = 0; i < self->n_sites; i++) {
            if (s_eval_one(learner, theta, self->site_train[i], self->site_test[i], steps, lr,
                           work, &trng, &out->site[i], &out->n_failed, err, errlen))
                goto out_free;
            s_add(&sum, &out->site[i]);
        }
        out->n_sites = self->n_sites;
    } else {
        char sub[300] = "out of memory";
        mfl_sampler_t *s =
            regression ? mfl_sampler_new_sinusoid(self->k_shot, self->q_query)
                       : mfl_sampler_new_episodes(self->test_data, self->test_classes,
                                                  self->n_test_classes, self->n_way,
                                                  self->k_shot, self->q_query, sub,
                                                  sizeof(sub));
        if (!s) {
            mfl_errf(err, errlen, "%s: eval: %s", self->path, sub);
            goto out_free;
        }
        mfl_rng_t rng;
        mfl_rng_seed(&rng, self->seed, 0xe7a1); /* the same held-out tasks for every run */
        mfl_task_t t = {0};
        for (int i = 0; i < self->eval_tasks; i++) {
            mfl_eval_metrics_t m;
            if (mfl_sampler_next(s, &rng, &t) ||
                s_eval_one(learner, theta, t.support, t.query, steps, lr, work, &trng, &m,
                           &out->n_failed, err, errlen)) {
                mfl_task_clear(&t);
                mfl_sampler_destroy(&s);
                goto out_free;
            }
            s_add(&sum, &m);
        }
        mfl_task_clear(&t);
        mfl_sampler_destroy(&s);
    }
    out->n_tasks = sum.n;
    out->mean.n = sum.n;
    out->mean.loss = s_div(sum.loss, sum.n_loss);
    out->mean.accuracy = regression ? NAN : s_div(sum.acc, sum.n);
    double var = sum.n > 1 ? (sum.acc2 - sum.acc * sum.acc / (double)sum.n) / (double)(sum.n - 1)
                           : NAN;
    /* An interval over 4 hospitals says little: only for sampled tasks. */
    out->accuracy_ci95 = regression || self->kind == MFL_EXP_SITES ? NAN : 1.96 * sqrt(var > 0 ? var : 0) / sqrt((double)sum.n);
    out->mean.auroc = s_div(sum.auroc, sum.n_auroc);
    out->mean.sensitivity = s_div(sum.sens, sum.n_sens);
    out->mean.specificity = s_div(sum.spec, sum.n_spec);
    rc = 0;
out_free:
    free(work);
    return rc;
}

int mfl_experiment_evaluate(const mfl_experiment_t *self, mfl_learner_t *learner,
                            const float *theta, int steps, float lr, mfl_exp_eval_t *out,
                            char *err, size_t errlen)
{
    return s_evaluate(self, learner, theta, steps, lr, false, out, err, errlen);
}

int mfl_experiment_evaluate_scratch(const mfl_experiment_t *self, mfl_learner_t *learner,
                                    const float *theta, int steps, float lr,
                                    mfl_exp_eval_t *out, char *err, size_t errlen)
{
    return s_evaluate(self, learner, theta, steps, lr, true, out, err, errlen);
}

static void s_num(FILE *out, const char *key, double v, int comma)
{
    if (isfinite(v))
        fprintf(out, "\"%s\":%.6g%s", key, v, comma ? "," : "");
    else
        fprintf(out, "\"%s\":null%s", key, comma ? "," : "");
}

static void s_metrics_json(FILE *out, const mfl_eval_metrics_t *m)
{
    fprintf(out, "{");
    s_num(out, "loss", m->loss, 1);
    s_num(out, "accuracy", m->accuracy, 1);
    s_num(out, "auroc", m->auroc, 1);
    s_num(out, "sensitivity", m->sensitivity, 1);
    s_num(out, "specificity", m->specificity, 1);
    fprintf(out, "\"n\":%zu}", m->n);
}

void mfl_experiment_eval_json(const mfl_experiment_t *self, const mfl_exp_eval_t *ev,
                              FILE *out)
{
    fprintf(out, "{\"n_tasks\":%zu,\"n_failed\":%zu,", ev->n_tasks, ev->n_failed);
    s_num(out, "accuracy_ci95", ev->accuracy_ci95, 1);
    fprintf(out, "\"mean\":");
    s_metrics_json(out, &ev->mean);
    if (ev->n_sites) {
        fprintf(out, ",\"sites\":{");
        for (size_t i = 0; i < ev->n_sites; i++) {
            fprintf(out, "%s\"%s\":", i ? "," : "", self->site_name[i]);
            s_metrics_json(out, &ev->site[i]);
        }
        fprintf(out, "}");
    }
    fprintf(out, "}");
}
