/* Federated standardisation as the round engine's setup phase
 * (data.standardize: federated, docs/DATA.md). Before selection and
 * training, once enough sites are connected, the engine opens one
 * evaluation whose EvalTask asks for moments instead of scores: each site
 * answers with the count, per-feature sums and sums of squares of its fit
 * rows (its training rows minus selection's validation part; never a test
 * row). The engine pools them in site-id order into one mean and one
 * scale per feature (the sample standard deviation, as each site's own
 * standardisation computes it), records every site's contribution and the
 * result (audit kind `scaling`, metrics lines `scaling_moments` and
 * `scaling`), writes it to checkpoint_dir/scaling.state, and from then on
 * every RoundTask and EvalTask of a setting with federated scaling carries
 * it. A restart reads the state file and does not ask again, so a resumed
 * run scales exactly as before; `metafl simulate` and the daemons run this
 * same code, so they pool the same numbers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "round/round_engine_internal.h"
#include "round/scaling_record.h"
#include "round/scaling_robust.h"

struct mfl_engine_moments {
    char site[MFL_ENGINE_SITE_MAX];
    uint64_t n;
    uint32_t n_features;
    double sum[MFL_TASK_SCALING_MAX], sum_sq[MFL_TASK_SCALING_MAX];
};

static void s_path(const mfl_round_engine_t *self, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/" MFL_SCALING_STATE_FILE, self->config.checkpoint_dir);
}

static void s_hex(const uint8_t *b, size_t n, char *out)
{
    static const char h[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = h[b[i] >> 4];
        out[2 * i + 1] = h[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The state file (round/scaling_record.h), read back on a restart. */
static int s_read_state(mfl_round_engine_t *self, const char *path, char *err, size_t errlen)
{
    mfl_scaling_origin_t o;
    if (mfl_scaling_state_read(path, &self->scaling, &o, err, errlen) < 0)
        return -1;
    if (o.median != self->config.scaling_pool_median)
        return mfl_errf(err, errlen, "%s was pooled with data.scaling_pool: %s, the config says "
                        "%s: set it back to resume this run, or use another "
                        "output.checkpoint_dir", path, o.median ? "median" : "mean",
                        self->config.scaling_pool_median ? "median" : "mean"), -1;
    self->scaling_ready = true;
    mfl_info("federated standardisation: the pooled scaling of %u features from %u sites "
             "(%llu fit rows) is on record (%s); not asked again", self->scaling.n, o.sites,
             (unsigned long long)o.rows, path);
    return 0;
}

int mfl_engine_scaling_start(mfl_round_engine_t *self, char *err, size_t errlen)
{
    bool need = self->config.federated_scaling;
    if (self->selecting)
        for (size_t i = 0; i < self->config.selection.n_candidates; i++)
            need = need || self->config.selection.candidates[i].federated_scaling;
    self->scaling_needed = need;
    if (!need)
        return 0;
    char path[MFL_COORD_PATH_MAX + 32];
    s_path(self, path, sizeof path);
    FILE *probe = fopen(path, "r");
    if (probe) {
        fclose(probe);
        return s_read_state(self, path, err, errlen);
    }
    if (mfl_engine_has_checkpoint(self)) {
        mfl_errf(err, errlen, "%s: a checkpoint is there but no federated standardisation "
                 "record (%s); this run trained with each site's own scaling: set "
                 "data.standardize: site to resume it, or use another output.checkpoint_dir",
                 self->config.checkpoint_dir, path);
        return -1;
    }
    return 0;
}

bool mfl_engine_scaling_owed(const mfl_round_engine_t *self)
{
    return self->scaling_needed && !self->scaling_ready;
}

void mfl_engine_scaling_task(const mfl_round_engine_t *self, mfl_task_scaling_t *sc)
{
    sc->n = 0;
    if (self->config.federated_scaling && self->scaling_ready)
        *sc = self->scaling;
}

void mfl_engine_scaling_free(mfl_round_engine_t *self)
{
    free(self->moments);
    self->moments = NULL;
    self->n_moments = self->cap_moments = 0;
}

static void s_audit(mfl_round_engine_t *self, const char *site, uint64_t n,
                    const uint8_t digest[32], const char *reason)
{
    if (!self->audit)
        return;
    mfl_audit_record_t rec;
    mfl_audit_record_init(&rec, MFL_AUDIT_SCALING, 0, site);
    rec.n = n;
    rec.has_delta_hash = true;
    memcpy(rec.delta_hash, digest, 32);
    snprintf(rec.reason, sizeof rec.reason, "%.*s", (int)(sizeof rec.reason - 1), reason);
    (void)mfl_engine_audit_append(self, &rec, true);
}

void mfl_engine_scaling_report(mfl_round_engine_t *self, const char *site,
                               const mfl_eval_report_t *r)
{
    if (!r->n_moments || r->moments_n == 0) {
        mfl_warn("federated standardisation: site %s sent no moments; not pooled", site);
        return;
    }
    if (self->n_moments && r->n_moments != self->moments[0].n_features) {
        mfl_warn("federated standardisation: site %s sent %u features, site %s %u; not "
                 "pooled", site, r->n_moments, self->moments[0].site,
                 self->moments[0].n_features);
        return;
    }
    /* What one site's moments can be (a hostile site's are refused, not
     * pooled, and the pooling then lacks that site): at most the training
     * rows it declared at Hello (its fit rows are some of them), and for
     * each feature a variance that is not negative (n·Σx² ≥ (Σx)²). */
    const mfl_engine_site_t *st = mfl_engine_find_site(self, site);
    if (st && st->n_train && r->moments_n > st->n_train) {
        mfl_warn("federated standardisation: site %s sent the moments of %llu rows but "
                 "declared %llu training rows at Hello; not pooled", site,
                 (unsigned long long)r->moments_n, (unsigned long long)st->n_train);
        return;
    }
    for (uint32_t j = 0; j < r->n_moments; j++) {
        double n = (double)r->moments_n, sx = r->moments_sum[j], sxx = r->moments_sum_sq[j];
        if (!isfinite(sx) || !isfinite(sxx) || sxx < 0 ||
            n * sxx < sx * sx * (1 - 1e-9) - 1e-9) {
            mfl_warn("federated standardisation: site %s's moments of feature %u are not a "
                     "sample's (sum %g, sum of squares %g over %llu rows); not pooled", site,
                     j, sx, sxx, (unsigned long long)r->moments_n);
            return;
        }
    }
    if (self->n_moments == self->cap_moments) {
        size_t cap = self->cap_moments ? 2 * self->cap_moments : 8;
        struct mfl_engine_moments *m = realloc(self->moments, cap * sizeof *m);
        if (!m) {
            mfl_error("federated standardisation: out of memory keeping site %s's moments",
                      site);
            return;
        }
        self->moments = m;
        self->cap_moments = cap;
    }
    struct mfl_engine_moments *m = &self->moments[self->n_moments++];
    snprintf(m->site, sizeof m->site, "%s", site);
    m->n = r->moments_n;
    m->n_features = r->n_moments;
    memcpy(m->sum, r->moments_sum, r->n_moments * sizeof(double));
    memcpy(m->sum_sq, r->moments_sum_sq, r->n_moments * sizeof(double));
    uint8_t digest[32];
    mfl_task_moments_digest(r, digest); /* what the site's own record carries */
    char hex[65], why[200];
    s_hex(digest, 32, hex);
    snprintf(why, sizeof why, "moments of %llu fit rows, %u features: per-feature sums and "
             "sums of squares (BLAKE2b-256 in delta_hash)", (unsigned long long)m->n,
             m->n_features);
    mfl_info("federated standardisation: site %s sent the moments of %llu fit rows (%u "
             "features, digest %.16s)", site, (unsigned long long)m->n, m->n_features, hex);
    s_audit(self, site, m->n, digest, why);
    if (self->metrics) {
        fprintf(self->metrics, "{\"event\":\"scaling_moments\",\"site\":\"%s\",\"n\":%llu,"
                "\"digest\":\"%s\",\"sum\":[", site, (unsigned long long)m->n, hex);
        for (uint32_t j = 0; j < m->n_features; j++)
            fprintf(self->metrics, "%s%.17g", j ? "," : "", m->sum[j]);
        fprintf(self->metrics, "],\"sum_sq\":[");
        for (uint32_t j = 0; j < m->n_features; j++)
            fprintf(self->metrics, "%s%.17g", j ? "," : "", m->sum_sq[j]);
        fprintf(self->metrics, "]}\n");
        fflush(self->metrics);
    }
}

static int s_cmp_site(const void *a, const void *b)
{
    return strcmp(((const struct mfl_engine_moments *)a)->site,
                  ((const struct mfl_engine_moments *)b)->site);
}

void mfl_engine_scaling_done(mfl_round_engine_t *self)
{
    self->moments_phase = false;
    self->phase = MFL_ENGINE_WAITING;
    size_t k = self->n_moments;
    if (k < self->config.min_sites || k == 0) {
        mfl_engine_fail(self, "federated standardisation: %zu site(s) sent their fit rows' "
                        "moments, %u needed (rounds.min_sites); a site must have "
                        "data.standardize: federated in its config to take part", k,
                        self->config.min_sites);
        return;
    }
    /* Site-id order: the sum is the same whatever order they answered in. */
    qsort(self->moments, k, sizeof *self->moments, s_cmp_site);
    uint32_t nf = self->moments[0].n_features;
    double total = 0;
    for (size_t i = 0; i < k; i++)
        total += (double)self->moments[i].n;
    if (total < 2) {
        mfl_engine_fail(self, "federated standardisation: %.0f fit rows in all", total);
        return;
    }
    bool median = self->config.scaling_pool_median;
    if (median && k < MFL_SCALING_ROBUST_MIN_SITES) {
        mfl_engine_fail(self, "federated standardisation: data.scaling_pool: median needs the "
                        "moments of at least %d sites, %zu sent them", MFL_SCALING_ROBUST_MIN_SITES,
                        k);
        return;
    }
    double *work = median ? malloc(5 * k * sizeof(double)) : NULL;
    if (median && !work) {
        mfl_engine_fail(self, "federated standardisation: out of memory");
        return;
    }
    for (uint32_t j = 0; j < nf; j++) {
        double s = 0, ss = 0;
        for (size_t i = 0; i < k; i++) {
            s += self->moments[i].sum[j];
            ss += self->moments[i].sum_sq[j];
        }
        double m = s / total;
        double var = (ss - s * m) / (total - 1); /* the sample variance, as each site's own */
        if (median) { /* each site once, a minority cannot drag it (scaling_robust.h) */
            double *n = work + 2 * k, *sx = work + 3 * k, *sxx = work + 4 * k;
            for (size_t i = 0; i < k; i++) {
                n[i] = (double)self->moments[i].n;
                sx[i] = self->moments[i].sum[j];
                sxx[i] = self->moments[i].sum_sq[j];
            }
            (void)mfl_scaling_robust_feature(n, sx, sxx, k, work, &m, &var);
        }
        if (!isfinite((float)m)) {
            free(work);
            mfl_engine_fail(self, "federated standardisation: the pooled mean of feature %u is "
                            "not finite as a float (%g); the sites' moments are in the audit "
                            "log", j, m);
            return;
        }
        self->scaling.mean[j] = (float)m;
        self->scaling.scale[j] = var > 0 && isfinite((float)sqrt(var))
                                     ? (float)(sqrt(var) + 1e-9) : 1.0f;
    }
    free(work);
    self->scaling.n = nf;
    uint8_t digest[32];
    mfl_scaling_digest(&self->scaling, digest);
    char hex[65], why[200];
    s_hex(digest, 32, hex);
    snprintf(why, sizeof why, "pooled scaling of %u features from %zu sites, %.0f fit rows%s "
             "(BLAKE2b-256 of the means then the scales in delta_hash)", nf, k, total,
             median ? ", median pool" : "");
    mfl_info("federated standardisation: %s; digest %.16s", why, hex);
    s_audit(self, NULL, (uint64_t)total, digest, why);
    /* The record a restart reads: exact (hex floats). */
    char path[MFL_COORD_PATH_MAX + 32], err[512];
    s_path(self, path, sizeof path);
    mfl_scaling_origin_t origin = {.sites = (uint32_t)k, .rows = (uint64_t)total,
                                   .median = median};
    if (mfl_scaling_state_write(path, &self->scaling, &origin, err, sizeof err) < 0) {
        mfl_engine_fail(self, "federated standardisation: cannot record the scaling: %s", err);
        return;
    }
    if (self->metrics) {
        fprintf(self->metrics, "{\"event\":\"scaling\",\"sites\":%zu,\"rows\":%.0f,%s"
                "\"digest\":\"%s\",\"mean\":[", k, total, median ? "\"pool\":\"median\"," : "",
                hex);
        for (uint32_t j = 0; j < nf; j++)
            fprintf(self->metrics, "%s%.9g", j ? "," : "", (double)self->scaling.mean[j]);
        fprintf(self->metrics, "],\"scale\":[");
        for (uint32_t j = 0; j < nf; j++)
            fprintf(self->metrics, "%s%.9g", j ? "," : "", (double)self->scaling.scale[j]);
        fprintf(self->metrics, "]}\n");
        fflush(self->metrics);
    }
    self->scaling_ready = true;
    mfl_engine_scaling_free(self);
}

bool mfl_round_engine_scaling(const mfl_round_engine_t *self, mfl_task_scaling_t *out)
{
    mfl_engine_scaling_task(self, out);
    return out->n > 0;
}
