/* What hospital IT runs before trusting a site config: everything the
 * agent would load (keys, the coordinator's pinned key, the data, the audit
 * log's place, the endpoint's syntax and name) checked WITHOUT opening a
 * socket, with errors that name the config file, the key and the fix.
 * `metafl-site-agent --check` prints the summary; the daemon calls
 * mfl_site_check_files() first so the same mistakes read the same way. */
#ifndef MFL_SITE_CHECK_H
#define MFL_SITE_CHECK_H
#include <stddef.h>
#include <stdio.h>

#include "site/site_config.h"

/* The file-level mistakes a person makes while writing site.yaml: a
 * missing key / data file, a public key where the secret one belongs, a
 * secret key where the coordinator's public key belongs, a data file the
 * agent's user cannot read, an endpoint that is not tcp://HOST:PORT with a
 * port in 1..65535. Returns 0, or -1 with
 * "CONFIG: KEY: PATH: what is wrong; what to do" in err. Opens files only
 * to read their first line. */
int mfl_site_check_files(const mfl_site_config_t *cfg, char *err, size_t errlen);

/* The full dry run: mfl_site_check_files, the identity (and that its name
 * is site.id), the coordinator's public key, the data through the real
 * loader and split, the audit log's directory, and the endpoint
 * (tcp://HOST:PORT with a valid port; HOST resolved, a failure to resolve
 * is a warning because DNS may be down only right now). Writes a short
 * human summary to `out` (may be NULL). Never dials out. Returns 0, or -1
 * with the first problem in err. */
int mfl_site_check(const mfl_site_config_t *cfg, FILE *out, char *err, size_t errlen);

/* Prefixes a lower layer's message with "CONFIG: " unless it already names
 * the config file, so every refusal says which config it is about. */
void mfl_site_check_prefix(const mfl_site_config_t *cfg, char *err, size_t errlen);
#endif
