/* metafl train --config FILE.yaml [--report out.json] [--save params.safetensors]:
 * centralised (offline) meta-training of one experiment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "config/experiment_config.h"
#include "meta/learner_io.h"
#include "meta_common.h"
#include "nn/blas.h"

int mfl_cmd_train(int argc, char **argv);

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: metafl train --config FILE.yaml [--report OUT.json] [--save PARAMS.safetensors]\n"
            "                    [--threads N]\n\n"
            "Meta-trains one experiment on this machine (no federation): sinusoid\n"
            "regression, Fashion-MNIST few-shot episodes or UCI Heart Disease sites,\n"
            "with any of fedavg, reptile, fomaml, maml, meta_sgd, protonet, matching,\n"
            "relation (see configs/train-*.yaml and docs/ENGINE-META.md).\n"
            "Prints one progress line per train.log_every outer steps (step, meta-loss,\n"
            "seconds), then the held-out evaluation before and after training.\n\n"
            "  --config FILE   the experiment (required)\n"
            "  --report OUT    write the progress and both evaluations as JSON\n"
            "  --save PARAMS   write the trained state as safetensors\n"
            "  --threads N     BLAS threads (default 1: these models are small, and\n"
            "                  results are bit-reproducible only at a fixed count)\n"
            "  --help          this text\n");
}

static int s_write_report(const char *path, const mfl_experiment_t *exp,
                          const mfl_exp_progress_t *log, size_t n_log,
                          const mfl_exp_eval_t *before, const mfl_exp_eval_t *after)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    const mfl_learner_config_t *c = &exp->learner;
    fprintf(f, "{\"config\":\"%s\",\"algo\":\"%s\",\"model\":\"%s\",\"seed\":%llu,", exp->path,
            mfl_algo_name(c->algo), c->model_spec, (unsigned long long)exp->seed);
    fprintf(f, "\"eval_steps\":%d,\"eval_lr\":%g,\"progress\":[", exp->eval_steps,
            (double)exp->eval_lr);
    for (size_t i = 0; i < n_log; i++)
        fprintf(f, "%s{\"step\":%d,\"meta_loss\":%.6g,\"seconds\":%.3f}", i ? "," : "",
                log[i].step, log[i].meta_loss, log[i].seconds);
    fprintf(f, "],\"before\":");
    mfl_experiment_eval_json(exp, before, f);
    fprintf(f, ",\"after\":");
    mfl_experiment_eval_json(exp, after, f);
    fprintf(f, "}\n");
    return fclose(f) ? -1 : 0;
}

int mfl_cmd_train(int argc, char **argv)
{
    const char *config = NULL, *report = NULL, *save = NULL;
    int threads = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
            if (mfl_cli_parse_threads(argv[0], argv[++i], &threads))
                return 2;
        } else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(a, "--report") == 0 && i + 1 < argc) {
            report = argv[++i];
        } else if (strcmp(a, "--save") == 0 && i + 1 < argc) {
            save = argv[++i];
        } else {
            fprintf(stderr, "metafl train: unexpected argument '%s'\n", a);
            s_usage(stderr);
            return 2;
        }
    }
    if (!config) {
        fprintf(stderr, "metafl train: --config is required\n");
        s_usage(stderr);
        return 2;
    }
    mfl_blas_set_threads(threads);
    char err[1024] = "";
    int rc = 1;
    mfl_learner_t *l = NULL;
    float *theta = NULL;
    mfl_exp_progress_t *log = NULL;
    mfl_experiment_t *exp = NULL;
    if (mfl_cli_open_experiment(config, &exp, &l, err, sizeof(err)))
        goto out_err;
    size_t ns = mfl_learner_n_state(l);
    int blocks = (exp->train_steps + exp->log_every - 1) / exp->log_every;
    theta = malloc(ns * sizeof(float));
    log = calloc((size_t)blocks, sizeof(*log));
    if (!theta || !log) {
        snprintf(err, sizeof(err), "out of memory");
        goto out_err;
    }
    mfl_learner_init_state(l, theta, exp->seed);
    printf("%s: %s on %s, %zu parameters in the state, %d outer steps\n", config,
           mfl_algo_name(exp->learner.algo), exp->learner.model_spec, ns,
           blocks * exp->log_every);
    mfl_exp_eval_t before, after;
    if (mfl_experiment_evaluate(exp, l, theta, exp->eval_steps, exp->eval_lr, &before, err,
                                sizeof(err)))
        goto out_err;
    mfl_cli_print_eval(stdout, "before", exp, &before, exp->eval_steps, exp->eval_lr);
    size_t n_log = 0;
    if (mfl_experiment_train(exp, l, theta, stdout, log, &n_log, err, sizeof(err)))
        goto out_err;
    if (mfl_experiment_evaluate(exp, l, theta, exp->eval_steps, exp->eval_lr, &after, err,
                                sizeof(err)))
        goto out_err;
    mfl_cli_print_eval(stdout, "after", exp, &after, exp->eval_steps, exp->eval_lr);
    if (save) {
        if (mfl_learner_save(l, theta, save, NULL, err, sizeof(err)))
            goto out_err;
        printf("saved %s\n", save);
    }
    if (report) {
        if (s_write_report(report, exp, log, n_log, &before, &after)) {
            snprintf(err, sizeof(err), "%s: cannot write the report", report);
            goto out_err;
        }
        printf("report %s\n", report);
    }
    rc = 0;
    goto out_free;
out_err:
    fprintf(stderr, "metafl train: %s\n", err);
out_free:
    free(theta);
    free(log);
    mfl_learner_destroy(&l);
    mfl_experiment_destroy(&exp);
    return rc;
}
