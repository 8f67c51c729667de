/* Shared by `metafl train` and `metafl eval`: the --threads option,
 * opening an experiment with its learner, and printing an experiment's
 * evaluation for people. */
#ifndef MFL_CLI_META_COMMON_H
#define MFL_CLI_META_COMMON_H

#include <stdio.h>

#include "meta/experiment.h"

/* Parses the value of --threads (an integer 1..256) into *threads.
 * Returns 0, or -1 after telling stderr, naming the command cmd. */
int mfl_cli_parse_threads(const char *cmd, const char *val, int *threads);

/* Loads the experiment config and builds its learner into *exp_p, *l_p.
 * Returns 0, or -1 with the reason in err; on failure whatever was made
 * is left in *exp_p / *l_p for the caller's usual destroy calls. */
int mfl_cli_open_experiment(const char *config, mfl_experiment_t **exp_p,
                            mfl_learner_t **l_p, char *err, size_t errlen);

void mfl_cli_print_eval(FILE *out, const char *label, const mfl_experiment_t *exp,
                        const mfl_exp_eval_t *ev, int steps, float lr);

#endif
