/* Reading an offline experiment's YAML file (configs/train-*.yaml, keys in
 * docs/ENGINE-META.md) into the runner's plain spec (meta/experiment.h):
 * unknown keys refused, every error FILE:LINE: key: what. */
#include "config/experiment_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/yaml_doc.h"
#include "core/log.h"

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

static void s_read_learner(mfl_experiment_spec_t *self, mfl_yaml_doc_t *doc)
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

static void s_read_fmnist(mfl_experiment_spec_t *self, mfl_yaml_doc_t *doc)
{
    const char *dir = mfl_yaml_get_string(doc, "data.dir", "");
    if (strlen(dir) >= sizeof self->data_dir)
        mfl_yaml_fail(doc, "data.dir", "longer than %zu characters", sizeof self->data_dir - 1);
    snprintf(self->data_dir, sizeof self->data_dir, "%s", dir);
    self->max_train_rows = (size_t)s_int(doc, "data.max_train_rows", 30000, 0, 60000);
}

static void s_read_heart(mfl_experiment_spec_t *self, mfl_yaml_doc_t *doc)
{
    const char *shared = mfl_yaml_get_string(doc, "data.shared", "");
    if (strlen(shared) >= sizeof self->heart_shared)
        mfl_yaml_fail(doc, "data.shared", "longer than %zu characters",
                      sizeof self->heart_shared - 1);
    snprintf(self->heart_shared, sizeof self->heart_shared, "%s", shared);
    const char *stdz = mfl_yaml_get_string(doc, "data.standardize", "site");
    self->standardize = MFL_HEART_STD_SITE;
    if (strcmp(stdz, "pooled") == 0)
        self->standardize = MFL_HEART_STD_POOLED;
    else if (strcmp(stdz, "none") == 0)
        self->standardize = MFL_HEART_STD_NONE;
    else if (strcmp(stdz, "site") != 0)
        mfl_yaml_fail(doc, "data.standardize", "'%s' is not one of site, pooled, none", stdz);
    const char **sites = NULL;
    size_t n = 0;
    mfl_yaml_get_string_list(doc, "data.sites", &sites, &n);
    if (n > MFL_EXP_MAX_SITES) {
        mfl_yaml_fail(doc, "data.sites", "at most %d sites", MFL_EXP_MAX_SITES);
        n = 0;
    }
    for (size_t i = 0; i < n; i++)
        snprintf(self->site_name[i], sizeof(self->site_name[i]), "%s", sites[i]);
    self->n_sites = n;
    free(sites);
}

int mfl_experiment_config_load(const char *path, mfl_experiment_spec_t *self, char *err,
                               size_t errlen)
{
    memset(self, 0, sizeof *self);
    mfl_yaml_doc_t *doc = mfl_yaml_load(path, err, errlen);
    if (!doc)
        return -1;
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
    if (self->kind == MFL_EXP_EPISODES)
        s_read_fmnist(self, doc);
    else if (self->kind == MFL_EXP_SITES)
        s_read_heart(self, doc);
    int rc = mfl_yaml_error(doc, err, errlen) ? -1 : 0;
    mfl_yaml_destroy(&doc);
    return rc;
}

mfl_experiment_t *mfl_experiment_load(const char *path, char *err, size_t errlen)
{
    mfl_experiment_spec_t *spec = malloc(sizeof *spec);
    if (!spec) {
        mfl_errf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    mfl_experiment_t *self = NULL;
    if (mfl_experiment_config_load(path, spec, err, errlen) == 0)
        self = mfl_experiment_new(spec, err, errlen);
    free(spec);
    return self;
}

