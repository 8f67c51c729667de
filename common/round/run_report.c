/* Reading metrics.jsonl for `metafl report` (see report_data.h). */
#include "round/run_report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"

/* A number, or NAN when absent, null or the coordinator's -1 placeholder. */
static double s_num(const mfl_json_t *o, const char *key)
{
    double v;
    if (mfl_json_number(mfl_json_get(o, key), &v) < 0 || v == -1.0)
        return NAN;
    return v;
}

static mfl_report_site_t *s_site(mfl_report_t *r, const char *id)
{
    for (size_t i = 0; i < r->n_sites; i++)
        if (strcmp(r->sites[i].id, id) == 0)
            return &r->sites[i];
    if (r->n_sites == MFL_REPORT_MAX_SITES || strlen(id) >= MFL_REPORT_ID_MAX)
        return NULL;
    mfl_report_site_t *s = &r->sites[r->n_sites++];
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", id);
    return s;
}

static int s_add_eval(mfl_report_t *r, const mfl_json_t *o, bool live, bool run_trained,
                      const char *where, char *err, size_t errlen)
{
    const char *id = mfl_json_string(mfl_json_get(o, "site"));
    if (!id || !*id)
        return mfl_errf(err, errlen, "%s: eval event without a \"site\"", where), -1;
    mfl_report_site_t *s = s_site(r, id);
    if (!s)
        return mfl_errf(err, errlen, "%s: more than %d sites, or site id too long", where,
                        MFL_REPORT_MAX_SITES), -1;
    mfl_report_eval_t e = {
        s_num(o, "round"), s_num(o, "loss"), s_num(o, "accuracy"), s_num(o, "auroc"),
        s_num(o, "sensitivity"), s_num(o, "specificity"), s_num(o, "n"), s_num(o, "n_support"),
        s_num(o, "loss_before"), s_num(o, "accuracy_before"), s_num(o, "auroc_before"),
        s_num(o, "accuracy_local"), s_num(o, "auroc_local"), s_num(o, "epsilon"),
        s_num(o, "delta"), s_num(o, "rmse"), s_num(o, "mae"), s_num(o, "r2"),
        s_num(o, "rmse_before"), s_num(o, "rmse_local"), s_num(o, "policy_value"),
        s_num(o, "policy_value_before"), s_num(o, "policy_value_local"),
        s_num(o, "policy_value_best_arm"), s_num(o, "policy_value_given")};
    if (!isnan(e.epsilon))
        r->have_privacy = true;
    if (!isnan(e.rmse))
        r->have_regression = true;
    if (!isnan(e.value) || !isnan(e.value_best_arm))
        r->have_policy = true;
    mfl_report_eval_t *h = s->n_history < MFL_REPORT_MAX_ROUNDS
                               ? realloc(s->history, (s->n_history + 1) * sizeof *h)
                               : NULL;
    if (!h)
        return mfl_errf(err, errlen, "%s: more than %u evaluations of site %s, or out of memory",
                        where, MFL_REPORT_MAX_ROUNDS, id), -1;
    s->history = h;
    h[s->n_history++] = e;
    s->last = e;
    s->live = live;
    /* A site evaluated by a run that closed rounds trained in it (unless
     * --sites says otherwise); one seen only in sessions without rounds
     * joined after training. */
    if (run_trained || strcmp(s->role, "train") != 0)
        snprintf(s->role, sizeof s->role, "%s", run_trained ? "train" : "joined");
    return 0;
}

/* A "selection_candidate" or "selection" (the winner) line. */
static int s_add_selection(mfl_report_t *r, const mfl_json_t *o, bool winner, const char *where,
                           char *err, size_t errlen)
{
    double k = s_num(o, winner ? "winner" : "candidate");
    if (!(k >= 1 && k <= MFL_REPORT_MAX_CANDIDATES) || k != floor(k))
        return mfl_errf(err, errlen, "%s: selection event without a candidate number in 1..%d",
                        where, MFL_REPORT_MAX_CANDIDATES), -1;
    const char *rule = mfl_json_string(mfl_json_get(o, "rule"));
    if (rule)
        snprintf(r->rule, sizeof r->rule, "%s", rule);
    size_t i = (size_t)k - 1;
    if (winner) {
        r->winner = i + 1;
        return 0;
    }
    if (i == 0) /* a new selection (a later run, or a restarted one) */
        r->n_candidates = 0;
    mfl_report_candidate_t *c = &r->candidates[i];
    c->score = s_num(o, "score");
    c->sites = s_num(o, "sites");
    const char *setting = mfl_json_string(mfl_json_get(o, "setting"));
    snprintf(c->setting, sizeof c->setting, "%s", setting ? setting : "");
    if (r->n_candidates < i + 1)
        r->n_candidates = i + 1;
    return 0;
}

int mfl_report_add_text(mfl_report_t *r, const char *text, size_t len, const char *label, bool live,
                        char *err, size_t errlen)
{
    /* First pass: does this run close rounds? (decides the roles). */
    static const char round_ev[] = "\"event\":\"round\"";
    bool run_trained = memmem(text, len, round_ev, sizeof round_ev - 1) != NULL;
    size_t lineno = 0;
    for (const char *line = text, *next; line < text + len; line = next) {
        const char *nl = memchr(line, '\n', (size_t)(text + len - line));
        next = nl ? nl + 1 : text + len;
        size_t n = (size_t)((nl ? nl : text + len) - line);
        lineno++;
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' '))
            n--;
        if (n == 0)
            continue;
        char perr[256], where[4200];
        snprintf(where, sizeof where, "%s:%zu", label, lineno);
        mfl_json_t *o = mfl_json_parse(line, n, perr, sizeof perr);
        if (!o)
            return mfl_errf(err, errlen, "%s: not a JSON line (%s)", where, perr), -1;
        const char *ev = mfl_json_string(mfl_json_get(o, "event"));
        int bad = 0;
        if (ev && strcmp(ev, "round") == 0) {
            mfl_report_round_t rr = {s_num(o, "round"),       s_num(o, "accepted"),
                                     s_num(o, "selected"),    s_num(o, "rejected"),
                                     s_num(o, "loss_before"), s_num(o, "loss_after"),
                                     s_num(o, "seconds")};
            mfl_report_round_t *a = r->n_rounds < MFL_REPORT_MAX_ROUNDS
                                        ? realloc(r->rounds, (r->n_rounds + 1) * sizeof *a)
                                        : NULL;
            if (!a) {
                mfl_errf(err, errlen, "%s: more than %u rounds, or out of memory", where,
                         MFL_REPORT_MAX_ROUNDS);
                bad = 1;
            } else {
                r->rounds = a;
                a[r->n_rounds++] = rr;
                double eps = s_num(o, "epsilon");
                if (!isnan(eps)) {
                    r->have_privacy = true;
                    r->eps_by_round = eps;
                }
            }
        } else if (ev && strcmp(ev, "eval") == 0) {
            bad = s_add_eval(r, o, live, run_trained, where, err, errlen) < 0;
        } else if (ev && (strcmp(ev, "selection_candidate") == 0 ||
                          strcmp(ev, "selection") == 0)) {
            bad = s_add_selection(r, o, strcmp(ev, "selection") == 0, where, err, errlen) < 0;
        } else if (ev && strcmp(ev, "scaling") == 0) {
            double k = s_num(o, "sites"), rows = s_num(o, "rows");
            if (isfinite(k) && k >= 1 && k <= 1e6 && isfinite(rows) && rows >= 0) {
                r->scaling_sites = (size_t)k;
                r->scaling_rows = rows;
            }
        }
        /* Other events (future ones included) are not part of the report. */
        mfl_json_destroy(&o);
        if (bad)
            return -1;
    }
    return 0;
}

int mfl_report_add(mfl_report_t *r, const char *arg, char *err, size_t errlen)
{
    char path[4096];
    struct stat st;
    bool live = stat(arg, &st) == 0 && S_ISDIR(st.st_mode);
    if (live)
        snprintf(path, sizeof path, "%s/metrics.jsonl", arg);
    else
        snprintf(path, sizeof path, "%s", arg);
    char *text = NULL;
    size_t len = 0;
    if (mfl_file_read_all(path, MFL_REPORT_MAX_BYTES, &text, &len, err, errlen) < 0)
        return -1;
    int rc = mfl_report_add_text(r, text, len, path, live, err, errlen);
    free(text);
    return rc;
}

/* Splits a tab-separated line in place into at most max fields. */
static size_t s_fields(char *line, char **f, size_t max)
{
    size_t n = 0;
    for (char *p = line; n < max;) {
        f[n++] = p;
        char *t = strchr(p, '\t');
        if (!t)
            break;
        *t = '\0';
        p = t + 1;
    }
    return n;
}

int mfl_report_apply_sites(mfl_report_t *r, const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    if (mfl_file_read_all(path, 1u << 20, &text, &len, err, errlen) < 0)
        return -1;
    int col_id = -1, col_kind = -1, col_role = -1, rc = -1;
    static mfl_report_site_t listed[MFL_REPORT_MAX_SITES]; /* large: off the stack */
    size_t n_listed = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *f[64];
        line[strcspn(line, "\r")] = '\0';
        if (strncmp(line, "#id\t", 4) == 0) {
            size_t n = s_fields(line + 1, f, 64);
            for (size_t i = 0; i < n; i++) {
                col_id = strcmp(f[i], "id") == 0 ? (int)i : col_id;
                col_kind = strcmp(f[i], "kind") == 0 ? (int)i : col_kind;
                col_role = strcmp(f[i], "role") == 0 ? (int)i : col_role;
            }
            continue;
        }
        if (line[0] == '#' || line[0] == '\0')
            continue;
        if (col_id < 0) {
            mfl_errf(err, errlen, "%s: no header line \"#id<TAB>...\" before the first site",
                     path);
            goto out;
        }
        size_t n = s_fields(line, f, 64);
        if ((size_t)col_id >= n || n_listed == MFL_REPORT_MAX_SITES)
            continue;
        mfl_report_site_t *s = s_site(r, f[col_id]);
        if (!s) {
            mfl_errf(err, errlen, "%s: too many sites or an id too long", path);
            goto out;
        }
        if (col_kind >= 0 && (size_t)col_kind < n)
            snprintf(s->kind, sizeof s->kind, "%s", f[col_kind]);
        if (col_role >= 0 && (size_t)col_role < n)
            snprintf(s->role, sizeof s->role, "%s", f[col_role]);
        listed[n_listed++] = *s;
        /* The table's order is the report's order: take it out, put back below. */
        size_t idx = (size_t)(s - r->sites);
        memmove(&r->sites[idx], &r->sites[idx + 1], (r->n_sites - idx - 1) * sizeof *s);
        r->n_sites--;
    }
    if (n_listed + r->n_sites > MFL_REPORT_MAX_SITES) {
        mfl_errf(err, errlen, "%s: more than %d sites in all", path, MFL_REPORT_MAX_SITES);
        goto out;
    }
    memmove(&r->sites[n_listed], &r->sites[0], r->n_sites * sizeof r->sites[0]);
    memcpy(&r->sites[0], listed, n_listed * sizeof listed[0]);
    r->n_sites += n_listed;
    rc = 0;
out:
    free(text);
    return rc;
}

void mfl_report_clear(mfl_report_t *r)
{
    for (size_t i = 0; i < r->n_sites; i++)
        free(r->sites[i].history);
    free(r->rounds);
    memset(r, 0, sizeof *r);
}
