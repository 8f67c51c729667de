/* The coordinator's ROUTER: CURVE server, ZAP allow-list, site-id binding. */
#include "wire/server.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "core/clock.h"
#include "core/log.h"
#include "wire/conn_guard.h"
#include "wire/msg_internal.h"
#include "wire/update_sign.h"

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_ZAP_DOMAIN "metafl"

typedef struct {
    char site[MFL_KEY_NAME_MAX + 1];
    uint8_t rid[256];
    size_t rid_len;
    uint64_t last_seen_ms;
} s_peer_t;

/* One connection (a ROUTER routing id): where it comes from and how it
 * behaves. Reject tokens refill at opts.rejects_per_s up to
 * opts.reject_burst; opts.strikes_max bad messages within
 * S_STRIKE_WINDOW_MS cut the connection. */
typedef struct {
    uint8_t rid[256];
    size_t rid_len;
    char site[MFL_KEY_NAME_MAX + 1];
    int fd;
    uint64_t last_ms;       /* monotonic */
    double tokens;
    uint64_t refill_ms;
    uint32_t strikes;
    uint64_t window_ms;
    bool cut;               /* cut or revoked: its messages are dropped unread */
} s_conn_t;

#define S_STRIKE_WINDOW_MS 10000
#define S_CONN_IDLE_MS 120000  /* forget a quiet connection's record after this */

/* A message read and decoded ahead, returned by the next recv. */
typedef struct {
    int full;
    int discard;               /* from a cut or revoked connection: drop it */
    mfl_msg_source_t src;
    mfl_msg_t *msg;            /* NULL: rejected while decoding (why, err) */
    int why;
    char err[512];
    uint8_t rid[256];
    size_t rid_len;
    char site[MFL_KEY_NAME_MAX + 1];
} s_ahead_t;

typedef struct {
    zmq_msg_t *frames;
    size_t n;
    const mfl_wire_limits_t *limits;
    s_ahead_t *out;
} s_decode_job_t;

struct mfl_server_t {
    void *ctx;
    void *router;
    void *zap;                 /* owned by the ZAP thread once it runs */
    pthread_t zap_thread;
    int zap_running;
    pthread_mutex_t lock;      /* guards allow */
    mfl_allow_list_t *allow;
    char *allow_dir;
    const mfl_identity_t *identity;
    mfl_server_opts_t opts;
    char endpoint[256];
    s_peer_t *peers;
    size_t n_peers, cap_peers;
    mfl_server_stats_t stats;
    s_ahead_t ahead;
    s_decode_job_t job;        /* the helper's work while it runs */
    pthread_t helper;
    int helper_running;        /* joined before `ahead` is read */
    mfl_conn_guard_t *guard;
    s_conn_t *conns;
    size_t n_conns, cap_conns;
};

void mfl_server_opts_default(mfl_server_opts_t *opts)
{
    mfl_wire_limits_default(&opts->limits);
    opts->send_timeout_ms = 0;
    opts->send_hwm = 64;
    opts->io_threads = 2;
    opts->rejects_per_s = 5;
    opts->reject_burst = 10;
    opts->strikes_max = 100;
    opts->max_connections = 256;
    opts->backlog_slack_bytes = 4u << 20;
}

/* ---- ZAP ----------------------------------------------------------------- */

static void s_zap_reply(void *sock, const zmq_msg_t *req_id, const char *status,
                        const char *text, const char *user)
{
    zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(sock, zmq_msg_data((zmq_msg_t *)req_id), zmq_msg_size((zmq_msg_t *)req_id),
             ZMQ_SNDMORE);
    zmq_send(sock, status, strlen(status), ZMQ_SNDMORE);
    zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(sock, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(sock, "", 0, 0);
}

/* One ZAP request: version, request id, domain, address, routing id,
 * mechanism, credentials (the client's 32-byte CURVE key). */
static int s_zap_handle(mfl_server_t *self)
{
    zmq_msg_t f[8];
    size_t n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->zap, 0) < 0) {
            zmq_msg_close(&m);
            for (size_t i = 0; i < n; i++)
                zmq_msg_close(&f[i]);
            return -1; /* ETERM: the server is shutting down */
        }
        more = zmq_msg_more(&m);
        if (n < 8) {
            zmq_msg_init(&f[n]);
            zmq_msg_move(&f[n], &m);
            n++;
        }
        zmq_msg_close(&m);
    }
    if (n < 2) {
        for (size_t i = 0; i < n; i++)
            zmq_msg_close(&f[i]);
        return 0; /* cannot even answer: libzmq never sends this */
    }
    char user[MFL_KEY_NAME_MAX + 1] = "";
    const char *status = "400", *text = "key not in the allow-list";
    char addr[64] = "?";
    if (n >= 4) {
        size_t al = zmq_msg_size(&f[3]);
        al = al < sizeof addr - 1 ? al : sizeof addr - 1;
        memcpy(addr, zmq_msg_data(&f[3]), al);
        addr[al] = '\0';
    }
    if (n == 7 && zmq_msg_size(&f[0]) == 3 && memcmp(zmq_msg_data(&f[0]), "1.0", 3) == 0 &&
        zmq_msg_size(&f[5]) == 5 && memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0 &&
        zmq_msg_size(&f[6]) == 32) {
        pthread_mutex_lock(&self->lock);
        const mfl_public_key_t *k = mfl_allow_list_find_curve(self->allow, zmq_msg_data(&f[6]));
        if (k) {
            snprintf(user, sizeof user, "%s", k->name);
            status = "200";
            text = "OK";
        }
        pthread_mutex_unlock(&self->lock);
        if (!k) {
            char z85[41] = "";
            zmq_z85_encode(z85, zmq_msg_data(&f[6]), 32);
            mfl_warn("refused connection from %s: CURVE key %s is not in the allow-list %s",
                     addr, z85, self->allow_dir);
        }
    } else {
        mfl_warn("refused connection from %s: not a CURVE ZAP request", addr);
    }
    s_zap_reply(self->zap, &f[1], status, text, user);
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
    return 0;
}

static void *s_zap_main(void *arg)
{
    mfl_server_t *self = arg;
    while (s_zap_handle(self) == 0) {
    }
    zmq_close(self->zap);
    self->zap = NULL;
    return NULL;
}

/* ---- lifecycle ----------------------------------------------------------- */

static int s_setopt_int(void *s, int opt, int v) { return zmq_setsockopt(s, opt, &v, sizeof v); }

mfl_server_t *mfl_server_new(const char *endpoint, const mfl_identity_t *identity,
                             const char *allow_dir, const mfl_server_opts_t *opts,
                             char *err, size_t errlen)
{
    mfl_server_t *self = calloc(1, sizeof *self);
    if (!self) {
        mfl_errf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    if (opts)
        self->opts = *opts;
    else
        mfl_server_opts_default(&self->opts);
    self->identity = identity;
    self->allow_dir = strdup(allow_dir);
    if (!self->allow_dir)
        goto out_fail;
    self->allow = mfl_allow_list_load(allow_dir, err, errlen);
    if (!self->allow)
        goto out_fail;
    self->ctx = zmq_ctx_new();
    if (!self->ctx) {
        mfl_errf(err, errlen, "zmq_ctx_new failed: %s", zmq_strerror(errno));
        goto out_fail;
    }
    zmq_ctx_set(self->ctx, ZMQ_IO_THREADS, self->opts.io_threads > 0 ? self->opts.io_threads : 2);
    zmq_ctx_set(self->ctx, ZMQ_BLOCKY, 0);

    /* The ZAP handler must be bound before the ROUTER accepts anything. */
    self->zap = zmq_socket(self->ctx, ZMQ_REP);
    if (!self->zap || zmq_bind(self->zap, S_ZAP_ENDPOINT) != 0) {
        mfl_errf(err, errlen, "cannot bind the ZAP handler: %s", zmq_strerror(errno));
        goto out_fail;
    }
    s_setopt_int(self->zap, ZMQ_LINGER, 0);
    if (pthread_create(&self->zap_thread, NULL, s_zap_main, self) != 0) {
        mfl_errf(err, errlen, "cannot start the ZAP thread");
        goto out_fail;
    }
    self->zap_running = 1;

    self->router = zmq_socket(self->ctx, ZMQ_ROUTER);
    if (!self->router) {
        mfl_errf(err, errlen, "zmq_socket failed: %s", zmq_strerror(errno));
        goto out_fail;
    }
    const mfl_public_key_t *pub = mfl_identity_public(identity);
    if (s_setopt_int(self->router, ZMQ_CURVE_SERVER, 1) != 0 ||
        zmq_setsockopt(self->router, ZMQ_CURVE_SECRETKEY, mfl_identity_curve_sk_z85(identity),
                       41) != 0 ||
        zmq_setsockopt(self->router, ZMQ_CURVE_PUBLICKEY, pub->curve_pk_z85, 41) != 0 ||
        zmq_setsockopt(self->router, ZMQ_ZAP_DOMAIN, S_ZAP_DOMAIN, strlen(S_ZAP_DOMAIN)) != 0 ||
        s_setopt_int(self->router, ZMQ_ROUTER_MANDATORY, 1) != 0 ||
        /* Per-peer queue of whole messages waiting for recv: bounds what one
         * authenticated site can make us buffer (see docs/WIRE.md). */
        s_setopt_int(self->router, ZMQ_RCVHWM, 16) != 0 ||
        s_setopt_int(self->router, ZMQ_LINGER, 0) != 0 ||
        /* Never block the caller's thread on one peer (issue 10 item 2):
         * a send to a peer whose queue is full fails at once (EAGAIN with
         * ROUTER_MANDATORY) and is dropped and counted. */
        s_setopt_int(self->router, ZMQ_SNDTIMEO, self->opts.send_timeout_ms) != 0 ||
        s_setopt_int(self->router, ZMQ_SNDHWM, self->opts.send_hwm) != 0 ||
        /* No ZMTP heartbeats on the ROUTER: with a peer that stops reading,
         * libzmq 4.3.4's heartbeat timeout aborts the process
         * (stream_engine_base.cpp:331, !_io_error; issue 10 item 1).
         * Liveness is the application's Heartbeat messages; a dead link is
         * found by TCP keepalive. */
        s_setopt_int(self->router, ZMQ_TCP_KEEPALIVE, 1) != 0 ||
        s_setopt_int(self->router, ZMQ_TCP_KEEPALIVE_IDLE, 30) != 0 ||
        s_setopt_int(self->router, ZMQ_TCP_KEEPALIVE_INTVL, 10) != 0 ||
        s_setopt_int(self->router, ZMQ_TCP_KEEPALIVE_CNT, 3) != 0 ||
        mfl_wire_set_maxmsgsize(self->router, &self->opts.limits) != 0) {
        mfl_errf(err, errlen, "cannot configure the ROUTER socket: %s", zmq_strerror(errno));
        goto out_fail;
    }
    /* Before the bind, so the guard sees every connection. */
    self->guard = mfl_conn_guard_new(self->ctx, self->router,
                                     self->opts.limits.max_total_bytes +
                                         self->opts.backlog_slack_bytes,
                                     self->opts.max_connections, err, errlen);
    if (!self->guard)
        goto out_fail;
    if (zmq_bind(self->router, endpoint) != 0) {
        mfl_errf(err, errlen, "cannot bind %s: %s", endpoint, zmq_strerror(errno));
        goto out_fail;
    }
    size_t len = sizeof self->endpoint;
    if (zmq_getsockopt(self->router, ZMQ_LAST_ENDPOINT, self->endpoint, &len) != 0)
        snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
    return self;
out_fail:
    if (err && !err[0])
        mfl_errf(err, errlen, "out of memory");
    mfl_server_destroy(&self);
    return NULL;
}

void mfl_server_destroy(mfl_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_server_t *self = *self_p;
    mfl_conn_guard_destroy(&self->guard);
    if (self->router)
        zmq_close(self->router);
    if (self->ctx) {
        /* Unblocks the ZAP thread's receive with ETERM; it closes its socket. */
        zmq_ctx_shutdown(self->ctx);
        if (self->zap_running)
            pthread_join(self->zap_thread, NULL);
        else if (self->zap)
            zmq_close(self->zap);
        zmq_ctx_term(self->ctx);
    }
    if (self->helper_running)
        pthread_join(self->helper, NULL);
    mfl_msg_destroy(&self->ahead.msg);
    mfl_allow_list_destroy(&self->allow);
    pthread_mutex_destroy(&self->lock);
    free(self->allow_dir);
    free(self->peers);
    free(self->conns);
    free(self);
    *self_p = NULL;
}

const char *mfl_server_endpoint(const mfl_server_t *self) { return self->endpoint; }

int mfl_server_reload(mfl_server_t *self, char *err, size_t errlen)
{
    mfl_allow_list_t *fresh = mfl_allow_list_load(self->allow_dir, err, errlen);
    if (!fresh)
        return -1;
    pthread_mutex_lock(&self->lock);
    mfl_allow_list_t *old = self->allow;
    self->allow = fresh;
    pthread_mutex_unlock(&self->lock);
    mfl_allow_list_destroy(&old);
    return 0;
}

/* ---- peers --------------------------------------------------------------- */

static s_peer_t *s_peer_find(const mfl_server_t *self, const char *site)
{
    for (size_t i = 0; i < self->n_peers; i++)
        if (strcmp(self->peers[i].site, site) == 0)
            return &self->peers[i];
    return NULL;
}

static void s_peer_touch(mfl_server_t *self, const char *site, const uint8_t *rid,
                         size_t rid_len)
{
    s_peer_t *p = s_peer_find(self, site);
    if (!p) {
        if (self->n_peers == self->cap_peers) {
            size_t cap = self->cap_peers ? 2 * self->cap_peers : 16;
            s_peer_t *g = realloc(self->peers, cap * sizeof *g);
            if (!g)
                return; /* liveness is best-effort under memory pressure */
            self->peers = g;
            self->cap_peers = cap;
        }
        p = &self->peers[self->n_peers++];
        memset(p, 0, sizeof *p);
        snprintf(p->site, sizeof p->site, "%s", site);
    }
    memcpy(p->rid, rid, rid_len);
    p->rid_len = rid_len;
    p->last_seen_ms = mfl_clock_mono_ms(); /* an interval's start: monotonic */
}

uint64_t mfl_server_last_seen(const mfl_server_t *self, const char *site)
{
    const s_peer_t *p = s_peer_find(self, site);
    return p ? p->last_seen_ms : 0;
}


/* ---- connections -------------------------------------------------------- */

static s_conn_t *s_conn_find(mfl_server_t *self, const uint8_t *rid, size_t rid_len)
{
    for (size_t i = 0; i < self->n_conns; i++)
        if (self->conns[i].rid_len == rid_len && memcmp(self->conns[i].rid, rid, rid_len) == 0)
            return &self->conns[i];
    return NULL;
}

/* The record of connection `rid` (created on first sight; quiet ones are
 * forgotten so the table stays as small as the live connections). NULL
 * only on OOM. */
static s_conn_t *s_conn_get(mfl_server_t *self, const uint8_t *rid, size_t rid_len,
                            const char *site, int fd, uint64_t now)
{
    s_conn_t *c = s_conn_find(self, rid, rid_len);
    if (!c) {
        for (size_t i = 0; i < self->n_conns;)
            if (now - self->conns[i].last_ms > S_CONN_IDLE_MS)
                self->conns[i] = self->conns[--self->n_conns];
            else
                i++;
        if (self->n_conns == self->cap_conns) {
            size_t cap = self->cap_conns ? 2 * self->cap_conns : 16;
            s_conn_t *g = realloc(self->conns, cap * sizeof *g);
            if (!g)
                return NULL;
            self->conns = g;
            self->cap_conns = cap;
        }
        c = &self->conns[self->n_conns++];
        memset(c, 0, sizeof *c);
        memcpy(c->rid, rid, rid_len);
        c->rid_len = rid_len;
        c->fd = -1;
        c->tokens = self->opts.reject_burst;
        c->refill_ms = now;
        c->window_ms = now;
    }
    if (site && site[0])
        snprintf(c->site, sizeof c->site, "%s", site);
    if (fd >= 0)
        c->fd = fd;
    c->last_ms = now;
    return c;
}

/* May this connection get one more Reject now? (token bucket) */
static bool s_conn_may_reject(mfl_server_t *self, s_conn_t *c, uint64_t now)
{
    c->tokens += (double)(now - c->refill_ms) * self->opts.rejects_per_s / 1000.0;
    if (c->tokens > self->opts.reject_burst)
        c->tokens = self->opts.reject_burst;
    c->refill_ms = now;
    if (c->tokens < 1.0) {
        self->stats.rejects_suppressed++;
        return false;
    }
    c->tokens -= 1.0;
    return true;
}

/* Cuts the connection (see conn_guard.h) and drops its later messages. */
static void s_conn_cut(mfl_server_t *self, s_conn_t *c, const char *why)
{
    if (c->cut)
        return;
    c->cut = true;
    self->stats.conns_cut++;
    int rc = mfl_conn_guard_cut(self->guard, c->fd);
    mfl_warn("site %s: connection %s: %s", c->site[0] ? c->site : "?",
             rc == 0 ? "closed" : "ignored from now on", why);
}

/* One more bad message on `c`: cuts it past opts.strikes_max in the window. */
static void s_conn_strike(mfl_server_t *self, s_conn_t *c, uint64_t now)
{
    if (now - c->window_ms > S_STRIKE_WINDOW_MS) {
        c->window_ms = now;
        c->strikes = 0;
    }
    if (++c->strikes > self->opts.strikes_max) {
        char why[128];
        snprintf(why, sizeof why, "more than %u bad messages within %d s",
                 self->opts.strikes_max, S_STRIKE_WINDOW_MS / 1000);
        s_conn_cut(self, c, why);
    }
}

/* Is `site` in the allow-list now? (a revoked site's queued messages are
 * dropped unread) */
static bool s_allowed(mfl_server_t *self, const char *site)
{
    pthread_mutex_lock(&self->lock);
    bool ok = mfl_allow_list_find_name(self->allow, site) != NULL;
    pthread_mutex_unlock(&self->lock);
    return ok;
}

int mfl_server_drop_site(mfl_server_t *self, const char *site, const char *why)
{
    int n = 0;
    for (size_t i = 0; i < self->n_conns; i++)
        if (strcmp(self->conns[i].site, site) == 0 && !self->conns[i].cut) {
            s_conn_cut(self, &self->conns[i], why);
            n++;
        }
    s_peer_t *p = s_peer_find(self, site);
    if (p)
        *p = self->peers[--self->n_peers];
    return n;
}

bool mfl_server_site_allowed(mfl_server_t *self, const char *site)
{
    return s_allowed(self, site);
}

int mfl_server_site_key(mfl_server_t *self, const char *site, uint8_t pk[32])
{
    pthread_mutex_lock(&self->lock);
    const mfl_public_key_t *k = mfl_allow_list_find_name(self->allow, site);
    if (k)
        memcpy(pk, k->sign_pk, 32);
    pthread_mutex_unlock(&self->lock);
    return k ? 0 : -1;
}

/* ---- receive ------------------------------------------------------------- */

/* Site-binding and signature checks on a decoded message; 0 or a reason. */
static int s_check(mfl_server_t *self, mfl_msg_t *msg, char *err, size_t errlen)
{
    const Metafl__Envelope *env = msg->env;
    const char *claimed = NULL;
    switch (env->kind) {
    case METAFL__MESSAGE_KIND__HELLO:
        claimed = env->hello->site;
        break;
    case METAFL__MESSAGE_KIND__EVAL_REPORT:
        claimed = env->eval_report->site;
        break;
    case METAFL__MESSAGE_KIND__SITE_FAILURE:
        claimed = env->site_failure->site;
        break;
    case METAFL__MESSAGE_KIND__UPDATE:
    case METAFL__MESSAGE_KIND__UPDATE_BEGIN: {
        /* A chunked upload's begin carries no tensors: its signature is
         * checked here, its chunk hashes against the signed tensor hashes
         * by the coordinator (upload_spool.h), each chunk as it comes. */
        bool begin = env->kind == METAFL__MESSAGE_KIND__UPDATE_BEGIN;
        const Metafl__Update *upd = begin ? env->update_begin->update : env->update;
        if (begin && (msg->n_tensors || !upd)) {
            mfl_errf(err, errlen, "site %s: an UpdateBegin %s", msg->site,
                     upd ? "carries tensors" : "without its signed update");
            return METAFL__REJECT_REASON__REJECT_BAD_MESSAGE;
        }
        mfl_public_key_t key;
        pthread_mutex_lock(&self->lock);
        const mfl_public_key_t *k = mfl_allow_list_find_name(self->allow, msg->site);
        if (k)
            key = *k;
        pthread_mutex_unlock(&self->lock);
        if (!k) {
            mfl_errf(err, errlen, "site %s: no longer in the allow-list", msg->site);
            return METAFL__REJECT_REASON__REJECT_SIGNATURE;
        }
        int reason = 0;
        msg->update_header = mfl_update_verify(upd, &key, begin ? NULL : msg->tensors,
                                               msg->n_tensors, &reason, err, errlen);
        return msg->update_header ? 0 : reason;
    }
    case METAFL__MESSAGE_KIND__UPDATE_CHUNK: /* checked against its begin by the coordinator */
        if (msg->n_tensors != 1) {
            mfl_errf(err, errlen, "site %s: an UpdateChunk with %zu tensors (one expected)",
                     msg->site, msg->n_tensors);
            return METAFL__REJECT_REASON__REJECT_BAD_MESSAGE;
        }
        return 0;
    case METAFL__MESSAGE_KIND__HEARTBEAT:
    case METAFL__MESSAGE_KIND__UPLOAD_READY: /* names no site: the connection's is used */
    /* secure aggregation, site → coordinator: the connection's site is the
     * sender; adverts and signoffs carry the protocol's own signatures,
     * which the round engine checks against the allow-listed key */
    case METAFL__MESSAGE_KIND__SECAGG_KEYS:
    case METAFL__MESSAGE_KIND__SECAGG_SHARES:
    case METAFL__MESSAGE_KIND__SECAGG_MASKED:
    case METAFL__MESSAGE_KIND__SECAGG_SIGNOFF:
    case METAFL__MESSAGE_KIND__SECAGG_REVEALS:
    case METAFL__MESSAGE_KIND__REJECT:
    case METAFL__MESSAGE_KIND__BYE:
        return 0;
    default:
        mfl_errf(err, errlen, "site %s sent a %s, which only the coordinator sends", msg->site,
                 protobuf_c_enum_descriptor_get_value(&metafl__message_kind__descriptor,
                                                      env->kind)->name);
        return METAFL__REJECT_REASON__REJECT_BAD_MESSAGE;
    }
    if (!claimed || strcmp(claimed, msg->site) != 0) {
        mfl_errf(err, errlen, "connection authenticated as %s claims to be site '%.64s'",
                 msg->site, claimed ? claimed : "");
        return METAFL__REJECT_REASON__REJECT_WRONG_SITE;
    }
    return 0;
}

/* Messages at least this big are worth a second thread for the hash. */
#define S_PARALLEL_DECODE_BYTES (256u << 10)

static void *s_decode_main(void *arg)
{
    s_decode_job_t *j = arg;
    j->out->msg = mfl_msg_decode_from(j->frames, j->n, j->limits, j->out->rid, j->out->rid_len,
                                      j->out->site, &j->out->why, j->out->err,
                                      sizeof j->out->err);
    return NULL;
}

static uint64_t s_frames_bytes(const zmq_msg_t *frames, size_t n)
{
    uint64_t b = 0;
    for (size_t i = 0; i < n; i++)
        b += zmq_msg_size((zmq_msg_t *)&frames[i]);
    return b;
}

/* Accounts a message just read (the guard's byte count) and says whether
 * to drop it unread: its connection was cut, or its site revoked. */
static bool s_account(mfl_server_t *self, mfl_msg_source_t src, const uint8_t *rid,
                      size_t rid_len, const char *site)
{
    mfl_conn_guard_delivered(self->guard, src.fd, src.wire_bytes);
    uint64_t now = mfl_clock_mono_ms();
    s_conn_t *c = rid_len ? s_conn_get(self, rid, rid_len, site, src.fd, now) : NULL;
    if (c && c->cut) {
        self->stats.discarded++;
        return true;
    }
    if (site[0] && !s_allowed(self, site)) {
        self->stats.discarded++;
        if (c)
            s_conn_cut(self, c, "its key is no longer in the allow-list");
        return true;
    }
    return false;
}

static void s_close_frames(zmq_msg_t *frames, size_t n)
{
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&frames[i]);
    free(frames);
}

/* Reads one message (frames already waiting) and decodes it; when a second
 * message is already queued too, reads it and decodes it on a helper thread
 * meanwhile, for the next call (self->ahead, joined there). So the second's
 * hash overlaps the first's decode and whatever the caller does with the
 * first (aggregation, an fsync'd audit record). Verifying a site's BLAKE2b
 * (about 4 ms per 4 MB) was serial: with N sites reporting together the
 * coordinator hashed one update after another while the other core sat
 * idle. Returns like mfl_msg_recv_raw, and 2 for a message dropped unread
 * (cut or revoked connection). */
static int s_recv_decode(mfl_server_t *self, mfl_msg_t **m, uint8_t *rid, size_t *rid_len,
                         char *site, int *why, char *err, size_t errlen)
{
    zmq_msg_t *frames = NULL;
    size_t n = 0;
    *m = NULL;
    int rc = mfl_msg_recv_frames(self->router, 1, &self->opts.limits, &frames, &n, rid, rid_len,
                                 site, why, err, errlen);
    if (rc != 1)
        return rc;
    if (s_account(self, mfl_msg_last_source(), rid, *rid_len, site)) {
        s_close_frames(frames, n);
        return 2;
    }
    if (!frames)
        return 1; /* over the limits: *why and err say so */
    self->stats.bytes_in += s_frames_bytes(frames, n);
    s_ahead_t *a = &self->ahead;
    zmq_msg_t *frames2 = NULL;
    size_t n2 = 0;
    int rc2 = 0;
    if (!a->full && s_frames_bytes(frames, n) >= S_PARALLEL_DECODE_BYTES) {
        a->err[0] = '\0';
        a->why = 0;
        a->msg = NULL;
        rc2 = mfl_msg_recv_frames(self->router, 1, &self->opts.limits, &frames2, &n2, a->rid,
                                  &a->rid_len, a->site, &a->why, a->err, sizeof a->err);
        if (rc2 < 0) /* the socket failed: report it on the next call */
            rc2 = 0;
        if (rc2 == 1) {
            a->src = mfl_msg_last_source();
            a->discard = s_account(self, a->src, a->rid, a->rid_len, a->site);
            if (a->discard) {
                s_close_frames(frames2, n2);
                frames2 = NULL;
                n2 = 0;
            }
        }
        a->full = rc2 == 1;
        if (a->full && frames2)
            self->stats.bytes_in += s_frames_bytes(frames2, n2);
    }
    self->job = (s_decode_job_t){frames2, n2, &self->opts.limits, a};
    if (frames2 && s_frames_bytes(frames2, n2) >= S_PARALLEL_DECODE_BYTES)
        self->helper_running =
            pthread_create(&self->helper, NULL, s_decode_main, &self->job) == 0;
    if (frames2 && !self->helper_running)
        s_decode_main(&self->job);
    *m = mfl_msg_decode_from(frames, n, &self->opts.limits, rid, *rid_len, site, why, err,
                             errlen);
    return 1;
}

/* Sends a Reject to connection `c` unless it is cut or out of tokens. */
static void s_send_reject_to(mfl_server_t *self, s_conn_t *c, int why, uint32_t round,
                             const char *text)
{
    if (!c || c->cut || !s_conn_may_reject(self, c, mfl_clock_mono_ms()))
        return;
    if (mfl_msg_send_reject(self->router, c->rid, c->rid_len, why, round, text,
                            &self->opts.limits, NULL, 0) != 0)
        self->stats.send_dropped++;
    else
        self->stats.sent++;
}

mfl_recv_result_t mfl_server_recv(mfl_server_t *self, int timeout_ms, mfl_msg_t **msg,
                                  int *reason, char *err, size_t errlen)
{
    *msg = NULL;
    int64_t deadline = timeout_ms < 0 ? -1 : (int64_t)mfl_clock_mono_ms() + timeout_ms;
    for (;;) {
        uint8_t rid[256];
        size_t rid_len = 0;
        char site[MFL_KEY_NAME_MAX + 1];
        mfl_msg_t *m = NULL;
        int why = 0;
        if (self->ahead.full) {
            if (self->helper_running)
                pthread_join(self->helper, NULL);
            self->helper_running = 0;
            s_ahead_t *a = &self->ahead;
            int discard = a->discard;
            m = a->msg;
            why = a->why;
            memcpy(rid, a->rid, a->rid_len);
            rid_len = a->rid_len;
            snprintf(site, sizeof site, "%s", a->site);
            if (!m && err && errlen)
                snprintf(err, errlen, "%s", a->err);
            a->msg = NULL;
            a->full = 0;
            a->discard = 0;
            if (discard)
                continue;
            goto check;
        }
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - (int64_t)mfl_clock_mono_ms();
            wait = left > 0 ? (int)left : 0;
        }
        zmq_pollitem_t it = {self->router, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&it, 1, wait);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            mfl_errf(err, errlen, "poll failed: %s", zmq_strerror(errno));
            return MFL_RECV_ERROR;
        }
        if (rc == 0)
            return MFL_RECV_TIMEOUT;
        rc = s_recv_decode(self, &m, rid, &rid_len, site, &why, err, errlen);
        if (rc < 0)
            return MFL_RECV_ERROR;
        if (rc == 0 || rc == 2)
            continue;
    check:
        if (site[0])
            s_peer_touch(self, site, rid, rid_len);
        if (m) {
            if (!site[0]) { /* cannot happen with ZAP enforced; refuse rather than trust */
                mfl_errf(err, errlen, "message without an authenticated site id");
                why = METAFL__REJECT_REASON__REJECT_WRONG_SITE;
            } else {
                why = s_check(self, m, err, errlen);
            }
            if (why == 0) {
                self->stats.received++;
                if (m->env->kind == METAFL__MESSAGE_KIND__HEARTBEAT) {
                    mfl_msg_destroy(&m);
                    continue;
                }
                *msg = m;
                return MFL_RECV_OK;
            }
            mfl_msg_destroy(&m);
        }
        /* Rejected: tell the sender (rate-limited), count it, let the
         * caller log it; a connection that keeps at it is cut. */
        self->stats.rejected++;
        self->stats.rejected_by_reason[why >= 0 && why < MFL_SERVER_REASONS
                                           ? why
                                           : MFL_SERVER_REASONS - 1]++;
        if (reason)
            *reason = why;
        char text[512];
        snprintf(text, sizeof text, "%s", err ? err : "");
        if (err && errlen) {
            char tmp[512];
            snprintf(tmp, sizeof tmp, "%s", err);
            mfl_errf(err, errlen, "site %s: %s: %s", site[0] ? site : "?",
                     mfl_reject_reason_name(why), tmp);
        }
        s_conn_t *c = rid_len ? s_conn_find(self, rid, rid_len) : NULL;
        if (c) {
            s_conn_strike(self, c, mfl_clock_mono_ms());
            s_send_reject_to(self, c, why, 0, text);
        }
        return MFL_RECV_REJECTED;
    }
}

/* ---- send ---------------------------------------------------------------- */

/* What a send hands to ZeroMQ: the packed envelope and the tensor data. */
static uint64_t s_payload_bytes(const Metafl__Envelope *env, const mfl_tensor_t *tensors,
                                size_t n_tensors)
{
    uint64_t b = metafl__envelope__get_packed_size(env);
    for (size_t i = 0; i < n_tensors; i++)
        b += tensors[i].count * sizeof(float);
    return b;
}

static int s_send_rid(mfl_server_t *self, const char *site, const uint8_t *rid, size_t rid_len,
                      const Metafl__Envelope *env, const mfl_tensor_t *tensors,
                      size_t n_tensors, mfl_release_fn *release, void *hint, char *err,
                      size_t errlen)
{
    s_conn_t *c = s_conn_find(self, rid, rid_len);
    if (c && c->cut) {
        mfl_errf(err, errlen, "site %s: its connection was closed", site);
        if (release)
            release(hint);
        return -1;
    }
    if (env->kind == METAFL__MESSAGE_KIND__REJECT && c &&
        !s_conn_may_reject(self, c, mfl_clock_mono_ms())) {
        mfl_errf(err, errlen, "site %s: reject not sent (rate limit)", site);
        if (release)
            release(hint);
        return -1;
    }
    char why[256] = "";
    if (mfl_msg_send(self->router, rid, rid_len, env, tensors, n_tensors, &self->opts.limits,
                     release, hint, why, sizeof why) != 0) {
        self->stats.send_dropped++;
        mfl_errf(err, errlen, "site %s: %s; message dropped", site, why);
        return -1;
    }
    self->stats.sent++;
    self->stats.bytes_out += s_payload_bytes(env, tensors, n_tensors);
    return 0;
}

int mfl_server_send(mfl_server_t *self, const char *site, const Metafl__Envelope *env,
                    const mfl_tensor_t *tensors, size_t n_tensors, mfl_release_fn *release,
                    void *hint, char *err, size_t errlen)
{
    const s_peer_t *p = s_peer_find(self, site);
    if (!p) {
        mfl_errf(err, errlen, "site %s has not connected", site);
        if (release)
            release(hint);
        return -1;
    }
    return s_send_rid(self, site, p->rid, p->rid_len, env, tensors, n_tensors, release, hint,
                      err, errlen);
}

int mfl_server_reply(mfl_server_t *self, const mfl_msg_t *msg, const Metafl__Envelope *env,
                     const mfl_tensor_t *tensors, size_t n_tensors, mfl_release_fn *release,
                     void *hint, char *err, size_t errlen)
{
    return s_send_rid(self, msg->site, msg->routing_id, msg->routing_id_len, env, tensors,
                      n_tensors, release, hint, err, errlen);
}

int mfl_server_reject(mfl_server_t *self, const mfl_msg_t *msg, Metafl__RejectReason reason,
                      uint32_t round, const char *text, char *err, size_t errlen)
{
    s_conn_t *c = s_conn_find(self, msg->routing_id, msg->routing_id_len);
    if (c && (c->cut || !s_conn_may_reject(self, c, mfl_clock_mono_ms()))) {
        mfl_errf(err, errlen, "site %s: reject not sent (rate limit or closed)", msg->site);
        return -1;
    }
    if (mfl_msg_send_reject(self->router, msg->routing_id, msg->routing_id_len, reason, round,
                            text, &self->opts.limits, err, errlen) != 0) {
        self->stats.send_dropped++;
        return -1;
    }
    self->stats.rejected++;
    return 0;
}

mfl_server_stats_t mfl_server_stats(const mfl_server_t *self)
{
    mfl_server_stats_t st = self->stats;
    mfl_conn_guard_stats_t g = mfl_conn_guard_stats(self->guard);
    st.conns_cut += g.cut_backlog + g.cut_surplus;
    st.conns_open = g.open;
    st.max_backlog_bytes = g.max_backlog;
    st.backlog_bytes_now = g.backlog_now;
    return st;
}
