/* Prometheus text exposition of the coordinator (see prom_export.h). */
#include "round/prom_export.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/log.h"
#include "wire/message.h"

/* Round-duration buckets, seconds: a 1M-parameter round takes ~0.1 s here,
 * a hospital WAN round tens of seconds, a deadline close minutes. */
static const double s_buckets[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800};
#define S_N_BUCKETS (sizeof s_buckets / sizeof s_buckets[0])

struct mfl_prom {
    char *path;
    uint64_t accepted;
    uint64_t rejected[MFL_PROM_REASONS];
    uint64_t bucket[S_N_BUCKETS]; /* non-cumulative; summed at render */
    uint64_t n_rounds;
    double sum_seconds;
};

mfl_prom_t *mfl_prom_new(const char *path)
{
    if (!path || !*path)
        return NULL;
    mfl_prom_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->path = strdup(path);
    if (!self->path) {
        free(self);
        return NULL;
    }
    return self;
}

void mfl_prom_destroy(mfl_prom_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->path);
    free(*self_p);
    *self_p = NULL;
}

void mfl_prom_round_closed(mfl_prom_t *self, const mfl_round_summary_t *m)
{
    if (!self || !m)
        return;
    self->accepted += m->n_accepted;
    self->n_rounds++;
    double s = isfinite(m->wall_seconds) && m->wall_seconds > 0 ? m->wall_seconds : 0;
    self->sum_seconds += s;
    for (size_t i = 0; i < S_N_BUCKETS; i++)
        if (s <= s_buckets[i]) {
            self->bucket[i]++;
            break;
        }
}

void mfl_prom_rejected(mfl_prom_t *self, int reason)
{
    if (!self)
        return;
    self->rejected[reason >= 0 && reason < MFL_PROM_REASONS ? reason : MFL_PROM_REASONS - 1]++;
}

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} s_out_t;

static void s_put(s_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_put(s_out_t *o, const char *fmt, ...)
{
    if (o->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->oom = 1;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = 2 * o->cap + (size_t)n;
        char *t = realloc(o->p, cap);
        if (!t) {
            o->oom = 1;
            return;
        }
        o->p = t;
        o->cap = cap;
    }
}

static void s_head(s_out_t *o, const char *name, const char *type, const char *help)
{
    s_put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newline escaped as the format requires. */
static void s_label(s_out_t *o, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            s_put(o, "\\%c", *v);
        else if (*v == '\n')
            s_put(o, "\\n");
        else
            s_put(o, "%c", *v);
    }
}

/* Reason names as the log writes them, lower-cased, e.g. "reject_replay". */
static void s_reason(s_out_t *o, int reason)
{
    const char *n = mfl_reject_reason_name(reason);
    char buf[64];
    size_t i = 0;
    for (; n && n[i] && i + 1 < sizeof buf; i++)
        buf[i] = (char)((n[i] >= 'A' && n[i] <= 'Z') ? n[i] - 'A' + 'a' : n[i]);
    buf[i] = '\0';
    if (!i)
        snprintf(buf, sizeof buf, "reason_%d", reason);
    s_label(o, buf);
}

static const char *const s_phases[] = {"waiting", "round", "eval", "done", "failed", "aborted"};

char *mfl_prom_render(const mfl_prom_t *self, const mfl_round_engine_t *e,
                      const mfl_coord_config_t *c, const mfl_prom_wire_t *wire,
                      uint64_t now_ms)
{
    s_out_t o = {malloc(4096), 0, 4096, 0};
    if (!o.p)
        return NULL;
    o.p[0] = '\0';
    s_head(&o, "metafl_rounds_completed", "gauge",
           "Rounds closed and checkpointed in this run (resumed runs count earlier rounds).");
    s_put(&o, "metafl_rounds_completed %u\n", mfl_round_engine_rounds_done(e));
    s_head(&o, "metafl_rounds_target", "gauge", "Rounds the run will do (rounds.count).");
    s_put(&o, "metafl_rounds_target %u\n", c->rounds);
    s_head(&o, "metafl_round", "gauge", "The open round, or the next one to open.");
    s_put(&o, "metafl_round %u\n", mfl_round_engine_round(e));
    s_head(&o, "metafl_phase", "gauge", "1 for the coordinator's current phase, 0 otherwise.");
    int ph = (int)mfl_round_engine_phase(e);
    for (int i = 0; i < (int)(sizeof s_phases / sizeof s_phases[0]); i++)
        s_put(&o, "metafl_phase{phase=\"%s\"} %d\n", s_phases[i], i == ph);
    s_head(&o, "metafl_paused", "gauge", "1 while paused by the operator (metafl status --pause).");
    s_put(&o, "metafl_paused %d\n", mfl_round_engine_paused(e) ? 1 : 0);

    size_t sel_cand = 0, sel_n = 0, sel_win = 0;
    if (mfl_round_engine_selection(e, &sel_cand, &sel_n, &sel_win, NULL)) {
        s_head(&o, "metafl_selection_candidate", "gauge",
               "Model selection: the candidate being trained or scored (1-based); 0 once "
               "decided.");
        s_put(&o, "metafl_selection_candidate %zu\n", sel_cand);
        s_head(&o, "metafl_selection_candidates", "gauge", "Model selection: candidates.");
        s_put(&o, "metafl_selection_candidates %zu\n", sel_n);
        s_head(&o, "metafl_selection_winner", "gauge",
               "Model selection: the chosen candidate (1-based); 0 while undecided.");
        s_put(&o, "metafl_selection_winner %zu\n", sel_win);
        s_head(&o, "metafl_selection_score", "gauge",
               "Model selection: a candidate's mean validation score under the rule.");
        for (size_t i = 0; i < sel_n; i++) {
            double v = mfl_round_engine_selection_score(e, i);
            if (isfinite(v))
                s_put(&o, "metafl_selection_score{candidate=\"%zu\"} %.6g\n", i + 1, v);
        }
    }

    size_t n = mfl_round_engine_n_sites(e), connected = 0;
    for (size_t i = 0; i < n; i++) {
        bool conn = false;
        mfl_round_engine_site_at(e, i, NULL, &conn);
        connected += conn;
    }
    s_head(&o, "metafl_sites_known", "gauge", "Sites that said hello since the coordinator started.");
    s_put(&o, "metafl_sites_known %zu\n", n);
    s_head(&o, "metafl_sites_connected", "gauge", "Sites connected and heard from recently.");
    s_put(&o, "metafl_sites_connected %zu\n", connected);
    s_head(&o, "metafl_site_connected", "gauge", "1 if the site is connected.");
    for (size_t i = 0; i < n; i++) {
        bool conn = false;
        const char *id = mfl_round_engine_site_at(e, i, NULL, &conn);
        s_put(&o, "metafl_site_connected{site=\"");
        s_label(&o, id);
        s_put(&o, "\"} %d\n", conn ? 1 : 0);
    }
    s_head(&o, "metafl_site_last_seen_timestamp_seconds", "gauge",
           "Unix time of the last message or heartbeat from the site.");
    for (size_t i = 0; i < n; i++) {
        uint64_t seen = 0;
        const char *id = mfl_round_engine_site_at(e, i, &seen, NULL);
        s_put(&o, "metafl_site_last_seen_timestamp_seconds{site=\"");
        s_label(&o, id);
        /* The engine's clock is monotonic: published as wall time. */
        s_put(&o, "\"} %.3f\n",
              seen ? (double)mfl_round_engine_wall_of(e, seen) / 1000.0 : 0.0);
    }

    s_head(&o, "metafl_updates_accepted_total", "counter",
           "Site updates folded into θ since the coordinator started.");
    s_put(&o, "metafl_updates_accepted_total %llu\n", (unsigned long long)self->accepted);
    s_head(&o, "metafl_updates_rejected_total", "counter",
           "Messages refused since the coordinator started, by reason and by the stage that "
           "refused them (wire: signature, size, sender checks; engine: round, nonce, norm...).");
    for (int r = 0; r < MFL_PROM_REASONS; r++) {
        if (self->rejected[r]) {
            s_put(&o, "metafl_updates_rejected_total{stage=\"engine\",reason=\"");
            s_reason(&o, r);
            s_put(&o, "\"} %llu\n", (unsigned long long)self->rejected[r]);
        }
        if (wire && wire->rejected_by_reason[r]) {
            s_put(&o, "metafl_updates_rejected_total{stage=\"wire\",reason=\"");
            s_reason(&o, r);
            s_put(&o, "\"} %llu\n", (unsigned long long)wire->rejected_by_reason[r]);
        }
    }

    s_head(&o, "metafl_round_duration_seconds", "histogram",
           "Round duration from opening to the close being done, since the coordinator "
           "started.");
    uint64_t cum = 0;
    for (size_t i = 0; i < S_N_BUCKETS; i++) {
        cum += self->bucket[i];
        s_put(&o, "metafl_round_duration_seconds_bucket{le=\"%g\"} %llu\n", s_buckets[i],
              (unsigned long long)cum);
    }
    s_put(&o, "metafl_round_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
          (unsigned long long)self->n_rounds);
    s_put(&o, "metafl_round_duration_seconds_sum %.6f\n", self->sum_seconds);
    s_put(&o, "metafl_round_duration_seconds_count %llu\n", (unsigned long long)self->n_rounds);

    s_head(&o, "metafl_received_bytes_total", "counter",
           "Bytes of messages received from sites (envelopes and tensor frames).");
    s_put(&o, "metafl_received_bytes_total %llu\n",
          (unsigned long long)(wire ? wire->bytes_in : 0));
    s_head(&o, "metafl_sent_bytes_total", "counter",
           "Bytes of messages sent to sites (envelopes and tensor data).");
    s_put(&o, "metafl_sent_bytes_total %llu\n", (unsigned long long)(wire ? wire->bytes_out : 0));
    s_head(&o, "metafl_uploads_in_flight", "gauge", "Sites holding an upload slot.");
    s_put(&o, "metafl_uploads_in_flight %zu\n", mfl_round_engine_uploads_in_flight(e));
    s_head(&o, "metafl_uploads_waiting", "gauge", "Sites queued for an upload slot.");
    s_put(&o, "metafl_uploads_waiting %zu\n", mfl_round_engine_uploads_waiting(e));
    s_head(&o, "metafl_exporter_updated_timestamp_seconds", "gauge",
           "Unix time this file was written (alert when it stops moving).");
    s_put(&o, "metafl_exporter_updated_timestamp_seconds %.3f\n", (double)now_ms / 1000.0);
    if (o.oom) {
        free(o.p);
        return NULL;
    }
    return o.p;
}

int mfl_prom_write(const mfl_prom_t *self, const mfl_round_engine_t *e,
                   const mfl_coord_config_t *c, const mfl_prom_wire_t *wire, uint64_t now_ms,
                   char *err, size_t errlen)
{
    char *text = mfl_prom_render(self, e, c, wire, now_ms);
    if (!text)
        return mfl_errf(err, errlen, "%s: out of memory rendering the metrics", self->path), -1;
    int rc = mfl_file_replace(self->path, text, strlen(text), err, errlen);
    free(text);
    return rc;
}
