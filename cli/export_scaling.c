/* The feature scaling an export carries. See export_scaling.h. */
#include "export_scaling.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"

#define S_LINE_MAX (1u << 20) /* a metrics line: 256 features' numbers fit */

static void s_hex(const uint8_t h[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* Fills the metadata strings from out->sc. */
static int s_finish(mfl_cli_export_scaling_t *out, const char *kind, char *err, size_t errlen)
{
    if (mfl_scaling_format_list(out->sc.mean, out->sc.n, out->center, sizeof out->center) < 0 ||
        mfl_scaling_format_list(out->sc.scale, out->sc.n, out->scale, sizeof out->scale) < 0)
        return mfl_errf(err, errlen, "the scaling's %u numbers do not fit the export's "
                        "metadata", out->sc.n), -1;
    uint8_t h[32];
    mfl_scaling_digest(&out->sc, h);
    s_hex(h, out->digest);
    snprintf(out->kind, sizeof out->kind, "%s", kind);
    return 0;
}

/* The digest of the last "scaling" event in the metrics file: 1 found
 * (into hex), 0 none or no readable file, -1 a line that does not parse. */
static int s_recorded_digest(const char *metrics, char hex[65], char *err, size_t errlen)
{
    FILE *f = metrics ? fopen(metrics, "r") : NULL;
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    int found = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        if ((size_t)n > S_LINE_MAX || !strstr(line, "\"event\":\"scaling\","))
            continue;
        char jerr[256];
        mfl_json_t *root = mfl_json_parse(line, (size_t)n, jerr, sizeof jerr);
        const char *d = root ? mfl_json_string(mfl_json_get(root, "digest")) : NULL;
        if (!d || strlen(d) != 64) {
            mfl_errf(err, errlen, "%s:%zu: a \"scaling\" event without a digest%s%s", metrics,
                     lineno, root ? "" : ": ", root ? "" : jerr);
            mfl_json_destroy(&root);
            found = -1;
            break;
        }
        memcpy(hex, d, 65);
        found = 1;
        mfl_json_destroy(&root);
    }
    free(line);
    fclose(f);
    return found;
}

int mfl_cli_export_scaling_pooled(int federated, const char *ckpt_dir, const char *metrics,
                                  size_t n_inputs, mfl_cli_export_scaling_t *out, char *err,
                                  size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (federated == 0)
        return 0;
    char path[4200], rerr[1024];
    snprintf(path, sizeof path, "%s/" MFL_SCALING_STATE_FILE, ckpt_dir);
    FILE *probe = fopen(path, "r");
    if (federated < 0) {
        if (!probe)
            return 0;
        fclose(probe);
        return mfl_errf(err, errlen, "%s is there but the run dir's status.json does not say "
                        "whether the model was trained with it (an older coordinator's): pass "
                        "the coordinator's config with --config", path), -1;
    }
    if (probe)
        fclose(probe);
    mfl_scaling_origin_t o;
    if (mfl_scaling_state_read(path, &out->sc, &o, rerr, sizeof rerr) < 0)
        return mfl_errf(err, errlen, "the run trained with federated scaling "
                        "(data.standardize: federated), so the export must carry the pooled "
                        "mean and scale, but they cannot be read: %s", rerr), -1;
    if (out->sc.n != n_inputs)
        return mfl_errf(err, errlen, "%s: a scaling of %u features, but the model takes %zu "
                        "inputs: not this run's record?", path, out->sc.n, n_inputs), -1;
    if (s_finish(out, "federated", err, errlen) < 0)
        return -1;
    char recorded[65];
    int r = s_recorded_digest(metrics, recorded, err, errlen);
    if (r < 0)
        return -1;
    if (r == 1 && strcmp(recorded, out->digest) != 0)
        return mfl_errf(err, errlen, "%s (BLAKE2b %.16s...) is not the pooled scaling the run "
                        "recorded in %s (%.16s...): the file was edited or is another run's",
                        path, out->digest, metrics, recorded), -1;
    snprintf(out->source, sizeof out->source, "%.400s: the consortium's mean and scale pooled from "
             "%u sites' %llu fit rows%s", path, o.sites, (unsigned long long)o.rows,
             r == 1 ? " (digest as recorded in the run's metrics)" : "");
    return 0;
}

int mfl_cli_export_scaling_fixed(const float *center, const float *scale, size_t n,
                                 const char *site_config, mfl_cli_export_scaling_t *out,
                                 char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (n == 0 || n > MFL_TASK_SCALING_MAX)
        return mfl_errf(err, errlen, "%s: %zu data.center values; an export carries 1..%d",
                        site_config, n, MFL_TASK_SCALING_MAX), -1;
    out->sc.n = (uint32_t)n;
    memcpy(out->sc.mean, center, n * sizeof(float));
    memcpy(out->sc.scale, scale, n * sizeof(float));
    snprintf(out->source, sizeof out->source, "%.400s: data.center and data.scale (the "
             "consortium's constants)", site_config);
    return s_finish(out, "fixed", err, errlen);
}
