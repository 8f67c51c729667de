/* Human-readable evaluation lines for the offline trainer. */
#include "meta_common.h"

#include <math.h>
#include <stdlib.h>

#include "config/experiment_config.h"

int mfl_cli_parse_threads(const char *cmd, const char *val, int *threads)
{
    char *tend = NULL;
    long v = strtol(val, &tend, 10);
    if (*tend || v < 1 || v > 256) {
        fprintf(stderr, "metafl %s: --threads wants an integer 1..256\n", cmd);
        return -1;
    }
    *threads = (int)v;
    return 0;
}

int mfl_cli_open_experiment(const char *config, mfl_experiment_t **exp_p,
                            mfl_learner_t **l_p, char *err, size_t errlen)
{
    *exp_p = mfl_experiment_load(config, err, errlen);
    if (!*exp_p)
        return -1;
    *l_p = mfl_experiment_learner(*exp_p, err, errlen);
    return *l_p ? 0 : -1;
}

static void s_line(FILE *out, const char *label, const mfl_eval_metrics_t *m)
{
    fprintf(out, "  %-12s loss %.4f", label, m->loss);
    if (!isnan(m->accuracy))
        fprintf(out, "  accuracy %.4f", m->accuracy);
    if (!isnan(m->auroc))
        fprintf(out, "  auroc %.4f", m->auroc);
    if (!isnan(m->sensitivity))
        fprintf(out, "  sensitivity %.4f", m->sensitivity);
    if (!isnan(m->specificity))
        fprintf(out, "  specificity %.4f", m->specificity);
    fprintf(out, "  (n %zu)\n", m->n);
}

void mfl_cli_print_eval(FILE *out, const char *label, const mfl_experiment_t *exp,
                        const mfl_exp_eval_t *ev, int steps, float lr)
{
    fprintf(out, "%s: %zu %s, %d adaptation steps at lr %g", label, ev->n_tasks,
            exp->kind == MFL_EXP_SITES ? "sites" : "held-out tasks", steps, (double)lr);
    if (!isnan(ev->accuracy_ci95))
        fprintf(out, ", accuracy ±%.4f (95%%)", ev->accuracy_ci95);
    if (ev->n_failed)
        fprintf(out, ", %zu diverged (scored 0)", ev->n_failed);
    fprintf(out, "\n");
    for (size_t i = 0; i < ev->n_sites; i++)
        s_line(out, exp->site_name[i], &ev->site[i]);
    s_line(out, "mean", &ev->mean);
}
