/* The coordinator's status document (RUN_DIR/status.json): what `metafl
 * status` shows. Rendered from the engine's read-only accessors. */
#ifndef MFL_COORD_STATUS_H
#define MFL_COORD_STATUS_H

#include <stdint.h>

#include "round/run_config.h"
#include "round/round_engine.h"

/* A malloc'd NUL-terminated JSON object (caller frees), or NULL on OOM:
 * {"pid", "host", "endpoint", "updated_unix_ms", "phase", "paused", "round",
 *  "rounds", "rounds_done", "rejections", "uploads_in_flight",
 *  "uploads_waiting", "sites": [{"id", "connected", "last_seen_unix_ms",
 *  "selected"}], "audit_error": null | "why the audit log cannot be written",
 *  "last_round": {...} | null}. The two upload counts are the
 * sites holding an upload slot and those queued for one (both 0 without
 * flow control). `endpoint` may be NULL (simulate). */
char *mfl_status_render(const mfl_round_engine_t *engine, const mfl_coord_config_t *config,
                        const char *endpoint, uint64_t now_ms /* wall: updated_unix_ms */);

#endif
