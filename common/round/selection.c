/* Model selection's plain part: candidates, defaults, the rule, the state
 * file (see selection.h). */
#include "round/selection.h"

#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/log.h"

void mfl_select_base(const mfl_learner_config_t *learner, const mfl_optim_config_t *server,
                     uint32_t adapt_steps, float adapt_lr, mfl_select_candidate_t *out)
{
    memset(out, 0, sizeof *out);
    out->learner = *learner;
    out->server = *server;
    out->adapt_steps = adapt_steps;
    out->adapt_lr = adapt_lr;
}

void mfl_select_base_scaled(const mfl_learner_config_t *learner,
                            const mfl_optim_config_t *server, uint32_t adapt_steps,
                            float adapt_lr, bool federated, mfl_select_candidate_t *out)
{
    mfl_select_base(learner, server, adapt_steps, adapt_lr, out);
    out->federated_scaling = federated;
}

int mfl_select_spec_io(const char *spec, unsigned long *in, unsigned long *out)
{
    const char *p;
    if (strncmp(spec, "mlp:", 4) == 0)
        p = spec + 4;
    else if (strncmp(spec, "linear:", 7) == 0)
        p = spec + 7;
    else
        return -1;
    unsigned long first = 0, last = 0;
    size_t count = 0;
    while (*p) {
        char *end = NULL;
        errno = 0;
        unsigned long v = strtoul(p, &end, 10);
        if (errno || end == p || v == 0)
            return -1;
        if (!count)
            first = v;
        last = v;
        count++;
        p = end;
        if (*p == '-')
            p++;
        else if (*p)
            return -1;
    }
    if (count < 2)
        return -1;
    *in = first;
    *out = last;
    return 0;
}

static bool s_same(const mfl_select_candidate_t *a, const mfl_select_candidate_t *b)
{
    char da[MFL_SELECT_DESC_MAX], db[MFL_SELECT_DESC_MAX];
    mfl_select_describe(a, da, sizeof da);
    mfl_select_describe(b, db, sizeof db);
    return strcmp(da, db) == 0;
}

static void s_add(mfl_select_config_t *cfg, const mfl_select_candidate_t *c)
{
    if (cfg->n_candidates >= MFL_SELECT_MAX_CANDIDATES)
        return;
    for (size_t i = 0; i < cfg->n_candidates; i++)
        if (s_same(&cfg->candidates[i], c))
            return;
    cfg->candidates[cfg->n_candidates++] = *c;
}

void mfl_select_default_grid(const mfl_select_candidate_t *base, mfl_select_config_t *cfg)
{
    cfg->n_candidates = 0;
    s_add(cfg, base);
    mfl_select_candidate_t c;
    unsigned long in = 0, out = 0;
    if (mfl_select_spec_io(base->learner.model_spec, &in, &out) == 0) {
        static const unsigned long widths[] = {0, 16, 64};
        for (size_t i = 0; i < sizeof widths / sizeof *widths; i++) {
            c = *base;
            if (widths[i])
                snprintf(c.learner.model_spec, sizeof c.learner.model_spec, "mlp:%lu-%lu-%lu",
                         in, widths[i], out);
            else
                snprintf(c.learner.model_spec, sizeof c.learner.model_spec, "linear:%lu-%lu", in,
                         out);
            s_add(cfg, &c);
        }
    }
    c = *base;
    c.learner.inner_lr = base->learner.inner_lr * 10.0f;
    s_add(cfg, &c);
    c = *base;
    c.learner.inner_steps = base->learner.inner_steps * 2;
    s_add(cfg, &c);
    c = *base;
    c.server = mfl_optim_defaults(MFL_OPTIM_SGD, base->server.kind == MFL_OPTIM_SGD
                                                     ? base->server.lr * 0.5f
                                                     : 0.5f);
    s_add(cfg, &c);
    c = *base;
    c.server = mfl_optim_defaults(MFL_OPTIM_ADAM, 0.01f);
    s_add(cfg, &c);
    c = *base;
    c.adapt_lr = (base->adapt_lr > 0 ? base->adapt_lr : base->learner.inner_lr) * 5.0f;
    s_add(cfg, &c);
    c = *base;
    c.adapt_steps = base->adapt_steps ? base->adapt_steps * 3 : 10;
    s_add(cfg, &c);
    if (base->federated_scaling) {
        c = *base;
        c.federated_scaling = false;
        s_add(cfg, &c);
    }
}

void mfl_select_describe(const mfl_select_candidate_t *c, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s %s inner %.6gx%d server %s %.6g adapt %.6gx%u",
             c->learner.model_spec, mfl_algo_name(c->learner.algo), (double)c->learner.inner_lr,
             c->learner.inner_steps, mfl_optim_name(c->server.kind), (double)c->server.lr,
             (double)c->adapt_lr, c->adapt_steps);
    /* only when set: earlier descriptions (and digests) stay as they were */
    size_t len = strlen(out);
    if (c->federated_scaling && len < outlen)
        snprintf(out + len, outlen - len, " scaling federated");
}

mfl_select_rule_t mfl_select_rule_resolve(mfl_select_rule_t rule, mfl_loss_kind_t loss)
{
    if (rule != MFL_SELECT_RULE_AUTO)
        return rule;
    switch (loss) {
    case MFL_LOSS_BCE: return MFL_SELECT_RULE_AUROC;
    case MFL_LOSS_SOFTMAX_CE: return MFL_SELECT_RULE_ACCURACY;
    case MFL_LOSS_MSE: return MFL_SELECT_RULE_LOSS;
    }
    return MFL_SELECT_RULE_LOSS;
}

const char *mfl_select_rule_name(mfl_select_rule_t rule)
{
    switch (rule) {
    case MFL_SELECT_RULE_AUTO: return "auto";
    case MFL_SELECT_RULE_AUROC: return "auroc";
    case MFL_SELECT_RULE_ACCURACY: return "accuracy";
    case MFL_SELECT_RULE_LOSS: return "loss";
    }
    return "?";
}

int mfl_select_rule_parse(const char *text, mfl_select_rule_t *rule)
{
    static const mfl_select_rule_t all[] = {MFL_SELECT_RULE_AUTO, MFL_SELECT_RULE_AUROC,
                                            MFL_SELECT_RULE_ACCURACY, MFL_SELECT_RULE_LOSS};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (strcmp(text, mfl_select_rule_name(all[i])) == 0) {
            *rule = all[i];
            return 0;
        }
    return -1;
}

static double s_metric(mfl_select_rule_t rule, const mfl_select_score_t *s)
{
    switch (rule) {
    case MFL_SELECT_RULE_AUROC: return s->auroc;
    case MFL_SELECT_RULE_ACCURACY: return s->accuracy;
    case MFL_SELECT_RULE_LOSS:
    case MFL_SELECT_RULE_AUTO: return s->loss;
    }
    return NAN;
}

double mfl_select_mean(mfl_select_rule_t rule, const mfl_select_score_t *scores, size_t k,
                       size_t *n_used)
{
    double sum = 0;
    size_t used = 0;
    for (size_t i = 0; i < k; i++) {
        double v = s_metric(rule, &scores[i]);
        if (isfinite(v)) {
            sum += v;
            used++;
        }
    }
    if (n_used)
        *n_used = used;
    return used ? sum / (double)used : NAN;
}

/* Is validation loss a strictly better than b (NAN worst)? */
static bool s_loss_better(double a, double b)
{
    if (!isfinite(a))
        return false;
    return !isfinite(b) || a < b;
}

size_t mfl_select_pick(mfl_select_rule_t rule, const double *means, const double *loss_means,
                       size_t n)
{
    bool lower = rule == MFL_SELECT_RULE_LOSS || rule == MFL_SELECT_RULE_AUTO;
    size_t best = 0;
    bool have = false;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(means[i]))
            continue;
        bool better = !have || (lower ? means[i] < means[best] : means[i] > means[best]);
        /* A tie: the lower validation loss, else the earlier candidate. */
        if (!better && means[i] == means[best] && loss_means && !lower)
            better = s_loss_better(loss_means[i], loss_means[best]);
        if (better) {
            best = i;
            have = true;
        }
    }
    return best;
}

void mfl_select_digest(const mfl_select_config_t *cfg, uint64_t run_seed, uint64_t init_seed,
                       uint8_t out[32])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    char line[512];
    int n = snprintf(line, sizeof line, "metafl-selection-v1 rounds=%u fraction=%.17g "
                     "vseed=%llu rule=%s seed=%llu init=%llu n=%zu\n", cfg->rounds,
                     cfg->validation_fraction, (unsigned long long)cfg->validation_seed,
                     mfl_select_rule_name(cfg->rule), (unsigned long long)run_seed,
                     (unsigned long long)init_seed, cfg->n_candidates);
    crypto_generichash_update(&st, (const unsigned char *)line, (size_t)n);
    if (cfg->score_search) /* only when set: earlier digests stay as they were */
        crypto_generichash_update(&st, (const unsigned char *)"score=search\n", 13);
    for (size_t i = 0; i < cfg->n_candidates; i++) {
        const mfl_select_candidate_t *c = &cfg->candidates[i];
        char desc[MFL_SELECT_DESC_MAX];
        mfl_select_describe(c, desc, sizeof desc);
        const mfl_learner_config_t *l = &c->learner;
        n = snprintf(line, sizeof line, "%s|%s|%d|%.9g|%d|%d|%.9g|%d|%zu|%d|%.9g|%s|%.9g|%.9g|"
                     "%.9g|%.9g\n", desc, mfl_loss_name(l->loss), (int)l->algo,
                     (double)l->pos_weight, l->meta_batch, l->outer_steps, (double)l->outer_lr,
                     (int)l->outer_optim, l->batch_size, l->local_epochs,
                     (double)c->server.momentum, l->relation_spec, (double)c->server.beta1,
                     (double)c->server.beta2, (double)c->server.eps, (double)c->adapt_lr);
        crypto_generichash_update(&st, (const unsigned char *)line,
                                  (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    }
    crypto_generichash_final(&st, out, 32);
}

static void s_hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

#define S_STATE_MAX 4096

int mfl_select_state_read(const char *path, const uint8_t digest[32], size_t n_candidates,
                          size_t *winner, char *err, size_t errlen)
{
    FILE *probe = fopen(path, "r");
    if (!probe)
        return errno == ENOENT ? 0 : (mfl_errf(err, errlen, "%s: cannot read", path), -1);
    fclose(probe);
    char *data = NULL;
    size_t len = 0;
    if (mfl_file_read_all(path, S_STATE_MAX, &data, &len, err, errlen) < 0)
        return -1;
    char want[65], have[65] = "";
    s_hex(digest, 32, want);
    unsigned long w = 0;
    int rc = -1;
    if (sscanf(data, "metafl-selection-v1 winner=%lu digest=%64[0-9a-f]", &w, have) != 2 ||
        w >= n_candidates) {
        mfl_errf(err, errlen, "%s: not a selection state file (or a winner out of range); "
                 "move it away to run the selection again", path);
    } else if (strcmp(have, want) != 0) {
        mfl_errf(err, errlen, "%s: records a selection with other candidates, rule, budget or "
                 "seeds than the config's selection section; restore that section, or use "
                 "another output.checkpoint_dir", path);
    } else {
        *winner = (size_t)w;
        rc = 1;
    }
    free(data);
    return rc;
}

int mfl_select_state_write(const char *path, const uint8_t digest[32], size_t winner,
                           char *err, size_t errlen)
{
    char hex[65], text[160];
    s_hex(digest, 32, hex);
    int n = snprintf(text, sizeof text, "metafl-selection-v1 winner=%zu digest=%s\n", winner,
                     hex);
    return mfl_file_write_atomic(path, text, (size_t)n, err, errlen);
}
