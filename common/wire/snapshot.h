/* A reference-counted, hashed copy of tensors for zero-copy broadcast: the
 * coordinator copies and hashes θ once per round and sends the same bytes to
 * every site without copying or hashing again, while it is free to change θ
 * right after (the snapshot, not θ, is what the sockets read).
 *
 *   mfl_wire_snapshot_t *s = mfl_wire_snapshot_new(theta, n, err, errlen);
 *   for each site:
 *       mfl_server_send(srv, site, &env, mfl_wire_snapshot_tensors(s, NULL), n,
 *                       mfl_wire_snapshot_release, mfl_wire_snapshot_ref(s), err, errlen);
 *   mfl_wire_snapshot_release(s);   // our own reference
 *
 * The memory goes when the last send is done with it. */
#ifndef MFL_WIRE_SNAPSHOT_H
#define MFL_WIRE_SNAPSHOT_H

#include <stddef.h>

#include "wire/message.h"

typedef struct mfl_wire_snapshot_t mfl_wire_snapshot_t;

/* Copies names, shapes and data of `tensors` and hashes each tensor once.
 * Returns a snapshot holding one reference (the caller's), or NULL + err. */
mfl_wire_snapshot_t *mfl_wire_snapshot_new(const mfl_tensor_t *tensors, size_t n, char *err,
                                           size_t errlen);

/* The copied tensors, blake2b set; borrowed while a reference is held.
 * *n (if n is non-NULL) receives the count. */
const mfl_tensor_t *mfl_wire_snapshot_tensors(const mfl_wire_snapshot_t *self, size_t *n);

/* Takes one more reference and returns self (for one send's `hint`).
 * Thread-safe. */
mfl_wire_snapshot_t *mfl_wire_snapshot_ref(mfl_wire_snapshot_t *self);

/* Drops one reference (an mfl_release_fn: pass it as a send's `release`);
 * frees at zero. Thread-safe; accepts NULL. */
void mfl_wire_snapshot_release(void *snapshot);

#endif
