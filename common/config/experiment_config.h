/* The offline experiment's YAML file (configs/train-*.yaml; keys in
 * docs/ENGINE-META.md) read into the runner's plain spec. The runner
 * (meta/experiment.h) knows no YAML; this is the only place that reads an
 * experiment file. */
#ifndef MFL_CONFIG_EXPERIMENT_CONFIG_H
#define MFL_CONFIG_EXPERIMENT_CONFIG_H

#include <stddef.h>

#include "meta/experiment.h"

/* Reads `path` into *spec (zeroed first): defaults for absent keys, unknown
 * keys and bad values refused. 0, or -1 with "FILE:LINE: key: what" in err. */
int mfl_experiment_config_load(const char *path, mfl_experiment_spec_t *spec, char *err,
                               size_t errlen);

/* Reads `path` and builds the experiment with its data
 * (mfl_experiment_config_load, then mfl_experiment_new). NULL + err naming
 * FILE:LINE and the key on a bad config, or the data file on bad data. */
mfl_experiment_t *mfl_experiment_load(const char *path, char *err, size_t errlen);

#endif
