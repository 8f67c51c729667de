/* `metafl eval --predict`: the network's outputs for given rows (no
 * adaptation), from a checkpoint or a safetensors file. */
#ifndef MFL_CLI_EVAL_PREDICT_H
#define MFL_CLI_EVAL_PREDICT_H

#include <stdbool.h>

/* Loads params (a .ckpt needs `config`, the coordinator's or an
 * experiment's; a safetensors export names its own model), reads `rows`
 * (one row of the model's input numbers per line, comma-separated; an
 * optional header line and '#' comments skipped) and writes one CSV line
 * of outputs per row (plus probabilities when the loss is known) to
 * out_path, or stdout if NULL. raw: the rows hold raw features, scaled
 * first with the feature scaling the export carries ((x − scaling_center)
 * / scaling_scale; an export without one, or a checkpoint, is refused).
 * Returns the exit code: 0, or 1 after telling stderr what is wrong
 * (FILE:LINE for a bad row). */
int mfl_cli_eval_predict(const char *params, const char *config, const char *rows,
                         const char *out_path, bool raw);

#endif
