/* The site's end of the compressed broadcast (fed/bcast.h, docs/WIRE.md
 * "Compressed broadcast"). A site keeps the model of its last RoundTask
 * (θ̂, which the worker only reads) and its hash; a RoundTask with
 * broadcast_base carries the fp16 / int8 difference to that model
 * instead of the model: the wire decoded it to floats and checked its
 * bytes against their hashes; the site adds it to the model it holds and
 * checks the sum against the task's model_hash, so a site never trains
 * from a model other than the one the coordinator named.
 *
 * No state of its own: the caller (the agent) owns the buffer and hash.
 * Thread-safe for distinct buffers. */
#ifndef MFL_SITE_BROADCAST_H
#define MFL_SITE_BROADCAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"
#include "wire/task.h"


/* The model digest of `nt` received tensors whose blake2b the wire
 * verified (RoundTask.model_hash of a model sent in full): the digest of
 * their hashes (audit/audit.h mfl_audit_update_digest). 0, or -1 if a
 * tensor has no hash. */
int mfl_site_broadcast_digest(const mfl_tensor_t *t, size_t nt, uint8_t out[32]);

/* Applies the difference tensors t[0..nt) (decoded values, or codes left
 * in their frames: data NULL, encoding fp16 / int8, decoded here block by
 * block (fed/quant.h mfl_quant_decode_view); learner layout order) of `task` to the held model held[0..n_held) whose hash is
 * held_hash (have_held false: none). Checks, before touching held: the
 * task names a base (has_broadcast_base), the site holds it (have_held,
 * hashes equal), the tensors' counts add up to n_held; then adds tensor by
 * tensor (mfl_bcast_apply) and checks the BLAKE2b digest of the sum's
 * tensors against task->model_hash. Returns 0 (held is θ̂ of the task,
 * its hash task->model_hash); -1 with err, held unchanged (no base, the
 * wrong base, wrong length); -2 with err, held changed and no longer any
 * model (the sum's hash differs): drop it. */
int mfl_site_broadcast_apply(float *held, size_t n_held, const uint8_t held_hash[32],
                             bool have_held, const mfl_round_task_t *task,
                             const mfl_tensor_t *t, size_t nt, char *err, size_t errlen);

#endif
