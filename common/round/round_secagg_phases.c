/* The round engine drives secure aggregation's phases over a transport
 * (round_engine.h, "Secure aggregation over a transport"; docs/SECAGG.md):
 * one mfl_secagg_server_t per attempt, the phase deadlines, what goes to
 * which site after each phase, the audit records, and the hand-over of the
 * unmasked sum to mfl_round_engine_secure_sum (round_secagg.c). */
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "round/round_engine_internal.h"
#include "secagg/secagg_local.h"
#include "secagg/secagg_server.h"
#include "wire/secagg_wire.h"

#define S_MAX MFL_SECAGG_MAX_SITES

struct mfl_engine_secagg {
    mfl_secagg_server_t *server;      /* NULL: no attempt in flight */
    mfl_secagg_params_t params;
    char ids[S_MAX][MFL_ENGINE_SITE_MAX]; /* index i + 1 → site id (id order) */
    bool expect[S_MAX + 1];           /* sites the current phase waits for */
    bool got[S_MAX + 1];              /* ... and those that answered */
    uint64_t phase_deadline_ms;       /* monotonic */
    uint64_t phase_ms;                /* a non-masked phase's length */
    mfl_secagg_wire_t msg;            /* the next message out (about 100 KB: not on a stack) */
    mfl_secagg_share_ct_t boxes[S_MAX];
    void *spare;                      /* the last attempt's sum buffer, for the next */
    size_t spare_bytes;
};

static void s_alloc(mfl_round_engine_t *self)
{
    if (!self->secagg)
        self->secagg = calloc(1, sizeof *self->secagg);
}

void mfl_round_engine_secagg_io(mfl_round_engine_t *self, const mfl_engine_secagg_io_t *io)
{
    if (io)
        self->secagg_io = *io;
    else
        memset(&self->secagg_io, 0, sizeof self->secagg_io);
}

const char *mfl_round_engine_secagg_phase(const mfl_round_engine_t *self)
{
    if (!self->secagg || !self->secagg->server)
        return NULL;
    return mfl_secagg_phase_name(mfl_secagg_server_phase(self->secagg->server));
}

void mfl_engine_secagg_free(mfl_round_engine_t *self)
{
    if (self->secagg) {
        mfl_secagg_server_destroy(&self->secagg->server);
        free(self->secagg->spare);
    }
    free(self->secagg);
    self->secagg = NULL;
}

static uint32_t s_index_of(const mfl_engine_secagg_t *sa, const char *site)
{
    for (uint32_t i = 0; i < sa->params.n_sites; i++)
        if (strcmp(sa->ids[i], site) == 0)
            return i + 1;
    return 0;
}

/* The next message's head: kind, this attempt's round and nonce, no lists. */
static mfl_secagg_wire_t *s_msg(mfl_engine_secagg_t *sa, mfl_msg_kind_t kind)
{
    mfl_secagg_wire_t *m = &sa->msg;
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->round = (uint32_t)sa->params.scope.round;
    memcpy(m->nonce, sa->params.scope.nonce, MFL_SECAGG_NONCE_BYTES);
    return m;
}

static void s_send(mfl_round_engine_t *self, uint32_t index)
{
    mfl_engine_secagg_t *sa = self->secagg;
    if (self->secagg_io.send &&
        self->secagg_io.send(self->secagg_io.ctx, sa->ids[index - 1], &sa->msg) < 0)
        mfl_warn("round %u: secure aggregation: could not send %s's message to site %s (the "
                 "phase deadline decides)", self->round,
                 mfl_round_engine_secagg_phase(self), sa->ids[index - 1]);
}

/* The next phase waits for the sites in list[0..n) until `deadline_ms`. */
static void s_expect(mfl_engine_secagg_t *sa, const uint32_t *list, size_t n,
                     uint64_t deadline_ms)
{
    memset(sa->expect, 0, sizeof sa->expect);
    memset(sa->got, 0, sizeof sa->got);
    for (size_t i = 0; i < n; i++)
        sa->expect[list[i]] = true;
    sa->phase_deadline_ms = deadline_ms;
}

/* A secagg_phase audit record for the phase that just ended: its
 * transcript and the sites it accepted. 0, or -1 (audit down). */
static int s_audit_phase(mfl_round_engine_t *self, mfl_secagg_phase_t phase, const uint32_t *list,
                         size_t n)
{
    if (!self->audit)
        return 0;
    mfl_engine_secagg_t *sa = self->secagg;
    mfl_audit_record_t *rec = malloc(sizeof *rec);
    if (!rec)
        return -1;
    mfl_audit_record_init(rec, MFL_AUDIT_SECAGG_PHASE, self->round, NULL);
    memcpy(rec->nonce, self->nonce, MFL_ENGINE_NONCE_BYTES);
    rec->nonce_len = MFL_ENGINE_NONCE_BYTES;
    rec->n = n;
    rec->has_delta_hash = mfl_secagg_server_transcript(sa->server, phase, rec->delta_hash) == 0;
    size_t at = (size_t)snprintf(rec->reason, sizeof rec->reason, "%s", mfl_secagg_phase_name(phase));
    for (size_t i = 0; i < n && at < sizeof rec->reason; i++)
        at += (size_t)snprintf(rec->reason + at, sizeof rec->reason - at, " %u:%s", list[i],
                               sa->ids[list[i] - 1]);
    int rc = mfl_engine_audit_append(self, rec, false);
    free(rec);
    return rc;
}

/* Gives up on the attempt: the round is abandoned (θ unchanged) with
 * `why`, which also tells every site (mfl_engine_abandon_round calls
 * mfl_engine_secagg_end). The caller touches nothing of sa after. */
static void s_abandon(mfl_round_engine_t *self, uint64_t now_ms, const char *why)
{
    snprintf(self->abandon_note, sizeof self->abandon_note, "secure aggregation: %s", why);
    mfl_engine_abandon_round(self, now_ms);
}

/* Threads for removing the masks at the end of an attempt: every site is
 * waiting then, so the coordinator's cores are free; at most 4. */
static unsigned s_unmask_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 4 ? 4 : (unsigned)n;
}

void mfl_engine_secagg_open(mfl_round_engine_t *self, uint64_t now_ms)
{
    if (!self->config.secagg_enabled || !self->secagg_io.send)
        return;
    s_alloc(self);
    mfl_engine_secagg_t *sa = self->secagg;
    if (!sa) {
        mfl_error("round %u: out of memory for secure aggregation; the round waits for its "
                  "deadline", self->round);
        return;
    }
    mfl_secagg_server_destroy(&sa->server);
    uint32_t n = 0;
    for (size_t i = 0; i < self->n_sites && n < S_MAX; i++)
        if (self->sites[i].selected)
            snprintf(sa->ids[n++], sizeof sa->ids[0], "%s", self->sites[i].id); /* id order */
    memset(&sa->params, 0, sizeof sa->params);
    sa->params.scope.round = self->round;
    memcpy(sa->params.scope.nonce, self->nonce, MFL_SECAGG_NONCE_BYTES);
    sa->params.n_sites = n;
    sa->params.neighbours = self->config.secagg_neighbours;
    sa->params.threshold =
        mfl_secagg_attempt_threshold(n, self->config.secagg_neighbours, self->config.secagg_threshold);
    sa->params.length = self->n_state + 1;
    sa->params.word_bits = self->config.secagg_word_bits == 32 ? 32 : 64;
    uint8_t(*roster)[32] = calloc(n ? n : 1, sizeof *roster);
    char err[256] = "";
    int ok = roster != NULL;
    for (uint32_t i = 0; ok && i < n; i++)
        if (!self->secagg_io.site_key ||
            self->secagg_io.site_key(self->secagg_io.ctx, sa->ids[i], roster[i]) < 0) {
            snprintf(err, sizeof err, "no allow-listed key for site %s", sa->ids[i]);
            ok = 0;
        }
    if (ok) { /* the running sum in the last attempt's buffer: no fresh pages a round */
        sa->server = mfl_secagg_server_new_reusing(&sa->params, (const uint8_t(*)[32])roster,
                                                   sa->spare, sa->spare_bytes, err, sizeof err);
        sa->spare = NULL;
        sa->spare_bytes = 0;
    }
    free(roster);
    if (!sa->server) {
        mfl_warn("round %u: secure aggregation cannot start among %u sites (threshold %u): "
                 "%s; the round is abandoned at its deadline", self->round, n,
                 sa->params.threshold, err[0] ? err : "out of memory");
        snprintf(self->abandon_note, sizeof self->abandon_note,
                 "secure aggregation could not start among %u sites: %s", n, err);
        return;
    }
    mfl_secagg_server_set_threads(sa->server, s_unmask_threads());
    sa->phase_ms = self->config.secagg_phase_ms ? self->config.secagg_phase_ms
                   : self->config.deadline_ms / 4 > 1000 ? self->config.deadline_ms / 4
                                                          : 1000;
    uint32_t all[S_MAX];
    for (uint32_t i = 0; i < n; i++)
        all[i] = i + 1;
    s_expect(sa, all, n, now_ms + sa->phase_ms);
    mfl_info("round %u: secure aggregation among %u sites (threshold %u, %s)", self->round, n,
             sa->params.threshold, sa->params.neighbours ? "SecAgg+" : "every pair");
}

void mfl_engine_secagg_fill_task(const mfl_round_engine_t *self, mfl_round_task_t *task)
{
    const mfl_engine_secagg_t *sa = self->secagg;
    if (!sa || !sa->server)
        return;
    task->has_secagg = true;
    task->secagg.threshold = sa->params.threshold;
    task->secagg.neighbours = sa->params.neighbours;
    task->secagg.length = sa->params.length;
    task->secagg.n_sites = sa->params.n_sites;
    task->secagg.word_bits = sa->params.word_bits;
    task->secagg.frac_bits = sa->params.word_bits == 32 ? self->config.secagg_frac_bits : 0;
    /* masked inputs wait for a grant as updates do: N sites' words at
     * once cost the coordinator N buffers in flight (docs/SECAGG.md) */
    task->secagg.masked_grant = self->gate != NULL;
    for (uint32_t i = 0; i < sa->params.n_sites; i++)
        snprintf(task->secagg.sites[i], sizeof task->secagg.sites[i], "%s", sa->ids[i]);
}

uint64_t mfl_engine_secagg_masked_bytes(const mfl_round_engine_t *self)
{
    const mfl_engine_secagg_t *sa = self->secagg;
    if (!sa || !sa->server)
        return 0;
    return sa->params.length * mfl_secagg_word_bytes(&sa->params);
}

void mfl_engine_secagg_end(mfl_round_engine_t *self, bool abandoned, const char *reason)
{
    mfl_engine_secagg_t *sa = self->secagg;
    if (!sa || !sa->server)
        return;
    mfl_secagg_wire_t *m = s_msg(sa, MFL_MSG_SECAGG_END);
    m->abandoned = abandoned;
    snprintf(m->reason, sizeof m->reason, "%s", reason ? reason : "");
    for (uint32_t i = 1; i <= sa->params.n_sites; i++)
        s_send(self, i);
    mfl_secagg_server_destroy(&sa->server);
}

/* Ends the current phase and starts the next; may finish the sum or
 * abandon. Returns after the attempt ended (sa->server NULL) or a phase
 * started. */
static void s_next_phase(mfl_round_engine_t *self, uint64_t now_ms)
{
    mfl_engine_secagg_t *sa = self->secagg;
    mfl_secagg_server_t *srv = sa->server;
    char err[256] = "";
    mfl_secagg_phase_t ph = mfl_secagg_server_phase(srv);
    uint32_t list[S_MAX];
    size_t n = 0;
    switch (ph) {
    case MFL_SECAGG_PHASE_ADVERTISE: {
        if (mfl_secagg_server_end_adverts(srv, err, sizeof err) < 0)
            {
            s_abandon(self, now_ms, err);
            return;
        }
        size_t nu;
        const mfl_secagg_advert_t *u1 = mfl_secagg_server_adverts(srv, &nu);
        for (size_t i = 0; i < nu; i++)
            list[n++] = u1[i].index;
        if (s_audit_phase(self, ph, list, n) < 0)
            {
            s_abandon(self, now_ms, "the audit log cannot be written");
            return;
        }
        mfl_secagg_wire_t *m = s_msg(sa, MFL_MSG_SECAGG_KEYS);
        memcpy(m->adverts, u1, nu * sizeof *u1);
        m->n_adverts = nu;
        s_expect(sa, list, n, now_ms + sa->phase_ms);
        for (size_t i = 0; i < n; i++)
            s_send(self, list[i]);
        return;
    }
    case MFL_SECAGG_PHASE_SHARE: {
        for (uint32_t i = 1; i <= sa->params.n_sites; i++)
            if (sa->got[i])
                list[n++] = i; /* U2: whose boxes were taken */
        if (mfl_secagg_server_end_shares(srv, err, sizeof err) < 0)
            {
            s_abandon(self, now_ms, err);
            return;
        }
        if (s_audit_phase(self, ph, list, n) < 0)
            {
            s_abandon(self, now_ms, "the audit log cannot be written");
            return;
        }
        /* the sites train meanwhile: the masked phase ends with the round */
        uint64_t until = self->deadline_ms > now_ms + sa->phase_ms ? self->deadline_ms
                                                                   : now_ms + sa->phase_ms;
        s_expect(sa, list, n, until);
        for (size_t i = 0; i < n; i++) {
            mfl_secagg_wire_t *m = s_msg(sa, MFL_MSG_SECAGG_SHARES);
            m->n_boxes = mfl_secagg_server_boxes_for(srv, list[i], m->boxes);
            s_send(self, list[i]);
        }
        return;
    }
    case MFL_SECAGG_PHASE_MASKED: {
        if (mfl_secagg_server_end_masked(srv, err, sizeof err) < 0)
            {
            s_abandon(self, now_ms, err);
            return;
        }
        size_t nu;
        const uint32_t *u3 = mfl_secagg_server_survivors(srv, &nu);
        if (s_audit_phase(self, ph, u3, nu) < 0)
            {
            s_abandon(self, now_ms, "the audit log cannot be written");
            return;
        }
        mfl_secagg_wire_t *m = s_msg(sa, MFL_MSG_SECAGG_SURVIVORS);
        memcpy(m->survivors, u3, nu * sizeof *u3);
        m->n_survivors = nu;
        s_expect(sa, u3, nu, now_ms + sa->phase_ms);
        for (size_t i = 0; i < nu; i++)
            s_send(self, u3[i]);
        return;
    }
    case MFL_SECAGG_PHASE_SIGNOFF: {
        if (mfl_secagg_server_end_signoffs(srv, err, sizeof err) < 0)
            {
            s_abandon(self, now_ms, err);
            return;
        }
        mfl_secagg_unmask_req_t req;
        mfl_secagg_server_unmask_request(srv, &req);
        for (size_t i = 0; i < req.n_signoffs; i++)
            list[n++] = req.signoffs[i].index;
        if (s_audit_phase(self, ph, list, n) < 0)
            {
            s_abandon(self, now_ms, "the audit log cannot be written");
            return;
        }
        mfl_secagg_wire_t *m = s_msg(sa, MFL_MSG_SECAGG_UNMASK);
        memcpy(m->survivors, req.survivors, req.n_survivors * sizeof *req.survivors);
        m->n_survivors = req.n_survivors;
        memcpy(m->signoffs, req.signoffs, req.n_signoffs * sizeof *req.signoffs);
        m->n_signoffs = req.n_signoffs;
        memcpy(m->dropped, req.dropped, req.n_dropped * sizeof *req.dropped);
        m->n_dropped = req.n_dropped;
        s_expect(sa, list, n, now_ms + sa->phase_ms);
        for (size_t i = 0; i < n; i++)
            s_send(self, list[i]);
        return;
    }
    case MFL_SECAGG_PHASE_UNMASK: {
        for (uint32_t i = 1; i <= sa->params.n_sites; i++)
            if (sa->got[i])
                list[n++] = i;
        if (mfl_secagg_server_finish(srv, err, sizeof err) < 0)
            {
            s_abandon(self, now_ms, err);
            return;
        }
        if (s_audit_phase(self, ph, list, n) < 0)
            {
            s_abandon(self, now_ms, "the audit log cannot be written");
            return;
        }
        size_t count, nu, sum_bytes;
        /* The sum's buffer leaves the server (which the end below
         * destroys): folded from where it is, no copy. */
        void *sum = mfl_secagg_server_take_sum(srv, &count, &sum_bytes);
        const uint32_t *u3 = mfl_secagg_server_survivors(srv, &nu);
        if (!sum) {
            s_abandon(self, now_ms, "no sum after unmasking");
            return;
        }
        const char *names[S_MAX];
        for (size_t i = 0; i < nu; i++)
            names[i] = sa->ids[u3[i] - 1];
        uint8_t transcript[32];
        crypto_generichash_state h;
        crypto_generichash_init(&h, NULL, 0, sizeof transcript);
        for (int p = MFL_SECAGG_PHASE_ADVERTISE; p <= MFL_SECAGG_PHASE_UNMASK; p++) {
            uint8_t t[32];
            (void)mfl_secagg_server_transcript(srv, (mfl_secagg_phase_t)p, t); /* all ended */
            crypto_generichash_update(&h, t, sizeof t);
        }
        crypto_generichash_final(&h, transcript, sizeof transcript);
        mfl_info("round %u: secure aggregation of %zu sites (threshold %u, %s), sum unmasked",
                 self->round, nu, sa->params.threshold,
                 sa->params.neighbours ? "SecAgg+" : "every pair");
        /* Tell the sites before the sum is folded: folding may close the
         * round and open the next, whose attempt reuses sa. */
        uint32_t round = self->round;
        uint8_t nonce[MFL_ENGINE_NONCE_BYTES];
        memcpy(nonce, self->nonce, sizeof nonce);
        size_t n_words = (size_t)sa->params.length;
        char ids[S_MAX][MFL_ENGINE_SITE_MAX];
        for (size_t i = 0; i < nu; i++) {
            snprintf(ids[i], sizeof ids[i], "%s", names[i]);
            names[i] = ids[i];
        }
        mfl_engine_secagg_end(self, false, "summed");
        /* The buffer is the next attempt's running sum: that attempt opens
         * (and zeroes it) only when this round closes, inside the call
         * below after the sum was folded, and nothing here reads it after
         * that call. */
        free(sa->spare);
        sa->spare = sum;
        sa->spare_bytes = sum_bytes;
        /* The sites' losses do not travel under SecAgg: NaN = not sent. */
        int rc = mfl_round_engine_secure_sum(self, round, nonce, names, nu, sum, n_words, NAN,
                                             NAN, transcript, now_ms, err, sizeof err);
        if (rc < 0) {
            mfl_error("round %u: the secure sum was not folded: %s", round, err);
            if (self->phase == MFL_ENGINE_ROUND && self->round == round)
                s_abandon(self, now_ms, err);
            return;
        }
        /* Sites that dropped out never report: close with what is in. */
        if (self->phase == MFL_ENGINE_ROUND && self->round == round) {
            if (self->n_accepted >= self->config.min_sites)
                mfl_engine_close_round(self, now_ms, false);
            else
                s_abandon(self, now_ms, "fewer sites in the sum than rounds.min_sites");
        }
        return;
    }
    case MFL_SECAGG_PHASE_DONE:
    case MFL_SECAGG_PHASE_ABANDONED:
        return;
    }
}

/* Every expected site answered: the phase ends now. */
static bool s_all_in(const mfl_engine_secagg_t *sa)
{
    for (uint32_t i = 1; i <= sa->params.n_sites; i++)
        if (sa->expect[i] && !sa->got[i])
            return false;
    return true;
}

bool mfl_engine_secagg_tick(mfl_round_engine_t *self, uint64_t now_ms)
{
    mfl_engine_secagg_t *sa = self->secagg;
    if (!sa || !sa->server)
        return false;
    if (self->audit_down)
        return true; /* nothing can be recorded: the phase waits */
    if (now_ms >= sa->phase_deadline_ms || s_all_in(sa))
        s_next_phase(self, now_ms);
    return self->phase == MFL_ENGINE_ROUND && sa->server != NULL;
}

/* The secagg_masked record of `peer`'s masked input (its hash, n words),
 * written before the input is folded. 0, or -1: not written (audit down,
 * out of memory). */
static int s_audit_masked(mfl_round_engine_t *self, const char *peer, const uint8_t hash[32],
                          size_t n_words)
{
    if (!self->audit)
        return 0;
    mfl_audit_record_t *rec = malloc(sizeof *rec);
    if (!rec)
        return -1;
    mfl_audit_record_init(rec, MFL_AUDIT_SECAGG_MASKED, self->round, peer);
    memcpy(rec->nonce, self->nonce, MFL_ENGINE_NONCE_BYTES);
    rec->nonce_len = MFL_ENGINE_NONCE_BYTES;
    rec->has_delta_hash = true;
    memcpy(rec->delta_hash, hash, 32);
    rec->n = n_words;
    int rc = mfl_engine_audit_append(self, rec, false); /* down: refused; the phase waits */
    free(rec);
    return rc;
}

int mfl_round_engine_secagg_msg(mfl_round_engine_t *self, const char *peer,
                                const mfl_secagg_wire_t *m, const uint64_t *words,
                                size_t n_words, uint64_t now_ms)
{
    return mfl_round_engine_secagg_msg_words(self, peer, m, words, n_words, 64, NULL, now_ms);
}

int mfl_round_engine_secagg_msg_words(mfl_round_engine_t *self, const char *peer,
                                      const mfl_secagg_wire_t *m, const void *words,
                                      size_t n_words, unsigned word_bits, const uint8_t *known,
                                      uint64_t now_ms)
{
    const mfl_secagg_run_t run = {words, n_words};
    return mfl_round_engine_secagg_msg_runs(self, peer, m, words ? &run : NULL, words ? 1 : 0,
                                            word_bits, known, now_ms);
}

int mfl_round_engine_secagg_msg_runs(mfl_round_engine_t *self, const char *peer,
                                     const mfl_secagg_wire_t *m, const mfl_secagg_run_t *runs,
                                     size_t n_runs, unsigned word_bits, const uint8_t *known,
                                     uint64_t now_ms)
{
    mfl_round_engine_site_seen(self, peer, now_ms);
    mfl_engine_secagg_t *sa = self->secagg;
    uint32_t round = m->round;
    if (!sa || !sa->server || self->phase != MFL_ENGINE_ROUND) {
        mfl_engine_reject(self, peer, MFL_REJECT_SECAGG_PHASE, round,
                          "no securely aggregated attempt is in flight");
        return -1;
    }
    if (round != self->round) {
        mfl_engine_reject(self, peer, MFL_REJECT_WRONG_ROUND, round,
                          "secure aggregation message for round %u, but round %u is open", round,
                          self->round);
        return -1;
    }
    if (sodium_memcmp(m->nonce, self->nonce, MFL_SECAGG_NONCE_BYTES) != 0) {
        mfl_engine_reject(self, peer, MFL_REJECT_SECAGG_PHASE, round,
                          "secure aggregation message for another attempt (nonce)");
        return -1;
    }
    uint32_t from = s_index_of(sa, peer);
    if (!from) {
        mfl_engine_reject(self, peer, MFL_REJECT_NOT_SELECTED, round,
                          "not in this attempt's secure aggregation");
        return -1;
    }
    char err[256] = "";
    mfl_secagg_status_t st;
    uint8_t hash[32];
    switch (m->kind) {
    case MFL_MSG_SECAGG_KEYS:
        if (m->n_adverts != 1)
            st = mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, sizeof err,
                                 "%zu adverts from one site, not 1", m->n_adverts);
        else
            st = mfl_secagg_server_on_advert(sa->server, from, &m->adverts[0], err, sizeof err);
        break;
    case MFL_MSG_SECAGG_SHARES:
        st = mfl_secagg_server_on_shares(sa->server, from, m->boxes, m->n_boxes, err, sizeof err);
        break;
    case MFL_MSG_SECAGG_MASKED: {
        /* taken or refused, its upload slot goes to the next site */
        mfl_engine_flow_release(self, peer);
        size_t n_words = 0;
        for (size_t r = 0; r < n_runs; r++)
            n_words += runs[r].n;
        if (!runs)
            st = mfl_secagg_fail(MFL_SECAGG_E_LENGTH, err, sizeof err, "no masked words");
        else if (word_bits != mfl_secagg_word_bits(&sa->params))
            st = mfl_secagg_fail(MFL_SECAGG_E_LENGTH, err, sizeof err,
                                 "masked words of %u bits, this attempt's are %u bits", word_bits,
                                 mfl_secagg_word_bits(&sa->params));
        else if ((st = mfl_secagg_server_check_masked(sa->server, from, n_words, err,
                                                      sizeof err)) == MFL_SECAGG_OK) {
            /* On record before it is folded: a masked input whose
             * secagg_masked record cannot be written is refused, not
             * summed (the attempt goes on without it, or is abandoned and
             * retried once the log can be written again). */
            if (known)
                memcpy(hash, known, sizeof hash);
            else
                mfl_secagg_runs_hash(runs, n_runs, word_bits, hash);
            if (s_audit_masked(self, peer, hash, n_words) < 0) {
                mfl_engine_reject(self, peer, MFL_REJECT_AUDIT_UNAVAILABLE, round,
                                  "secure aggregation: the coordinator cannot write its audit "
                                  "log; masked input not taken");
                return -1;
            }
            st = mfl_secagg_server_on_masked_runs(sa->server, from, runs, n_runs, hash, NULL,
                                                  err, sizeof err);
        }
        break;
    }
    case MFL_MSG_SECAGG_SIGNOFF:
        st = m->n_signoffs == 1
                 ? mfl_secagg_server_on_signoff(sa->server, from, &m->signoffs[0], err,
                                                sizeof err)
                 : mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, sizeof err, "no signoff");
        break;
    case MFL_MSG_SECAGG_REVEALS:
        st = mfl_secagg_server_on_reveals(sa->server, from, m->reveals, m->n_reveals, err,
                                          sizeof err);
        break;
    default:
        mfl_engine_reject(self, peer, MFL_REJECT_BAD_MESSAGE, round,
                          "secure aggregation message kind %d is the coordinator's to send",
                          (int)m->kind);
        return -1;
    }
    if (st != MFL_SECAGG_OK) {
        mfl_engine_reject(self, peer, mfl_secagg_wire_reject(st), round,
                          "secure aggregation (%s): %s",
                          mfl_secagg_phase_name(mfl_secagg_server_phase(sa->server)), err);
        return -1;
    }
    sa->got[from] = true;
    if (s_all_in(sa))
        s_next_phase(self, now_ms);
    return 0;
}
