/* The coordinator's checkpoint: everything needed to resume a run after a
 * crash and continue exactly as if it had not stopped.
 *
 * File format (version 1), all integers little-endian, see docs/AUDIT.md:
 *   "MFLCKPT1"            8 bytes magic
 *   u32 version = 1, u32 header_bytes (= 192 for v1)
 *   run_id                64 bytes, NUL-padded (1..63 chars of [A-Za-z0-9._-])
 *   u64 round             last completed round
 *   u64 seed              the run's seed
 *   u64 rng[4]            the coordinator's mfl_rng_t state
 *   u32 optim_kind, u32 reserved (0)
 *   u64 optim_steps       server-step count
 *   u64 n_params, u64 n_optim_state
 *   u8  model_hash[32]    BLAKE2b-256 of the model spec (caller-defined; zeros if unused)
 *   f32 theta[n_params], f32 optim_state[n_optim_state]   raw LE
 *   u8  checksum[32]      BLAKE2b-256 of every byte before it
 * Version 2 is version 1 with f32 broadcast[n_params] between optim_state
 * and the checksum: θ̂, the model the sites were last sent (fed/bcast.h),
 * written only by a run with a compressed broadcast; without one the file
 * is version 1, byte for byte as before. The loader reads both.
 * Written to a temp file, fsync'd and renamed (then the directory fsync'd), so
 * a crash leaves the previous file.
 * Files in a checkpoint directory are named "round-%08llu.ckpt". */
#ifndef MFL_FED_CHECKPOINT_H
#define MFL_FED_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

#define MFL_CHECKPOINT_RUN_ID_MAX 63
#define MFL_CHECKPOINT_MAX_PARAMS (1ull << 30) /* loader cap: 4 GiB of floats */

/* Plain data. Pointers are owned by whoever filled the struct: the caller
 * when saving; mfl_checkpoint_load when loading (free with _clear). */
typedef struct {
    char run_id[MFL_CHECKPOINT_RUN_ID_MAX + 1];
    uint64_t round;          /* last completed round */
    uint64_t seed;
    mfl_rng_t rng;           /* coordinator RNG state (site selection etc.) */
    uint32_t optim_kind;     /* mfl_optim_kind_t of the server step */
    uint64_t optim_steps;    /* from mfl_server_step_state_export */
    uint8_t model_hash[32];
    size_t n_params;
    float *theta;            /* n_params */
    size_t n_optim_state;
    float *optim_state;      /* n_optim_state (may be NULL when 0) */
    float *broadcast;        /* n_params: θ̂ of a compressed broadcast (version 2), or NULL
                                (version 1) */
} mfl_checkpoint_t;

/* Writes `ck` (borrowed) to `path` atomically. Returns 0, or -1 with
 * "PATH: reason" in err (bad run id, n_params 0 or over the cap, NaN/Inf in
 * theta, I/O). Thread-safe for distinct paths. */
int mfl_checkpoint_save(const char *path, const mfl_checkpoint_t *ck, char *err, size_t errlen);

/* Durability in two steps, for a caller that must not wait for the disk
 * (the coordinator between rounds): _nosync encodes `ck` and puts it in
 * place with a temp file + rename but without any fsync, so the moment it
 * returns a restarted process finds it (a process crash, SIGKILL included,
 * keeps it: the data is in the page cache); mfl_checkpoint_sync later
 * fsyncs the file and its directory (e.g. on another thread). Until the
 * sync returns, a POWER LOSS may leave the file missing, empty or torn:
 * mfl_checkpoint_latest then skips it (checksum) and loads the previous
 * one, so sync before writing the next checkpoint and prune only after
 * the sync. Same errors as mfl_checkpoint_save; sync: "PATH: fsync: why". */
int mfl_checkpoint_save_nosync(const char *path, const mfl_checkpoint_t *ck, char *err,
                               size_t errlen);
int mfl_checkpoint_sync(const char *path, char *err, size_t errlen);

/* The same in steps, so a caller can overlap other work with the write
 * (the coordinator syncs its audit log meanwhile): _stage encodes `ck` and
 * writes it to a temp file next to `path` (not fsync'd; invisible to
 * mfl_checkpoint_latest, which skips temp names); _publish renames it to
 * `path` (then as after mfl_checkpoint_save_nosync: visible, durable after
 * mfl_checkpoint_sync); _discard removes a staged file instead. `st` is
 * the caller's; after _publish or _discard nothing is staged. 0 or -1
 * with err (a failed publish removes the temp file). */
#define MFL_CHECKPOINT_PATH_MAX 4096
typedef struct {
    char path[MFL_CHECKPOINT_PATH_MAX];
    char tmp[MFL_CHECKPOINT_PATH_MAX]; /* "" when nothing is staged */
} mfl_checkpoint_staged_t;
int mfl_checkpoint_stage(const char *path, const mfl_checkpoint_t *ck,
                         mfl_checkpoint_staged_t *st, char *err, size_t errlen);
int mfl_checkpoint_publish(mfl_checkpoint_staged_t *st, char *err, size_t errlen);
void mfl_checkpoint_discard(mfl_checkpoint_staged_t *st);

/* Reads and fully validates `path` into *ck (which it overwrites; the caller
 * then owns ck->theta / ck->optim_state: free with mfl_checkpoint_clear).
 * Strict: magic, version, header size, run id charset, sizes against the cap
 * and the file length, checksum, finite floats. Returns 0, or -1 with
 * "PATH: field: reason" in err (*ck zeroed). */
int mfl_checkpoint_load(const char *path, mfl_checkpoint_t *ck, char *err, size_t errlen);

/* As mfl_checkpoint_load on a file's bytes b[0..len) already in memory;
 * `origin` names the source in errors. Same ownership rules. */
int mfl_checkpoint_parse(const uint8_t *b, size_t len, const char *origin, mfl_checkpoint_t *ck,
                         char *err, size_t errlen);

/* Frees what mfl_checkpoint_load allocated and zeroes *ck. Accepts a zeroed
 * struct. */
void mfl_checkpoint_clear(mfl_checkpoint_t *ck);

/* Writes "DIR/round-%08llu.ckpt" for `round` into buf. 0, or -1 if it does
 * not fit. */
int mfl_checkpoint_path(const char *dir, uint64_t round, char *buf, size_t buflen);

/* Saves `ck` as DIR/round-NNNNNNNN.ckpt (ck->round), creating DIR if needed.
 * If `path_out` is non-NULL the file name is copied there. 0 or -1 with err. */
int mfl_checkpoint_save_dir(const char *dir, const mfl_checkpoint_t *ck, char *path_out,
                            size_t path_len, char *err, size_t errlen);

/* As mfl_checkpoint_save_dir through mfl_checkpoint_save_nosync: visible
 * at once, durable only after mfl_checkpoint_sync(path_out). */
int mfl_checkpoint_save_dir_nosync(const char *dir, const mfl_checkpoint_t *ck, char *path_out,
                                   size_t path_len, char *err, size_t errlen);

/* Finds the newest valid checkpoint in `dir` (highest round among
 * "round-*.ckpt" files that load cleanly; temp files and corrupt files are
 * skipped, each corrupt one with a warning in the log) and loads it into
 * *ck. Returns 1 if one was loaded (its path in path_out if non-NULL),
 * 0 if there is none (or dir does not exist), -1 with err if dir cannot be
 * read. */
int mfl_checkpoint_latest(const char *dir, mfl_checkpoint_t *ck, char *path_out, size_t path_len,
                          char *err, size_t errlen);

/* The number of "round-*.ckpt" files in `dir` (valid or not; 0 if dir does
 * not exist), their names newest first, comma-separated, into
 * names[0..len) (cut with "..." if long; names may be NULL). -1 if dir
 * cannot be read. */
long mfl_checkpoint_files(const char *dir, char *names, size_t len);

/* Removes all but the `keep` newest "round-*.ckpt" files in dir (keep ≥ 1).
 * The removals are not fsync'd (a power loss may bring an old file back;
 * harmless). 0 or -1 with err. */
int mfl_checkpoint_prune(const char *dir, size_t keep, char *err, size_t errlen);

#endif
