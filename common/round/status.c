/* Renders the status document (see status.h). */
#include "round/status.h"

/* The status reads the engine's private state for the open round's
 * clock, each site's "reported" flag and the evaluation deadline: it is
 * part of the round module, and these are its read-only views. */
#include "round/round_engine_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} s_buf_t;

static void s_put(s_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_put(s_buf_t *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = 2 * b->cap + (size_t)n;
        char *t = realloc(b->buf, cap);
        if (!t) {
            b->oom = 1;
            return;
        }
        b->buf = t;
        b->cap = cap;
    }
}

/* JSON has no NaN: write null for a missing number. */
static void s_num(s_buf_t *b, const char *key, double v)
{
    if (isfinite(v))
        s_put(b, "\"%s\":%.9g", key, v);
    else
        s_put(b, "\"%s\":null", key);
}

/* The open round's clock and the run's estimated end:
 * "round_opened_unix_ms", "round_deadline_unix_ms", "attempt" (0s when no
 * round is open), "eval_deadline_unix_ms" (0 unless evaluating) and
 * "eta_unix_ms": now + the open round's remaining time (its deadline at
 * worst) + the rounds still to run × the last round's duration, 0 when
 * unknown (no round closed since start) or over. */
static void s_clock(s_buf_t *b, const mfl_round_engine_t *e, const mfl_coord_config_t *c,
                    uint64_t now_ms)
{
    bool open = e->phase == MFL_ENGINE_ROUND;
    uint64_t eta = 0;
    /* The engine keeps monotonic times; the status speaks wall time. */
    uint64_t opened = open ? mfl_round_engine_wall_of(e, e->opened_ms) : 0;
    uint64_t deadline = open ? mfl_round_engine_wall_of(e, e->deadline_ms) : 0;
    uint64_t eval_deadline =
        e->phase == MFL_ENGINE_EVAL ? mfl_round_engine_wall_of(e, e->eval_deadline_ms) : 0;
    const mfl_round_summary_t *m = mfl_round_engine_last_summary(e);
    bool over = e->phase == MFL_ENGINE_DONE || e->phase == MFL_ENGINE_FAILED ||
                e->phase == MFL_ENGINE_ABORTED;
    if (m && !over && m->wall_seconds > 0) {
        double per_round_ms = m->wall_seconds * 1000.0;
        uint32_t left = c->rounds > e->rounds_done ? c->rounds - e->rounds_done : 0;
        double rest = 0;
        if (open && left > 0) {
            /* The open round: a typical round's time from its opening, but
             * never past its deadline. */
            double end = (double)opened + per_round_ms;
            if (end > (double)deadline)
                end = (double)deadline;
            rest = end > (double)now_ms ? end - (double)now_ms : 0;
            left--;
        }
        eta = now_ms + (uint64_t)(rest + per_round_ms * left);
    }
    s_put(b, "\"round_opened_unix_ms\":%llu,\"round_deadline_unix_ms\":%llu,\"attempt\":%u,"
             "\"eval_deadline_unix_ms\":%llu,\"eta_unix_ms\":%llu,",
          (unsigned long long)opened, (unsigned long long)deadline, open ? e->attempt : 0u,
          (unsigned long long)eval_deadline, (unsigned long long)eta);
}

char *mfl_status_render(const mfl_round_engine_t *e, const mfl_coord_config_t *c,
                        const char *endpoint, uint64_t now_ms)
{
    s_buf_t b = {malloc(1024), 0, 1024, 0};
    if (!b.buf)
        return NULL;
    b.buf[0] = '\0';
    /* Endpoints and site ids are plain ASCII without quotes or
     * backslashes (keys.h name rules; ZeroMQ endpoint syntax). */
    /* The host lets `metafl status` tell whether a local kill(pid, 0) is
     * meaningful (not for a run dir shared out of a container or host). */
    char host[128] = "";
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    for (char *p = host; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-'))
            *p = '_';
    s_put(&b, "{\"pid\":%ld,\"host\":\"%s\",\"endpoint\":\"%s\",\"updated_unix_ms\":%llu,\"phase\":\"%s\","
              "\"secagg_phase\":%s%s%s,\"paused\":%s,\"round\":%u,\"rounds\":%u,\"rounds_done\":%u,\"rejections\":%llu,"
              "\"uploads_in_flight\":%zu,\"uploads_waiting\":%zu,\"sites\":[",
          (long)getpid(), host, endpoint ? endpoint : "", (unsigned long long)now_ms,
          mfl_engine_phase_name(mfl_round_engine_phase(e)),
          mfl_round_engine_secagg_phase(e) ? "\"" : "",
          mfl_round_engine_secagg_phase(e) ? mfl_round_engine_secagg_phase(e) : "null",
          mfl_round_engine_secagg_phase(e) ? "\"" : "",
          mfl_round_engine_paused(e) ? "true" : "false", mfl_round_engine_round(e), c->rounds,
          mfl_round_engine_rounds_done(e), (unsigned long long)mfl_round_engine_rejections(e),
          mfl_round_engine_uploads_in_flight(e), mfl_round_engine_uploads_waiting(e));
    size_t sel_cand = 0, sel_n = 0, sel_win = 0;
    const char *sel_rule = "";
    size_t sites_open = strlen(",\"sites\":[");
    if (!b.oom && b.len >= sites_open &&
        mfl_round_engine_selection(e, &sel_cand, &sel_n, &sel_win, &sel_rule)) {
        /* Rewind the opening of "sites": the selection object goes first. */
        b.len -= sites_open;
        b.buf[b.len] = '\0';
        s_put(&b, ",\"selection\":{\"candidate\":%zu,\"candidates\":%zu,\"winner\":%zu,"
                  "\"rule\":\"%s\"},\"sites\":[", sel_cand, sel_n, sel_win, sel_rule);
    }
    for (size_t i = 0; i < mfl_round_engine_n_sites(e); i++) {
        uint64_t seen = 0;
        bool connected = false;
        const char *id = mfl_round_engine_site_at(e, i, &seen, &connected);
        s_put(&b, "%s{\"id\":\"%s\",\"connected\":%s,\"last_seen_unix_ms\":%llu,\"selected\":%s",
              i ? "," : "", id, connected ? "true" : "false",
              (unsigned long long)(seen ? mfl_round_engine_wall_of(e, seen) : 0),
              mfl_round_engine_is_selected(e, id) ? "true" : "false");
        /* "reported": its update was accepted in the open round, or, while
         * the sites evaluate, its evaluation report arrived. */
        const mfl_engine_site_t *st = &e->sites[i];
        bool eval = e->phase == MFL_ENGINE_EVAL;
        s_put(&b, ",\"reported\":%s,\"eval_sent\":%s",
              (eval ? st->eval_reported : st->reported) ? "true" : "false",
              eval && st->eval_sent ? "true" : "false");
        /* Failures the site reported (or updates refused for good) and
         * revocation (issue 10 items 8, 11): the words are the site's, so
         * anything but printable ASCII without quotes becomes '?'. */
        uint32_t n_fail = 0;
        uint64_t fail_ms = 0;
        bool revoked = false;
        const char *why = mfl_round_engine_site_failure(e, i, &n_fail, &fail_ms, &revoked);
        char text[160];
        size_t k = 0;
        for (; why && k < sizeof text - 1 && why[k]; k++)
            text[k] = why[k] >= 0x20 && why[k] < 0x7f && why[k] != '"' && why[k] != '\\'
                          ? why[k]
                          : '?';
        text[k] = '\0';
        s_put(&b, ",\"revoked\":%s,\"failures\":%u,\"last_failure\":\"%s\","
                  "\"last_failure_unix_ms\":%llu}",
              revoked ? "true" : "false", n_fail, text, (unsigned long long)fail_ms);
    }
    s_put(&b, "],\"audit_error\":");
    const char *aerr = mfl_round_engine_audit_error(e);
    if (!aerr) {
        s_put(&b, "null");
    } else {
        /* An error text (paths, strerror): printable ASCII without quotes
         * or backslashes, so it needs no escaping. */
        char text[320];
        size_t k = 0;
        for (; k < sizeof text - 1 && aerr[k]; k++)
            text[k] = aerr[k] >= 0x20 && aerr[k] < 0x7f && aerr[k] != '"' && aerr[k] != '\\'
                          ? aerr[k]
                          : '?';
        text[k] = '\0';
        s_put(&b, "\"%s\"", text);
    }
    s_put(&b, ",");
    /* The model, so `metafl export RUN_DIR` can rebuild it from the run dir
     * alone (specs and algorithm names are plain ASCII). */
    /* The engine's setting: model selection may have put a candidate's there. */
    const mfl_learner_config_t *lc = &e->config.learner;
    /* "standardize": whether the setting scales with the consortium's pooled
     * statistics (so `metafl export RUN_DIR` knows to copy scaling.state). */
    s_put(&b, "\"model\":{\"spec\":\"%s\",\"algo\":\"%s\",\"relation\":\"%s\",\"loss\":\"%s\","
              "\"standardize\":\"%s\"},",
          lc->model_spec, mfl_algo_name(lc->algo), lc->relation_spec, mfl_loss_name(lc->loss),
          e->config.federated_scaling ? "federated" : "site");
    s_clock(&b, e, c, now_ms);
    s_put(&b, "\"last_round\":");
    const mfl_round_summary_t *m = mfl_round_engine_last_summary(e);
    if (!m) {
        s_put(&b, "null");
    } else {
        s_put(&b, "{\"round\":%u,\"attempt\":%u,\"selected\":%zu,\"accepted\":%zu,"
                  "\"rejected\":%zu,",
              m->round, m->attempt, m->n_selected, m->n_accepted, m->n_rejected);
        s_num(&b, "loss_before", m->loss_before);
        s_put(&b, ",");
        s_num(&b, "loss_after", m->loss_after);
        s_put(&b, ",");
        s_num(&b, "delta_norm", m->delta_norm);
        s_put(&b, ",");
        s_num(&b, "seconds", m->seconds);
        s_put(&b, ",\"at_deadline\":%s}", m->at_deadline ? "true" : "false");
    }
    s_put(&b, "}\n");
    if (b.oom) {
        free(b.buf);
        return NULL;
    }
    return b.buf;
}
