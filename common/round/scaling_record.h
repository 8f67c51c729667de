/* The pooled feature scaling of a run with data.standardize: federated
 * (docs/DATA.md), as it is kept and handed on: the coordinator's record
 * `CHECKPOINT_DIR/scaling.state` (what a restart reads and `metafl export`
 * copies) and the export's metadata (what a hospital that joins later
 * reads back with `data.scaling_from`).
 *
 * Both carry the exact float32 numbers: the state file as C99 hex floats,
 * the export as shortest-round-trip decimals ("%.9g" of a float reads back
 * to the same float) plus a BLAKE2b-256 digest of the means then the
 * scales (their little-endian float32 bytes), the digest the coordinator's
 * pooled `scaling` audit record carries, so an export is traced to the
 * audited run and a damaged or edited copy is refused. No clock, no
 * global state; thread-safe. */
#ifndef MFL_ROUND_SCALING_RECORD_H
#define MFL_ROUND_SCALING_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/task.h"

#define MFL_SCALING_STATE_FILE "scaling.state"
#define MFL_SCALING_STATE_MAX (64u * 1024u) /* bytes: 256 features fit with room */

/* Metadata keys of an export that carries a scaling (docs/DEPLOY.md). */
#define MFL_SCALING_MD_KIND "scaling"           /* "federated" or "fixed" */
#define MFL_SCALING_MD_CENTER "scaling_center"  /* n comma-separated numbers */
#define MFL_SCALING_MD_SCALE "scaling_scale"    /* n comma-separated numbers (> 0) */
#define MFL_SCALING_MD_DIGEST "scaling_blake2b" /* 64 hex digits */
#define MFL_SCALING_MD_SOURCE "scaling_source"  /* where it came from, for people */

/* Where a pooled scaling came from (0 when unknown); median: pooled by
 * data.scaling_pool: median (the header then ends " pool=median"). */
typedef struct {
    uint32_t sites;
    uint64_t rows;
    bool median;
} mfl_scaling_origin_t;

/* BLAKE2b-256 of sc->mean[0..n) then sc->scale[0..n) as float32 bytes. */
void mfl_scaling_digest(const mfl_task_scaling_t *sc, uint8_t out[32]);

/* Parses a state file's bytes data[0..len) (len ≤ MFL_SCALING_STATE_MAX;
 * need not be NUL-terminated) as mfl_scaling_state_read; `label` names
 * them in errors. */
int mfl_scaling_state_parse(const char *data, size_t len, const char *label,
                            mfl_task_scaling_t *sc, mfl_scaling_origin_t *origin, char *err,
                            size_t errlen);

/* Reads the state file at path into *sc (and *origin if not NULL): the
 * header "metafl-scaling-v1 n=F rows=N sites=K[ pool=median]", F means,
 * F scales (hex
 * floats; finite; scales > 0) and nothing else. Returns 0, or -1 with err
 * naming the file and what is missing or bad (a missing file: the
 * system's reason). */
int mfl_scaling_state_read(const char *path, mfl_task_scaling_t *sc, mfl_scaling_origin_t *origin,
                           char *err, size_t errlen);

/* Writes the state file atomically (mfl_file_write_atomic). 0 / -1 (err). */
int mfl_scaling_state_write(const char *path, const mfl_task_scaling_t *sc,
                            const mfl_scaling_origin_t *origin, char *err, size_t errlen);

/* Writes v[0..n) as "%.9g" numbers separated by commas into out[cap].
 * Returns 0, or -1 when it does not fit. */
int mfl_scaling_format_list(const float *v, uint32_t n, char *out, size_t cap);

/* Fills sc from an export's metadata values (center, scale and digest as
 * written by `metafl export`; any may be NULL = absent): the same count of
 * finite numbers, scales > 0, at most MFL_TASK_SCALING_MAX, and the digest
 * of what was read equal to `digest`. `label` names the file in errors.
 * Returns 0, or -1 with err saying which key is missing or wrong. */
int mfl_scaling_from_metadata(const char *center, const char *scale, const char *digest,
                              const char *label, mfl_task_scaling_t *sc, char *err,
                              size_t errlen);

/* Reads the scaling an export at path carries (mfl_scaling_from_metadata
 * over its metadata) and its kind ("federated" / "fixed") into kind[cap]
 * if kind is not NULL. -1 with err naming the file when it carries none. */
int mfl_scaling_from_export(const char *path, mfl_task_scaling_t *sc, char *kind, size_t cap,
                            char *err, size_t errlen);

#endif
