/* The coordinator's status document (RUN_DIR/status.json): what `metafl
 * status` shows. Rendered from the engine's read-only accessors. */
#ifndef MFL_COORD_STATUS_H
#define MFL_COORD_STATUS_H

#include <stdint.h>

#include "round/run_config.h"
#include "round/round_engine.h"

/* A malloc'd NUL-terminated JSON object (caller frees), or NULL on OOM:
 * {"pid", "host", "endpoint", "updated_unix_ms", "phase", "secagg_phase" (the
 *  secure-aggregation attempt's phase, "advertise" .. "unmask", or null), "paused", "round",
 *  "rounds", "rounds_done", "rejections", "uploads_in_flight",
 *  "uploads_waiting", "sites": [{"id", "connected", "last_seen_unix_ms",
 *  "selected", "reported", "eval_sent", "revoked", "failures",
 *  "last_failure", "last_failure_unix_ms"}], "audit_error": null | "why the
 *  audit log cannot be written", "model": {"spec", "algo", "relation",
 *  "loss", "standardize": "federated" | "site"}, "round_opened_unix_ms", "round_deadline_unix_ms", "attempt",
 *  "eval_deadline_unix_ms", "eta_unix_ms", "last_round": {...} | null}. The
 * two upload counts are the sites holding an upload slot and those queued
 * for one (both 0 without flow control). A site "reported" when its update
 * was accepted in the open round (while evaluating: its evaluation
 * arrived). The round clock fields are 0 when no round is open;
 * eta_unix_ms estimates the run's end from the last round's duration (0:
 * unknown or over). `model` lets `metafl export RUN_DIR` rebuild the model
 * and know whether to copy the pooled scaling (data.standardize: federated).
 * `endpoint` may be NULL (simulate). */
char *mfl_status_render(const mfl_round_engine_t *engine, const mfl_coord_config_t *config,
                        const char *endpoint, uint64_t now_ms /* wall: updated_unix_ms */);

#endif
