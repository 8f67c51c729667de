/* The coordinator daemon as an object tests can drive: the wire server
 * (coord_wire.h) feeding the round engine (round_engine.h).
 *
 * It answers Hello with Welcome (refusing a data schema that differs from
 * the first site's with REJECT_SCHEMA and a clear text; the protocol
 * version is checked by the wire layer), keeps liveness from every message
 * and heartbeat, resumes from the latest checkpoint on start (so a kill -9
 * loses at most the round in flight), runs the evaluation schedule, and
 * tells every site Bye after the last round.
 *
 * Operator interface: RUN_DIR/status.json, rewritten atomically (temp +
 * rename) once a second and at every round close, holds phase, round,
 * sites (last seen) and the last round's metrics. `metafl status` reads
 * it. Why a file and not a socket: it works with the daemon busy, hung or
 * dead (the last state stays readable), needs no extra port or socket
 * permissions beyond the run dir's 0700, and is trivially atomic. Commands
 * go the other way through RUN_DIR/control ("pause", "resume", "abort"),
 * polled once a second and removed when acted on.
 *
 * Not thread-safe; one thread runs it. */
#ifndef MFL_COORDINATOR_H
#define MFL_COORDINATOR_H

#include <signal.h>
#include <stdint.h>

#include "round/run_config.h"

typedef struct mfl_coordinator mfl_coordinator_t;

/* Binds the endpoint, loads the key and the allow-list, creates the run
 * dir (0700), builds the engine (resuming if a checkpoint exists). `config`
 * is copied. NULL + err. */
mfl_coordinator_t *mfl_coordinator_new(const mfl_coord_config_t *config, char *err,
                                       size_t errlen);

/* Writes the status one last time and closes everything; accepts NULL;
 * nulls the pointer. Sites get no Bye here (only when the run is over):
 * they keep dialling and rejoin a restarted coordinator on their own. */
void mfl_coordinator_destroy(mfl_coordinator_t **self_p);

/* The endpoint actually bound (useful with "tcp://127.0.0.1:*"). */
const char *mfl_coordinator_endpoint(const mfl_coordinator_t *self);

/* Handles at most one message (waiting up to timeout_ms), then ticks the
 * engine and the status file. Returns 0 to go on, 1 when the run is over
 * (all rounds and the final evaluation done, or aborted), -1 on a fatal
 * error (err). */
int mfl_coordinator_step(mfl_coordinator_t *self, int timeout_ms, char *err, size_t errlen);

/* Steps until the run is over or *stop becomes non-zero; on a stop, tells
 * every connected site Bye ("coordinator stopped") and waits up to 0.5 s
 * for the Byes to leave. Returns the exit
 * status: 0 when all rounds completed or a stop was asked for (the last
 * completed round is checkpointed), 1 on a fatal error, an abort or a
 * round that exhausted max_attempts. */
int mfl_coordinator_run(mfl_coordinator_t *self, volatile sig_atomic_t *stop,
                        volatile sig_atomic_t *reload);

/* Writes the status file now (also done by step). 0 or -1 (err). */
int mfl_coordinator_write_status(mfl_coordinator_t *self, char *err, size_t errlen);

#endif
