/* A hospital evaluating a published meta-initialisation without a live
 * coordinator: θ from a coordinator checkpoint file (the consortium
 * publishes it with its checksum) and the model / algorithm / evaluation
 * settings from the coordinator's config, scored exactly as an EvalTask
 * would be (mfl_site_worker_eval: adapted, as-is and local-only).
 *
 * For a hospital that joins after the consortium's run has ended, and for
 * the demo's fallback; nothing is sent anywhere. */
#ifndef MFL_SITE_OFFLINE_H
#define MFL_SITE_OFFLINE_H

#include <stddef.h>
#include <stdio.h>

#include "site/site_config.h"

/* Loads `coord_config` (the coordinator's YAML) and the checkpoint at
 * `checkpoint` (a .ckpt file, or a checkpoint directory: its newest valid
 * file), builds the site's worker from `cfg`, evaluates and writes one JSON
 * line to `out` in the coordinator metrics file's "eval" form
 * ({"event":"eval","round":R,"site":"S","accuracy":...}). Returns 0, or -1
 * with err naming the file. */
int mfl_site_offline_eval(const mfl_site_config_t *cfg, const char *coord_config,
                          const char *checkpoint, FILE *out, char *err, size_t errlen);

#endif
