/* The coordinator daemon: wire events → round engine → wire sends. */
#include "coordinator.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "coord_wire.h"
#include "core/clock.h"
#include "core/file_writer.h"
#include "core/fileio.h"
#include "core/log.h"
#include "round/round_engine.h"
#include "round/schema_gate.h"
#include "round/status.h"
#include "round/upload_gate.h"
#include "wire/keys.h"
#include "fed/quant.h"
#include "meta/learner.h"

#include "coord_chunks.h"

#define STATUS_EVERY_MS 1000
#define DRAIN_MS 500 /* after the run: let the Bye messages leave */

struct mfl_coordinator {
    mfl_coord_config_t config;
    mfl_coord_wire_t *wire;
    mfl_round_engine_t *engine;
    mfl_schema_gate_t *schema; /* the consortium's data schema (round/schema_gate.h) */
    char run_id[80];
    uint64_t last_status_ms;  /* monotonic, like every interval here */
    uint64_t finished_ms;     /* monotonic; 0 while running */
    bool status_dirty;
    mfl_prom_t *prom;         /* output.prometheus_file, NULL when off */
    mfl_upload_spool_t *spool; /* chunked uploads in progress (coord_chunks.h) */
    mfl_file_writer_t *status_writer; /* status.json, written off the event loop */
};

/* ---- engine sink: engine decisions → wire ---------------------------- */

static int s_sink_task(void *ctx, const char *site, const mfl_round_task_t *task,
                       const mfl_tensor_t *t, size_t n)
{
    mfl_coordinator_t *self = ctx;
    char err[256];
    if (mfl_coord_wire_send_round_task(self->wire, site, task, t, n, err, sizeof err) < 0) {
        mfl_warn("site %s: round task not sent: %s", site, err);
        return -1;
    }
    return 0;
}

static int s_sink_eval(void *ctx, const char *site, const mfl_eval_task_t *task,
                       const mfl_tensor_t *t, size_t n)
{
    mfl_coordinator_t *self = ctx;
    char err[256];
    if (mfl_coord_wire_send_eval_task(self->wire, site, task, t, n, err, sizeof err) < 0) {
        mfl_warn("site %s: eval task not sent: %s", site, err);
        return -1;
    }
    return 0;
}

static void s_sink_reject(void *ctx, const char *site, mfl_reject_t reason,
                          uint32_t round, const char *text)
{
    mfl_coordinator_t *self = ctx;
    char err[256];
    mfl_prom_rejected(self->prom, (int)reason);
    if (mfl_coord_wire_send_reject(self->wire, site, reason, round, text, err, sizeof err) < 0)
        mfl_debug("site %s: reject not sent: %s", site, err);
}

static int s_sink_grant(void *ctx, const char *site, uint32_t round, const uint8_t *nonce,
                        size_t nonce_len)
{
    mfl_coordinator_t *self = ctx;
    char err[256];
    if (mfl_coord_wire_send_grant(self->wire, site, round, nonce, nonce_len, err, sizeof err) <
        0) {
        mfl_debug("site %s: upload grant not sent: %s", site, err);
        return -1;
    }
    return 0;
}

static void s_sink_closed(void *ctx, const mfl_round_summary_t *m)
{
    mfl_prom_round_closed(((mfl_coordinator_t *)ctx)->prom, m);
    ((mfl_coordinator_t *)ctx)->status_dirty = true;
}

static void s_sink_theta(void *ctx, const mfl_tensor_t *t, const uint8_t *hashes,
                         size_t n)
{
    mfl_coordinator_t *self = ctx;
    /* θ moved on: every update of the round is folded, including the one
     * whose event is being handled (if it closed the round) */
    mfl_coord_wire_release_tensors(self->wire);
    mfl_coord_wire_prepare_theta(self->wire, t, hashes, n);
}

/* Bye to every connected site, so its log says why the coordinator went
 * away instead of a bare lost connection. Sites stay up on Bye and rejoin
 * a restarted coordinator on their own. */
static void s_bye_all(mfl_coordinator_t *self, const char *why)
{
    for (size_t i = 0; i < mfl_round_engine_n_sites(self->engine); i++) {
        bool connected = false;
        const char *site = mfl_round_engine_site_at(self->engine, i, NULL, &connected);
        char err[256];
        if (connected && mfl_coord_wire_send_bye(self->wire, site, why, err, sizeof err) < 0)
            mfl_debug("site %s: bye not sent: %s", site, err);
    }
}

static void s_sink_finished(void *ctx)
{
    mfl_coordinator_t *self = ctx;
    self->finished_ms = mfl_round_engine_now(self->engine);
    self->status_dirty = true;
    mfl_engine_phase_t ph = mfl_round_engine_phase(self->engine);
    s_bye_all(self, ph == MFL_ENGINE_DONE      ? "run complete"
                    : ph == MFL_ENGINE_ABORTED ? "run aborted by the operator"
                                               : "run stopped");
}

/* A site's secure-aggregation message to the engine, a masked input's
 * words as the runs they arrived in (folded where they lie). */
static void s_secagg_msg(mfl_coordinator_t *self, const mfl_wire_event_t *ev, uint64_t now)
{
    mfl_secagg_run_t few[16], *runs = few;
    const size_t n = ev->secagg_runs ? ev->secagg_n_runs : 0;
    if (n > sizeof few / sizeof few[0] && !(runs = malloc(n * sizeof *runs))) {
        char err[256];
        mfl_coord_wire_send_reject(self->wire, ev->site, MFL_REJECT_TOO_LARGE,
                                   mfl_round_engine_round(self->engine),
                                   "out of memory for a masked input's frames", err, sizeof err);
        return;
    }
    for (size_t i = 0; i < n; i++)
        runs[i] = (mfl_secagg_run_t){ev->secagg_runs[i].data, (size_t)ev->secagg_runs[i].count};
    mfl_round_engine_secagg_msg_runs(self->engine, ev->site, ev->secagg, n ? runs : NULL, n,
                                     ev->secagg_word_bits, ev->secagg_hash, now);
    if (runs != few)
        free(runs);
}

static int s_secagg_key(void *ctx, const char *site, uint8_t pk[32])
{
    mfl_coordinator_t *self = ctx;
    return mfl_coord_wire_site_key(self->wire, site, pk);
}

static int s_secagg_send(void *ctx, const char *site, const mfl_secagg_wire_t *msg)
{
    mfl_coordinator_t *self = ctx;
    char err[256];
    self->status_dirty = true; /* a phase moved */
    if (mfl_coord_wire_send_secagg(self->wire, site, msg, err, sizeof err) < 0) {
        mfl_debug("site %s: secure aggregation message not sent: %s", site, err);
        return -1;
    }
    return 0;
}

/* ---- wire events → engine ------------------------------------------- */

/* "MAJOR.MINOR" of a version string; -1 if it does not start that way. */
static int s_major_minor(const char *v, unsigned *major, unsigned *minor)
{
    return v && sscanf(v, "%u.%u", major, minor) == 2 ? 0 : -1;
}

/* Before 1.0 a minor release may change what a round computes, so sites
 * must run the coordinator's MAJOR.MINOR; unparsable versions are let
 * through (the protocol version, checked by the wire layer, still holds). */
static bool s_version_ok(const char *theirs, char *text, size_t len)
{
    unsigned a, b, c, d;
    if (s_major_minor(theirs, &a, &b) < 0 || s_major_minor(MFL_VERSION, &c, &d) < 0)
        return true;
    if (a == c && b == d)
        return true;
    snprintf(text, len, "site runs metafl %s but the coordinator runs %s: install %u.%u.x on "
             "the site", theirs, MFL_VERSION, c, d);
    return false;
}

/* The consortium's schema (from our config, never from a Hello) decides;
 * true if the site was refused. */
static bool s_schema_refused(mfl_coordinator_t *self, const char *site,
                             const mfl_wire_event_t *ev)
{
    mfl_schema_hello_t sh = {
        .hash = ev->hello.schema_hash, .hash_len = ev->hello.schema_hash_len,
        .text = ev->hello.schema_text, .text_len = ev->hello.schema_text_len,
        .n_features = ev->hello.n_features, .n_classes = ev->hello.n_classes,
        .class_counts = ev->hello.class_counts, .n_class_counts = ev->hello.n_class_counts,
    };
    char text[512], err[256];
    mfl_schema_gate_verdict_t v = mfl_schema_gate_check(self->schema, &sh, text, sizeof text);
    if (v == MFL_SCHEMA_GATE_OK)
        return false;
    char msg[600];
    snprintf(msg, sizeof msg, "site %s: %s", site, text);
    mfl_warn("refused Hello: %s", msg);
    mfl_coord_wire_send_reject(self->wire, site,
                               v == MFL_SCHEMA_GATE_DATA ? MFL_REJECT_DATA : MFL_REJECT_SCHEMA,
                               0, msg, err, sizeof err);
    return true;
}

static void s_on_hello(mfl_coordinator_t *self, const mfl_wire_event_t *ev, uint64_t now)
{
    char err[256], vtext[256];
    if (!s_version_ok(ev->hello.software_version, vtext, sizeof vtext)) {
        mfl_warn("refused Hello from site %s: %s", ev->site, vtext);
        mfl_coord_wire_send_reject(self->wire, ev->site, MFL_REJECT_VERSION, 0,
                                   vtext, err, sizeof err);
        return;
    }
    if (s_schema_refused(self, ev->site, ev))
        return;
    if (self->config.secagg_enabled && !ev->hello.secagg) {
        /* It would answer a round with its Δ in clear (refused, but seen). */
        snprintf(vtext, sizeof vtext, "this run uses secure aggregation and site %s does not "
                 "offer it (its software is older, or its config has no "
                 "secure_aggregation.roster; docs/SECAGG.md)", ev->site);
        mfl_warn("refused Hello from site %s: %s", ev->site, vtext);
        mfl_coord_wire_send_reject(self->wire, ev->site, MFL_REJECT_VERSION, 0, vtext, err,
                                   sizeof err);
        return;
    }
    /* 0: a DP site withholding its row count (docs/PRIVACY.md) */
    char rows[48] = "training rows not sent";
    if (ev->hello.n_train)
        snprintf(rows, sizeof rows, "%llu training rows", (unsigned long long)ev->hello.n_train);
    mfl_info("site %s says hello (software %s, %s)", ev->site,
             ev->hello.software_version[0] ? ev->hello.software_version : "?", rows);
    if (mfl_coord_wire_send_welcome(self->wire, ev->site, mfl_round_engine_round(self->engine),
                                    self->config.heartbeat_ms, self->run_id, err,
                                    sizeof err) < 0)
        mfl_warn("site %s: welcome not sent: %s", ev->site, err);
    mfl_round_engine_site_encodings(self->engine, ev->site, ev->hello.encodings);
    mfl_round_engine_site_broadcast(self->engine, ev->site, ev->hello.broadcasts,
                                    ev->hello.broadcast_base);
    mfl_round_engine_site_hello(self->engine, ev->site, ev->hello.n_train, now);
    self->status_dirty = true;
}

static void s_on_event(mfl_coordinator_t *self, const mfl_wire_event_t *ev, uint64_t now)
{
    if (ev->kind == MFL_MSG_HELLO || ev->kind == MFL_MSG_BYE) {
        /* a new session, or none: an upload in progress will not go on */
        if (mfl_upload_spool_drop(self->spool, ev->site))
            mfl_info("site %s: chunked upload in progress dropped (the site %s)", ev->site,
                     ev->kind == MFL_MSG_HELLO ? "reconnected" : "said bye");
    }
    if (ev->kind == MFL_MSG_HELLO) {
        s_on_hello(self, ev, now);
        return;
    }
    /* A site takes part only after a Hello we accepted (a refused site's
     * Bye or a stray update must not make it a member). */
    if (!mfl_round_engine_knows(self->engine, ev->site)) {
        char err[256];
        if (ev->kind == MFL_MSG_UPDATE || ev->kind == MFL_MSG_UPLOAD_READY ||
            ev->kind == MFL_MSG_UPDATE_BEGIN || ev->kind == MFL_MSG_UPDATE_CHUNK ||
            ev->kind == MFL_MSG_SITE_FAILURE || ev->kind == MFL_MSG_EVAL_REPORT) {
            mfl_warn("site %s: %s before an accepted Hello; rejected", ev->site,
                     ev->kind == MFL_MSG_UPDATE ? "update" : "eval report");
            mfl_coord_wire_send_reject(self->wire, ev->site,
                                       MFL_REJECT_BAD_MESSAGE, 0,
                                       "send Hello first", err, sizeof err);
        } else {
            mfl_debug("site %s: message before an accepted Hello ignored", ev->site);
        }
        return;
    }
    switch (ev->kind) {
    case MFL_MSG_UPDATE_BEGIN:
        mfl_coord_chunks_begin(self->engine, self->spool, ev, now);
        break;
    case MFL_MSG_UPDATE_CHUNK:
        mfl_coord_chunks_chunk(self->engine, self->spool, ev, now);
        break;
    case MFL_MSG_UPDATE:
        if (mfl_coord_chunks_refuse_whole(self->engine, ev))
            break;
        mfl_round_engine_update(self->engine, ev->site, ev->update_header, ev->tensors,
                                ev->n_tensors, ev->signed_header, ev->signed_header_len,
                                ev->signature, ev->signature_len, now);
        break;
    case MFL_MSG_UPLOAD_READY:
        mfl_round_engine_upload_ready(self->engine, ev->site, ev->upload_ready.round,
                                      ev->upload_ready.nonce, ev->upload_ready.nonce_len,
                                      ev->upload_ready.update_bytes, now);
        break;
    case MFL_MSG_SITE_FAILURE:
        mfl_round_engine_site_seen(self->engine, ev->site, now);
        /* a broadcast difference the site could not apply: the model in
         * full, not a failure (once: the site then holds no base) */
        if (ev->site_failure.need_model && !ev->site_failure.evaluation &&
            mfl_round_engine_site_need_model(self->engine, ev->site, ev->site_failure.round,
                                             ev->site_failure.nonce,
                                             ev->site_failure.nonce_len,
                                             ev->site_failure.reason) == 0)
            break;
        mfl_round_engine_site_withdraw(self->engine, ev->site, MFL_ENGINE_SITE_FAILED,
                                       ev->site_failure.evaluation, ev->site_failure.round,
                                       ev->site_failure.nonce, ev->site_failure.nonce_len,
                                       ev->site_failure.reason, now);
        self->status_dirty = true;
        break;
    case MFL_MSG_EVAL_REPORT:
        mfl_round_engine_eval_report(self->engine, ev->site, ev->eval_report, now);
        break;
    case MFL_MSG_BYE:
        mfl_info("site %s says bye: %s", ev->site, ev->text ? ev->text : "");
        /* Seen first, so the wire's last-seen time of this very message
         * does not bring the site back in s_sync_liveness. */
        mfl_round_engine_site_seen(self->engine, ev->site, now);
        mfl_round_engine_site_gone(self->engine, ev->site);
        self->status_dirty = true;
        break;
    case MFL_MSG_REJECT:
        mfl_warn("site %s rejected our message: %s", ev->site, ev->text ? ev->text : "");
        mfl_round_engine_site_seen(self->engine, ev->site, now);
        break;
    case MFL_MSG_SECAGG_KEYS:
    case MFL_MSG_SECAGG_SHARES:
    case MFL_MSG_SECAGG_MASKED:
    case MFL_MSG_SECAGG_SIGNOFF:
    case MFL_MSG_SECAGG_REVEALS:
        if (!ev->secagg) {
            char err[256];
            mfl_warn("site %s: secure aggregation message refused: %s", ev->site,
                     ev->text ? ev->text : "");
            mfl_round_engine_site_seen(self->engine, ev->site, now);
            mfl_coord_wire_send_reject(self->wire, ev->site, MFL_REJECT_BAD_MESSAGE,
                                       mfl_round_engine_round(self->engine),
                                       ev->text ? ev->text : "", err, sizeof err);
            break;
        }
        s_secagg_msg(self, ev, now);
        /* Status shows the phase, which moves when the engine sends the
         * next phase's messages (s_secagg_send marks it); the five small
         * messages per site and phase in between change nothing it shows
         * but "last seen" (the 1 s cadence): rewriting status.json for
         * each cost a file create and rename per message. */
        if (ev->kind == MFL_MSG_SECAGG_MASKED)
            self->status_dirty = true;
        break;
    default:
        mfl_round_engine_site_seen(self->engine, ev->site, now);
        break;
    }
}

/* Heartbeats are consumed by the wire layer; carry its liveness over. */
static void s_sync_liveness(mfl_coordinator_t *self)
{
    for (size_t i = 0; i < mfl_round_engine_n_sites(self->engine); i++) {
        uint64_t seen = 0;
        bool connected = false;
        const char *site = mfl_round_engine_site_at(self->engine, i, &seen, &connected);
        uint64_t wire_seen = mfl_coord_wire_last_seen(self->wire, site);
        if (wire_seen > seen)
            mfl_round_engine_site_seen(self->engine, site, wire_seen);
    }
}

static void s_reload_allow_list(mfl_coordinator_t *self);

static void s_poll_control(mfl_coordinator_t *self)
{
    char path[MFL_COORD_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/control", self->config.run_dir);
    char *text = NULL;
    size_t len = 0;
    char err[256];
    if (access(path, F_OK) != 0 || mfl_file_read_all(path, 256, &text, &len, err, sizeof err) < 0)
        return;
    if (unlink(path) != 0)
        mfl_warn("%s: cannot remove after reading: %s", path, strerror(errno));
    if (strncmp(text, "pause", 5) == 0)
        mfl_round_engine_pause(self->engine, true);
    else if (strncmp(text, "resume", 6) == 0)
        mfl_round_engine_pause(self->engine, false);
    else if (strncmp(text, "abort", 5) == 0)
        mfl_round_engine_abort(self->engine);
    else if (strncmp(text, "reload", 6) == 0)
        s_reload_allow_list(self);
    else
        mfl_warn("%s: unknown command '%.32s' (pause, resume, abort, reload)", path, text);
    free(text);
    self->status_dirty = true;
}

/* Renders the status and hands it to the writer thread (wait: and waits
 * until it is in place). */
static int s_write_status(mfl_coordinator_t *self, bool wait, char *err, size_t errlen)
{
    char *json = mfl_status_render(self->engine, &self->config,
                                   mfl_coord_wire_endpoint(self->wire), mfl_clock_wall_ms());
    if (!json) {
        mfl_errf(err, errlen, "out of memory rendering the status");
        return -1;
    }
    /* A view rebuilt every second from the engine: atomic for `metafl
     * status`, but not fsync'd (that cost two fsyncs per event on the
     * round's critical path); after a power loss it may be old, empty or
     * missing until the restarted coordinator rewrites it. The rename runs
     * on the writer's thread: on ext4 a rename over the old file starts
     * the new one's writeback, which held the event loop 0.1-12 ms at
     * every round's open and close on a busy disk (docs/PERFORMANCE.md). */
    int rc = self->status_writer
                 ? mfl_file_writer_post(self->status_writer, json, strlen(json), err, errlen)
                 : mfl_file_replace(self->config.status_file, json, strlen(json), err, errlen);
    if (rc == 0 && wait && self->status_writer)
        rc = mfl_file_writer_flush(self->status_writer, err, errlen);
    free(json);
    if (rc == 0 && self->prom) {
        mfl_prom_wire_t w;
        mfl_coord_wire_counters(self->wire, &w);
        rc = mfl_prom_write(self->prom, self->engine, &self->config, &w, mfl_clock_wall_ms(),
                            err, errlen);
    }
    return rc;
}

int mfl_coordinator_write_status(mfl_coordinator_t *self, char *err, size_t errlen)
{
    return s_write_status(self, true, err, errlen);
}

int mfl_coordinator_step(mfl_coordinator_t *self, int timeout_ms, char *err, size_t errlen)
{
    mfl_wire_event_t ev;
    int rc = mfl_coord_wire_recv(self->wire, timeout_ms, &ev, err, errlen);
    if (rc < 0)
        return -1;
    /* Monotonic: deadlines, timeouts and the status cadence are intervals
     * (a step of the system clock must not close or freeze a round). */
    uint64_t now = mfl_round_engine_now(self->engine);
    if (rc == 1) {
        s_on_event(self, &ev, now);
        mfl_coord_wire_release(self->wire);
    }
    s_sync_liveness(self);
    mfl_round_engine_tick(self->engine, now);
    mfl_coord_chunks_prune(self->engine, self->spool);
    if (now >= self->last_status_ms + STATUS_EVERY_MS || self->status_dirty) {
        s_poll_control(self);
        char serr[512];
        if (s_write_status(self, false, serr, sizeof serr) < 0)
            mfl_warn("status: %s", serr);
        self->last_status_ms = now;
        self->status_dirty = false;
    }
    if (self->finished_ms && now >= self->finished_ms + DRAIN_MS)
        return 1;
    return 0;
}

/* After a reload: every known site whose key left the allow-list loses its
 * session now (connections closed) and its place in the open round or
 * evaluation, with a site_revoked audit record (issue 10 item 8). */
static void s_revoke_removed(mfl_coordinator_t *self)
{
    uint64_t now = mfl_round_engine_now(self->engine);
    for (size_t i = 0; i < mfl_round_engine_n_sites(self->engine); i++) {
        const char *site = mfl_round_engine_site_at(self->engine, i, NULL, NULL);
        bool revoked = false;
        (void)mfl_round_engine_site_failure(self->engine, i, NULL, NULL, &revoked);
        if (revoked || mfl_coord_wire_site_allowed(self->wire, site))
            continue;
        int cut = mfl_coord_wire_drop_site(self->wire, site, "its key was revoked");
        mfl_round_engine_site_withdraw(self->engine, site, MFL_ENGINE_SITE_REVOKED, false, 0,
                                       NULL, 0, "key removed from the allow-list", now);
        mfl_info("site %s: revoked (%d connection(s) closed)", site, cut);
        self->status_dirty = true;
    }
}

/* SIGHUP (or "reload" in RUN_DIR/control): re-read the allow-list
 * directory and say who is admitted now, so an operator adding or
 * revoking a hospital sees the effect in the log; revoked sites leave at
 * once. */
static void s_reload_allow_list(mfl_coordinator_t *self)
{
    char err[512];
    if (mfl_coord_wire_reload(self->wire, err, sizeof err) < 0) {
        mfl_error("allow-list reload failed, the previous list stays in force: %s", err);
        return;
    }
    mfl_allow_list_t *list = mfl_allow_list_load(self->config.allow_dir, err, sizeof err);
    if (!list) {
        mfl_info("allow-list reloaded from %s", self->config.allow_dir);
        return;
    }
    char names[1024] = "";
    size_t used = 0, n = mfl_allow_list_size(list);
    for (size_t i = 0; i < n && used < sizeof names; i++)
        used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                                 mfl_allow_list_at(list, i)->name);
    mfl_info("allow-list reloaded from %s: %zu site(s) admitted: %s", self->config.allow_dir,
             n, n ? names : "none");
    mfl_allow_list_destroy(&list);
    s_revoke_removed(self);
}

int mfl_coordinator_run(mfl_coordinator_t *self, volatile sig_atomic_t *stop,
                        volatile sig_atomic_t *reload)
{
    char err[512];
    while (!*stop) {
        if (reload && *reload) {
            *reload = 0;
            s_reload_allow_list(self);
        }
        int rc = mfl_coordinator_step(self, 100, err, sizeof err);
        if (rc < 0) {
            mfl_error("%s", err);
            return 1;
        }
        if (rc == 1)
            return mfl_round_engine_phase(self->engine) == MFL_ENGINE_DONE ? 0 : 1;
    }
    /* A stop asked for is a clean stop (exit 0): the last completed round
     * is on disk and a restart resumes from it. */
    mfl_info("stopping on a signal after %u rounds (the last checkpoint is kept; a restart "
             "resumes from it)", mfl_round_engine_rounds_done(self->engine));
    /* Tell the sites, then give the Byes DRAIN_MS to leave (the socket
     * drops queued sends when closed). Messages arriving meanwhile are
     * dropped unread: the engine is not ticked again. */
    s_bye_all(self, "coordinator stopped (signal); it resumes from its last checkpoint when "
                    "restarted");
    uint64_t until = mfl_clock_mono_ms() + DRAIN_MS;
    for (uint64_t now = mfl_clock_mono_ms(); now < until; now = mfl_clock_mono_ms()) {
        mfl_wire_event_t ev;
        int rc = mfl_coord_wire_recv(self->wire, (int)(until - now), &ev, err, sizeof err);
        if (rc < 0)
            break;
        if (rc == 1)
            mfl_coord_wire_release(self->wire);
    }
    return 0;
}

mfl_coordinator_t *mfl_coordinator_new(const mfl_coord_config_t *config, char *err,
                                       size_t errlen)
{
    mfl_coordinator_t *self = calloc(1, sizeof *self);
    if (!self) {
        mfl_errf(err, errlen, "out of memory");
        return NULL;
    }
    self->config = *config;
    /* The consortium's schema, checked against the model before anything binds. */
    self->schema = mfl_schema_gate_new(config, err, errlen);
    if (!self->schema)
        goto out_fail;
    if (!mfl_schema_gate_has_schema(self->schema))
        mfl_info("no data.schema in %s: sites are checked for the model's feature count and "
                 "classes only (declare the consortium's schema file: docs/DATA.md)",
                 config->file);
    snprintf(self->run_id, sizeof self->run_id, "seed-%llu", (unsigned long long)config->seed);
    if (mfl_mkdir_p(config->run_dir, 0700, err, errlen) < 0)
        goto out_fail;
    if (chmod(config->run_dir, 0700) != 0) {
        mfl_errf(err, errlen, "%s: chmod 0700: %s", config->run_dir, strerror(errno));
        goto out_fail;
    }
    if (!config->key_file[0] || !config->allow_dir[0]) {
        mfl_errf(err, errlen, "%s: coordinator.key and coordinator.allow_dir are required to "
                 "run the daemon", config->file);
        goto out_fail;
    }
    /* The message limit follows the model unless the file sets it: the
     * learner's state size, from a throw-away learner (its buffers are
     * allocated lazily, so this costs no 4·P of memory). */
    size_t n_state = 0;
    /* With model selection, the largest model any candidate trains. */
    size_t n_models = config->selection.enabled ? config->selection.n_candidates : 0;
    for (size_t i = 0; i <= n_models; i++) {
        char sub[256];
        const mfl_learner_config_t *lc =
            i < n_models ? &config->selection.candidates[i].learner : &config->learner;
        mfl_learner_t *l = mfl_learner_new(lc, 1, sub, sizeof sub);
        if (l && mfl_learner_n_state(l) > n_state)
            n_state = mfl_learner_n_state(l);
        mfl_learner_destroy(&l);
    }
    size_t mmb = mfl_coord_config_message_bytes(config, n_state);
    if (mmb != config->max_message_bytes)
        mfl_info("limits.max_message_bytes: %zu bytes for a model of %zu parameters", mmb,
                 n_state);
    self->wire = mfl_coord_wire_new(config->listen, config->key_file, config->allow_dir, mmb,
                                    config->heartbeat_ms, err, errlen);
    if (!self->wire)
        goto out_fail;
    /* chunked uploads are spooled in the run directory (0700, made above) */
    self->spool = mfl_upload_spool_new(config->run_dir, err, errlen);
    if (!self->spool)
        goto out_fail;
    mfl_engine_sink_t sink = {self, s_sink_task, s_sink_eval, s_sink_reject, s_sink_closed,
                              NULL, s_sink_finished};
    self->engine = mfl_round_engine_new(config, &sink, mfl_coord_wire_name(self->wire),
                                        mfl_coord_wire_sign_sk(self->wire), err, errlen);
    if (!self->engine)
        goto out_fail;
    mfl_round_engine_on_theta(self->engine, s_sink_theta, self);
    if (config->secagg_enabled) { /* the engine drives the phases (docs/SECAGG.md) */
        mfl_engine_secagg_io_t io = {self, s_secagg_key, s_secagg_send};
        mfl_round_engine_secagg_io(self->engine, &io);
    }
    /* Sites send their Δ only when granted: the daemon buffers at most
     * rounds.max_concurrent_uploads whole updates (docs/WIRE.md). */
    if (mfl_round_engine_flow_control(self->engine, s_sink_grant, self,
                                      MFL_UPLOAD_GATE_SMALL_BYTES) < 0) {
        mfl_errf(err, errlen, "out of memory");
        goto out_fail;
    }
    if (config->prometheus_file[0] && !(self->prom = mfl_prom_new(config->prometheus_file))) {
        mfl_errf(err, errlen, "out of memory");
        goto out_fail;
    }
    if (config->status_file[0] &&
        !(self->status_writer = mfl_file_writer_new(config->status_file, err, errlen)))
        goto out_fail;
    mfl_info("listening on %s; %u rounds, waiting for %u site(s)",
             mfl_coord_wire_endpoint(self->wire), config->rounds, config->wait_for_sites);
    self->status_dirty = true;
    return self;
out_fail:
    mfl_coordinator_destroy(&self);
    return NULL;
}

void mfl_coordinator_destroy(mfl_coordinator_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_coordinator_t *self = *self_p;
    if (self->engine) {
        char err[256];
        if (mfl_coordinator_write_status(self, err, sizeof err) < 0)
            mfl_debug("status: %s", err);
    }
    mfl_file_writer_destroy(&self->status_writer);
    mfl_round_engine_destroy(&self->engine);
    mfl_coord_wire_destroy(&self->wire);
    mfl_schema_gate_destroy(&self->schema);
    mfl_prom_destroy(&self->prom);
    mfl_upload_spool_destroy(&self->spool);
    free(self);
    *self_p = NULL;
}

const char *mfl_coordinator_endpoint(const mfl_coordinator_t *self)
{
    return mfl_coord_wire_endpoint(self->wire);
}
