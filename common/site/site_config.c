/* Site YAML → mfl_site_config_t, every field checked before use. */
#include "site/site_config.h"
#include "round/scaling_record.h"
#include "fed/quant.h"

#include "config/csv_schema_yaml.h"
#include "data/heart.h"
#include "meta/treatment.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mfl_site_config_defaults(mfl_site_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->data_kind = MFL_SITE_DATA_CSV;
    c->split_seed = 1;
    c->train_fraction = 0.7;
    c->standardize = MFL_SITE_STD_SITE;
    c->eval_support = 0;
    c->local_only_steps = 100;
    c->threads = 1;
    c->log_level = MFL_LOG_INFO;
    c->max_message_bytes = 256u << 20;
    c->max_params = 256u << 20;
    c->upload_encodings = 0x7u; /* float32, fp16, int8: the coordinator chooses */
    c->heartbeat_ms = 2000;
    c->connect_timeout_ms = 10000;
    mfl_privacy_policy_defaults(&c->privacy);
}

void mfl_site_config_clear(mfl_site_config_t *c)
{
    if (!c)
        return;
    mfl_yaml_destroy(&c->doc);
    free(c->series_channels);
    c->series_channels = NULL;
    memset(&c->series, 0, sizeof c->series);
}

const char *mfl_site_data_kind_name(mfl_site_data_kind_t kind)
{
    switch (kind) {
    case MFL_SITE_DATA_CSV: return "csv";
    case MFL_SITE_DATA_WDBC: return "wdbc";
    case MFL_SITE_DATA_HEART: return "heart";
    case MFL_SITE_DATA_IDX: return "idx";
    case MFL_SITE_DATA_SERIES: return "series";
    }
    return "?";
}

/* `rel` resolved against the config file's directory (absolute kept). */
static void s_path(mfl_yaml_doc_t *doc, const mfl_site_config_t *c, const char *key, bool required,
                   char *out, size_t outlen)
{
    const char *v = required ? mfl_yaml_require_string(doc, key) : mfl_yaml_get_string(doc, key, "");
    out[0] = '\0';
    if (!v || !*v)
        return;
    int n;
    const char *slash = strrchr(c->file, '/');
    if (v[0] == '/' || !slash)
        n = snprintf(out, outlen, "%s", v);
    else
        n = snprintf(out, outlen, "%.*s/%s", (int)(slash - c->file), c->file, v);
    if (n < 0 || (size_t)n >= outlen) {
        out[0] = '\0';
        mfl_yaml_fail(doc, key, "path longer than %zu characters", outlen - 1);
    }
}

static void s_check_keys(mfl_yaml_doc_t *doc)
{
    mfl_yaml_check_keys(doc, "", (const char *[]){"site", "coordinator", "data", "eval",
                                                  "runtime", "audit", "privacy", "limits", "upload",
                                                  "secure_aggregation", NULL});
    mfl_yaml_check_keys(doc, "secure_aggregation", (const char *[]){"roster", NULL});
    mfl_yaml_check_keys(doc, "upload", (const char *[]){"encodings", NULL});
    mfl_yaml_check_keys(doc, "site", (const char *[]){"id", "key_file", NULL});
    mfl_yaml_check_keys(doc, "coordinator", (const char *[]){"endpoint", "public_key", NULL});
    /* data.schema's inside belongs to the CSV loader, which checks it. */
    mfl_yaml_check_keys(doc, "data",
                        (const char *[]){"source", "path", "test_path", "schema", "split_seed",
                                         "train_fraction", "standardize", "center", "scale", "scaling_from",
                                         "labels",
                                         "max_rows", "classes", "rotations", "series", "split",
                                         NULL});
    mfl_yaml_check_keys(doc, "data.series",
                        (const char *[]){"patient", "time", "channels", "label", "rule",
                                         "window", "stride", "delimiter", NULL});
    mfl_yaml_check_keys(doc, "eval",
                        (const char *[]){"support_cases", "local_only_steps", "treatment_arms",
                                         NULL});
    mfl_yaml_check_keys(doc, "runtime", (const char *[]){"threads", "log_level", NULL});
    mfl_yaml_check_keys(doc, "audit", (const char *[]){"log", "disabled", NULL});
    mfl_yaml_check_keys(doc, "privacy",
                        (const char *[]){"mode", "epsilon_budget", "delta", "noise_multiplier",
                                         "clip_min", "clip_max", "sample_rate", "min_records",
                                         "min_batch", "allow_unnoised_stats", "distributed_noise",
                                         NULL});
    mfl_yaml_check_keys(doc, "limits",
                        (const char *[]){"max_message_bytes", "max_params", "heartbeat_s",
                                         "connect_timeout_s", NULL});
}

/* Same rule as the key files' names (wire/keys.h): 1..64 of [A-Za-z0-9._-],
 * not starting with '.'. Checked here so a bad id fails at FILE:LINE. */
static void s_check_site_id(mfl_yaml_doc_t *doc, const char *id)
{
    size_t n = strlen(id);
    bool ok = n >= 1 && n <= 64 && id[0] != '.';
    for (size_t i = 0; ok && i < n; i++) {
        char ch = id[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '.' || ch == '_' || ch == '-';
    }
    if (!ok && n)
        mfl_yaml_fail(doc, "site.id", "'%s' is not a valid site id (1..64 of A-Z a-z 0-9 . _ -, "
                      "not starting with '.'); it must equal the key's name", id);
}

static uint32_t s_seconds_ms(mfl_yaml_doc_t *doc, const char *key, uint32_t def_ms)
{
    double s = mfl_yaml_get_double(doc, key, def_ms / 1000.0);
    if (!(s > 0 && s <= 86400.0)) {
        mfl_yaml_fail(doc, key, "must be in (0, 86400] seconds, got %g", s);
        return def_ms;
    }
    return (uint32_t)(s * 1000.0 + 0.5);
}

/* upload.encodings: the lossy update encodings this site accepts when the
 * coordinator asks (fed/quant.h); [] = float32 only. */
static void s_read_encodings(mfl_yaml_doc_t *doc, mfl_site_config_t *c)
{
    const char **items = NULL;
    size_t n = 0;
    if (!mfl_yaml_has(doc, "upload.encodings"))
        return;
    if (mfl_yaml_get_string_list(doc, "upload.encodings", &items, &n) < 0)
        return;
    c->upload_encodings = 1u;
    for (size_t i = 0; i < n; i++) {
        mfl_quant_kind_t k;
        if (mfl_quant_parse(items[i], &k) < 0)
            mfl_yaml_fail(doc, "upload.encodings", "'%s' is not one of fp32, fp16, int8",
                          items[i]);
        else
            c->upload_encodings |= 1u << k;
    }
    free(items);
}

/* data.rotations: orientations in degrees (0, 90, 180, 270), each once;
 * rotated copies become classes of their own (data/rotate.h). */
static void s_read_rotations(mfl_yaml_doc_t *doc, mfl_site_config_t *c)
{
    size_t n = mfl_yaml_len(doc, "data.rotations");
    if (mfl_yaml_kind(doc, "data.rotations") != MFL_YAML_SEQUENCE || n == 0 ||
        n > MFL_ROTATE_ORIENTATIONS) {
        mfl_yaml_fail(doc, "data.rotations", "expected a list of 1..4 of 0, 90, 180, 270 "
                      "(degrees clockwise)");
        return;
    }
    bool seen[MFL_ROTATE_ORIENTATIONS] = {false};
    for (size_t i = 0; i < n; i++) {
        char key[64];
        snprintf(key, sizeof key, "data.rotations[%zu]", i);
        int64_t v = mfl_yaml_get_int(doc, key, -1);
        if (v != 0 && v != 90 && v != 180 && v != 270) {
            mfl_yaml_fail(doc, key, "%lld is not one of 0, 90, 180, 270", (long long)v);
            continue;
        }
        if (seen[v / 90]) {
            mfl_yaml_fail(doc, key, "%lld degrees is listed twice", (long long)v);
            continue;
        }
        seen[v / 90] = true;
        c->rotations[c->n_rotations++] = (unsigned)(v / 90);
    }
}

/* idx: labels file (required), max_rows, classes kept, rotations. */
static void s_read_idx(mfl_yaml_doc_t *doc, mfl_site_config_t *c)
{
    bool idx = c->data_kind == MFL_SITE_DATA_IDX;
    static const char *const keys[] = { "data.labels", "data.classes", "data.max_rows",
                                        "data.rotations", NULL };
    for (int i = 0; keys[i] && !idx; i++)
        if (mfl_yaml_has(doc, keys[i]))
            mfl_yaml_fail(doc, keys[i], "only an idx source takes this key");
    if (!idx)
        return;
    s_path(doc, c, "data.labels", true, c->labels_path, sizeof(c->labels_path));
    c->max_rows = mfl_yaml_get_size(doc, "data.max_rows", 0);
    if (mfl_yaml_has(doc, "data.rotations")) {
        s_read_rotations(doc, c);
        c->rotations_line = mfl_yaml_line(doc, "data.rotations");
    }
    size_t n = mfl_yaml_len(doc, "data.classes");
    if (mfl_yaml_has(doc, "data.classes") &&
        (mfl_yaml_kind(doc, "data.classes") != MFL_YAML_SEQUENCE || n == 0 ||
         n > MFL_SITE_MAX_KEEP_CLASSES)) {
        mfl_yaml_fail(doc, "data.classes", "expected a list of 1..%d class indices",
                      MFL_SITE_MAX_KEEP_CLASSES);
        return;
    }
    c->classes_line = mfl_yaml_line(doc, "data.classes");
    /* With rotations a class index runs over 4 orientations of up to 256
     * classes; the loader checks it against the label file's classes. */
    int64_t max_class = c->n_rotations ? MFL_ROTATE_ORIENTATIONS * 256 - 1 : 255;
    for (size_t i = 0; i < n; i++) {
        char key[64];
        snprintf(key, sizeof key, "data.classes[%zu]", i);
        int64_t v = mfl_yaml_get_int(doc, key, 0);
        if (mfl_yaml_check_range(doc, key, v, 0, max_class) == 0)
            c->keep_classes[c->n_keep_classes++] = (uint32_t)v;
    }
}

/* data.scaling_from: standardize: fixed's constants from an export's
 * metadata (a federated run's pooled mean and scale, checked against the
 * digest it carries: round/scaling_record.h), instead of listing them. */
static void s_read_scaling_from(mfl_yaml_doc_t *doc, mfl_site_config_t *c)
{
    s_path(doc, c, "data.scaling_from", true, c->scaling_from, sizeof c->scaling_from);
    if (mfl_yaml_has(doc, "data.center") || mfl_yaml_has(doc, "data.scale")) {
        mfl_yaml_fail(doc, mfl_yaml_has(doc, "data.center") ? "data.center" : "data.scale",
                      "give the constants either as data.center / data.scale or by "
                      "data.scaling_from, not both");
        return;
    }
    if (!c->scaling_from[0])
        return;
    static mfl_task_scaling_t sc; /* 2 KiB: off the stack */
    char err[1024];
    if (mfl_scaling_from_export(c->scaling_from, &sc, NULL, 0, err, sizeof err) < 0) {
        mfl_yaml_fail(doc, "data.scaling_from", "%s", err);
        return;
    }
    memcpy(c->fixed_center, sc.mean, sc.n * sizeof(float));
    memcpy(c->fixed_scale, sc.scale, sc.n * sizeof(float));
    c->n_fixed = sc.n;
}

/* data.center / data.scale: standardize: fixed's constants (both, same
 * length, finite, scale > 0), or data.scaling_from; refused with any
 * other standardize. */
static void s_read_fixed(mfl_yaml_doc_t *doc, mfl_site_config_t *c)
{
    static const char *const keys[] = {"data.center", "data.scale", "data.scaling_from"};
    if (c->standardize != MFL_SITE_STD_FIXED) {
        for (int k = 0; k < 3; k++)
            if (mfl_yaml_has(doc, keys[k]))
                mfl_yaml_fail(doc, keys[k], "only 'standardize: fixed' takes this key");
        return;
    }
    if (mfl_yaml_has(doc, "data.scaling_from")) {
        s_read_scaling_from(doc, c);
        return;
    }
    size_t n[2];
    for (int k = 0; k < 2; k++) {
        n[k] = mfl_yaml_len(doc, keys[k]);
        if (!mfl_yaml_has(doc, keys[k]) || mfl_yaml_kind(doc, keys[k]) != MFL_YAML_SEQUENCE ||
            n[k] == 0 || n[k] > MFL_SITE_MAX_FIXED_FEATURES) {
            mfl_yaml_fail(doc, mfl_yaml_has(doc, keys[k]) ? keys[k] : "data.standardize",
                          "'standardize: fixed' needs %s: a list of 1..%d numbers, one per "
                          "feature", keys[k], MFL_SITE_MAX_FIXED_FEATURES);
            return;
        }
    }
    if (n[0] != n[1]) {
        mfl_yaml_fail(doc, "data.scale", "has %zu values, data.center has %zu: one of each per "
                      "feature", n[1], n[0]);
        return;
    }
    for (size_t i = 0; i < n[0]; i++) {
        char key[64];
        snprintf(key, sizeof key, "data.center[%zu]", i);
        double v = mfl_yaml_get_double(doc, key, NAN);
        if (!isfinite(v) || fabs(v) > 1e30)
            mfl_yaml_fail(doc, key, "must be a finite number");
        c->fixed_center[i] = (float)v;
        snprintf(key, sizeof key, "data.scale[%zu]", i);
        v = mfl_yaml_get_double(doc, key, NAN);
        if (!(isfinite(v) && v > 0 && v < 1e30 && (float)v > 0))
            mfl_yaml_fail(doc, key, "must be a finite number > 0 (features are divided by it)");
        c->fixed_scale[i] = (float)v;
    }
    c->n_fixed = n[0];
}

/* series: the long-form columns, window, stride and label rule. */
static void s_read_series(mfl_yaml_doc_t *doc, mfl_site_config_t *c)
{
    bool series = c->data_kind == MFL_SITE_DATA_SERIES;
    if (!series) {
        if (mfl_yaml_has(doc, "data.series"))
            mfl_yaml_fail(doc, "data.series", "only a series source takes this key");
        return;
    }
    if (mfl_yaml_kind(doc, "data.series") != MFL_YAML_MAPPING) {
        mfl_yaml_fail(doc, "data.series", "a series source needs a mapping: patient, time, "
                      "channels, label, window");
        return;
    }
    mfl_series_spec_t *sp = &c->series;
    sp->patient = mfl_yaml_require_string(doc, "data.series.patient");
    sp->time = mfl_yaml_require_string(doc, "data.series.time");
    sp->label = mfl_yaml_require_string(doc, "data.series.label");
    if (mfl_yaml_get_string_list(doc, "data.series.channels", &c->series_channels,
                                 &sp->n_channels) == 0) {
        sp->channels = c->series_channels;
        if (sp->n_channels == 0 || sp->n_channels > MFL_SERIES_MAX_CHANNELS)
            mfl_yaml_fail(doc, "data.series.channels", "expected 1..%u column names",
                          (unsigned)MFL_SERIES_MAX_CHANNELS);
    }
    const char *rule = mfl_yaml_get_string(doc, "data.series.rule", "last");
    if (strcmp(rule, "last") == 0)
        sp->label_rule = MFL_SERIES_LABEL_LAST;
    else if (strcmp(rule, "any") == 0)
        sp->label_rule = MFL_SERIES_LABEL_ANY;
    else if (strcmp(rule, "regression") == 0)
        sp->label_rule = MFL_SERIES_LABEL_REGRESSION;
    else
        mfl_yaml_fail(doc, "data.series.rule", "'%s' is not one of last, any, regression", rule);
    int64_t w = mfl_yaml_get_int(doc, "data.series.window", 0);
    if (mfl_yaml_check_range(doc, "data.series.window", w, 1, MFL_SERIES_MAX_WINDOW) == 0)
        sp->window = (size_t)w;
    int64_t st = mfl_yaml_get_int(doc, "data.series.stride", w > 0 ? w : 1);
    if (mfl_yaml_check_range(doc, "data.series.stride", st, 1, 1000000) == 0)
        sp->stride = (size_t)st;
    const char *delim = mfl_yaml_get_string(doc, "data.series.delimiter", ",");
    if (strcmp(delim, "tab") == 0 || strcmp(delim, "\\t") == 0)
        delim = "\t";
    if (strlen(delim) != 1 || delim[0] == '"')
        mfl_yaml_fail(doc, "data.series.delimiter", "expected a single character (or \"tab\")");
    sp->delimiter = delim[0];
}

/* A number for privacy.KEY that must be > 0 (and finite unless `inf_ok`). */
static double s_positive(mfl_yaml_doc_t *doc, const char *key, double def, bool inf_ok)
{
    double v = mfl_yaml_get_double(doc, key, def);
    if (!(v > 0.0) || (!inf_ok && !isfinite(v))) {
        mfl_yaml_fail(doc, key, "must be > 0%s, got %g", inf_ok ? "" : " and finite", v);
        return def;
    }
    return v;
}

/* The privacy section: each value checked where it is written, so a bad
 * policy stops the agent with FILE:LINE and the key, never a silent default. */
static void s_read_privacy(mfl_yaml_doc_t *doc, mfl_privacy_policy_t *p)
{
    const char *mode = mfl_yaml_get_string(doc, "privacy.mode", "none");
    if (mfl_privacy_mode_parse(mode, &p->mode) != 0)
        mfl_yaml_fail(doc, "privacy.mode", "'%s' is not one of none, site, record", mode);
    bool dp = p->mode != MFL_PRIVACY_MODE_NONE;
    if (dp && !mfl_yaml_has(doc, "privacy.epsilon_budget"))
        mfl_yaml_fail(doc, "privacy.mode", "mode %s needs privacy.epsilon_budget", mode);
    if (dp && !mfl_yaml_has(doc, "privacy.clip_max"))
        mfl_yaml_fail(doc, "privacy.mode", "mode %s needs privacy.clip_max", mode);
    p->epsilon_budget = s_positive(doc, "privacy.epsilon_budget", p->epsilon_budget, !dp);
    double delta = mfl_yaml_get_double(doc, "privacy.delta", p->delta);
    if (!(delta > 0.0 && delta < 1.0))
        mfl_yaml_fail(doc, "privacy.delta", "must be in (0, 1), got %g", delta);
    else
        p->delta = delta;
    p->noise_multiplier = s_positive(doc, "privacy.noise_multiplier", p->noise_multiplier, false);
    p->clip_min = s_positive(doc, "privacy.clip_min", p->clip_min, false);
    if (p->mode == MFL_PRIVACY_MODE_RECORD && !mfl_yaml_has(doc, "privacy.sample_rate"))
        mfl_yaml_fail(doc, "privacy.mode", "mode record needs privacy.sample_rate (the "
                      "DP-SGD Poisson rate q)");
    double q = mfl_yaml_get_double(doc, "privacy.sample_rate", p->sample_rate);
    if (mfl_yaml_has(doc, "privacy.sample_rate") && !(q > 0.0 && q <= 1.0))
        mfl_yaml_fail(doc, "privacy.sample_rate", "must be in (0, 1], got %g", q);
    else
        p->sample_rate = q;
    p->clip_max = s_positive(doc, "privacy.clip_max", p->clip_max, !dp);
    if (p->clip_max < p->clip_min)
        mfl_yaml_fail(doc, "privacy.clip_max", "%g is below privacy.clip_min %g", p->clip_max,
                      p->clip_min);
    int64_t v = mfl_yaml_get_int(doc, "privacy.min_records", (int64_t)p->min_records);
    if (v < 1)
        mfl_yaml_fail(doc, "privacy.min_records", "must be >= 1, got %lld", (long long)v);
    else
        p->min_records = (uint64_t)v;
    v = mfl_yaml_get_int(doc, "privacy.min_batch", (int64_t)p->min_batch);
    if (v < 1)
        mfl_yaml_fail(doc, "privacy.min_batch", "must be >= 1, got %lld", (long long)v);
    else
        p->min_batch = (uint64_t)v;
    /* With DP on, nothing unnoised leaves unless the hospital says so. */
    p->allow_unnoised_stats = mfl_yaml_get_bool(doc, "privacy.allow_unnoised_stats", !dp);
    /* Opt-in: under SecAgg add a 1/t share of the noise (docs/PRIVACY.md). */
    p->distributed_noise = mfl_yaml_get_bool(doc, "privacy.distributed_noise", false);
    if (p->distributed_noise && p->mode == MFL_PRIVACY_MODE_RECORD)
        mfl_yaml_fail(doc, "privacy.distributed_noise", "applies to site-level noise on Δ "
                      "(mode site, or a DP task in mode none); mode record adds its noise "
                      "inside DP-SGD at every step and keeps it whole");
}

static void s_read(mfl_yaml_doc_t *doc, mfl_site_config_t *c)
{
    const char *id = mfl_yaml_require_string(doc, "site.id");
    if (strlen(id) < sizeof(c->site_id))
        snprintf(c->site_id, sizeof(c->site_id), "%s", id);
    s_check_site_id(doc, id);
    s_path(doc, c, "site.key_file", true, c->key_file, sizeof(c->key_file));

    const char *ep = mfl_yaml_require_string(doc, "coordinator.endpoint");
    if (*ep && (strncmp(ep, "tcp://", 6) != 0 || strlen(ep) >= sizeof(c->endpoint)))
        mfl_yaml_fail(doc, "coordinator.endpoint",
                      "'%s' must look like tcp://HOST:PORT (the agent only dials out)", ep);
    else
        snprintf(c->endpoint, sizeof(c->endpoint), "%s", ep);
    s_path(doc, c, "coordinator.public_key", true, c->coordinator_key,
           sizeof(c->coordinator_key));

    const char *src = mfl_yaml_get_string(doc, "data.source", "csv");
    if (strcmp(src, "csv") == 0)
        c->data_kind = MFL_SITE_DATA_CSV;
    else if (strcmp(src, "wdbc") == 0)
        c->data_kind = MFL_SITE_DATA_WDBC;
    else if (strcmp(src, "heart") == 0)
        c->data_kind = MFL_SITE_DATA_HEART;
    else if (strcmp(src, "idx") == 0)
        c->data_kind = MFL_SITE_DATA_IDX;
    else if (strcmp(src, "series") == 0)
        c->data_kind = MFL_SITE_DATA_SERIES;
    else
        mfl_yaml_fail(doc, "data.source", "'%s' is not one of csv, wdbc, heart, idx, series",
                      src);
    s_path(doc, c, "data.path", true, c->data_path, sizeof(c->data_path));
    s_path(doc, c, "data.test_path", false, c->test_path, sizeof(c->test_path));
    if (c->test_path[0] && c->data_kind != MFL_SITE_DATA_CSV)
        mfl_yaml_fail(doc, "data.test_path", "only a csv source takes a separate test file");
    if (c->test_path[0] && mfl_yaml_has(doc, "data.train_fraction"))
        mfl_yaml_fail(doc, "data.train_fraction", "not used with data.test_path (every row of "
                      "data.path trains; the test file is the held-out set): remove one");
    mfl_yaml_kind_t sk = mfl_yaml_kind(doc, "data.schema");
    if (c->data_kind == MFL_SITE_DATA_CSV && sk == MFL_YAML_SCALAR)
        s_path(doc, c, "data.schema", true, c->schema_file, sizeof(c->schema_file));
    else if (c->data_kind == MFL_SITE_DATA_CSV && sk != MFL_YAML_MAPPING)
        mfl_yaml_fail(doc, "data.schema", "a csv source needs the consortium's schema file "
                      "(data.schema: FILE) or a schema mapping (columns, label)");
    if (c->data_kind != MFL_SITE_DATA_CSV && mfl_yaml_has(doc, "data.schema"))
        mfl_yaml_fail(doc, "data.schema", "only a csv source takes a schema; '%s' has its own",
                      src);
    int64_t seed = mfl_yaml_get_int(doc, "data.split_seed", (int64_t)c->split_seed);
    if (seed < 0)
        mfl_yaml_fail(doc, "data.split_seed", "must be >= 0, got %lld", (long long)seed);
    else
        c->split_seed = (uint64_t)seed;
    double frac = mfl_yaml_get_double(doc, "data.train_fraction", c->train_fraction);
    if (!(frac > 0 && frac <= 1))
        mfl_yaml_fail(doc, "data.train_fraction", "must be in (0, 1], got %g", frac);
    else
        c->train_fraction = frac;
    const char *split = mfl_yaml_get_string(doc, "data.split", "rows");
    if (strcmp(split, "patients") == 0 && c->data_kind == MFL_SITE_DATA_SERIES)
        c->split_patients = true;
    else if (strcmp(split, "patients") == 0)
        mfl_yaml_fail(doc, "data.split", "'patients' needs a series source (its rows are "
                      "patients' windows); '%s' rows are split one by one", src);
    else if (strcmp(split, "rows") != 0)
        mfl_yaml_fail(doc, "data.split", "'%s' is not one of rows, patients", split);
    s_read_idx(doc, c);
    s_read_series(doc, c);
    /* Pixels are already in [0, 1]: images default to no standardisation. */
    const char *std = mfl_yaml_get_string(doc, "data.standardize",
                                          c->data_kind == MFL_SITE_DATA_IDX ? "none" : "site");
    if (strcmp(std, "site") == 0)
        c->standardize = MFL_SITE_STD_SITE;
    else if (strcmp(std, "none") == 0)
        c->standardize = MFL_SITE_STD_NONE;
    else if (strcmp(std, "fixed") == 0)
        c->standardize = MFL_SITE_STD_FIXED;
    else if (strcmp(std, "federated") == 0)
        c->standardize = MFL_SITE_STD_FEDERATED;
    else
        mfl_yaml_fail(doc, "data.standardize", "'%s' is not one of site, none, fixed, "
                      "federated", std);
    s_read_fixed(doc, c);

    int64_t v = mfl_yaml_get_int(doc, "eval.support_cases", c->eval_support);
    if (mfl_yaml_check_range(doc, "eval.support_cases", v, 0, 100000000) == 0)
        c->eval_support = (uint32_t)v;
    v = mfl_yaml_get_int(doc, "eval.local_only_steps", c->local_only_steps);
    if (mfl_yaml_check_range(doc, "eval.local_only_steps", v, 1, 100000) == 0)
        c->local_only_steps = (uint32_t)v;
    v = mfl_yaml_get_int(doc, "eval.treatment_arms", c->treatment_arms);
    if (mfl_yaml_check_range(doc, "eval.treatment_arms", v, 0, MFL_TREATMENT_MAX_ARMS) == 0)
        c->treatment_arms = (uint32_t)v;

    v = mfl_yaml_get_int(doc, "runtime.threads", c->threads);
    if (mfl_yaml_check_range(doc, "runtime.threads", v, 1, 256) == 0)
        c->threads = (int)v;
    const char *lvl = mfl_yaml_get_string(doc, "runtime.log_level", "info");
    if (mfl_log_level_parse(lvl, &c->log_level) < 0)
        mfl_yaml_fail(doc, "runtime.log_level", "'%s' is not one of debug, info, warn, error",
                      lvl);
    s_path(doc, c, "audit.log", false, c->audit_log, sizeof(c->audit_log));
    s_path(doc, c, "secure_aggregation.roster", false, c->secagg_roster,
           sizeof(c->secagg_roster));
    s_read_privacy(doc, &c->privacy);
    if (c->privacy.mode != MFL_PRIVACY_MODE_NONE && !c->audit_log[0])
        mfl_yaml_fail(doc, "privacy.mode", "mode %s needs audit.log: the budget spent is "
                      "read back from the site's signed audit log",
                      mfl_privacy_mode_name(c->privacy.mode));
    c->audit_disabled = mfl_yaml_get_bool(doc, "audit.disabled", false);
    if (c->audit_disabled && c->audit_log[0])
        mfl_yaml_fail(doc, "audit.disabled", "true, but audit.log is set: choose one");

    bool mmb_set = mfl_yaml_has(doc, "limits.max_message_bytes");
    c->max_message_bytes = mfl_yaml_get_size(doc, "limits.max_message_bytes",
                                             c->max_message_bytes);
    if (c->max_message_bytes < 4096)
        mfl_yaml_fail(doc, "limits.max_message_bytes", "must be at least 4K");
    c->max_params = mfl_yaml_get_size(doc, "limits.max_params", c->max_params);
    if (c->max_params < 1)
        mfl_yaml_fail(doc, "limits.max_params", "must be at least 1");
    /* Unless set, the message limit follows max_params: θ of max_params
     * floats and its envelope (issue 17: a 100M model needs no limit
     * raised by hand). */
    if (!mmb_set && c->max_params <= (SIZE_MAX - (1u << 20)) / 4 &&
        4 * c->max_params + (1u << 20) > c->max_message_bytes)
        c->max_message_bytes = 4 * c->max_params + (1u << 20);
    c->heartbeat_ms = s_seconds_ms(doc, "limits.heartbeat_s", c->heartbeat_ms);
    c->connect_timeout_ms = s_seconds_ms(doc, "limits.connect_timeout_s", c->connect_timeout_ms);
    s_read_encodings(doc, c);
}

/* Checks and reads an opened document into c (doc's ownership taken). */
static int s_load_doc(mfl_yaml_doc_t *doc, mfl_site_config_t *c, char *err, size_t errlen)
{
    s_check_keys(doc);
    s_read(doc, c);
    if (mfl_yaml_error(doc, err, errlen) < 0) {
        mfl_yaml_destroy(&doc);
        mfl_site_config_clear(c);
        mfl_site_config_defaults(c);
        return -1;
    }
    if (c->data_kind == MFL_SITE_DATA_CSV || c->data_kind == MFL_SITE_DATA_SERIES)
        c->doc = doc; /* an inline data.schema / the series' names are read from it */
    else
        mfl_yaml_destroy(&doc);
    return 0;
}

int mfl_site_config_load(const char *path, mfl_site_config_t *c, char *err, size_t errlen)
{
    mfl_site_config_defaults(c);
    if (!path || strlen(path) >= sizeof(c->file))
        return mfl_errf(err, errlen, "site config path missing or too long"), -1;
    snprintf(c->file, sizeof(c->file), "%s", path);
    mfl_yaml_doc_t *doc = mfl_yaml_load(path, err, errlen);
    if (!doc)
        return -1;
    return s_load_doc(doc, c, err, errlen);
}

int mfl_site_config_parse(const char *text, size_t len, const char *name, mfl_site_config_t *c,
                          char *err, size_t errlen)
{
    mfl_site_config_defaults(c);
    if (!name || strlen(name) >= sizeof(c->file))
        return mfl_errf(err, errlen, "site config name missing or too long"), -1;
    snprintf(c->file, sizeof(c->file), "%s", name);
    mfl_yaml_doc_t *doc = mfl_yaml_parse(text, len, name, err, errlen);
    if (!doc)
        return -1;
    return s_load_doc(doc, c, err, errlen);
}

int mfl_site_config_csv_schema(const mfl_site_config_t *c, mfl_csv_schema_t *schema,
                               mfl_yaml_doc_t **doc_out, char *err, size_t errlen)
{
    memset(schema, 0, sizeof *schema);
    *doc_out = NULL;
    if (c->data_kind == MFL_SITE_DATA_HEART) {
        /* FLamby's preprocessing of one raw hospital file (data/heart.h). */
        *schema = *mfl_heart_csv_schema();
        schema->owned = NULL; /* static: never freed */
        schema->free_owned = NULL;
        return 0;
    }
    if (c->data_kind != MFL_SITE_DATA_CSV)
        return mfl_errf(err, errlen, "%s: data.source %s has no CSV schema", c->file,
                        mfl_site_data_kind_name(c->data_kind)), -1;
    if (c->schema_file[0]) {
        char sub[512];
        if (mfl_csv_schema_file_load(c->schema_file, schema, doc_out, sub, sizeof sub) < 0)
            return mfl_errf(err, errlen, "%s: data.schema: %s", c->file, sub), -1;
        return 0;
    }
    if (!c->doc)
        return mfl_errf(err, errlen, "%s: data.schema was not loaded", c->file), -1;
    return mfl_csv_schema_from_yaml(c->doc, "data.schema", schema, err, errlen);
}
