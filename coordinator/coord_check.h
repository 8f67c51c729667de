/* The coordinator's start-up checks that name the config and the key: the
 * mistakes an operator makes while writing coordinator.yaml (a public key
 * where the secret one belongs, a missing or empty allow-list), found
 * before the daemon binds, in words that say what to do. */
#ifndef MFL_COORD_CHECK_H
#define MFL_COORD_CHECK_H
#include <stddef.h>

#include "round/run_config.h"

/* Checks coordinator.key (exists, is a secret key) and
 * coordinator.allow_dir (exists, is a directory). Logs the admitted
 * sites, and warns when the allow-list is empty (no site could connect).
 * Returns 0, or -1 with "CONFIG: KEY: PATH: what; what to do" in err. */
int mfl_coord_check_start(const mfl_coord_config_t *config, char *err, size_t errlen);

/* Prefixes `err` with "CONFIG: " unless it names the config already, and
 * appends a hint for a listen port already in use. */
void mfl_coord_check_explain(const mfl_coord_config_t *config, char *err, size_t errlen);
#endif
