/* What binds a coordinator checkpoint to the model it was written for:
 * BLAKE2b-256 of "metafl-model-v1|SPEC|ALGO|RELATION|N_STATE". The round
 * engine stores it in every checkpoint (and refuses to resume from one
 * with another); `metafl export` and `metafl eval` recompute it to check
 * that a checkpoint belongs to the model they were told about. */
#ifndef MFL_ROUND_RUN_MODEL_H
#define MFL_ROUND_RUN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "meta/learner.h"

/* Writes the 32-byte hash of (l->model_spec, l->algo, l->relation_spec,
 * n_state) into out. Pure; thread-safe once libsodium is initialised. */
void mfl_run_model_hash(const mfl_learner_config_t *l, size_t n_state, uint8_t out[32]);

/* Which algorithm a checkpoint's hash names, given the spec, relation
 * module and state size: sets *algo and returns 0 if one of the eight
 * algorithms reproduces `hash`, -1 if none does (another model). Lets a
 * checkpoint written by a Reptile run be evaluated under a MAML config
 * (same tensors) while still refusing another model. */
int mfl_run_model_match(const mfl_learner_config_t *l, size_t n_state, const uint8_t hash[32],
                        mfl_algo_kind_t *algo);

/* θ's digest as the round engine publishes it (RoundTask.model_hash, the
 * round_closed record, metrics.jsonl theta_blake2b): BLAKE2b-256 of each of
 * the learner's state tensors over `state` [n_state], folded by
 * mfl_audit_update_digest. Pure; thread-safe once libsodium is initialised. */
void mfl_run_theta_digest(const mfl_learner_t *l, const float *state, uint8_t out[32]);

/* 1 if the file at `path` starts with the checkpoint magic "MFLCKPT1",
 * 0 if not (or it cannot be read: the caller's loader then says why). */
int mfl_run_is_checkpoint(const char *path);

/* Loads a learner state from `path`: a coordinator checkpoint (.ckpt,
 * checked with mfl_run_model_match against the learner's spec, relation
 * module and state size) or a safetensors file (mfl_learner_load). state
 * [n_state] is written only when everything checks out. If round_out is
 * not NULL it receives the checkpoint's round (0 for safetensors).
 * Returns 0, or -1 with "PATH: what" in err. */
int mfl_run_params_load(const mfl_learner_t *l, float *state, const char *path,
                        uint64_t *round_out, char *err, size_t errlen);

#endif
