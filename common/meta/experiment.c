/* Offline experiments: YAML → data + samplers + learner, a block-wise
 * training loop and a fixed evaluation protocol. */
#include "meta/experiment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/yaml_doc.h"
#include "core/clock.h"
#include "core/log.h"
#include "data/heart.h"
#include "data/idx.h"
#include "meta/task.h"

#define S_FMNIST_DIR "/usr/share/datasets/fashion-mnist"

static const char *const s_root_keys[] = {"seed", "data", "task", "learner", "train", "eval",
                                          NULL};
static const char *const s_data_keys[] = {"source", "dir", "max_train_rows", "shared",
                                          "sites", "standardize", NULL};
static const char *const s_task_keys[] = {"n_way",         "k_shot",       "q_query",
                                          "train_classes", "test_classes", "support_size",
                                          "query_size",    NULL};
static const char *const s_learner_keys[] = {
    "algo",       "model",      "loss",         "pos_weight", "inner_steps",
    "inner_lr",   "meta_batch", "outer_lr",     "outer_optim", "batch_size",
    "local_epochs", "relation", "max_batch",    NULL};
static const char *const s_train_keys[] = {"steps", "log_every", NULL};
static const char *const s_eval_keys[] = {"tasks", "steps", "lr", NULL};

static int s_classes(mfl_yaml_doc_t *doc, const char *path, size_t *out, size_t *n)
{
    const char **items = NULL;
    size_t k = 0;
    *n = 0;
    if (mfl_yaml_get_string_list(doc, path, &items, &k))
        return -1;
    if (k > MFL_EXP_MAX_CLASSES) {
        mfl_yaml_fail(doc, path, "at most %d classes", MFL_EXP_MAX_CLASSES);
        free(items);
        return -1;
    }
    for (size_t i = 0; i < k; i++) {
        char *end = NULL;
        long v = strtol(items[i], &end, 10);
        if (!end || *end || end == items[i] || v < 0 || v > 100000) {
            mfl_yaml_fail(doc, path, "'%s' is not a class index", items[i]);
            free(items);
            return -1;
        }
        out[i] = (size_t)v;
    }
    *n = k;
    free(items);
    return 0;
}

static int s_int(mfl_yaml_doc_t *doc, const char *path, int64_t def, int64_t lo, int64_t hi)
{
    int64_t v = mfl_yaml_get_int(doc, path, def);
    if (mfl_yaml_has(doc, path))
        mfl_yaml_check_range(doc, path, v, lo, hi);
    return (int)(v < lo ? lo : v > hi ? hi : v);
}

static float s_pos(mfl_yaml_doc_t *doc, const char *path, float def, int allow_zero)
{
    double v = mfl_yaml_get_double(doc, path, def);
    if (mfl_yaml_has(doc, path) && (allow_zero ? v < 0 : v <= 0))
        mfl_yaml_fail(doc, path, "must be %s 0", allow_zero ? ">=" : ">");
    return (float)v;
}

static void s_read_learner(mfl_experiment_t *self, mfl_yaml_doc_t *doc)
{
    const char *algo = mfl_yaml_require_string(doc, "learner.algo");
    mfl_algo_kind_t a = MFL_ALGO_MAML;
    if (algo[0] && mfl_algo_parse(algo, &a))
        mfl_yaml_fail(doc, "learner.algo", "'%s' is not one of fedavg, reptile, fomaml, maml, "
                      "meta_sgd, protonet, matching, relation", algo);
    mfl_learner_config_t *c = &self->learner;
    mfl_learner_config_defaults(c, a);
    const char *model = mfl_yaml_require_string(doc, "learner.model");
    if (strlen(model) >= sizeof(c->model_spec))
        mfl_yaml_fail(doc, "learner.model", "longer than %zu characters",
                      sizeof(c->model_spec) - 1);
    snprintf(c->model_spec, sizeof(c->model_spec), "%s", model);
    const char *loss = mfl_yaml_get_string(doc, "learner.loss", NULL);
    if (loss && mfl_loss_parse(loss, &c->loss))
        mfl_yaml_fail(doc, "learner.loss", "'%s' is not one of softmax_ce, bce, mse", loss);
    const char *opt = mfl_yaml_get_string(doc, "learner.outer_optim", NULL);
    if (opt && mfl_optim_parse(opt, &c->outer_optim))
        mfl_yaml_fail(doc, "learner.outer_optim", "'%s' is not one of sgd, momentum, adam, "
                      "adagrad, yogi", opt);
    const char *rel = mfl_yaml_get_string(doc, "learner.relation", "");
    if (strlen(rel) >= sizeof(c->relation_spec))
        mfl_yaml_fail(doc, "learner.relation", "too long");
    snprintf(c->relation_spec, sizeof(c->relation_spec), "%s", rel);
    c->pos_weight = s_pos(doc, "learner.pos_weight", c->pos_weight, 0);
    c->inner_steps = s_int(doc, "learner.inner_steps", c->inner_steps, 0, 1000);
    c->inner_lr = s_pos(doc, "learner.inner_lr", c->inner_lr, 1);
    c->meta_batch = s_int(doc, "learner.meta_batch", c->meta_batch, 1, 100000);
    c->outer_lr = s_pos(doc, "learner.outer_lr", c->outer_lr, 0);
    c->batch_size = (size_t)s_int(doc, "learner.batch_size", (int64_t)c->batch_size, 0, 1 << 20);
    c->local_epochs = s_int(doc, "learner.local_epochs", c->local_epochs, 1, 1000000);
    self->max_batch = (size_t)s_int(doc, "learner.max_batch", 256, 1, 1 << 16);
}

static int s_load_fmnist(mfl_experiment_t *self, mfl_yaml_doc_t *doc, char *err, size_t errlen)
{
    const char *dir = mfl_yaml_get_string(doc, "data.dir", S_FMNIST_DIR);
    size_t max_rows = (size_t)s_int(doc, "data.max_train_rows", 30000, 0, 60000);
    if (mfl_yaml_error(doc, err, errlen))
        return -1;
    char img[1024], lab[1024];
    snprintf(img, sizeof(img), "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(lab, sizeof(lab), "%s/train-labels-idx1-ubyte.gz", dir);
    self->train_data = mfl_idx_load(img, lab, max_rows, err, errlen);
    if (!self->train_data)
        return -1;
    snprintf(img, sizeof(img), "%s/t10k-images-idx3-ubyte.gz", dir);
    snprintf(lab, sizeof(lab), "%s/t10k-labels-idx1-ubyte.gz", dir);
    self->test_data = mfl_idx_load(img, lab, 0, err, errlen);
    return self->test_data ? 0 : -1;
}

static int s_load_heart(mfl_experiment_t *self, mfl_yaml_doc_t *doc, char *err, size_t errlen)
{
    const char *shared = mfl_yaml_get_string(doc, "data.shared", mfl_heart_default_shared());
    const char *stdz = mfl_yaml_get_string(doc, "data.standardize", "site");
    mfl_heart_std_t std = MFL_HEART_STD_SITE;
    if (strcmp(stdz, "pooled") == 0)
        std = MFL_HEART_STD_POOLED;
    else if (strcmp(stdz, "none") == 0)
        std = MFL_HEART_STD_NONE;
    else if (strcmp(stdz, "site") != 0)
        mfl_yaml_fail(doc, "data.standardize", "'%s' is not one of site, pooled, none", stdz);
    const char **sites = NULL;
    size_t n = 0;
    mfl_yaml_get_string_list(doc, "data.sites", &sites, &n);
    if (n > MFL_EXP_MAX_SITES)
        mfl_yaml_fail(doc, "data.sites", "at most %d sites", MFL_EXP_MAX_SITES);
    if (mfl_yaml_error(doc, err, errlen)) {
        free(sites);
        return -1;
    }
    if (n == 0) {
        for (size_t i = 0; i < MFL_HEART_N_SITES; i++)
            snprintf(self->site_name[i], sizeof(self->site_name[i]), "%s",
                     mfl_heart_site_name(i));
        n = MFL_HEART_N_SITES;
    } else {
        for (size_t i = 0; i < n; i++)
            snprintf(self->site_name[i], sizeof(self->site_name[i]), "%s", sites[i]);
    }
    free(sites);
    for (size_t i = 0; i < n; i++) {
        if (mfl_heart_load(shared, self->site_name[i], std, &self->site_train[i],
                           &self->site_test[i], err, errlen))
            return -1;
        self->n_sites = i + 1;
    }
    return 0;
}

mfl_experiment_t *mfl_experiment_load(const char *path, char *err, size_t errlen)
{
    mfl_yaml_doc_t *doc = mfl_yaml_load(path, err, errlen);
    if (!doc)
        return NULL;
    mfl_experiment_t *self = calloc(1, sizeof(*self));
    if (!self) {
        mfl_errf(err, errlen, "%s: out of memory", path);
        goto out_fail;
    }
    snprintf(self->path, sizeof(self->path), "%s", path);
    mfl_yaml_check_keys(doc, "", s_root_keys);
    mfl_yaml_check_keys(doc, "data", s_data_keys);
    mfl_yaml_check_keys(doc, "task", s_task_keys);
    mfl_yaml_check_keys(doc, "learner", s_learner_keys);
    mfl_yaml_check_keys(doc, "train", s_train_keys);
    mfl_yaml_check_keys(doc, "eval", s_eval_keys);
    self->seed = (uint64_t)mfl_yaml_get_int(doc, "seed", 1);
    const char *src = mfl_yaml_require_string(doc, "data.source");
    if (strcmp(src, "sinusoid") == 0)
        self->kind = MFL_EXP_SINUSOID;
    else if (strcmp(src, "fashion_mnist") == 0)
        self->kind = MFL_EXP_EPISODES;
    else if (strcmp(src, "heart") == 0)
        self->kind = MFL_EXP_SITES;
    else if (src[0])
        mfl_yaml_fail(doc, "data.source", "'%s' is not one of sinusoid, fashion_mnist, heart",
                      src);
    s_read_learner(self, doc);
    self->n_way = (size_t)s_int(doc, "task.n_way", 5, 2, MFL_EXP_MAX_CLASSES);
    self->k_shot = (size_t)s_int(doc, "task.k_shot", self->kind == MFL_EXP_SINUSOID ? 10 : 5,
                                 1, 100000);
    self->q_query = (size_t)s_int(doc, "task.q_query", self->kind == MFL_EXP_SINUSOID ? 10 : 15,
                                  1, 100000);
    self->support_size = (size_t)s_int(doc, "task.support_size", 32, 0, 1 << 20);
    self->query_size = (size_t)s_int(doc, "task.query_size", 32, 0, 1 << 20);
    if (self->kind == MFL_EXP_EPISODES) {
        if (s_classes(doc, "task.train_classes", self->train_classes, &self->n_train_classes) ==
                0 &&
            s_classes(doc, "task.test_classes", self->test_classes, &self->n_test_classes) ==
                0) {
            if (self->n_train_classes < self->n_way)
                mfl_yaml_fail(doc, "task.train_classes", "needs at least n_way = %zu classes",
                              self->n_way);
            if (self->n_test_classes < self->n_way)
                mfl_yaml_fail(doc, "task.test_classes", "needs at least n_way = %zu classes",
                              self->n_way);
            for (size_t i = 0; i < self->n_train_classes; i++)
                for (size_t j = 0; j < self->n_test_classes; j++)
                    if (self->train_classes[i] == self->test_classes[j])
                        mfl_yaml_fail(doc, "task.test_classes", "class %zu is also a "
                                      "meta-training class; the lists must be disjoint",
                                      self->test_classes[j]);
        }
    }
    self->train_steps = s_int(doc, "train.steps", 1000, 1, 100000000);
    self->log_every = s_int(doc, "train.log_every", 100, 1, 100000000);
    self->eval_tasks = s_int(doc, "eval.tasks", 100, 1, 1000000);
    self->eval_steps = s_int(doc, "eval.steps", self->learner.inner_steps, 0, 100000);
    self->eval_lr = s_pos(doc, "eval.lr", self->learner.inner_lr, 1);
    if (mfl_yaml_error(doc, err, errlen))
        goto out_fail;
    int rc = 0;
    if (self->kind == MFL_EXP_EPISODES)
        rc = s_load_fmnist(self, doc, err, errlen);
    else if (self->kind == MFL_EXP_SITES)
        rc = s_load_heart(self, doc, err, errlen);
    if (rc)
        goto out_fail;
    mfl_yaml_destroy(&doc);
    return self;
out_fail:
    mfl_yaml_destroy(&doc);
    mfl_experiment_destroy(&self);
    return NULL;
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

/* One evaluation; a diverged adaptation is a scored failure, not an error. */
static int s_eval_one(mfl_learner_t *l, const float *theta, const mfl_dataset_t *s,
                      const mfl_dataset_t *q, int steps, float lr, mfl_eval_metrics_t *m,
                      size_t *n_failed, char *err, size_t errlen)
{
    if (mfl_learner_evaluate(l, theta, s, q, steps, lr, NULL, m, err, errlen)) {
        if (!strstr(err, "diverged"))
            return -1;
        memset(m, 0, sizeof(*m));
        m->loss = m->auroc = m->sensitivity = m->specificity = NAN;
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

int mfl_experiment_evaluate(const mfl_experiment_t *self, mfl_learner_t *learner,
                            const float *theta, int steps, float lr, mfl_exp_eval_t *out,
                            char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    s_mean_t sum = {0};
    int regression = self->kind == MFL_EXP_SINUSOID;
    if (self->kind == MFL_EXP_SITES) {
        for (size_t i = 0; i < self->n_sites; i++) {
            if (s_eval_one(learner, theta, self->site_train[i], self->site_test[i], steps, lr,
                           &out->site[i], &out->n_failed, err, errlen))
                return -1;
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
        if (!s)
            return mfl_errf(err, errlen, "%s: eval: %s", self->path, sub), -1;
        mfl_rng_t rng;
        mfl_rng_seed(&rng, self->seed, 0xe7a1); /* the same held-out tasks for every run */
        mfl_task_t t = {0};
        for (int i = 0; i < self->eval_tasks; i++) {
            mfl_eval_metrics_t m;
            if (mfl_sampler_next(s, &rng, &t) ||
                s_eval_one(learner, theta, t.support, t.query, steps, lr, &m, &out->n_failed,
                           err, errlen)) {
                mfl_task_clear(&t);
                mfl_sampler_destroy(&s);
                return -1;
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
    return 0;
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
