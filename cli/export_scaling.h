/* `metafl export`: the feature scaling a run's model was trained with,
 * copied into the export so that a hospital that joins later scales its
 * rows the same way (docs/DATA.md "federated", docs/DEPLOY.md). The pooled
 * numbers come from the run's checkpoint_dir/scaling.state, checked
 * (round/scaling_record.h) and, when the run's metrics file is there,
 * matched against the digest the run recorded. */
#ifndef MFL_CLI_EXPORT_SCALING_H
#define MFL_CLI_EXPORT_SCALING_H

#include <stddef.h>

#include "round/scaling_record.h"

/* What goes into the export's metadata (kind "" = no scaling). */
typedef struct {
    char kind[16]; /* "", "federated" or "fixed" */
    mfl_task_scaling_t sc;
    char center[MFL_TASK_SCALING_MAX * 18];
    char scale[MFL_TASK_SCALING_MAX * 18];
    char digest[65];
    char source[640];
} mfl_cli_export_scaling_t;

/* The pooled scaling of a run. `federated`: 1 the run's model was trained
 * with it, 0 not, -1 unknown (an older status.json). `ckpt_dir` holds the
 * run's checkpoints (and scaling.state); `metrics` is the run's metrics
 * file or NULL. `n_inputs` is the model's input count.
 * With federated = 1 the state file must be there, well-formed, of
 * n_inputs features and (when `metrics` is readable and records a
 * "scaling" event) have the recorded digest; else -1 with err naming the
 * file. With 0, out->kind stays "". With -1, a state file present is an
 * error asking for --config (the run dir cannot say which setting won).
 * Returns 0 / -1. */
int mfl_cli_export_scaling_pooled(int federated, const char *ckpt_dir, const char *metrics,
                                  size_t n_inputs, mfl_cli_export_scaling_t *out, char *err,
                                  size_t errlen);

/* A site config's standardize: fixed constants (n values each; at most
 * MFL_TASK_SCALING_MAX, else -1) as kind "fixed"; `site_config` names
 * the source. Returns 0 / -1 (err). */
int mfl_cli_export_scaling_fixed(const float *center, const float *scale, size_t n,
                                 const char *site_config, mfl_cli_export_scaling_t *out,
                                 char *err, size_t errlen);

#endif
