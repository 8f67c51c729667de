/* metafl eval --config FILE.yaml (--params FILE | --scratch)
 *             [--steps k] [--lr α] [--report out.json]:
 * adapts saved (or freshly initialised) parameters on each held-out
 * task's support set and scores its query set. FILE is a safetensors
 * state or a coordinator checkpoint (.ckpt).
 * metafl eval --params FILE --predict ROWS.csv [--config FILE.yaml]
 *             [--out PRED.csv]: the network's outputs per row. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "config/experiment_config.h"
#include "meta/learner_io.h"
#include "eval_predict.h"
#include "meta_common.h"
#include "nn/blas.h"
#include "round/run_model.h"

int mfl_cmd_eval(int argc, char **argv);

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: metafl eval --config FILE.yaml (--params FILE | --scratch)\n"
            "                   [--steps K] [--lr ALPHA] [--report OUT.json] [--threads N]\n"
            "       metafl eval --params FILE --predict ROWS.csv [--config FILE.yaml]\n"
            "                   [--out PRED.csv] [--raw]\n\n"
            "Evaluates parameters on the experiment's held-out tasks (the same fixed\n"
            "tasks `metafl train` reports): K SGD steps of rate ALPHA on each support\n"
            "set (Meta-SGD uses its learned rates; ProtoNets, Matching and Relation nets\n"
            "use the support set directly), then loss/accuracy/AUROC/sensitivity/\n"
            "specificity on the query set.\n\n"
            "  --config FILE    the experiment (required)\n"
            "  --params FILE    a state saved by `metafl train --save`, a model written\n"
            "                   by `metafl export`, or a coordinator checkpoint\n"
            "                   (RUN_DIR/checkpoints/round-N.ckpt; checked against the\n"
            "                   config's model)\n"
            "  --scratch        a fresh random init instead: training from scratch on\n"
            "                   each support set (use more --steps); ProtoNets, Matching\n"
            "                   and Relation nets train max(K, 100) SGD steps on episodes\n"
            "                   of the support set alone (each class split in two), as a\n"
            "                   site's local-only model, then classify\n"
            "  --steps K        adaptation steps (default: eval.steps)\n"
            "  --lr ALPHA       adaptation rate (default: eval.lr)\n"
            "  --report OUT     write the evaluation as JSON\n"
            "  --threads N      BLAS threads (default 1; results are bit-reproducible\n"
            "                   only at a fixed count)\n"
            "  --predict ROWS   no adaptation: the network's outputs (and probabilities\n"
            "                   for bce / softmax_ce) for each line of ROWS, which holds\n"
            "                   the model's inputs as comma-separated numbers, already\n"
            "                   preprocessed as the sites do (header line and '#' lines\n"
            "                   skipped). --config (the coordinator's or an experiment's)\n"
            "                   is needed for a checkpoint, optional for an export\n"
            "  --out PRED.csv   --predict: write there instead of stdout\n"
            "  --raw            --predict: ROWS hold raw features; scale them first with\n"
            "                   the feature scaling the export carries ((x -\n"
            "                   scaling_center) / scaling_scale, e.g. a federated run's\n"
            "                   pooled mean and scale); refused if it carries none\n"
            "  --help           this text\n"
            "Exit status: 0 ok, 1 error (named), 2 usage.\n");
}

int mfl_cmd_eval(int argc, char **argv)
{
    const char *config = NULL, *params = NULL, *report = NULL, *predict = NULL, *out = NULL;
    int scratch = 0, steps = -1, threads = 1, raw = 0;
    float lr = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char *end = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
            if (mfl_cli_parse_threads(argv[0], argv[++i], &threads))
                return 2;
        } else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(a, "--params") == 0 && i + 1 < argc) {
            params = argv[++i];
        } else if (strcmp(a, "--predict") == 0 && i + 1 < argc) {
            predict = argv[++i];
        } else if (strcmp(a, "--out") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(a, "--report") == 0 && i + 1 < argc) {
            report = argv[++i];
        } else if (strcmp(a, "--raw") == 0) {
            raw = 1;
        } else if (strcmp(a, "--scratch") == 0) {
            scratch = 1;
        } else if (strcmp(a, "--steps") == 0 && i + 1 < argc) {
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 0 || v > 1000000) {
                fprintf(stderr, "metafl eval: --steps wants an integer 0..1000000\n");
                return 2;
            }
            steps = (int)v;
        } else if (strcmp(a, "--lr") == 0 && i + 1 < argc) {
            lr = strtof(argv[++i], &end);
            if (*end || !(lr >= 0) || lr > 1e6f) {
                fprintf(stderr, "metafl eval: --lr wants a number >= 0\n");
                return 2;
            }
        } else {
            fprintf(stderr, "metafl eval: unexpected argument '%s'\n", a);
            s_usage(stderr);
            return 2;
        }
    }
    if (predict || out || raw) {
        if (!predict || !params || scratch || report) {
            fprintf(stderr, "metafl eval: --predict needs --params (and takes neither "
                            "--scratch nor --report); --out and --raw go with --predict\n");
            s_usage(stderr);
            return 2;
        }
        mfl_blas_set_threads(threads);
        return mfl_cli_eval_predict(params, config, predict, out, raw != 0);
    }
    if (!config || (!params && !scratch) || (params && scratch)) {
        fprintf(stderr, "metafl eval: --config and exactly one of --params, --scratch are "
                        "required\n");
        s_usage(stderr);
        return 2;
    }
    mfl_blas_set_threads(threads);
    char err[1024] = "";
    int rc = 1;
    mfl_learner_t *l = NULL;
    float *theta = NULL;
    mfl_experiment_t *exp = NULL;
    if (mfl_cli_open_experiment(config, &exp, &l, err, sizeof(err)))
        goto out_err;
    theta = malloc(mfl_learner_n_state(l) * sizeof(float));
    if (!theta) {
        snprintf(err, sizeof(err), "out of memory");
        goto out_err;
    }
    if (scratch)
        mfl_learner_init_state(l, theta, exp->seed);
    else if (mfl_run_params_load(l, theta, params, NULL, err, sizeof(err)))
        goto out_err;
    if (steps < 0)
        steps = exp->eval_steps;
    if (lr < 0)
        lr = exp->eval_lr;
    mfl_exp_eval_t ev = {0};
    int eval_rc = scratch ? mfl_experiment_evaluate_scratch(exp, l, theta, steps, lr, &ev, err,
                                                            sizeof(err))
                          : mfl_experiment_evaluate(exp, l, theta, steps, lr, &ev, err,
                                                    sizeof(err));
    if (eval_rc)
        goto out_err;
    mfl_cli_print_eval(stdout, scratch ? "scratch" : "eval", exp, &ev, steps, lr);
    if (report) {
        FILE *f = fopen(report, "w");
        if (!f) {
            snprintf(err, sizeof(err), "%s: cannot write the report", report);
            goto out_err;
        }
        fprintf(f, "{\"config\":\"%s\",\"params\":\"%s\",\"steps\":%d,\"lr\":%g,\"eval\":",
                config, scratch ? "scratch" : params, steps, (double)lr);
        mfl_experiment_eval_json(exp, &ev, f);
        fprintf(f, "}\n");
        if (fclose(f)) {
            snprintf(err, sizeof(err), "%s: cannot write the report", report);
            goto out_err;
        }
    }
    rc = 0;
    goto out_free;
out_err:
    fprintf(stderr, "metafl eval: %s\n", err);
out_free:
    free(theta);
    mfl_learner_destroy(&l);
    mfl_experiment_destroy(&exp);
    return rc;
}
