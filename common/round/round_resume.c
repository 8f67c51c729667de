/* What a start finds in the run directory (issue 10, items 6 and 9):
 * refusing to start from θ₀ on top of an earlier run's records, and
 * writing the records a crash left out between a checkpoint and its
 * close's records. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "round/round_engine_internal.h"

/* The coordinator's audit log, as far as a start needs it. */
typedef struct {
    uint64_t round;        /* the round asked about */
    uint64_t n_closed;     /* round_closed records, any round */
    bool opened;           /* round_opened for `round`: it ran here */
    bool closed;           /* round_closed for `round` */
    bool finished;         /* run_finished for `round` */
    uint64_t accepted;     /* update_accepted since the last round_opened of `round` */
} s_audit_hist_t;

static int s_audit_each(void *arg, size_t line_no, const mfl_audit_record_t *rec)
{
    (void)line_no;
    s_audit_hist_t *h = arg;
    if (rec->kind == MFL_AUDIT_ROUND_CLOSED) {
        h->n_closed++;
        h->closed = h->closed || rec->round == h->round;
    } else if (rec->kind == MFL_AUDIT_RUN_FINISHED && rec->round == h->round) {
        h->finished = true;
    } else if (rec->kind == MFL_AUDIT_ROUND_OPENED && rec->round == h->round) {
        h->opened = true;
        h->accepted = 0;
    } else if (rec->kind == MFL_AUDIT_UPDATE_ACCEPTED && rec->round == h->round) {
        h->accepted++;
    }
    return 0;
}

/* Reads the log at `path` if it exists (a torn or malformed tail ends the
 * scan: the writer repairs or refuses it when it opens the log). */
static void s_audit_scan(const char *path, uint64_t round, s_audit_hist_t *h)
{
    memset(h, 0, sizeof *h);
    h->round = round;
    struct stat st;
    if (!path[0] || stat(path, &st) != 0)
        return;
    char err[256];
    (void)mfl_audit_foreach(path, s_audit_each, h, err, sizeof err);
}

/* The metrics file: has it a round line (for `round`, or any if 0) and a
 * "finished" line for `round`? */
static void s_metrics_scan(const char *path, uint32_t round, bool *any_round, bool *has_round,
                           bool *finished)
{
    *any_round = *has_round = *finished = false;
    FILE *f = path[0] ? fopen(path, "r") : NULL;
    if (!f)
        return;
    char want[64], fin[64];
    snprintf(want, sizeof want, "{\"event\":\"round\",\"round\":%u,", round);
    snprintf(fin, sizeof fin, "{\"event\":\"finished\",\"round\":%u,", round);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        *any_round = *any_round || strncmp(line, "{\"event\":\"round\",", 17) == 0;
        *has_round = *has_round || strncmp(line, want, strlen(want)) == 0;
        *finished = *finished || strncmp(line, fin, strlen(fin)) == 0;
    }
    free(line);
    fclose(f);
}

int mfl_engine_check_fresh_start(mfl_round_engine_t *self, char *err, size_t errlen)
{
    const mfl_coord_config_t *c = &self->config;
    char names[512] = "";
    long n_ck = mfl_checkpoint_files(c->checkpoint_dir, names, sizeof names);
    s_audit_hist_t h;
    s_audit_scan(c->audit_log, 0, &h);
    bool any_round = false, unused1, unused2;
    s_metrics_scan(c->metrics_file, 0, &any_round, &unused1, &unused2);
    if (n_ck <= 0 && h.n_closed == 0 && !any_round)
        return 0; /* a new run */
    char found[2048];
    if (n_ck > 0)
        snprintf(found, sizeof found, "%ld checkpoint file(s) in %.400s, none of which loads (%.500s; "
                 "the log above says why)", n_ck, c->checkpoint_dir, names);
    else
        snprintf(found, sizeof found, "no checkpoint in %.400s, but %s%.400s%s%s%s%.400s%s",
                 c->checkpoint_dir, h.n_closed ? "the audit log " : "",
                 h.n_closed ? c->audit_log : "", h.n_closed ? " records closed rounds" : "",
                 h.n_closed && any_round ? " and " : "",
                 any_round ? "the metrics file " : "", any_round ? c->metrics_file : "",
                 any_round ? " has round lines" : "");
    mfl_errf(err, errlen,
             "refusing to start: %.1500s. Starting again from the initial model here would "
             "append a second run to this one's records. Either restore a checkpoint of this "
             "run into %.400s (it resumes from it), or start a new run in a new run directory "
             "(set coordinator.run_dir, or output.checkpoint_dir, output.audit_log and "
             "output.metrics, to paths not used yet)", found, c->checkpoint_dir);
    return -1;
}

/* The metrics line a close writes, rebuilt from a checkpoint: what the
 * checkpoint does not hold (losses, timings, counts of the selection) is
 * -1 / 0, and "reconciled" says so. */
static void s_metrics_reconciled(mfl_round_engine_t *self, uint64_t accepted)
{
    static const char digits[] = "0123456789abcdef";
    char hash[65];
    for (size_t i = 0; i < 32; i++) {
        hash[2 * i] = digits[self->theta_hash[i] >> 4];
        hash[2 * i + 1] = digits[self->theta_hash[i] & 15];
    }
    hash[64] = '\0';
    fprintf(self->metrics,
            "{\"event\":\"round\",\"round\":%u,\"rounds\":%u,\"attempt\":0,\"selected\":0,"
            "\"accepted\":%" PRIu64 ",\"rejected\":0,\"loss_before\":-1,\"loss_after\":-1,"
            "\"weight\":0,\"delta_norm\":-1,\"seconds\":0,\"wall_seconds\":0,"
            "\"at_deadline\":false,\"reconciled\":true,\"theta_blake2b\":\"%s\"}\n",
            self->rounds_done, self->config.rounds, accepted, hash);
    fflush(self->metrics);
}

int mfl_engine_reconcile(mfl_round_engine_t *self, const char *ck_path, char *err,
                         size_t errlen)
{
    uint32_t r = self->rounds_done;
    s_audit_hist_t h;
    s_audit_scan(self->config.audit_log, r, &h);
    bool any_round, has_round, finished_metrics;
    s_metrics_scan(self->config.metrics_file, r, &any_round, &has_round, &finished_metrics);
    /* Only a round that ran here can have lost its records here: a
     * checkpoint copied into a new run directory (to evaluate it, as the
     * demo's join session does) has no round_opened in the new log, and
     * nothing is written for it. Without an audit log, the metrics file's
     * own round lines are the evidence. */
    bool ran_here = self->audit ? h.opened : any_round;
    if (self->audit && ran_here && !h.closed) {
        mfl_audit_record_t rec;
        mfl_audit_record_init(&rec, MFL_AUDIT_ROUND_CLOSED, r, NULL);
        rec.has_delta_hash = true;
        memcpy(rec.delta_hash, self->theta_hash, 32);
        rec.n = h.accepted;
        snprintf(rec.reason, sizeof rec.reason,
                 "reconciled at restart from %.150s (the close's record was lost in a crash)",
                 ck_path);
        char aerr[300];
        if (mfl_audit_append(self->audit, &rec, NULL, aerr, sizeof aerr) < 0 ||
            mfl_audit_sync(self->audit, aerr, sizeof aerr) < 0) {
            mfl_errf(err, errlen, "round %u: cannot write its missing round_closed record: %s",
                     r, aerr);
            return -1;
        }
        mfl_warn("round %u: checkpoint %s had no round_closed record (a crash after the "
                 "checkpoint); written now", r, ck_path);
    }
    if (self->metrics && ran_here && !has_round) {
        s_metrics_reconciled(self, h.accepted);
        mfl_warn("round %u: checkpoint %s had no metrics line (a crash after the checkpoint); "
                 "written now, marked \"reconciled\"", r, ck_path);
    }
    if (r >= self->config.rounds && (h.finished || finished_metrics)) {
        mfl_info("the run already finished (%u rounds and the final evaluation are on "
                 "record); nothing to do", r);
        self->phase = MFL_ENGINE_DONE;
        self->finish_pending = true;
    }
    return 0;
}

void mfl_engine_record_finished(mfl_round_engine_t *self)
{
    mfl_audit_record_t rec;
    mfl_audit_record_init(&rec, MFL_AUDIT_RUN_FINISHED, self->rounds_done, NULL);
    rec.has_delta_hash = true;
    memcpy(rec.delta_hash, self->theta_hash, 32);
    snprintf(rec.reason, sizeof rec.reason, "%u rounds and the final evaluation done",
             self->rounds_done);
    (void)mfl_engine_audit_append(self, &rec, false);
    if (self->metrics) {
        fprintf(self->metrics, "{\"event\":\"finished\",\"round\":%u,\"rounds\":%u}\n",
                self->rounds_done, self->config.rounds);
        fflush(self->metrics);
    }
}
