/* metafl report RUN_DIR... [--sites FILE.tsv] [--json OUT] [--md OUT | --html OUT]:
 * what a run achieved, per hospital: the adapted meta-initialisation
 * against local-only training and the global model as-is (accuracy,
 * AUROC, sensitivity, specificity, n, k), from the coordinator's
 * metrics.jsonl; Markdown or HTML with gnuplot PNGs of loss and accuracy
 * per round and per site. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "round/run_report.h"
#include "report_doc.h"

int mfl_cmd_report(int argc, char **argv);

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: metafl report RUN_DIR|EVAL.jsonl... [--sites FILE.tsv] [--json OUT.json]\n"
            "                     [--md OUT.md | --html OUT.html]\n\n"
            "Summarises a run from the coordinator's RUN_DIR/metrics.jsonl: rounds closed\n"
            "and the mean query loss, then per hospital its last evaluation: the\n"
            "federated meta-initialisation adapted on k local cases ('adapted meta'),\n"
            "a model trained from scratch on the same cases ('local only') and the\n"
            "global model as-is, each on the hospital's n held-out cases (accuracy,\n"
            "AUROC; sensitivity and specificity of the adapted model). Privacy spent\n"
            "(epsilon) is shown when the metrics carry it. A run with model selection\n"
            "(docs/SELECTION.md) also lists its candidates with their mean validation\n"
            "score and marks the chosen setting with '*'.\n\n"
            "  RUN_DIR         a coordinator run dir (several: a training run, then a\n"
            "                  session where new hospitals joined; later ones win)\n"
            "  EVAL.jsonl      eval lines from elsewhere, e.g. `metafl-site-agent\n"
            "                  --evaluate` output (marked 'offline')\n"
            "  --sites FILE    tab-separated, header \"#id<TAB>...\": columns id, kind\n"
            "                  (a description) and role, in the order to show\n"
            "  --json OUT      the table as JSON\n"
            "  --md OUT.md     a Markdown report, with OUT-loss.png and OUT-accuracy.png\n"
            "                  beside it (drawn by gnuplot; without it the report says\n"
            "                  so and has no plots)\n"
            "  --html OUT.html the same as one HTML page\n"
            "Fields: docs/METRICS.md. Exit status: 0 ok, 1 error (named), 2 usage.\n");
}

static const char *s_fmt(double v, char *buf, size_t len)
{
    if (isnan(v))
        snprintf(buf, len, "  n/a");
    else
        snprintf(buf, len, "%.3f", v);
    return buf;
}

/* The k of the run (support cases every hospital adapted on). */
static double s_k(const mfl_report_t *r)
{
    for (size_t i = 0; i < r->n_sites; i++)
        if (r->sites[i].n_history && !isnan(r->sites[i].last.n_support))
            return r->sites[i].last.n_support;
    return NAN;
}

static void s_print_rounds(const mfl_report_t *r)
{
    if (r->n_rounds == 0) {
        printf("no round closed in these metrics\n");
        return;
    }
    const mfl_report_round_t *a = &r->rounds[0], *b = &r->rounds[r->n_rounds - 1];
    if (!isfinite(a->loss_before) || !isfinite(b->loss_after)) { /* DP: losses not sent */
        printf("%zu rounds closed (round %.0f to %.0f); training losses not sent (DP or SecAgg)\n",
               r->n_rounds, a->round, b->round);
        return;
    }
    printf("%zu rounds closed (round %.0f to %.0f); mean query loss at θ %.4f in the first, "
           "%.4f after local meta-training in the last\n", r->n_rounds, a->round, b->round,
           a->loss_before, b->loss_after);
}

/* Regression sites: the main table's accuracy columns are n/a for them. */
static void s_print_regression(const mfl_report_t *r, int w)
{
    char b[5][16];
    printf("\n  %-*s | %-13s | %-13s | %-13s | %6s %6s\n", w, "regression", "RMSE adapted",
           "RMSE local", "RMSE as-is", "MAE", "R2");
    for (size_t i = 0; i < r->n_sites; i++) {
        const mfl_report_eval_t *e = &r->sites[i].last;
        if (!r->sites[i].n_history || isnan(e->rmse))
            continue;
        printf("  %-*s | %13s | %13s | %13s | %6s %6s\n", w, r->sites[i].id,
               s_fmt(e->rmse, b[0], 16), s_fmt(e->rmse_local, b[1], 16),
               s_fmt(e->rmse_before, b[2], 16), s_fmt(e->mae, b[3], 16), s_fmt(e->r2, b[4], 16));
    }
}

/* Treatment sites (eval.treatment_arms): held-out policy values. */
static void s_print_policy(const mfl_report_t *r, int w)
{
    char b[5][16];
    printf("\n  %-*s | %-8s %-8s %-8s | %-8s %-8s   (held-out policy value, docs/APPS.md)\n",
           w, "treatment", "adapted", "local", "as-is", "best arm", "given");
    for (size_t i = 0; i < r->n_sites; i++) {
        const mfl_report_eval_t *e = &r->sites[i].last;
        if (!r->sites[i].n_history || (isnan(e->value) && isnan(e->value_best_arm)))
            continue;
        printf("  %-*s | %8s %8s %8s | %8s %8s\n", w, r->sites[i].id, s_fmt(e->value, b[0], 16),
               s_fmt(e->value_local, b[1], 16), s_fmt(e->value_before, b[2], 16),
               s_fmt(e->value_best_arm, b[3], 16), s_fmt(e->value_given, b[4], 16));
    }
}

/* The feature scaling the model trained with (own or pooled, and from how
 * many sites' fit rows), beside the chosen setting. */
static void s_print_scaling(const mfl_report_t *r)
{
    if (!r->n_rounds && !r->winner && !r->scaling_sites)
        return;
    char line[512];
    mfl_cli_report_scaling_text(r, line, sizeof line);
    printf("%s\n", line);
}

/* Model selection's candidates and the winner, when the run selected. */
static void s_print_selection(const mfl_report_t *r)
{
    if (!r->n_candidates && !r->winner)
        return;
    printf("model selection by mean validation %s over the sites (validation rows held out of "
           "their training rows): %zu candidates", r->rule[0] ? r->rule : "score",
           r->n_candidates);
    if (r->winner && r->winner <= r->n_candidates)
        printf("; chosen: candidate %zu, %s\n", r->winner, r->candidates[r->winner - 1].setting);
    else
        printf("; no winner recorded yet\n");
    s_print_scaling(r); /* beside the chosen setting */
    for (size_t i = 0; i < r->n_candidates; i++) {
        const mfl_report_candidate_t *c = &r->candidates[i];
        char b[16];
        printf("  %c %2zu  %s %s  %s\n", r->winner == i + 1 ? '*' : ' ', i + 1, r->rule,
               s_fmt(c->score, b, sizeof b), c->setting);
    }
}

static void s_print_table(const mfl_report_t *r)
{
    bool kinds = false;
    char b[12][16];
    int w = 11; /* the hospital column: as wide as the longest id */
    for (size_t i = 0; i < r->n_sites; i++) {
        kinds |= r->sites[i].kind[0] != '\0';
        if ((int)strlen(r->sites[i].id) > w)
            w = (int)strlen(r->sites[i].id);
    }
    printf("\n  %-*s %-*s%-5s %5s %8s | %-13s | %-13s | %-13s | %-13s%s\n", w, "hospital",
           kinds ? 24 : 0, "", "role", "k", "held-out", "adapted meta", "local only",
           "global as-is", "adapted meta", r->have_privacy ? " | privacy" : "");
    printf("  %-*s %-*s%-5s %5s %8s | %6s %6s | %6s %6s | %6s %6s | %6s %6s%s\n", w, "",
           kinds ? 24 : 0, "", "", "", "", "acc", "AUROC", "acc", "AUROC", "acc", "AUROC",
           "sens", "spec", r->have_privacy ? " | epsilon" : "");
    for (size_t i = 0; i < r->n_sites; i++) {
        const mfl_report_site_t *s = &r->sites[i];
        if (!s->n_history) {
            printf("  %-*s %-*.*s%-5s (no report)\n", w, s->id, kinds ? 24 : 0, kinds ? 23 : 0,
                   s->kind, s->role);
            continue;
        }
        const mfl_report_eval_t *e = &s->last;
        printf("  %-*s %-*.*s%-5s %5.0f %8.0f | %6s %6s | %6s %6s | %6s %6s | %6s %6s", w, s->id,
               kinds ? 24 : 0, kinds ? 23 : 0, s->kind, s->role, e->n_support, e->n,
               s_fmt(e->accuracy, b[0], 16), s_fmt(e->auroc, b[1], 16),
               s_fmt(e->accuracy_local, b[2], 16), s_fmt(e->auroc_local, b[3], 16),
               s_fmt(e->accuracy_before, b[4], 16), s_fmt(e->auroc_before, b[5], 16),
               s_fmt(e->sensitivity, b[6], 16), s_fmt(e->specificity, b[7], 16));
        /* Privacy hook: per-site epsilon once the metrics carry it (the
         * site's eval line, else the run's last round line). */
        if (r->have_privacy)
            printf(" | %7s", s_fmt(!isnan(e->epsilon) ? e->epsilon : r->eps_by_round, b[8], 16));
        printf("\n");
    }
    if (r->have_regression)
        s_print_regression(r, w);
    if (r->have_policy)
        s_print_policy(r, w);
    char live[4096] = "", off[4096] = "";
    for (size_t i = 0; i < r->n_sites; i++) {
        const mfl_report_site_t *s = &r->sites[i];
        if (!s->n_history)
            continue;
        char *dst = s->live ? live : off;
        size_t used = strlen(dst);
        snprintf(dst + used, 4096 - used, " %s", s->id);
    }
    printf("\n  evaluated live (the coordinator's EvalTask over CurveZMQ):%s\n", live);
    if (off[0])
        printf("  evaluated OFFLINE (metafl-site-agent --evaluate, same code):%s\n", off);
}

static void s_js(FILE *f, double v)
{
    if (isnan(v))
        fprintf(f, "null");
    else
        fprintf(f, "%.6f", v);
}

static int s_write_json(const mfl_report_t *r, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return mfl_errf(err, errlen, "%s: cannot write", path), -1;
    double k = s_k(r);
    fprintf(f, "{\n  \"rounds\": %zu,\n  \"k\": ", r->n_rounds);
    if (isnan(k))
        fprintf(f, "null");
    else
        fprintf(f, "%.0f", k);
    if (r->n_candidates || r->winner) {
        fprintf(f, ",\n  \"selection\": {\"rule\": \"%s\", \"winner\": %zu, \"candidates\": [",
                r->rule, r->winner);
        for (size_t i = 0; i < r->n_candidates; i++) {
            fprintf(f, "%s{\"candidate\": %zu, \"score\": ", i ? ", " : "", i + 1);
            s_js(f, r->candidates[i].score);
            fprintf(f, ", \"setting\": \"");
            for (const char *p = r->candidates[i].setting; *p; p++) /* JSON-safe */
                fputc(*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 ? '?' : *p, f);
            fprintf(f, "\"}");
        }
        fprintf(f, "]}");
    }
    /* kind "federated" with sites and rows: a scaling was pooled; chosen:
     * what the model trained with ("pooled" or "own"). */
    const char *chosen = mfl_cli_report_scaling_pooled(r) ? "pooled" : "own";
    if (r->scaling_sites)
        fprintf(f, ",\n  \"scaling\": {\"kind\": \"federated\", \"sites\": %zu, \"rows\": %.0f, "
                "\"chosen\": \"%s\"}", r->scaling_sites, r->scaling_rows, chosen);
    else if (r->n_rounds || r->winner)
        fprintf(f, ",\n  \"scaling\": {\"kind\": \"own\", \"chosen\": \"own\"}");
    fprintf(f, ",\n  \"hospitals\": [\n");
    int first = 1;
    for (size_t i = 0; i < r->n_sites; i++) {
        const mfl_report_site_t *s = &r->sites[i];
        if (!s->n_history)
            continue;
        const mfl_report_eval_t *e = &s->last;
        /* Site ids, kinds and roles are plain text from keys and a TSV:
         * refuse to write one that would need escaping. */
        if (strpbrk(s->id, "\"\\") || strpbrk(s->kind, "\"\\") || strpbrk(s->role, "\"\\")) {
            fclose(f);
            return mfl_errf(err, errlen, "%s: site '%s': a quote or backslash in its id, kind "
                            "or role", path, s->id), -1;
        }
        fprintf(f, "%s    {\"site\": \"%s\", \"kind\": \"%s\", \"role\": \"%s\", "
                   "\"evaluation\": \"%s\", \"n_support\": %.0f, \"n_test\": %.0f,\n",
                first ? "" : ",\n", s->id, s->kind, s->role, s->live ? "live" : "offline",
                isnan(e->n_support) ? -1 : e->n_support, isnan(e->n) ? -1 : e->n);
        fprintf(f, "     \"adapted\": {\"accuracy\": ");
        s_js(f, e->accuracy);
        fprintf(f, ", \"auroc\": ");
        s_js(f, e->auroc);
        fprintf(f, ", \"sensitivity\": ");
        s_js(f, e->sensitivity);
        fprintf(f, ", \"specificity\": ");
        s_js(f, e->specificity);
        fprintf(f, ", \"loss\": ");
        s_js(f, e->loss);
        fprintf(f, "},\n     \"local_only\": {\"accuracy\": ");
        s_js(f, e->accuracy_local);
        fprintf(f, ", \"auroc\": ");
        s_js(f, e->auroc_local);
        fprintf(f, "},\n     \"global\": {\"accuracy\": ");
        s_js(f, e->accuracy_before);
        fprintf(f, ", \"auroc\": ");
        s_js(f, e->auroc_before);
        fprintf(f, "}");
        if (r->have_privacy) {
            fprintf(f, ",\n     \"privacy\": {\"epsilon\": ");
            s_js(f, !isnan(e->epsilon) ? e->epsilon : r->eps_by_round);
            fprintf(f, ", \"delta\": ");
            s_js(f, e->delta);
            fprintf(f, "}");
        }
        fprintf(f, "}");
        first = 0;
    }
    fprintf(f, "\n  ]\n}\n");
    if (fclose(f) != 0)
        return mfl_errf(err, errlen, "%s: cannot write", path), -1;
    return 0;
}

static int s_by_id(const void *a, const void *b)
{
    return strcmp(((const mfl_report_site_t *)a)->id, ((const mfl_report_site_t *)b)->id);
}

int mfl_cmd_report(int argc, char **argv)
{
    const char *sites = NULL, *json = NULL, *md = NULL, *html = NULL;
    const char *inputs[64];
    size_t n_inputs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(a, "--sites") == 0 && i + 1 < argc) {
            sites = argv[++i];
        } else if (strcmp(a, "--json") == 0 && i + 1 < argc) {
            json = argv[++i];
        } else if (strcmp(a, "--md") == 0 && i + 1 < argc) {
            md = argv[++i];
        } else if (strcmp(a, "--html") == 0 && i + 1 < argc) {
            html = argv[++i];
        } else if (a[0] != '-' && n_inputs < 64) {
            inputs[n_inputs++] = a;
        } else {
            fprintf(stderr, "metafl report: unexpected argument '%s'\n", a);
            s_usage(stderr);
            return 2;
        }
    }
    if (n_inputs == 0 || (md && html)) {
        fprintf(stderr, "metafl report: name at least one run dir (and at most one of --md, "
                        "--html)\n");
        s_usage(stderr);
        return 2;
    }
    static mfl_report_t r; /* large: off the stack */
    char err[4096] = "";
    int rc = 1;
    memset(&r, 0, sizeof r);
    r.eps_by_round = NAN;
    for (size_t i = 0; i < n_inputs; i++)
        if (mfl_report_add(&r, inputs[i], err, sizeof err) < 0)
            goto out_err;
    if (sites && mfl_report_apply_sites(&r, sites, err, sizeof err) < 0)
        goto out_err;
    if (!sites) /* reports arrive in any order: show the sites sorted */
        qsort(r.sites, r.n_sites, sizeof r.sites[0], s_by_id);
    s_print_rounds(&r);
    if (!r.n_candidates && !r.winner)
        s_print_scaling(&r); /* else beside the chosen setting */
    s_print_selection(&r);
    s_print_table(&r);
    if (json && s_write_json(&r, json, err, sizeof err) < 0)
        goto out_err;
    if ((md || html) && mfl_cli_report_doc_write(&r, md ? md : html, html != NULL, err, sizeof err) < 0)
        goto out_err;
    rc = 0;
    for (size_t i = 0; i < r.n_sites; i++)
        if (!r.sites[i].n_history)
            rc = 1; /* a hospital the table names has no evaluation */
    if (rc)
        fprintf(stderr, "metafl report: some hospitals have no evaluation (see the table)\n");
    goto out_free;
out_err:
    fprintf(stderr, "metafl report: %s\n", err);
out_free:
    mfl_report_clear(&r);
    return rc;
}
