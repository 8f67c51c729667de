/* A site agent's configuration: one YAML file per hospital, validated up
 * front. Every error names FILE:LINE and the key; unknown keys are refused
 * (a typo must never fall back to a default silently). Relative paths are
 * resolved against the config file's directory, so a config, its keys and
 * its data can move together. configs/site.yaml documents every key.
 *
 * The same struct drives the daemon (agent.c) and `metafl simulate`, which
 * builds in-process workers from site configs (mfl_site_worker_new). */
#ifndef MFL_SITE_CONFIG_H
#define MFL_SITE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "config/yaml_doc.h"
#include "core/log.h"
#include "privacy/policy.h"
#include "data/csv.h"
#include "data/rotate.h"
#include "data/series.h"

#define MFL_SITE_PATH_MAX 1024

typedef enum {
    MFL_SITE_DATA_CSV = 0,  /* data.path + data.schema */
    MFL_SITE_DATA_WDBC = 1, /* Wisconsin Diagnostic Breast Cancer, built-in loader */
    MFL_SITE_DATA_HEART = 2, /* UCI Heart Disease (one hospital's file), built-in loader */
    MFL_SITE_DATA_IDX = 3,   /* IDX images (data.path) + labels (data.labels), gzipped or not */
    MFL_SITE_DATA_SERIES = 4 /* per-patient time series in long form (data.series) */
} mfl_site_data_kind_t;

#define MFL_SITE_MAX_KEEP_CLASSES 256

typedef enum {
    MFL_SITE_STD_SITE = 0, /* standardise with this site's own training rows */
    MFL_SITE_STD_NONE = 1, /* use the features as loaded */
    MFL_SITE_STD_FIXED = 2, /* (x - data.center[j]) / data.scale[j]: constants the
                            * consortium agrees (public, not computed from any
                            * rows), the same at every site; the one choice whose
                            * preprocessing DP's guarantee covers (docs/PRIVACY.md) */
    MFL_SITE_STD_FEDERATED = 3 /* the consortium's pooled mean and scale when a task
                                * carries them (the coordinator's data.standardize:
                                * federated), from the sites' fit-row moments, which
                                * this site agrees to send; its own statistics
                                * otherwise (docs/DATA.md) */
} mfl_site_standardize_t;

#define MFL_SITE_MAX_FIXED_FEATURES 1024

typedef struct mfl_site_config {
    char file[MFL_SITE_PATH_MAX];            /* the config file itself */

    /* site: who we are */
    char site_id[65];                         /* = the key's name (checked at start) */
    char key_file[MFL_SITE_PATH_MAX];         /* own secret key (metafl keygen), 0600 */

    /* coordinator: where we dial out to, and whom we trust */
    char endpoint[256];                       /* tcp://host:port */
    char coordinator_key[MFL_SITE_PATH_MAX];  /* the coordinator's NAME.pub (pinned) */

    /* data: what stays in the hospital */
    mfl_site_data_kind_t data_kind;
    char data_path[MFL_SITE_PATH_MAX];        /* resolved */
    char test_path[MFL_SITE_PATH_MAX];        /* resolved; "" = held-out rows split from data_path */
    char schema_file[MFL_SITE_PATH_MAX];      /* CSV: the consortium's schema file (data.schema:
                                                 FILE), resolved; "" = inline data.schema mapping */
    uint64_t split_seed;                      /* train / held-out split */
    double train_fraction;                    /* (0, 1]: share of rows for training */
    bool split_patients;                      /* series: data.split patients (a patient's
                                                 windows all on one side) */
    mfl_site_standardize_t standardize;
    /* standardize: fixed: one centre and one scale (> 0) per feature, in the
     * loader's feature order (one-hot columns included); the worker checks
     * the count against the data at load */
    float fixed_center[MFL_SITE_MAX_FIXED_FEATURES];
    float fixed_scale[MFL_SITE_MAX_FIXED_FEATURES];
    size_t n_fixed;
    /* data.scaling_from (resolved; "" = not used): an export whose metadata
     * gave fixed_center / fixed_scale (a federated run's pooled scaling) */
    char scaling_from[MFL_SITE_PATH_MAX];
    /* idx: the labels file, rows to read (0 = all), and the classes this
     * site keeps (n_keep 0 = all: hospitals may see different classes) */
    char labels_path[MFL_SITE_PATH_MAX];
    size_t max_rows;
    uint32_t keep_classes[MFL_SITE_MAX_KEEP_CLASSES];
    size_t n_keep_classes;
    size_t classes_line;                      /* data.classes' line, for load-time errors */
    /* idx: data.rotations, as quarter turns clockwise (0..3, each once;
     * n_rotations 0 = no rotated copies): class c turned q times is class
     * c + q·C (C = the label file's classes; data/rotate.h) */
    unsigned rotations[MFL_ROTATE_ORIENTATIONS];
    size_t n_rotations;
    size_t rotations_line;
    /* series: columns, window and label rule (strings borrow `doc`) */
    mfl_series_spec_t series;
    const char **series_channels;             /* owned array (strings borrowed) */
    /* CSV only: the config doc stays open so an inline data.schema is read
     * with line-aware errors. Owned; closed by mfl_site_config_clear. NULL
     * for built-in sources. */
    mfl_yaml_doc_t *doc;

    /* eval: how this hospital scores a model */
    uint32_t eval_support;                    /* labelled cases to adapt on; 0 = task's k_shot */
    uint32_t local_only_steps;                /* minimum steps of the local-only baseline */
    uint32_t treatment_arms;                  /* > 0: labels are arm × outcome classes and
                                                 eval reports policy values (meta/treatment.h) */

    /* runtime */
    int threads;                              /* OpenBLAS threads, >= 1 */
    mfl_log_level_t log_level;
    char audit_log[MFL_SITE_PATH_MAX];        /* "" = no audit log (not recommended) */
    /* secure_aggregation.roster: a directory of the consortium's sites'
     * public keys (NAME.pub, as the coordinator's allow-list), provisioned
     * to this site, not taken from the coordinator: the site checks every
     * peer's key advertisement against it (docs/SECAGG.md). "" = this
     * site cannot take part in secure aggregation (it declines such a
     * task with a SiteFailure). */
    char secagg_roster[MFL_SITE_PATH_MAX];
    bool audit_disabled;                      /* audit.disabled: true: the agent may run
                                                 without a log (it refuses otherwise) */

    /* privacy: the hospital's policy (privacy/policy.h); a task can only
     * tighten it. Defaults (no privacy section): mode none, as before. */
    mfl_privacy_policy_t privacy;

    /* limits */
    size_t max_message_bytes;                 /* largest message accepted from the coordinator */
    size_t max_params;                        /* largest θ (floats) we agree to train */
    uint32_t heartbeat_ms;
    uint32_t connect_timeout_ms;              /* first connection: warn (keep trying) after this */

    /* upload: bit k = update encoding k of fed/quant.h accepted (bit 0,
     * float32, always); default all: the coordinator chooses per round */
    uint32_t upload_encodings;
} mfl_site_config_t;

/* Fills `config` with the defaults documented in configs/site.yaml. */
void mfl_site_config_defaults(mfl_site_config_t *config);

/* Loads and validates `path` into `config` (defaults first). Checks every
 * key's type and range, refuses unknown keys, requires site.id,
 * site.key_file, coordinator.endpoint, coordinator.public_key and a data
 * source; resolves relative paths. It does not open keys or data: the
 * worker and the agent do, with their own errors. Returns 0, or -1 with
 * "FILE:LINE: key 'x': what" in err (config is then cleared). Call
 * mfl_site_config_clear() when done with a loaded config. */
int mfl_site_config_load(const char *path, mfl_site_config_t *config, char *err,
                         size_t errlen);

/* As mfl_site_config_load, from `len` bytes of YAML text named `name` (the
 * FILE in errors, and the base for relative paths). For the fuzzer and
 * tests. */
int mfl_site_config_parse(const char *text, size_t len, const char *name,
                          mfl_site_config_t *config, char *err, size_t errlen);

/* Frees what a load allocated (the kept YAML doc); accepts a zeroed or
 * defaulted config. */
void mfl_site_config_clear(mfl_site_config_t *config);

/* The CSV schema a loaded config's data is read with: the heart source's
 * built-in one, the consortium's schema file (data.schema: FILE), or the
 * inline data.schema mapping. On success *schema must be released with
 * mfl_csv_schema_clear and then *doc_out (the schema file's document, may
 * be NULL) with mfl_yaml_destroy. -1 with "CONFIG: data.schema: ..." in err
 * (also for wdbc, which has no CSV schema). */
int mfl_site_config_csv_schema(const mfl_site_config_t *config, mfl_csv_schema_t *schema,
                               mfl_yaml_doc_t **doc_out, char *err, size_t errlen);

/* "csv", "wdbc", "heart", "idx", "series". */
const char *mfl_site_data_kind_name(mfl_site_data_kind_t kind);

#endif
