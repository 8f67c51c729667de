/* metafl export (RUN_DIR | CKPT | --config COORDINATOR.yaml) --out FILE:
 * the federated model as a self-describing safetensors file that any
 * safetensors reader (PyTorch, NumPy, a 40-line script) can load, with the
 * model spec, round, θ's BLAKE2b (the metrics file's theta_blake2b), loss,
 * the feature scaling the model was trained with (a federated run's pooled
 * mean and scale, from its scaling.state; export_scaling.h) and, from a
 * site config, the feature names and the standardisation. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/csv_schema_yaml.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "data/csv.h"
#include "data/heart.h"
#include "data/wdbc.h"
#include "export_scaling.h"
#include "fed/checkpoint.h"
#include "meta/learner_io.h"
#include "nn/model.h"
#include "round/run_config.h"
#include "round/run_model.h"
#include "site/site_config.h"

int mfl_cmd_export(int argc, char **argv);

#define S_PATH_MAX 4096
#define S_NAMES_MAX (64u * 1024u)

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: metafl export (RUN_DIR | CKPT | --config COORDINATOR.yaml)\n"
            "                     [--config COORDINATOR.yaml] [--round N]\n"
            "                     [--site-config SITE.yaml] --out MODEL.safetensors\n\n"
            "Writes the federated model of a run as a safetensors file with its\n"
            "description in the metadata: spec, algo, loss, round, run_id, theta_blake2b\n"
            "(equal to the metrics file's for that round), inputs/outputs and what the\n"
            "outputs mean. Any safetensors reader loads it (docs/DEPLOY.md shows one in\n"
            "plain Python); `metafl eval --params MODEL.safetensors --predict ROWS.csv`\n"
            "gives the same numbers.\n\n"
            "  RUN_DIR        the coordinator's run dir: its newest checkpoint (in\n"
            "                 RUN_DIR/checkpoints) and the model from RUN_DIR/status.json\n"
            "  CKPT           one checkpoint file (round-NNNNNNNN.ckpt)\n"
            "  --config FILE  the coordinator's config: the model, and the run dir if no\n"
            "                 RUN_DIR or CKPT is given (needed for a `metafl simulate` run,\n"
            "                 which writes no status.json)\n"
            "  --round N      that round's checkpoint instead of the newest (the\n"
            "                 coordinator keeps the 3 newest)\n"
            "  --site-config SITE.yaml\n"
            "                 a site's config: records its feature names (reads its data\n"
            "                 file's header and schema), label column and how inputs are\n"
            "                 standardised; its data.center / data.scale with\n"
            "                 standardize: fixed\n"
            "A run trained with federated scaling (data.standardize: federated) carries its\n"
            "pooled mean and scale from CHECKPOINT_DIR/scaling.state, checked against the\n"
            "digest in the run's metrics; a missing or damaged file is an error. A new\n"
            "hospital uses them with data.standardize: fixed and data.scaling_from:\n"
            "MODEL.safetensors (docs/DATA.md).\n"
            "  --out FILE     where to write (atomically)\n"
            "Exit status: 0 written, 1 error (named), 2 usage.\n");
}

/* Where the checkpoints are and where status.json may be, from what the
 * operator named. */
typedef struct {
    char ckpt_file[S_PATH_MAX]; /* one file, or "" */
    char ckpt_dir[S_PATH_MAX];  /* else: a checkpoint directory */
    char run_dir[S_PATH_MAX];   /* "" if unknown */
} s_source_t;

static int s_is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int s_resolve_source(const char *src, const mfl_coord_config_t *cc, s_source_t *s,
                            char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (!src) {
        snprintf(s->ckpt_dir, sizeof s->ckpt_dir, "%s", cc->checkpoint_dir);
        snprintf(s->run_dir, sizeof s->run_dir, "%s", cc->run_dir);
        return 0;
    }
    struct stat st;
    if (stat(src, &st) != 0)
        return mfl_errf(err, errlen, "%s: no such file or directory", src), -1;
    if (S_ISDIR(st.st_mode)) {
        char sub[S_PATH_MAX];
        snprintf(sub, sizeof sub, "%s/checkpoints", src);
        if (s_is_dir(sub)) {
            snprintf(s->ckpt_dir, sizeof s->ckpt_dir, "%s", sub);
            snprintf(s->run_dir, sizeof s->run_dir, "%s", src);
        } else {
            /* A checkpoint directory itself: its run dir is usually the parent. */
            snprintf(s->ckpt_dir, sizeof s->ckpt_dir, "%s", src);
            snprintf(s->run_dir, sizeof s->run_dir, "%s/..", src);
        }
        return 0;
    }
    snprintf(s->ckpt_file, sizeof s->ckpt_file, "%s", src);
    const char *slash = strrchr(src, '/');
    if (slash)
        snprintf(s->run_dir, sizeof s->run_dir, "%.*s/..", (int)(slash - src), src);
    else
        snprintf(s->run_dir, sizeof s->run_dir, "..");
    return 0;
}

/* The model a daemon run used, from RUN_DIR/status.json's "model" object;
 * *federated: 1 / 0 whether it scaled with the pooled statistics, -1 when
 * status.json does not say (an older coordinator's). */
static int s_model_from_status(const char *run_dir, mfl_learner_config_t *lc, int *federated,
                               char *err, size_t errlen)
{
    char path[S_PATH_MAX + 16], rerr[512];
    snprintf(path, sizeof path, "%s/status.json", run_dir);
    char *text = NULL;
    size_t len = 0;
    if (mfl_file_read_all(path, 1u << 20, &text, &len, rerr, sizeof rerr) < 0)
        return mfl_errf(err, errlen, "cannot tell which model the checkpoint holds (%s); "
                        "pass the coordinator's config with --config", rerr), -1;
    mfl_json_t *root = mfl_json_parse(text, len, rerr, sizeof rerr);
    free(text);
    if (!root)
        return mfl_errf(err, errlen, "%s:%s", path, rerr), -1;
    int rc = -1;
    const mfl_json_t *m = mfl_json_get(root, "model");
    const char *spec = mfl_json_string(mfl_json_get(m, "spec"));
    const char *algo = mfl_json_string(mfl_json_get(m, "algo"));
    const char *rel = mfl_json_string(mfl_json_get(m, "relation"));
    const char *loss = mfl_json_string(mfl_json_get(m, "loss"));
    const char *std = mfl_json_string(mfl_json_get(m, "standardize"));
    *federated = !std ? -1 : strcmp(std, "federated") == 0;
    mfl_algo_kind_t a;
    if (!spec || !algo || mfl_algo_parse(algo, &a) < 0 || strlen(spec) >= sizeof lc->model_spec) {
        mfl_errf(err, errlen, "%s has no model description (an older coordinator's): pass the "
                 "coordinator's config with --config", path);
        goto out;
    }
    mfl_learner_config_defaults(lc, a);
    snprintf(lc->model_spec, sizeof lc->model_spec, "%s", spec);
    if (rel)
        snprintf(lc->relation_spec, sizeof lc->relation_spec, "%s", rel);
    if (loss && mfl_loss_parse(loss, &lc->loss) < 0) {
        mfl_errf(err, errlen, "%s: model.loss '%s' is unknown", path, loss);
        goto out;
    }
    rc = 0;
out:
    mfl_json_destroy(&root);
    return rc;
}

/* Appends name to the comma-separated list; -1 if a name cannot be
 * written plainly (comma, quote, backslash, control character). */
static int s_append_name(char *list, size_t cap, const char *name)
{
    for (const char *c = name; *c; c++)
        if (*c == ',' || *c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
            return -1;
    size_t used = strlen(list), n = strlen(name);
    if (used + n + 2 > cap)
        return -1;
    if (used)
        list[used++] = ',';
    memcpy(list + used, name, n + 1);
    return 0;
}

typedef struct {
    char features[S_NAMES_MAX]; /* comma-separated */
    size_t n_features;
    char label[128];
    char standardize[160];
    char site[65];
    mfl_site_standardize_t std;
    size_t n_fixed; /* standardize: fixed: its constants */
    float center[MFL_TASK_SCALING_MAX], scale[MFL_TASK_SCALING_MAX];
} s_site_info_t;

/* Feature names as the site's loader produces them (one-hot columns
 * included), the label column and the standardisation, from a site config.
 * Reads the site's data file: run it where that file is. */
static int s_site_info(const char *path, s_site_info_t *si, char *err, size_t errlen)
{
    static mfl_site_config_t sc; /* large: off the stack */
    memset(si, 0, sizeof *si);
    if (mfl_site_config_load(path, &sc, err, errlen) < 0)
        return -1;
    int rc = -1;
    mfl_csv_schema_t schema;
    mfl_csv_stats_t stats;
    memset(&schema, 0, sizeof schema);
    memset(&stats, 0, sizeof stats);
    mfl_dataset_t *d = NULL;
    mfl_yaml_doc_t *schema_doc = NULL; /* a schema file's document */
    snprintf(si->site, sizeof si->site, "%s", sc.site_id);
    si->std = sc.standardize;
    if (sc.standardize == MFL_SITE_STD_FIXED) {
        si->n_fixed = sc.n_fixed;
        if (sc.n_fixed <= MFL_TASK_SCALING_MAX) {
            memcpy(si->center, sc.fixed_center, sc.n_fixed * sizeof(float));
            memcpy(si->scale, sc.fixed_scale, sc.n_fixed * sizeof(float));
        }
    }
    snprintf(si->standardize, sizeof si->standardize, "%s",
             sc.standardize == MFL_SITE_STD_SITE
                 ? "site: (x - mean) / sd with each site's own training-row statistics"
             : sc.standardize == MFL_SITE_STD_FIXED
                 ? "fixed: (x - center) / scale with the consortium's constants (data.center, "
                   "data.scale)"
             : sc.standardize == MFL_SITE_STD_FEDERATED
                 ? "federated: (x - scaling_center) / scaling_scale, the consortium's pooled "
                   "statistics (copied from the run's scaling.state)"
                 : "none: features as loaded");
    if (sc.data_kind == MFL_SITE_DATA_WDBC) {
        for (size_t i = 0; i < MFL_WDBC_N_FEATURES; i++)
            if (s_append_name(si->features, sizeof si->features, mfl_wdbc_feature_name(i)) < 0)
                goto out_names;
        si->n_features = MFL_WDBC_N_FEATURES;
        snprintf(si->label, sizeof si->label, "diagnosis (1 = malignant)");
        rc = 0;
        goto out;
    }
    if (mfl_site_config_csv_schema(&sc, &schema, &schema_doc, err, errlen) < 0)
        goto out;
    for (size_t i = 0; i < schema.n_columns; i++)
        if (schema.columns[i].kind == MFL_CSV_LABEL && schema.columns[i].name)
            snprintf(si->label, sizeof si->label, "%s", schema.columns[i].name);
    d = mfl_csv_load(sc.data_path, &schema, &stats, err, errlen);
    if (!d)
        goto out;
    for (size_t i = 0; i < stats.n_features; i++)
        if (s_append_name(si->features, sizeof si->features,
                          stats.feature_names && stats.feature_names[i] ? stats.feature_names[i]
                                                                        : "?") < 0)
            goto out_names;
    si->n_features = stats.n_features;
    rc = 0;
    goto out;
out_names:
    mfl_errf(err, errlen, "%s: a feature name holds a comma, quote or control character, or "
             "the names are too long for the export's metadata", path);
out:
    mfl_dataset_destroy(&d);
    mfl_csv_stats_clear(&stats);
    mfl_csv_schema_clear(&schema); /* harmless on heart's static one */
    mfl_yaml_destroy(&schema_doc);
    mfl_site_config_clear(&sc);
    return rc;
}

static const char *s_output_meaning(mfl_loss_kind_t loss, size_t n_out)
{
    if (loss == MFL_LOSS_BCE && n_out == 1)
        return "logit: P(label = 1) = 1 / (1 + exp(-output))";
    if (loss == MFL_LOSS_SOFTMAX_CE)
        return "logits: P(class k) = softmax(output)[k]";
    return "regression output";
}

static int s_parse_round(const char *v, uint64_t *round)
{
    char *end = NULL;
    unsigned long long r = strtoull(v, &end, 10);
    if (!*v || *end || r == 0 || r > 100000000ull)
        return -1;
    *round = r;
    return 0;
}

int mfl_cmd_export(int argc, char **argv)
{
    const char *src = NULL, *config = NULL, *site_config = NULL, *out = NULL;
    uint64_t want_round = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(a, "--site-config") == 0 && i + 1 < argc) {
            site_config = argv[++i];
        } else if (strcmp(a, "--out") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(a, "--round") == 0 && i + 1 < argc) {
            if (s_parse_round(argv[++i], &want_round) < 0) {
                fprintf(stderr, "metafl export: --round wants a round number >= 1\n");
                return 2;
            }
        } else if (a[0] != '-' && !src) {
            src = a;
        } else {
            fprintf(stderr, "metafl export: unexpected argument '%s'\n", a);
            s_usage(stderr);
            return 2;
        }
    }
    if ((!src && !config) || !out) {
        fprintf(stderr, "metafl export: name a run (RUN_DIR, CKPT or --config) and --out\n");
        s_usage(stderr);
        return 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "metafl export: libsodium failed to initialise\n");
        return 1;
    }
    static mfl_coord_config_t cc; /* large: off the stack */
    char err[2048] = "", path[S_PATH_MAX] = "";
    int rc = 1;
    mfl_learner_config_t lc;
    s_source_t s;
    static s_site_info_t si;
    static mfl_cli_export_scaling_t xs;
    int federated = -1; /* the run's model scaled with the pooled statistics */
    mfl_checkpoint_t ck;
    mfl_learner_t *l = NULL;
    mfl_model_t *m = NULL;
    memset(&ck, 0, sizeof ck);
    memset(&lc, 0, sizeof lc);
    memset(&si, 0, sizeof si);
    if (config && (mfl_coord_config_load(config, &cc, err, sizeof err) < 0 ||
                   mfl_coord_config_apply_selection(&cc, err, sizeof err) < 0))
        goto out_err;
    if (s_resolve_source(src, &cc, &s, err, sizeof err) < 0)
        goto out_err;
    if (config) {
        lc = cc.learner;
        federated = cc.federated_scaling;
    } else if (s_model_from_status(s.run_dir, &lc, &federated, err, sizeof err) < 0)
        goto out_err;
    /* The checkpoint. */
    if (s.ckpt_file[0] && want_round) {
        mfl_errf(err, sizeof err, "--round picks a checkpoint in a run dir; %s is one file",
                 s.ckpt_file);
        goto out_err;
    }
    if (s.ckpt_file[0]) {
        snprintf(path, sizeof path, "%s", s.ckpt_file);
        if (!mfl_run_is_checkpoint(path)) {
            mfl_errf(err, sizeof err, "%s: not a coordinator checkpoint (no MFLCKPT1 magic)",
                     path);
            goto out_err;
        }
        if (mfl_checkpoint_load(path, &ck, err, sizeof err) < 0)
            goto out_err;
    } else if (want_round) {
        if (mfl_checkpoint_path(s.ckpt_dir, want_round, path, sizeof path) < 0 ||
            access(path, F_OK) != 0) {
            mfl_errf(err, sizeof err, "%s: no checkpoint of round %llu (the coordinator keeps "
                     "the 3 newest)", s.ckpt_dir, (unsigned long long)want_round);
            goto out_err;
        }
        if (mfl_checkpoint_load(path, &ck, err, sizeof err) < 0)
            goto out_err;
    } else {
        int found = mfl_checkpoint_latest(s.ckpt_dir, &ck, path, sizeof path, err, sizeof err);
        if (found < 0)
            goto out_err;
        if (found == 0) {
            mfl_errf(err, sizeof err, "%s: no checkpoint yet (the coordinator writes one when "
                     "a round closes)", s.ckpt_dir);
            goto out_err;
        }
    }
    /* The model, checked against the checkpoint's binding. */
    mfl_algo_kind_t algo;
    l = mfl_learner_new(&lc, 1, err, sizeof err);
    if (!l)
        goto out_err;
    if (ck.n_params != mfl_learner_n_state(l) ||
        mfl_run_model_match(&lc, ck.n_params, ck.model_hash, &algo) < 0) {
        mfl_errf(err, sizeof err, "%s: checkpoint (%zu parameters) was not written for %s with "
                 "%s (%zu); wrong --config or run dir?", path, ck.n_params, lc.model_spec,
                 mfl_algo_name(lc.algo), mfl_learner_n_state(l));
        goto out_err;
    }
    if (algo != lc.algo) {
        lc.algo = algo;
        mfl_learner_destroy(&l);
        l = mfl_learner_new(&lc, 1, err, sizeof err);
        if (!l)
            goto out_err;
    }
    m = mfl_model_new(lc.model_spec, 1, err, sizeof err);
    if (!m)
        goto out_err;
    size_t n_in = mfl_model_n_inputs(m), n_out = mfl_model_n_outputs(m);
    if (site_config) {
        if (s_site_info(site_config, &si, err, sizeof err) < 0)
            goto out_err;
        if (si.n_features != n_in && lc.algo != MFL_ALGO_PROTONET &&
            lc.algo != MFL_ALGO_MATCHING && lc.algo != MFL_ALGO_RELATION) {
            mfl_errf(err, sizeof err, "%s: %zu features, but the model %s takes %zu inputs: "
                     "not a site of this run?", site_config, si.n_features, lc.model_spec, n_in);
            goto out_err;
        }
    }
    /* The scaling the model was trained with: the run's pooled one, or a
     * site's fixed constants. */
    {
        char ckdir[S_PATH_MAX], metrics[S_PATH_MAX + 16];
        snprintf(ckdir, sizeof ckdir, "%s", s.ckpt_dir);
        if (s.ckpt_file[0]) {
            const char *slash = strrchr(s.ckpt_file, '/');
            snprintf(ckdir, sizeof ckdir, "%.*s", slash ? (int)(slash - s.ckpt_file) : 1,
                     slash ? s.ckpt_file : ".");
        }
        if (config)
            snprintf(metrics, sizeof metrics, "%s", cc.metrics_file);
        else
            snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", s.run_dir);
        if (mfl_cli_export_scaling_pooled(federated, ckdir, metrics[0] ? metrics : NULL, n_in,
                                          &xs, err, sizeof err) < 0)
            goto out_err;
        if (!xs.kind[0] && site_config && si.std == MFL_SITE_STD_FIXED &&
            si.n_fixed > MFL_TASK_SCALING_MAX)
            mfl_warn("%s: %zu fixed constants; an export carries at most %d: not copied (they "
                     "are in the site config)", site_config, si.n_fixed, MFL_TASK_SCALING_MAX);
        else if (!xs.kind[0] && site_config && si.std == MFL_SITE_STD_FIXED &&
                 mfl_cli_export_scaling_fixed(si.center, si.scale, si.n_fixed, site_config, &xs, err,
                                         sizeof err) < 0)
            goto out_err;
        if (site_config && strcmp(xs.kind, "federated") == 0 && si.std != MFL_SITE_STD_FEDERATED)
            mfl_warn("%s says data.standardize: %s, but the run trained with the consortium's "
                     "pooled scaling: the export describes that one", site_config,
                     si.std == MFL_SITE_STD_FIXED ? "fixed" : si.std == MFL_SITE_STD_NONE
                                                                  ? "none" : "site");
        if (site_config && strcmp(xs.kind, "federated") == 0)
            snprintf(si.standardize, sizeof si.standardize, "federated: (x - scaling_center) / "
                     "scaling_scale, the consortium's pooled statistics (copied from the run's "
                     "scaling.state)");
    }
    /* θ's hash as the engine computes it (metrics.jsonl theta_blake2b). */
    uint8_t h[32];
    char hex[65], round_s[24], nin_s[24], nout_s[24], nparam_s[24];
    mfl_run_theta_digest(l, ck.theta, h);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    snprintf(round_s, sizeof round_s, "%llu", (unsigned long long)ck.round);
    snprintf(nin_s, sizeof nin_s, "%zu", n_in);
    snprintf(nout_s, sizeof nout_s, "%zu", n_out);
    snprintf(nparam_s, sizeof nparam_s, "%zu", mfl_learner_n_params(l));
    const char *md[48];
    size_t k = 0;
    md[k++] = "format";
    md[k++] = "metafl-export-1";
    md[k++] = "run_id";
    md[k++] = ck.run_id;
    md[k++] = "round";
    md[k++] = round_s;
    md[k++] = "theta_blake2b";
    md[k++] = hex;
    md[k++] = "loss";
    md[k++] = mfl_loss_name(lc.loss);
    md[k++] = "n_inputs";
    md[k++] = nin_s;
    md[k++] = "n_outputs";
    md[k++] = nout_s;
    md[k++] = "n_params";
    md[k++] = nparam_s;
    md[k++] = "output";
    md[k++] = s_output_meaning(lc.loss, n_out);
    if (lc.loss == MFL_LOSS_BCE) {
        md[k++] = "labels";
        md[k++] = "0,1";
    }
    if (site_config) {
        md[k++] = "feature_names";
        md[k++] = si.features;
        md[k++] = "standardize";
        md[k++] = si.standardize;
        md[k++] = "schema_from_site";
        md[k++] = si.site;
        if (si.label[0]) {
            md[k++] = "label_column";
            md[k++] = si.label;
        }
    }
    if (xs.kind[0]) {
        md[k++] = MFL_SCALING_MD_KIND;
        md[k++] = xs.kind;
        md[k++] = MFL_SCALING_MD_CENTER;
        md[k++] = xs.center;
        md[k++] = MFL_SCALING_MD_SCALE;
        md[k++] = xs.scale;
        md[k++] = MFL_SCALING_MD_DIGEST;
        md[k++] = xs.digest;
        md[k++] = MFL_SCALING_MD_SOURCE;
        md[k++] = xs.source;
    }
    md[k] = NULL;
    if (mfl_learner_save(l, ck.theta, out, md, err, sizeof err) < 0)
        goto out_err;
    printf("exported round %llu of run '%s' (%s, %s, %zu numbers, theta blake2b %.16s...) "
           "from %s to %s\n", (unsigned long long)ck.round, ck.run_id, lc.model_spec,
           mfl_algo_name(lc.algo), ck.n_params, hex, path, out);
    if (xs.kind[0])
        printf("with the %s feature scaling of %u inputs (%s)\n",
               strcmp(xs.kind, "federated") == 0 ? "consortium's pooled" : "fixed", xs.sc.n,
               xs.source);
    rc = 0;
    goto out_free;
out_err:
    fprintf(stderr, "metafl export: %s\n", err);
out_free:
    mfl_checkpoint_clear(&ck);
    mfl_model_destroy(&m);
    mfl_learner_destroy(&l);
    return rc;
}
