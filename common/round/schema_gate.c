/* The consortium's schema: loaded at start, checked against the model, and
 * compared with every Hello. */
#include "round/schema_gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/csv_schema_yaml.h"
#include "core/log.h"
#include "data/csv_canon.h"
#include "nn/model.h"

struct mfl_schema_gate {
    char *canonical; /* NULL: no schema file */
    uint8_t hash[MFL_SCHEMA_HASH_BYTES];
    size_t n_inputs, n_outputs;
    char model_spec[128];
    mfl_algo_kind_t algo;
    mfl_loss_kind_t loss;
    uint32_t n_way, k_shot, n_query;
};

static bool s_episodic(mfl_algo_kind_t a)
{
    return a == MFL_ALGO_PROTONET || a == MFL_ALGO_MATCHING || a == MFL_ALGO_RELATION;
}

/* Does data of nf features and ncl classes (0 = regression) fit the model?
 * 0, or -1 with why. */
static int s_fits(const mfl_schema_gate_t *self, uint64_t nf, uint64_t ncl, char *why,
                  size_t len)
{
    if (nf != self->n_inputs) {
        snprintf(why, len, "%llu features, but the model %s takes %zu inputs",
                 (unsigned long long)nf, self->model_spec, self->n_inputs);
        return -1;
    }
    if (s_episodic(self->algo)) {
        if (ncl == 0) {
            snprintf(why, len, "a continuous (regression) label, but %s compares a query with "
                     "labelled examples of each class and needs a class label (for regression "
                     "use maml, fomaml, reptile or meta_sgd with model.loss mse)",
                     mfl_algo_name(self->algo));
            return -1;
        }
        if (ncl < self->n_way) {
            snprintf(why, len, "%llu classes, but %s episodes are %u-way",
                     (unsigned long long)ncl, mfl_algo_name(self->algo), self->n_way);
            return -1;
        }
        return 0;
    }
    if (mfl_algo_episodic_head(self->algo, self->loss, self->n_outputs, ncl))
        return 0; /* N-way episodes, N = the head's outputs */
    if (self->loss == MFL_LOSS_BCE && (ncl != 2 || self->n_outputs != 1)) {
        snprintf(why, len, "%llu classes (model.loss bce needs a binary label and 1 output; "
                 "the model has %zu)", (unsigned long long)ncl, self->n_outputs);
        return -1;
    }
    if (self->loss == MFL_LOSS_SOFTMAX_CE && ncl != self->n_outputs) {
        snprintf(why, len, "%llu classes, but the model %s has %zu outputs (softmax_ce needs "
                 "one per class%s)", (unsigned long long)ncl, self->model_spec,
                 self->n_outputs, ncl > self->n_outputs && self->algo == MFL_ALGO_FEDAVG
                 ? "; fedavg trains one head over every class, only reptile, fomaml, maml "
                   "and meta_sgd learn a narrower head from N-way episodes" : "");
        return -1;
    }
    if (self->loss == MFL_LOSS_MSE && ncl == 0 && self->n_outputs != 1) {
        snprintf(why, len, "a regression label, but the model %s has %zu outputs (mse on a "
                 "continuous label needs 1)", self->model_spec, self->n_outputs);
        return -1;
    }
    return 0;
}

static int s_load_schema(mfl_schema_gate_t *self, const mfl_coord_config_t *c, char *err,
                         size_t errlen)
{
    mfl_csv_schema_t schema;
    mfl_yaml_doc_t *doc = NULL;
    char sub[512];
    if (mfl_csv_schema_file_load(c->schema_file, &schema, &doc, sub, sizeof sub) < 0) {
        mfl_errf(err, errlen, "%s:%zu: data.schema: %s", c->file, c->schema_line, sub);
        return -1;
    }
    size_t nf = 0, ncl = 0;
    self->canonical = mfl_csv_canonical(&schema, &nf, &ncl, sub, sizeof sub);
    mfl_csv_schema_clear(&schema);
    mfl_yaml_destroy(&doc);
    if (!self->canonical) {
        mfl_errf(err, errlen, "%s:%zu: data.schema: %s: %s", c->file, c->schema_line,
                 c->schema_file, sub);
        return -1;
    }
    mfl_schema_hash(self->canonical, self->hash);
    if (s_fits(self, nf, ncl, sub, sizeof sub) < 0) {
        mfl_errf(err, errlen, "%s:%zu: data.schema: %s describes %s (model.spec at line %zu); "
                 "make the schema and the model agree", c->file, c->schema_line,
                 c->schema_file, sub, c->model_line);
        return -1;
    }
    return 0;
}

mfl_schema_gate_t *mfl_schema_gate_new(const mfl_coord_config_t *c, char *err, size_t errlen)
{
    mfl_schema_gate_t *self = calloc(1, sizeof *self);
    if (!self)
        return mfl_errf(err, errlen, "out of memory"), NULL;
    char sub[256];
    mfl_model_t *m = mfl_model_new(c->learner.model_spec, 1, sub, sizeof sub);
    if (!m) {
        mfl_errf(err, errlen, "%s:%zu: model.spec: %s", c->file, c->model_line, sub);
        mfl_schema_gate_destroy(&self);
        return NULL;
    }
    self->n_inputs = mfl_model_n_inputs(m);
    self->n_outputs = mfl_model_n_outputs(m);
    mfl_model_destroy(&m);
    snprintf(self->model_spec, sizeof self->model_spec, "%s", c->learner.model_spec);
    self->algo = c->learner.algo;
    self->loss = c->learner.loss;
    self->n_way = c->n_way;
    self->k_shot = c->k_shot;
    self->n_query = c->n_query;
    if (c->schema_file[0] && s_load_schema(self, c, err, errlen) < 0) {
        mfl_schema_gate_destroy(&self);
        return NULL;
    }
    return self;
}

void mfl_schema_gate_destroy(mfl_schema_gate_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->canonical);
    free(*self_p);
    *self_p = NULL;
}

bool mfl_schema_gate_has_schema(const mfl_schema_gate_t *self)
{
    return self->canonical != NULL;
}

/* Episodic methods: enough classes with k_shot + n_query training rows? */
static int s_can_form_episodes(const mfl_schema_gate_t *self, const mfl_schema_hello_t *h,
                               char *text, size_t len)
{
    bool head = mfl_algo_episodic_head(self->algo, self->loss, self->n_outputs,
                                       h->n_class_counts);
    if ((!s_episodic(self->algo) && !head) || h->n_class_counts == 0)
        return 0;
    /* A gradient method's narrow head sets N; its episodes are 5-shot with
     * 5 queries unless the config says otherwise (as at the site). */
    uint32_t n_way = head ? (uint32_t)self->n_outputs : self->n_way;
    uint32_t k_shot = self->k_shot ? self->k_shot : 5;
    uint32_t n_query = self->n_query ? self->n_query : 5;
    uint64_t need = (uint64_t)k_shot + n_query;
    size_t eligible = 0;
    for (size_t k = 0; k < h->n_class_counts; k++)
        eligible += h->class_counts[k] >= need;
    if (eligible >= n_way)
        return 0;
    int o = snprintf(text, len, "its training rows cannot form %u-way %u-shot episodes with "
                     "%u queries: %zu of its classes have the %llu rows each needs (rows per "
                     "class:", n_way, k_shot, n_query, eligible,
                     (unsigned long long)need);
    for (size_t k = 0; k < h->n_class_counts && k < 16 && o > 0 && (size_t)o < len; k++)
        o += snprintf(text + o, len - (size_t)o, " %zu=%llu", k,
                      (unsigned long long)h->class_counts[k]);
    if (o > 0 && (size_t)o < len)
        snprintf(text + o, len - (size_t)o, "%s); add rows, or lower algorithm.k_shot / "
                 "n_query / n_way", h->n_class_counts > 16 ? " ..." : "");
    return -1;
}

mfl_schema_gate_verdict_t mfl_schema_gate_check(const mfl_schema_gate_t *self,
                                                const mfl_schema_hello_t *h, char *text,
                                                size_t len)
{
    char why[320];
    if (!h->hash || h->hash_len == 0) {
        snprintf(text, len, "its Hello carries no schema hash; every site must declare its "
                 "data schema");
        return MFL_SCHEMA_GATE_SCHEMA;
    }
    if (self->canonical && (h->hash_len != MFL_SCHEMA_HASH_BYTES ||
                            memcmp(h->hash, self->hash, MFL_SCHEMA_HASH_BYTES) != 0)) {
        char diff[400];
        mfl_schema_diff(self->canonical, h->text, h->text_len, diff, sizeof diff);
        snprintf(text, len, "its data schema differs from the consortium's: %s", diff);
        return MFL_SCHEMA_GATE_SCHEMA;
    }
    if (h->n_features == 0) {
        snprintf(text, len, "its Hello declares no feature count");
        return MFL_SCHEMA_GATE_SCHEMA;
    }
    if (s_fits(self, h->n_features, h->n_classes, why, sizeof why) < 0) {
        snprintf(text, len, "its data schema differs from the consortium's: the site's data "
                 "has %s", why);
        return MFL_SCHEMA_GATE_SCHEMA;
    }
    if (s_can_form_episodes(self, h, text, len) < 0)
        return MFL_SCHEMA_GATE_DATA;
    return MFL_SCHEMA_GATE_OK;
}
