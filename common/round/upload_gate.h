/* Upload flow control: at most `max_in_flight` sites hold a grant to send
 * their update at once; the others wait in arrival order (FIFO).
 *
 * Why: ZeroMQ allocates each whole incoming message in its per-peer queue
 * as soon as it reads a large frame's header, so N sites uploading their Δ
 * together cost the coordinator N whole Δs of memory (docs/PERFORMANCE.md,
 * "Upload flow control"). Grants bound that to max_in_flight Δs.
 *
 * A plain data structure with no clock and no transport: the round engine
 * decides when a slot frees (the site's update arrived, accepted or not;
 * the site went away; the round closed) and sends the grants. Site ids are
 * copied (at most MFL_UPLOAD_GATE_SITE_MAX - 1 bytes; longer ones are
 * refused). Not thread-safe. */
#ifndef MFL_COORD_UPLOAD_GATE_H
#define MFL_COORD_UPLOAD_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MFL_UPLOAD_GATE_SITE_MAX 65
/* Updates of at most this many bytes need no slot: each connection already
 * holds up to one 64 KiB encrypted θ frame while θ goes out
 * (MFL_WIRE_BROADCAST_CHUNK_BYTES; MFL_WIRE_UNGRANTED_UPDATE_BYTES, asserted
 * equal in coord_wire.c), so N small updates cost no more than the
 * broadcast did. Sites send them without asking; one that asks anyway is
 * granted at once (mfl_upload_gate_request_small). */
#define MFL_UPLOAD_GATE_SMALL_BYTES (64u << 10)

typedef struct mfl_upload_gate mfl_upload_gate_t;

/* A gate with `max_in_flight` (≥ 1) slots. NULL on OOM or 0. */
mfl_upload_gate_t *mfl_upload_gate_new(uint32_t max_in_flight);
/* Frees the gate; accepts NULL; nulls the pointer. */
void mfl_upload_gate_destroy(mfl_upload_gate_t **self_p);

typedef enum {
    MFL_GATE_GRANTED = 0, /* the site holds a slot: send it a grant (again, if it
                             already held one: its first may not have arrived) */
    MFL_GATE_QUEUED = 1,  /* all slots busy: the site waits (its place is kept
                             if it was already waiting) */
    MFL_GATE_ERROR = -1,  /* out of memory or an over-long / empty id: refuse */
} mfl_gate_result_t;

/* `site` asks to upload. */
mfl_gate_result_t mfl_upload_gate_request(mfl_upload_gate_t *self, const char *site);

/* `site` asks to upload a small update (≤ MFL_UPLOAD_GATE_SMALL_BYTES):
 * granted at once without taking a slot (a place it held in the queue is
 * dropped). MFL_GATE_GRANTED, or MFL_GATE_ERROR (OOM, bad id). */
mfl_gate_result_t mfl_upload_gate_request_small(mfl_upload_gate_t *self, const char *site);

/* Does `site` hold a grant now (a slot or a small grant)? */
bool mfl_upload_gate_holds(const mfl_upload_gate_t *self, const char *site);

/* Frees `site`'s grant (slot or small), or takes it out of the queue.
 * Returns true if it held a slot (then call mfl_upload_gate_next to hand
 * the slot on). */
bool mfl_upload_gate_release(mfl_upload_gate_t *self, const char *site);

/* If a slot is free and a site waits: moves the longest-waiting site into
 * the slot and returns its id (borrowed, valid until the next call on the
 * gate); else NULL. Call it until NULL after releases. */
const char *mfl_upload_gate_next(mfl_upload_gate_t *self);

/* Empties slots and queue (a round closed or a new attempt opened). */
void mfl_upload_gate_reset(mfl_upload_gate_t *self);

/* Slots in use (small grants are not counted). */
size_t mfl_upload_gate_in_flight(const mfl_upload_gate_t *self);
size_t mfl_upload_gate_waiting(const mfl_upload_gate_t *self);
uint32_t mfl_upload_gate_capacity(const mfl_upload_gate_t *self);

#endif
