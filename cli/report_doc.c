/* `metafl report --md/--html`: the report as a document, with PNG plots
 * drawn by gnuplot (pngcairo when this gnuplot has it, else png). */
#include "report_doc.h"

#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"

extern char **environ;

int mfl_cli_report_scaling_pooled(const mfl_report_t *r)
{
    if (!r->scaling_sites)
        return 0;
    if (r->winner && r->winner <= r->n_candidates)
        return strstr(r->candidates[r->winner - 1].setting, "scaling federated") != NULL;
    return 1;
}

void mfl_cli_report_scaling_text(const mfl_report_t *r, char *out, size_t cap)
{
    if (mfl_cli_report_scaling_pooled(r))
        snprintf(out, cap, "feature scaling: the consortium's pooled mean and scale "
                 "(data.standardize: federated) from %zu sites, %.0f fit rows; the chosen "
                 "setting uses it", r->scaling_sites, r->scaling_rows);
    else if (r->scaling_sites)
        snprintf(out, cap, "feature scaling: the consortium's pooled mean and scale "
                 "(data.standardize: federated) from %zu sites, %.0f fit rows, offered to "
                 "selection; the chosen setting uses each hospital's own training rows' "
                 "statistics instead", r->scaling_sites, r->scaling_rows);
    else
        snprintf(out, cap, "feature scaling: each hospital's own (no pooled scaling in this "
                 "run: each scales as its data.standardize says, by default with its own "
                 "training rows' statistics)");
}

/* Runs argv (PATH lookup) with stdout to /dev/null and stdin_text (if not
 * NULL) on its stdin. Returns its exit status, or -1 if it could not start. */
static int s_run(char *const argv[], const char *stdin_text)
{
    int fds[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (stdin_text) {
        if (pipe(fds) < 0)
            return -1;
        posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
        posix_spawn_file_actions_addclose(&fa, fds[1]);
    }
    /* gnuplot's warnings ("empty x range" for a one-round run) are noise
     * here; a failure is reported by its exit status. */
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 1 /* O_WRONLY */, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", 1 /* O_WRONLY */, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (stdin_text) {
        close(fds[0]);
        if (rc == 0) {
            size_t len = strlen(stdin_text), off = 0;
            while (off < len) {
                ssize_t w = write(fds[1], stdin_text + off, len - off);
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0)
                    break;
                off += (size_t)w;
            }
        }
        close(fds[1]);
    }
    if (rc != 0)
        return -1;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int s_has_gnuplot(void)
{
    char *argv[] = {"gnuplot", "--version", NULL};
    return s_run(argv, NULL) == 0;
}

/* gnuplot's PNG terminal: pngcairo (anti-aliased) if built in, else png. */
static const char *s_terminal(void)
{
    char *argv[] = {"gnuplot", NULL};
    return s_run(argv, "set terminal pngcairo\n") == 0 ? "pngcairo" : "png";
}

/* "OUT.md" -> "OUT" (the plots' prefix). */
static void s_stem(const char *out, char *stem, size_t len)
{
    snprintf(stem, len, "%s", out);
    char *dot = strrchr(stem, '.'), *slash = strrchr(stem, '/');
    if (dot && (!slash || dot > slash))
        *dot = '\0';
}

static const char *s_base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Writes the data files and draws both plots. 0, or -1 with err. */
static int s_plots(const mfl_report_t *r, const char *stem, char *err, size_t errlen)
{
    char data[4200], script[16384], loss_png[4200], acc_png[4200];
    snprintf(data, sizeof data, "%s-plot.dat", stem);
    snprintf(loss_png, sizeof loss_png, "%s-loss.png", stem);
    snprintf(acc_png, sizeof acc_png, "%s-accuracy.png", stem);
    FILE *f = fopen(data, "w");
    if (!f)
        return mfl_errf(err, errlen, "%s: cannot write", data), -1;
    /* Block 0: rounds. Blocks 1..: one per site, its evaluations. */
    fprintf(f, "# round loss_before loss_after\n");
    for (size_t i = 0; i < r->n_rounds; i++)
        fprintf(f, "%.0f %.9g %.9g\n", r->rounds[i].round, r->rounds[i].loss_before,
                r->rounds[i].loss_after);
    if (r->n_rounds == 0)
        fprintf(f, "0 NaN NaN\n");
    size_t blocks = 0;
    for (size_t s = 0; s < r->n_sites; s++) {
        if (!r->sites[s].n_history)
            continue;
        fprintf(f, "\n\n# %s: round adapted local_only global\n", r->sites[s].id);
        for (size_t k = 0; k < r->sites[s].n_history; k++) {
            const mfl_report_eval_t *e = &r->sites[s].history[k];
            fprintf(f, "%.0f %.9g %.9g %.9g\n", e->round, e->accuracy, e->accuracy_local,
                    e->accuracy_before);
        }
        blocks++;
    }
    if (fclose(f) != 0)
        return mfl_errf(err, errlen, "%s: cannot write", data), -1;
    const char *term = s_terminal();
    int n = snprintf(script, sizeof script,
                     "set terminal %s size 800,480\nset datafile missing 'NaN'\n"
                     "set grid\nset key outside right\nset xlabel 'round'\n"
                     "set output '%s'\nset title 'mean query loss per round'\n"
                     "set ylabel 'loss'\n"
                     "plot '%s' index 0 using 1:2 with linespoints title 'at θ (before)', "
                     "'' index 0 using 1:3 with linespoints title 'after local training'\n"
                     "set output '%s'\nset title 'accuracy per site (held-out cases)'\n"
                     "set ylabel 'accuracy'\nset yrange [0:1]\nplot ",
                     term, loss_png, data, acc_png);
    size_t b = 0;
    for (size_t s = 0; s < r->n_sites && n > 0 && (size_t)n < sizeof script; s++) {
        if (!r->sites[s].n_history)
            continue;
        if (strpbrk(r->sites[s].id, "'\\"))
            return mfl_errf(err, errlen, "site '%s': a quote in its id", r->sites[s].id), -1;
        b++;
        n += snprintf(script + n, sizeof script - (size_t)n,
                      "%s'%s' index %zu using 1:2 with linespoints pt 7 title '%s adapted', "
                      "'' index %zu using 1:3 with points pt 4 title '%s local only'",
                      b > 1 ? ", " : "", data, b, r->sites[s].id, b, r->sites[s].id);
    }
    if (blocks == 0 && n > 0 && (size_t)n < sizeof script)
        n += snprintf(script + n, sizeof script - (size_t)n, "NaN notitle");
    if (n < 0 || (size_t)n + 2 >= sizeof script)
        return mfl_errf(err, errlen, "too many sites to plot"), -1;
    script[n] = '\n';
    script[n + 1] = '\0';
    /* Site ids and paths with a quote would break the script. */
    if (strchr(stem, '\'') || strchr(stem, '\\'))
        return mfl_errf(err, errlen, "%s: a quote in the output path", stem), -1;
    char *argv[] = {"gnuplot", NULL};
    if (s_run(argv, script) != 0)
        return mfl_errf(err, errlen, "gnuplot failed drawing %s and %s", loss_png, acc_png),
               -1;
    remove(data);
    return 0;
}

static void s_cell(FILE *f, bool html, double v)
{
    if (html)
        fprintf(f, "<td>");
    else
        fprintf(f, " ");
    if (isnan(v))
        fprintf(f, "n/a");
    else
        fprintf(f, "%.3f", v);
    fprintf(f, html ? "</td>" : " |");
}

int mfl_cli_report_doc_write(const mfl_report_t *r, const char *out, bool html, char *err, size_t errlen)
{
    char stem[4096];
    s_stem(out, stem, sizeof stem);
    int plots = s_has_gnuplot();
    if (plots && s_plots(r, stem, err, errlen) < 0)
        return -1;
    FILE *f = fopen(out, "w");
    if (!f)
        return mfl_errf(err, errlen, "%s: cannot write", out), -1;
    const char *h1 = html ? "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>metafl "
                            "run report</title>\n<style>body{font-family:sans-serif}td,th{"
                            "padding:2px 8px;text-align:right}</style></head><body>\n<h1>"
                          : "# ";
    fprintf(f, "%smetafl run report%s\n\n", h1, html ? "</h1>" : "");
    if (r->n_rounds && (!isfinite(r->rounds[0].loss_before) ||
                        !isfinite(r->rounds[r->n_rounds - 1].loss_after)))
        fprintf(f, "%s%zu rounds closed; training losses not sent (DP or SecAgg).%s\n\n",
                html ? "<p>" : "", r->n_rounds, html ? "</p>" : "");
    else if (r->n_rounds)
        fprintf(f, "%s%zu rounds closed; mean query loss at θ %.4f in round %.0f, %.4f after "
                   "local meta-training in round %.0f.%s\n\n", html ? "<p>" : "", r->n_rounds,
                r->rounds[0].loss_before, r->rounds[0].round,
                r->rounds[r->n_rounds - 1].loss_after, r->rounds[r->n_rounds - 1].round,
                html ? "</p>" : "");
    if (r->winner && r->winner <= r->n_candidates)
        fprintf(f, "%sModel selection (mean validation %s): chosen candidate %zu of %zu, %s.%s\n\n",
                html ? "<p>" : "", r->rule, r->winner, r->n_candidates,
                r->candidates[r->winner - 1].setting, html ? "</p>" : "");
    if (r->n_rounds || r->winner) {
        char line[512];
        mfl_cli_report_scaling_text(r, line, sizeof line);
        line[0] = 'F';
        fprintf(f, "%s%s.%s\n\n", html ? "<p>" : "", line, html ? "</p>" : "");
    }
    const char *cols[] = {"hospital", "role", "k", "held-out", "adapted acc", "adapted AUROC",
                          "adapted sensitivity", "adapted specificity", "local-only acc",
                          "local-only AUROC", "global acc", "global AUROC"};
    size_t nc = sizeof cols / sizeof cols[0];
    fprintf(f, html ? "<table>\n<tr>" : "|");
    for (size_t c = 0; c < nc; c++)
        fprintf(f, html ? "<th>%s</th>" : " %s |", cols[c]);
    if (r->have_privacy)
        fprintf(f, html ? "<th>epsilon</th>" : " epsilon |");
    fprintf(f, html ? "</tr>\n" : "\n|");
    if (!html) {
        for (size_t c = 0; c < nc + (r->have_privacy ? 1 : 0); c++)
            fprintf(f, "%s", c < 2 ? "---|" : "---:|");
        fprintf(f, "\n");
    }
    for (size_t i = 0; i < r->n_sites; i++) {
        const mfl_report_site_t *s = &r->sites[i];
        const mfl_report_eval_t *e = &s->last;
        if (html)
            fprintf(f, "<tr><td style=\"text-align:left\">%s</td><td>%s</td>", s->id, s->role);
        else
            fprintf(f, "| %s | %s |", s->id, s->role);
        if (!s->n_history) {
            fprintf(f, html ? "<td colspan=\"10\">no report</td></tr>\n" : " no report |\n");
            continue;
        }
        double v[] = {e->n_support, e->n, e->accuracy, e->auroc, e->sensitivity,
                      e->specificity, e->accuracy_local, e->auroc_local, e->accuracy_before,
                      e->auroc_before};
        for (size_t c = 0; c < 10; c++) {
            if (c < 2)
                fprintf(f, html ? "<td>%.0f</td>" : " %.0f |", v[c]);
            else
                s_cell(f, html, v[c]);
        }
        if (r->have_privacy)
            s_cell(f, html, !isnan(e->epsilon) ? e->epsilon : r->eps_by_round);
        fprintf(f, html ? "</tr>\n" : "\n");
    }
    if (html)
        fprintf(f, "</table>\n");
    fprintf(f, "\n%sadapted = the federated meta-initialisation adapted on the hospital's k "
               "cases; local-only = trained from scratch on the same cases; global = the "
               "federated model as-is. Scored on the hospital's held-out cases. Fields: "
               "docs/METRICS.md.%s\n\n", html ? "<p>" : "", html ? "</p>" : "");
    if (plots) {
        if (html)
            fprintf(f, "<h2>Loss per round</h2>\n<img src=\"%s-loss.png\" alt=\"loss per "
                       "round\">\n<h2>Accuracy per site</h2>\n<img src=\"%s-accuracy.png\" "
                       "alt=\"accuracy per site and round\">\n", s_base(stem), s_base(stem));
        else
            fprintf(f, "## Loss per round\n\n![loss per round](%s-loss.png)\n\n## Accuracy per "
                       "site\n\n![accuracy per site and round](%s-accuracy.png)\n",
                    s_base(stem), s_base(stem));
    } else {
        fprintf(f, "%sgnuplot not found: plots skipped.%s\n", html ? "<p>" : "",
                html ? "</p>" : "");
        fprintf(stderr, "metafl report: gnuplot not found: %s has no plots\n", out);
    }
    if (html)
        fprintf(f, "</body></html>\n");
    if (fclose(f) != 0)
        return mfl_errf(err, errlen, "%s: cannot write", out), -1;
    printf("\nwrote %s%s\n", out, plots ? " with its plots (-loss.png, -accuracy.png)" : "");
    return 0;
}
