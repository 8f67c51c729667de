/* The pooled scaling's state file and export metadata. See scaling_record.h. */
#include "round/scaling_record.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/log.h"
#include "nn/safetensors.h"

void mfl_scaling_digest(const mfl_task_scaling_t *sc, uint8_t out[32])
{
    /* x86-64 and every platform the project builds on are little-endian:
     * the floats' memory is their little-endian bytes. */
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)sc->mean, sc->n * sizeof(float));
    crypto_generichash_update(&st, (const uint8_t *)sc->scale, sc->n * sizeof(float));
    crypto_generichash_final(&st, out, 32);
}

int mfl_scaling_state_parse(const char *data, size_t len, const char *label,
                            mfl_task_scaling_t *sc, mfl_scaling_origin_t *origin, char *err,
                            size_t errlen)
{
    memset(sc, 0, sizeof *sc); /* entries past n stay 0, whatever the input */
    if (len > MFL_SCALING_STATE_MAX)
        return mfl_errf(err, errlen, "%s: larger than %u bytes", label, MFL_SCALING_STATE_MAX),
               -1;
    char *text = malloc(len + 1); /* NUL-terminated for sscanf / strtod */
    if (!text)
        return mfl_errf(err, errlen, "%s: out of memory", label), -1;
    memcpy(text, data, len);
    text[len] = '\0';
    unsigned n = 0, sites = 0;
    unsigned long long rows = 0;
    int used = 0, rc = -1;
    if (memchr(data, '\0', len) ||
        sscanf(text, "metafl-scaling-v1 n=%u rows=%llu sites=%u%n", &n, &rows, &sites,
               &used) != 3 || n == 0 || n > MFL_TASK_SCALING_MAX) {
        mfl_errf(err, errlen, "%s: not a scaling record (metafl-scaling-v1 with 1..%d features)",
                 label, MFL_TASK_SCALING_MAX);
        goto out;
    }
    const char *p = text + used;
    bool median = strncmp(p, " pool=median", 12) == 0;
    if (median)
        p += 12;
    for (int part = 0; part < 2; part++) {
        float *v = part ? sc->scale : sc->mean;
        for (unsigned j = 0; j < n; j++) {
            char *end = NULL;
            double d = strtod(p, &end);
            if (end == p || !isfinite(d) || !isfinite((float)d) || (part && !((float)d > 0))) {
                mfl_errf(err, errlen, "%s: %s %u is missing or bad", label,
                         part ? "scale" : "mean", j);
                goto out;
            }
            v[j] = (float)d;
            p = end;
        }
    }
    while (*p && isspace((unsigned char)*p))
        p++;
    if (*p) {
        mfl_errf(err, errlen, "%s: more numbers than its header's %u means and %u scales", label,
                 n, n);
        goto out;
    }
    sc->n = n;
    if (origin) {
        origin->sites = sites;
        origin->rows = rows;
        origin->median = median;
    }
    rc = 0;
out:
    free(text);
    return rc;
}

int mfl_scaling_state_read(const char *path, mfl_task_scaling_t *sc, mfl_scaling_origin_t *origin,
                           char *err, size_t errlen)
{
    char *data = NULL;
    size_t len = 0;
    if (mfl_file_read_all(path, MFL_SCALING_STATE_MAX, &data, &len, err, errlen) < 0)
        return -1;
    int rc = mfl_scaling_state_parse(data, len, path, sc, origin, err, errlen);
    free(data);
    return rc;
}

int mfl_scaling_state_write(const char *path, const mfl_task_scaling_t *sc,
                            const mfl_scaling_origin_t *origin, char *err, size_t errlen)
{
    if (sc->n == 0 || sc->n > MFL_TASK_SCALING_MAX)
        return mfl_errf(err, errlen, "%s: %u features to record", path, sc->n), -1;
    size_t cap = 128 + (size_t)sc->n * 2 * 40;
    char *text = malloc(cap);
    if (!text)
        return mfl_errf(err, errlen, "%s: out of memory", path), -1;
    size_t o = (size_t)snprintf(text, cap, "metafl-scaling-v1 n=%u rows=%llu sites=%u%s\n", sc->n,
                                (unsigned long long)origin->rows, origin->sites,
                                origin->median ? " pool=median" : "");
    for (int part = 0; part < 2; part++) {
        const float *v = part ? sc->scale : sc->mean;
        for (uint32_t j = 0; j < sc->n && o < cap; j++)
            o += (size_t)snprintf(text + o, cap - o, "%s%a", j ? " " : "", (double)v[j]);
        if (o < cap)
            o += (size_t)snprintf(text + o, cap - o, "\n");
    }
    int rc = o < cap ? mfl_file_write_atomic(path, text, o, err, errlen)
                     : (mfl_errf(err, errlen, "%s: record too long", path), -1);
    free(text);
    return rc;
}

int mfl_scaling_format_list(const float *v, uint32_t n, char *out, size_t cap)
{
    size_t o = 0;
    if (cap)
        out[0] = '\0';
    for (uint32_t j = 0; j < n; j++) {
        int w = snprintf(out + o, cap - o, "%s%.9g", j ? "," : "", (double)v[j]);
        if (w < 0 || (size_t)w >= cap - o)
            return -1;
        o += (size_t)w;
    }
    return 0;
}

/* n comma-separated finite numbers into v[MFL_TASK_SCALING_MAX]. */
static int s_parse_list(const char *s, float *v, uint32_t *n, int positive)
{
    uint32_t k = 0;
    const char *p = s;
    for (;;) {
        if (k == MFL_TASK_SCALING_MAX)
            return -1;
        char *end = NULL;
        errno = 0;
        float f = strtof(p, &end);
        if (end == p || !isfinite(f) || (positive && !(f > 0)))
            return -1;
        v[k++] = f;
        p = end;
        if (*p == '\0')
            break;
        if (*p++ != ',')
            return -1;
    }
    *n = k;
    return 0;
}

int mfl_scaling_from_metadata(const char *center, const char *scale, const char *digest,
                              const char *label, mfl_task_scaling_t *sc, char *err,
                              size_t errlen)
{
    static const char *const keys[] = {MFL_SCALING_MD_CENTER, MFL_SCALING_MD_SCALE,
                                       MFL_SCALING_MD_DIGEST};
    const char *vals[] = {center, scale, digest};
    for (int k = 0; k < 3; k++)
        if (!vals[k])
            return mfl_errf(err, errlen, "%s: metadata has no \"%s\" (not exported with a "
                            "scaling: re-export it with this version's `metafl export`)",
                            label, keys[k]), -1;
    uint32_t nc = 0, ns = 0;
    if (s_parse_list(center, sc->mean, &nc, 0) < 0)
        return mfl_errf(err, errlen, "%s: metadata \"%s\" is not 1..%d comma-separated finite "
                        "numbers", label, keys[0], MFL_TASK_SCALING_MAX), -1;
    if (s_parse_list(scale, sc->scale, &ns, 1) < 0)
        return mfl_errf(err, errlen, "%s: metadata \"%s\" is not 1..%d comma-separated numbers "
                        "> 0", label, keys[1], MFL_TASK_SCALING_MAX), -1;
    if (nc != ns)
        return mfl_errf(err, errlen, "%s: metadata has %u centres and %u scales", label, nc,
                        ns), -1;
    sc->n = nc;
    uint8_t h[32];
    char hex[65];
    mfl_scaling_digest(sc, h);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    if (strcmp(hex, digest) != 0) {
        sc->n = 0;
        return mfl_errf(err, errlen, "%s: metadata \"%s\" does not match its centres and scales "
                        "(BLAKE2b %.16s..., recorded %.16s...): the file was edited or damaged",
                        label, keys[2], hex, digest), -1;
    }
    return 0;
}

int mfl_scaling_from_export(const char *path, mfl_task_scaling_t *sc, char *kind, size_t cap,
                            char *err, size_t errlen)
{
    mfl_safetensors_t *st = mfl_safetensors_read(path, err, errlen);
    if (!st)
        return -1;
    int rc = -1;
    const char *k = mfl_safetensors_metadata(st, MFL_SCALING_MD_KIND);
    if (!k) {
        mfl_errf(err, errlen, "%s: carries no feature scaling (no \"%s\" in its metadata): the "
                 "run used each site's own statistics, or the file was exported before "
                 "exports carried the pooled scaling", path, MFL_SCALING_MD_KIND);
        goto out;
    }
    if (mfl_scaling_from_metadata(mfl_safetensors_metadata(st, MFL_SCALING_MD_CENTER),
                                  mfl_safetensors_metadata(st, MFL_SCALING_MD_SCALE),
                                  mfl_safetensors_metadata(st, MFL_SCALING_MD_DIGEST), path, sc,
                                  err, errlen) < 0)
        goto out;
    if (kind)
        snprintf(kind, cap, "%s", k);
    rc = 0;
out:
    mfl_safetensors_destroy(&st);
    return rc;
}
