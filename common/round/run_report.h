/* `metafl report`'s input: the coordinator's metrics.jsonl lines (round
 * and eval events, docs/METRICS.md) from one or more run dirs or files,
 * gathered into rounds and per-site evaluations. Bounded: a metrics file
 * is read up to MFL_REPORT_MAX_BYTES, a line up to its JSON parser's limits;
 * a malformed line is an error naming FILE:LINE. */
#ifndef MFL_ROUND_RUN_REPORT_H
#define MFL_ROUND_RUN_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#define MFL_REPORT_MAX_BYTES (256u * 1024u * 1024u)
#define MFL_REPORT_MAX_SITES 256
#define MFL_REPORT_ID_MAX 65
#define MFL_REPORT_MAX_ROUNDS 1000000u

/* One "round" event. NAN for a missing number. */
typedef struct {
    double round, accepted, selected, rejected, loss_before, loss_after, seconds;
} mfl_report_round_t;

/* One "eval" event of one site (NAN when missing or written as -1, the
 * coordinator's "not available"). */
typedef struct {
    double round, loss, accuracy, auroc, sensitivity, specificity, n, n_support;
    double loss_before, accuracy_before, auroc_before, accuracy_local, auroc_local;
    /* Privacy spent, as the privacy work will report it: shown when any
     * eval or round line carries "epsilon" (and "delta"). */
    double epsilon, delta;
    /* Regression reports (rmse ...) and treatment reports (policy values,
     * docs/METRICS.md); NAN otherwise. */
    double rmse, mae, r2, rmse_before, rmse_local;
    double value, value_before, value_local, value_best_arm, value_given;
} mfl_report_eval_t;

typedef struct {
    char id[MFL_REPORT_ID_MAX];
    char kind[128];          /* from --sites, else "" */
    char role[32];           /* from --sites, else inferred: "train" / "joined" */
    bool live;               /* its last eval came from a run dir (the coordinator) */
    mfl_report_eval_t last;      /* the last eval seen, in argument then file order */
    mfl_report_eval_t *history;  /* every eval of the site, in order */
    size_t n_history;
} mfl_report_site_t;

/* Model selection (docs/SELECTION.md): one "selection_candidate" event,
 * and per site its "selection_eval" scores (NAN when missing). */
#define MFL_REPORT_MAX_CANDIDATES 64
#define MFL_REPORT_SETTING_MAX 200
typedef struct {
    double score;            /* mean validation score under the rule; NAN: none */
    double sites;            /* sites that scored it */
    char setting[MFL_REPORT_SETTING_MAX];
} mfl_report_candidate_t;

typedef struct {
    mfl_report_round_t *rounds;  /* every round event of every input, in order */
    size_t n_rounds;
    mfl_report_site_t sites[MFL_REPORT_MAX_SITES];
    size_t n_sites;
    bool have_privacy;       /* some line carries "epsilon" */
    bool have_regression;    /* some eval line carries "rmse" */
    bool have_policy;        /* some eval line carries "policy_value" */
    double eps_by_round;     /* NAN, or the last round line's epsilon */
    /* Model selection: the candidates (index = candidate − 1; the last
     * run's lines win) and the winner (1-based; 0 = no "selection" event). */
    mfl_report_candidate_t candidates[MFL_REPORT_MAX_CANDIDATES];
    size_t n_candidates;
    size_t winner;
    char rule[16];
    /* Federated standardisation (docs/DATA.md): the last "scaling" event's
     * sites and fit rows pooled; scaling_sites 0 = none. */
    size_t scaling_sites;
    double scaling_rows;
} mfl_report_t;

/* Adds the lines of `arg`: a directory (its metrics.jsonl: evaluations the
 * coordinator received, "live") or a file of eval lines (e.g. a site's
 * `metafl-site-agent --evaluate` output, "offline"). 0, or -1 with err. */
int mfl_report_add(mfl_report_t *r, const char *arg, char *err, size_t errlen);

/* As mfl_report_add on the bytes text[0..len) (not modified; need not be
 * NUL-terminated), `label` naming them in errors, `live` as for a run
 * dir. On error what was read before the bad line stays in *r. */
int mfl_report_add_text(mfl_report_t *r, const char *text, size_t len, const char *label, bool live,
                        char *err, size_t errlen);

/* Applies a --sites table: tab-separated, a header line "#id\t..." naming
 * the columns; uses "id", "kind" and "role". Sites it names that have no
 * evaluation are added with n_history 0, in the table's order first.
 * 0, or -1 with err. */
int mfl_report_apply_sites(mfl_report_t *r, const char *path, char *err, size_t errlen);

/* Frees what report_add allocated and zeroes *r. */
void mfl_report_clear(mfl_report_t *r);

#endif
