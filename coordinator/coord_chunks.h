/* The coordinator daemon's handling of chunked uploads (docs/WIRE.md
 * "Chunked uploads"): UpdateBegin and UpdateChunk events from the wire
 * adapter, checked by the round engine (begin), spooled and verified
 * chunk by chunk (round/upload_spool.h), and handed to the engine through
 * a reader when complete. Not thread-safe: the coordinator's thread. */
#ifndef MFL_COORD_CHUNKS_H
#define MFL_COORD_CHUNKS_H

#include <stdint.h>

#include "coord_wire.h"
#include "round/round_engine.h"
#include "round/upload_spool.h"

/* UPDATE_BEGIN from a site the engine knows: the engine's checks, then the
 * spool's (chunk count, hashes against the signature); a failure is
 * rejected through the engine (Reject, log, update_rejected record). */
void mfl_coord_chunks_begin(mfl_round_engine_t *engine, mfl_upload_spool_t *spool,
                            const mfl_wire_event_t *ev, uint64_t now_ms);

/* UPDATE_CHUNK: spooled after its checks; the last one hands the update
 * to the engine (mfl_round_engine_update_read) and drops the spool file. */
void mfl_coord_chunks_chunk(mfl_round_engine_t *engine, mfl_upload_spool_t *spool,
                            const mfl_wire_event_t *ev, uint64_t now_ms);

/* An UPDATE (one message) whose signed header says chunks: refused
 * (REJECT_CHUNK), so an update asked in chunks never arrives whole.
 * Returns 1 if it was refused, 0 if it is an ordinary update. */
int mfl_coord_chunks_refuse_whole(mfl_round_engine_t *engine, const mfl_wire_event_t *ev);

/* Drops uploads that are not for the engine's open round attempt (closed,
 * abandoned, a new attempt), logging those cut short. Call after ticks. */
void mfl_coord_chunks_prune(mfl_round_engine_t *engine, mfl_upload_spool_t *spool);

#endif
