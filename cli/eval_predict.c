/* metafl eval --predict: the model's outputs for given rows, with no
 * adaptation. What a hospital's own tooling would compute from an export,
 * so the export can be checked against metafl row by row. */
#include "eval_predict.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/log.h"
#include "data/rows.h"
#include "meta_common.h"
#include "nn/model.h"
#include "nn/safetensors.h"
#include "round/run_config.h"
#include "round/run_model.h"
#include "round/scaling_record.h"

#define S_ROWS_MAX_BYTES (64u * 1024u * 1024u)
#define S_BATCH 256

/* A coordinator config has a top-level "coordinator:" section; an
 * experiment config never does. */
static int s_is_coordinator_config(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[512];
    int yes = 0;
    while (!yes && fgets(line, sizeof line, f))
        yes = strncmp(line, "coordinator:", 12) == 0;
    fclose(f);
    return yes;
}

/* The learner config from the params file's own metadata (an export or a
 * state saved by `metafl train --save`). */
static int s_config_from_params(const char *params, mfl_learner_config_t *lc, int *loss_known,
                                char *err, size_t errlen)
{
    if (mfl_run_is_checkpoint(params))
        return mfl_errf(err, errlen, "%s: a checkpoint does not name its model: add --config "
                        "(the coordinator's or an experiment's)", params), -1;
    mfl_safetensors_t *st = mfl_safetensors_read(params, err, errlen);
    if (!st)
        return -1;
    int rc = -1;
    const char *spec = mfl_safetensors_metadata(st, "spec");
    const char *algo = mfl_safetensors_metadata(st, "algo");
    const char *rel = mfl_safetensors_metadata(st, "relation");
    const char *loss = mfl_safetensors_metadata(st, "loss");
    mfl_algo_kind_t a = MFL_ALGO_REPTILE;
    if (!spec || strlen(spec) >= sizeof lc->model_spec) {
        mfl_errf(err, errlen, "%s: no usable \"spec\" in its metadata: add --config", params);
        goto out;
    }
    if (algo && mfl_algo_parse(algo, &a) < 0) {
        mfl_errf(err, errlen, "%s: metadata algo '%s' is unknown", params, algo);
        goto out;
    }
    mfl_learner_config_defaults(lc, a);
    snprintf(lc->model_spec, sizeof lc->model_spec, "%s", spec);
    if (rel)
        snprintf(lc->relation_spec, sizeof lc->relation_spec, "%s", rel);
    *loss_known = 0;
    if (loss) {
        if (mfl_loss_parse(loss, &lc->loss) < 0) {
            mfl_errf(err, errlen, "%s: metadata loss '%s' is unknown", params, loss);
            goto out;
        }
        *loss_known = 1;
    }
    rc = 0;
out:
    mfl_safetensors_destroy(&st);
    return rc;
}

static int s_learner_config(const char *params, const char *config, mfl_learner_config_t *lc,
                            int *loss_known, char *err, size_t errlen)
{
    if (!config)
        return s_config_from_params(params, lc, loss_known, err, errlen);
    *loss_known = 1;
    if (s_is_coordinator_config(config)) {
        static mfl_coord_config_t cc; /* large: off the stack */
        if (mfl_coord_config_load(config, &cc, err, errlen) < 0 ||
            mfl_coord_config_apply_selection(&cc, err, errlen) < 0)
            return -1;
        *lc = cc.learner;
        return 0;
    }
    mfl_experiment_t *exp = NULL;
    mfl_learner_t *l = NULL;
    int rc = mfl_cli_open_experiment(config, &exp, &l, err, errlen);
    if (rc == 0)
        *lc = *mfl_learner_config(l);
    mfl_learner_destroy(&l);
    mfl_experiment_destroy(&exp);
    return rc;
}

static void s_header(FILE *out, size_t n_out, mfl_loss_kind_t loss, int loss_known)
{
    for (size_t j = 0; j < n_out; j++) {
        if (n_out == 1)
            fprintf(out, "output");
        else
            fprintf(out, "%soutput_%zu", j ? "," : "", j);
    }
    if (loss_known && loss == MFL_LOSS_BCE && n_out == 1)
        fprintf(out, ",probability");
    else if (loss_known && loss == MFL_LOSS_SOFTMAX_CE)
        for (size_t j = 0; j < n_out; j++)
            fprintf(out, ",probability_%zu", j);
    fprintf(out, "\n");
}

static void s_write_rows(FILE *out, const float *y, size_t batch, size_t n_out,
                         mfl_loss_kind_t loss, int loss_known)
{
    for (size_t b = 0; b < batch; b++) {
        const float *r = y + b * n_out;
        for (size_t j = 0; j < n_out; j++)
            fprintf(out, "%s%.9g", j ? "," : "", (double)r[j]);
        if (loss_known && loss == MFL_LOSS_BCE && n_out == 1) {
            fprintf(out, ",%.9g", 1.0 / (1.0 + exp(-(double)r[0])));
        } else if (loss_known && loss == MFL_LOSS_SOFTMAX_CE) {
            double mx = r[0], sum = 0;
            for (size_t j = 1; j < n_out; j++)
                mx = r[j] > mx ? r[j] : mx;
            for (size_t j = 0; j < n_out; j++)
                sum += exp((double)r[j] - mx);
            for (size_t j = 0; j < n_out; j++)
                fprintf(out, ",%.9g", exp((double)r[j] - mx) / sum);
        }
        fprintf(out, "\n");
    }
}

int mfl_cli_eval_predict(const char *params, const char *config, const char *rows,
                         const char *out_path, bool raw)
{
    static mfl_task_scaling_t sc; /* --raw: the export's scaling */
    char err[1024] = "";
    int rc = 1, loss_known = 0;
    mfl_learner_config_t lc;
    mfl_learner_t *l = NULL;
    mfl_model_t *m = NULL;
    float *state = NULL, *x = NULL, *y = NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *out = stdout;
    memset(&lc, 0, sizeof lc);
    if (s_learner_config(params, config, &lc, &loss_known, err, sizeof err) < 0)
        goto out_err;
    if (lc.algo == MFL_ALGO_PROTONET || lc.algo == MFL_ALGO_MATCHING ||
        lc.algo == MFL_ALGO_RELATION) {
        mfl_errf(err, sizeof err, "--predict: %s classifies against a support set, not with "
                 "the network alone; use the adapted evaluation (no --predict)",
                 mfl_algo_name(lc.algo));
        goto out_err;
    }
    l = mfl_learner_new(&lc, 1, err, sizeof err);
    m = l ? mfl_model_new(lc.model_spec, S_BATCH, err, sizeof err) : NULL;
    if (!m)
        goto out_err;
    state = malloc(mfl_learner_n_state(l) * sizeof(float));
    size_t n_in = mfl_model_n_inputs(m), n_out = mfl_model_n_outputs(m);
    x = malloc(S_BATCH * n_in * sizeof(float));
    y = malloc(S_BATCH * n_out * sizeof(float));
    if (!state || !x || !y) {
        mfl_errf(err, sizeof err, "out of memory");
        goto out_err;
    }
    sc.n = 0;
    if (raw && mfl_scaling_from_export(params, &sc, NULL, 0, err, sizeof err) < 0)
        goto out_err;
    if (raw && sc.n != n_in) {
        mfl_errf(err, sizeof err, "%s: carries a scaling of %u features, the model takes %zu "
                 "inputs", params, sc.n, n_in);
        goto out_err;
    }
    if (mfl_run_params_load(l, state, params, NULL, err, sizeof err) < 0 ||
        mfl_file_read_all(rows, S_ROWS_MAX_BYTES, &text, &len, err, sizeof err) < 0)
        goto out_err;
    if (out_path && !(out = fopen(out_path, "w"))) {
        mfl_errf(err, sizeof err, "%s: cannot write the predictions", out_path);
        out = stdout;
        goto out_err;
    }
    s_header(out, n_out, lc.loss, loss_known);
    size_t lineno = 0, batch = 0, n_rows = 0;
    for (char *line = text, *next; line < text + len; line = next) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        next = nl ? nl + 1 : text + len;
        if (nl)
            *nl = '\0';
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        /* A first line that does not start with a number is a header. */
        if (n_rows == 0 && batch == 0 && !(*p == '-' || *p == '+' || *p == '.' ||
                                           (*p >= '0' && *p <= '9')))
            continue;
        if (mfl_rows_parse_line(p, strlen(p), n_in, x + batch * n_in, rows, lineno, err,
                                sizeof err) < 0)
            goto out_err;
        for (size_t j = 0; j < sc.n; j++) /* as a site scales its rows */
            x[batch * n_in + j] =
                (float)(((double)x[batch * n_in + j] - sc.mean[j]) / sc.scale[j]);
        if (++batch == S_BATCH) {
            mfl_model_forward(m, state, x, batch, y);
            s_write_rows(out, y, batch, n_out, lc.loss, loss_known);
            n_rows += batch;
            batch = 0;
        }
    }
    if (batch) {
        mfl_model_forward(m, state, x, batch, y);
        s_write_rows(out, y, batch, n_out, lc.loss, loss_known);
        n_rows += batch;
    }
    if (n_rows == 0) {
        mfl_errf(err, sizeof err, "%s: no rows to predict", rows);
        goto out_err;
    }
    if (out != stdout) {
        FILE *f = out;
        out = stdout;
        if (fclose(f) != 0) {
            mfl_errf(err, sizeof err, "%s: cannot write the predictions", out_path);
            goto out_err;
        }
        fprintf(stderr, "metafl eval: %zu rows predicted into %s\n", n_rows, out_path);
    }
    rc = 0;
    goto out_free;
out_err:
    fprintf(stderr, "metafl eval: %s\n", err);
out_free:
    if (out != stdout)
        fclose(out);
    free(text);
    free(state);
    free(x);
    free(y);
    mfl_model_destroy(&m);
    mfl_learner_destroy(&l);
    return rc;
}
