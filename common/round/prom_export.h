/* The coordinator's metrics for Prometheus, in the node_exporter textfile
 * convention: an opt-in file (output.prometheus_file) rewritten atomically
 * every second (temp file + rename, mode 0644) in the text exposition
 * format 0.0.4, which node_exporter's textfile collector serves with its
 * own metrics. No HTTP server, no listening port, no thread: the
 * coordinator's only inbound port stays the CURVE one (docs/DEPLOY.md says
 * why this was chosen over an embedded libmicrohttpd endpoint).
 *
 * Counters live in this object (since the coordinator started); gauges are
 * read from the engine at render time. Not thread-safe: the daemon's one
 * thread feeds and writes it. */
#ifndef MFL_ROUND_PROM_EXPORT_H
#define MFL_ROUND_PROM_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "round/round_engine.h"
#include "round/run_config.h"

#define MFL_PROM_REASONS 64 /* RejectReason values counted apart; larger ones share the last */

typedef struct mfl_prom mfl_prom_t;

/* What the transport counted (the wire server's stats). */
typedef struct {
    uint64_t bytes_in, bytes_out;
    uint64_t rejected_by_reason[MFL_PROM_REASONS]; /* by the wire's own checks */
} mfl_prom_wire_t;

/* A new exporter writing to `path` (copied). NULL on OOM or an empty path. */
mfl_prom_t *mfl_prom_new(const char *path);
void mfl_prom_destroy(mfl_prom_t **self_p);

/* A round closed: counts its accepted updates and observes its duration
 * (wall_seconds: open to close done) in the histogram. */
void mfl_prom_round_closed(mfl_prom_t *self, const mfl_round_summary_t *m);

/* The engine rejected an update or report for `reason` (a RejectReason). */
void mfl_prom_rejected(mfl_prom_t *self, int reason);

/* The exposition text (malloc'd, caller frees; NULL on OOM): rounds,
 * phase, sites known/connected, per-site connected and last seen,
 * updates accepted and rejected by reason and stage, the round-duration
 * histogram, bytes in/out, uploads in flight/waiting. `wire` may be NULL. */
char *mfl_prom_render(const mfl_prom_t *self, const mfl_round_engine_t *engine,
                      const mfl_coord_config_t *config, const mfl_prom_wire_t *wire,
                      uint64_t now_ms);

/* Renders and replaces the file atomically. 0, or -1 with "PATH: why". */
int mfl_prom_write(const mfl_prom_t *self, const mfl_round_engine_t *engine,
                   const mfl_coord_config_t *config, const mfl_prom_wire_t *wire,
                   uint64_t now_ms, char *err, size_t errlen);

#endif
