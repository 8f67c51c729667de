/* Federated model selection: the candidates, the rule that picks one, and
 * the record of the pick (docs/SELECTION.md).
 *
 * Before its real training the round engine can train each candidate
 * setting for a short budget of rounds from the same θ₀ seed, have every
 * site score it on validation rows held out of its TRAINING rows (a
 * stratified, seeded split: site/site_worker.h, mfl_site_worker_validation),
 * and train the winner. This file is the plain part: what a candidate is,
 * the defaults (a one-factor grid around the configured settings), applying
 * a candidate to a learner / server / evaluation setting, scoring, the
 * deterministic pick, a text that describes a candidate, and the small
 * state file that lets a restarted coordinator know the winner. The engine
 * drives it (round_select.c). No clock, no I/O except the state file. */
#ifndef MFL_ROUND_SELECTION_H
#define MFL_ROUND_SELECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meta/learner.h"
#include "nn/optim.h"

#define MFL_SELECT_MAX_CANDIDATES 16 /* ≤ MFL_TASK_SELECTION_MAX (wire/task.h) */
#define MFL_SELECT_DESC_MAX 200      /* a candidate's description, fits an audit reason */

typedef enum {
    MFL_SELECT_RULE_AUTO = 0,     /* auroc for bce, accuracy for softmax_ce, loss for mse */
    MFL_SELECT_RULE_AUROC = 1,    /* highest mean validation AUROC */
    MFL_SELECT_RULE_ACCURACY = 2, /* highest mean validation accuracy */
    MFL_SELECT_RULE_LOSS = 3,     /* lowest mean validation loss */
} mfl_select_rule_t;

/* One candidate: a complete setting (resolved against the base config at
 * load, so it never depends on defaults changing later). */
typedef struct {
    mfl_learner_config_t learner; /* model, algorithm, inner lr and steps, ... */
    mfl_optim_config_t server;    /* server optimiser and its rate (β for sgd) */
    uint32_t adapt_steps;         /* the new hospital's adaptation */
    float adapt_lr;
    bool federated_scaling;       /* data.standardize: federated (the consortium's pooled
                                   * scaling) instead of each site's own */
} mfl_select_candidate_t;

typedef struct {
    bool enabled;
    uint32_t rounds;              /* federated rounds per candidate (≥ 1) */
    double validation_fraction;   /* of each site's training rows, (0, 0.9] */
    uint64_t validation_seed;
    mfl_select_rule_t rule;
    /* selection.score_adaptation: search: a site scores each candidate
     * after choosing its adaptation by cross-validation on its fit rows,
     * as eval.adapt_search deploys it; false (fixed): with the
     * candidate's adaptation rate and steps */
    bool score_search;
    size_t n_candidates;          /* ≥ 1 when enabled */
    mfl_select_candidate_t candidates[MFL_SELECT_MAX_CANDIDATES];
} mfl_select_config_t;

/* The base setting as a candidate. */
void mfl_select_base(const mfl_learner_config_t *learner, const mfl_optim_config_t *server,
                     uint32_t adapt_steps, float adapt_lr, mfl_select_candidate_t *out);
/* The same with the base's feature scaling (data.standardize: federated
 * when `federated`). */
void mfl_select_base_scaled(const mfl_learner_config_t *learner,
                            const mfl_optim_config_t *server, uint32_t adapt_steps,
                            float adapt_lr, bool federated, mfl_select_candidate_t *out);

/* Fills cfg->candidates with the default grid around `base`, one factor
 * at a time, dropping duplicates: the base itself; for an "mlp:" or
 * "linear:" model, a linear model and MLPs with one hidden layer of 16 and
 * 64 units; inner lr ×10; inner steps ×2; server sgd with β halved; server
 * Adam at rate 0.01; adaptation lr ×5; adaptation steps ×3; and, when the
 * base scales with the consortium's pooled statistics (federated_scaling),
 * the base with each site's own scaling. */
void mfl_select_default_grid(const mfl_select_candidate_t *base, mfl_select_config_t *cfg);

/* Inputs and outputs of an "mlp:IN-...-OUT" or "linear:IN-OUT" spec: 0, or
 * -1 for any other spec. */
int mfl_select_spec_io(const char *spec, unsigned long *in, unsigned long *out);

/* "mlp:13-32-1 reptile inner 0.01x5 server sgd 1 adapt 0.01x10": what the
 * audit log, metrics and report show. */
void mfl_select_describe(const mfl_select_candidate_t *c, char *out, size_t outlen);

/* The rule in force for a learner's loss (AUTO resolved), and its name
 * ("auroc", "accuracy", "loss"). */
mfl_select_rule_t mfl_select_rule_resolve(mfl_select_rule_t rule, mfl_loss_kind_t loss);
const char *mfl_select_rule_name(mfl_select_rule_t rule);
/* Parses "auto", "auroc", "accuracy", "loss"; -1 otherwise. */
int mfl_select_rule_parse(const char *text, mfl_select_rule_t *rule);

/* One site's validation scores of one candidate. */
typedef struct {
    double loss, accuracy, auroc;
    uint64_t n;
} mfl_select_score_t;

/* The mean of the rule's metric over the k scores whose metric is finite
 * (sites weigh equally: a small hospital counts as much as a large one);
 * NAN when none is (*n_used gets how many counted; may be NULL). */
double mfl_select_mean(mfl_select_rule_t rule, const mfl_select_score_t *scores, size_t k,
                       size_t *n_used);

/* The winner among n candidates' means (NAN = no score: never wins while
 * any candidate has one): the highest mean (the lowest for LOSS). Equal
 * means (AUROC and accuracy saturate on small validation sets) go to the
 * lower mean validation loss in `loss_means` (may be NULL; NAN counts as
 * worst), then to the earlier candidate, so the pick depends only on the
 * scores. 0 when every mean is NAN (the base setting, candidate 0, is kept). */
size_t mfl_select_pick(mfl_select_rule_t rule, const double *means, const double *loss_means,
                       size_t n);

/* A digest of everything that decides the selection (every candidate, the
 * rule, budget, split, run and init seeds): the state file names it so a
 * restart with an edited selection section is refused. */
void mfl_select_digest(const mfl_select_config_t *cfg, uint64_t run_seed, uint64_t init_seed,
                       uint8_t out[32]);

/* The state file `path` ("<checkpoint_dir>/selection.state"): written
 * atomically once the winner is known; read at start. Read: 1 with *winner
 * set, 0 if the file does not exist, -1 + err if it is unreadable or names
 * another selection (digest differs). Write: 0 or -1 + err. */
int mfl_select_state_read(const char *path, const uint8_t digest[32], size_t n_candidates,
                          size_t *winner, char *err, size_t errlen);
int mfl_select_state_write(const char *path, const uint8_t digest[32], size_t winner,
                           char *err, size_t errlen);

#endif
