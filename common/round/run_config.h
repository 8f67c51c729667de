/* The coordinator's configuration: one YAML file, validated up front.
 *
 * Every error names FILE:LINE and the key; unknown keys are refused (a
 * typo must not silently fall back to a default). Relative paths are
 * resolved against the config file's directory, so a config and its keys
 * can move together. configs/coordinator.yaml documents every key.
 *
 * The same file drives `metafl simulate`: its `sites:` list (site config
 * paths) is read by the simulator and ignored by the daemon. */
#ifndef MFL_COORD_CONFIG_H
#define MFL_COORD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fed/robust.h"
#include "meta/learner.h"
#include "nn/optim.h"
#include "round/selection.h"

#define MFL_COORD_PATH_MAX 1024
#define MFL_COORD_MAX_SITES 64

typedef struct {
    char file[MFL_COORD_PATH_MAX];        /* the config file itself */

    /* coordinator: transport and identity */
    char listen[256];                     /* e.g. tcp://0.0.0.0:7000 */
    char key_file[MFL_COORD_PATH_MAX];    /* own secret key (metafl keygen) */
    char allow_dir[MFL_COORD_PATH_MAX];   /* site public keys; stem = site id */
    char run_dir[MFL_COORD_PATH_MAX];     /* status.json, control, defaults below */

    /* data: the consortium's schema file ("" = none: sites are checked for
     * the model's feature count and classes only); lines for messages */
    char schema_file[MFL_COORD_PATH_MAX];
    size_t schema_line, model_line;

    /* model + algorithm (what every site runs) */
    mfl_learner_config_t learner;
    uint32_t n_way, k_shot, n_query;      /* episodic (metric) methods */
    uint64_t init_seed;                   /* θ₀ = init_state(init_seed) */

    /* privacy settings sent to sites */
    bool dp_enabled;
    double clip_norm, noise_multiplier, target_delta;

    /* rounds */
    uint32_t rounds;                      /* total rounds, ≥ 1 */
    double sites_fraction;                /* (0, 1]; 1 = all connected sites */
    uint32_t min_sites;                   /* ≥ 1: close at deadline with at least this */
    uint32_t wait_for_sites;              /* first round waits for this many sites */
    uint32_t deadline_ms;                 /* a round's deadline after it opens */
    uint32_t max_attempts;                /* abandoned attempts of one round before giving up; 0 = forever */
    double norm_bound;                    /* reject ‖Δ‖₂ above this; 0 = off */
    uint32_t max_concurrent_uploads;      /* ≥ 1: upload grants in flight at once (the
                                             daemon buffers at most this many Δs) */
    uint64_t seed;                        /* run seed: round seeds derive from it */
    uint32_t upload_encoding;             /* fed/quant.h kind asked of sites that offer it
                                             (rounds.upload_encoding; 0 float32) */
    uint32_t broadcast_encoding;          /* fed/quant.h kind of the model's difference sent
                                             to sites that hold the last model and offer it
                                             (rounds.broadcast_encoding; 0 float32: the model
                                             in full, as before; fed/bcast.h) */

    /* secure aggregation (docs/SECAGG.md): `metafl simulate` and the daemons */
    bool secagg_enabled;
    uint32_t secagg_threshold;            /* ≥ 3: fewest sites whose sum is released */
    uint32_t secagg_neighbours;           /* 0 = every pair (Bonawitz); else even k (SecAgg+) */
    uint32_t secagg_word_bits;            /* masked word width: 64 (default) or 32 */
    double secagg_update_bound;           /* word_bits 32: bound on |w·Δⱼ| (required) */
    uint32_t secagg_frac_bits;            /* word_bits 32: F from the bound; 0 with 64 */
    uint32_t secagg_phase_ms;             /* each short phase's deadline; 0 = max(1 s,
                                             deadline_ms / 4) */

    /* server step (SGD with lr = β is plain Reptile / FedAvg) */
    mfl_optim_config_t server;

    /* aggregation against poisoned updates (docs/AGGREGATION.md) */
    mfl_agg_kind_t aggregator;            /* server.aggregator */
    double trim_fraction;                 /* trimmed_mean: drop ⌊β·k⌋ from each end */
    uint32_t krum_f;                      /* multi_krum: Byzantine updates tolerated */
    uint32_t krum_m;                      /* multi_krum: updates averaged; 0 = k − f */
    uint32_t robust_max_updates;          /* robust rules keep ≤ this many Δs (selection capped) */
    bool norm_clip;                       /* rounds.norm_action: clip (true) or reject */
    double max_weight;                    /* server.max_weight: cap on a site's weight; 0 = none */

    /* evaluation */
    uint32_t eval_every;                  /* EvalTask every N rounds (0 = only at the end) */
    uint32_t eval_adapt_steps;
    float eval_adapt_lr;
    uint32_t eval_deadline_ms;
    /* data.standardize: federated: the sites scale their features with
     * the consortium's mean and scale, pooled from their fit rows' moments
     * before selection and training (docs/DATA.md); false: each its own */
    bool federated_scaling;
    /* data.scaling_pool: median (opt-in): the pooled scaling is robust to a
     * minority of sites (per feature the median of the sites' means, and
     * the median within-site variance plus the median squared distance of
     * a site's mean to that centre; at least 3 sites); false: the exact
     * moments of all fit rows together (mean). */
    bool scaling_pool_median;
    bool eval_adapt_search;               /* eval.adapt_search: each site picks its
                                             adaptation on its validation rows */

    /* federated model selection before training (selection.h,
     * docs/SELECTION.md); off unless selection.enabled */
    mfl_select_config_t selection;

    /* outputs (resolved paths) */
    char checkpoint_dir[MFL_COORD_PATH_MAX];
    char audit_log[MFL_COORD_PATH_MAX];   /* "" = no audit log */
    uint32_t audit_give_up_ms;            /* audit log unwritable this long: the run stops */
    char metrics_file[MFL_COORD_PATH_MAX];
    char status_file[MFL_COORD_PATH_MAX];
    char prometheus_file[MFL_COORD_PATH_MAX]; /* "" = off; node_exporter textfile (prom_export.h) */

    /* limits and liveness */
    size_t max_message_bytes;             /* limits.max_message_bytes; unless set, the
                                             daemon raises it to fit the model (see
                                             mfl_coord_config_message_bytes) */
    bool max_message_bytes_set;           /* given in the file */
    uint32_t heartbeat_ms;
    uint32_t site_timeout_ms;             /* a site silent this long is dropped; unless
                                             set, the engine raises it for a big model
                                             (mfl_coord_config_site_timeout_ms) */
    bool site_timeout_set;                /* limits.site_timeout_s given in the file */
    uint64_t chunked_upload_bytes;        /* limits.chunked_upload_bytes: an update of more
                                             bytes (as encoded) is asked in chunks of
                                             upload_chunk_bytes (docs/WIRE.md "Chunked
                                             uploads"); 0 = always one message */
    uint64_t upload_chunk_bytes;          /* limits.upload_chunk_bytes: bytes per chunk
                                             (encoded), 4 KiB .. 64 MiB, default 1 MiB */

    /* simulate only: site config files (resolved) */
    size_t n_sites;
    char sites[MFL_COORD_MAX_SITES][MFL_COORD_PATH_MAX];
} mfl_coord_config_t;

/* Fills `config` with the defaults documented in configs/coordinator.yaml. */
void mfl_coord_config_defaults(mfl_coord_config_t *config);

/* Loads and validates `path`. Returns 0, or -1 with "FILE:LINE: key 'x':
 * what" in err. `config` is overwritten (defaults first). */
int mfl_coord_config_load(const char *path, mfl_coord_config_t *config, char *err,
                          size_t errlen);

/* As mfl_coord_config_load, from text[0..len); `name` stands for the file
 * in messages and relative paths (for tests and fuzzing). */
int mfl_coord_config_parse(const char *text, size_t len, const char *name,
                           mfl_coord_config_t *config, char *err, size_t errlen);

/* Model selection (docs/SELECTION.md): with selection.enabled and a winner
 * on record in checkpoint_dir/selection.state, puts the winner's setting
 * (learner, server, eval adaptation) into `config`: what the run trained,
 * for tools that rebuild its model from the config (export, offline
 * evaluation, predict). 1 applied, 0 nothing on record (or selection off),
 * -1 + err (a record of another selection). */
int mfl_coord_config_apply_selection(mfl_coord_config_t *config, char *err, size_t errlen);

/* Resolves `rel` against the directory of `base_file` into out[outlen]
 * (absolute `rel` is copied). -1 if it does not fit. */
int mfl_coord_path_resolve(const char *base_file, const char *rel, char *out, size_t outlen);

/* The largest message the coordinator accepts for a model of n_state
 * floats: limits.max_message_bytes if the file sets it, else the larger of
 * its default (256 MiB) and 4·n_state + 1 MiB (one float32 update and its
 * envelope), so a big model needs no limit raised by hand (issue 17). */
size_t mfl_coord_config_message_bytes(const mfl_coord_config_t *config, size_t n_state);

/* Parameters per site_timeout_ms of silence allowed (below). */
#define MFL_COORD_SITE_TIMEOUT_PARAMS ((size_t)10000000)

/* How long a site may be silent for a model of n_state floats:
 * limits.site_timeout_s if the file sets it (0 = never), else the default
 * (30 s) per 10M parameters, rounded up (30 s up to 10M, 300 s at 100M): a site
 * sends no heartbeat while it receives and checks θ, trains and hashes and
 * records its update, and all of that grows with P (at P = 100M on a
 * shared 2-core machine a site was silent for well over 30 s and was
 * dropped mid-round; issue 17). */
uint32_t mfl_coord_config_site_timeout_ms(const mfl_coord_config_t *config, size_t n_state);

/* 0 if `listen` is tcp://HOST:PORT with PORT 1-65535 or '*'; else -1 with
 * what is wrong ("has port '99999', ...") in why. */
int mfl_coord_listen_check(const char *listen, char *why, size_t whylen);

#endif
