/* Shared by `metafl train` and `metafl eval`: printing an experiment's
 * evaluation for people. */
#ifndef MFL_CLI_META_COMMON_H
#define MFL_CLI_META_COMMON_H

#include <stdio.h>

#include "meta/experiment.h"

void mfl_cli_print_eval(FILE *out, const char *label, const mfl_experiment_t *exp,
                        const mfl_exp_eval_t *ev, int steps, float lr);

#endif
