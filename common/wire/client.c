/* The site agent's DEALER: dials out as a CURVE client, watches its handshakes. */
#include "wire/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "core/clock.h"
#include "core/log.h"
#include "wire/msg_internal.h"

struct mfl_client_t {
    void *ctx;
    void *dealer;
    void *monitor;
    mfl_client_opts_t opts;
    mfl_public_key_t server_key;
    char endpoint[256];
    char name[MFL_KEY_NAME_MAX + 1];
    int connected;
    int tcp_up;              /* TCP connected, handshake not yet done */
    unsigned handshakes;
    mfl_client_connect_fn *on_connect;
    void *on_connect_arg;
    uint64_t last_heartbeat_ms;
    char last_error[512];
    /* libzmq does not redial after the server's ZAP handler refused our
     * key; a hospital whose key is allow-listed later (and the coordinator
     * reloaded with SIGHUP) must still get in without a restart. So after a
     * refusal we drop and re-add the endpoint ourselves, backing off. */
    int64_t redial_at_ms;      /* 0: no redial pending */
    int64_t redial_backoff_ms;
};

#define S_REDIAL_FIRST_MS 2000
#define S_REDIAL_MAX_MS 60000

void mfl_client_opts_default(mfl_client_opts_t *opts)
{
    mfl_wire_limits_default(&opts->limits);
    opts->heartbeat_ms = 2000;
    opts->send_timeout_ms = 5000;
    opts->reconnect_ivl_ms = 100;
    opts->reconnect_ivl_max_ms = 5000;
    opts->io_threads = 2;
}

static int s_setopt_int(void *s, int opt, int v) { return zmq_setsockopt(s, opt, &v, sizeof v); }

mfl_client_t *mfl_client_new(const char *endpoint, const mfl_identity_t *identity,
                             const mfl_public_key_t *server_key, const mfl_client_opts_t *opts,
                             char *err, size_t errlen)
{
    mfl_client_t *self = calloc(1, sizeof *self);
    if (!self) {
        mfl_errf(err, errlen, "out of memory");
        return NULL;
    }
    if (opts)
        self->opts = *opts;
    else
        mfl_client_opts_default(&self->opts);
    self->server_key = *server_key;
    snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
    snprintf(self->name, sizeof self->name, "%s", mfl_identity_name(identity));
    self->ctx = zmq_ctx_new();
    if (!self->ctx) {
        mfl_errf(err, errlen, "zmq_ctx_new failed: %s", zmq_strerror(errno));
        goto out_fail;
    }
    zmq_ctx_set(self->ctx, ZMQ_IO_THREADS, self->opts.io_threads > 0 ? self->opts.io_threads : 2);
    zmq_ctx_set(self->ctx, ZMQ_BLOCKY, 0);
    self->dealer = zmq_socket(self->ctx, ZMQ_DEALER);
    if (!self->dealer)
        goto out_zmq;
    const mfl_public_key_t *pub = mfl_identity_public(identity);
    if (zmq_setsockopt(self->dealer, ZMQ_CURVE_SERVERKEY, server_key->curve_pk_z85, 41) != 0 ||
        zmq_setsockopt(self->dealer, ZMQ_CURVE_PUBLICKEY, pub->curve_pk_z85, 41) != 0 ||
        zmq_setsockopt(self->dealer, ZMQ_CURVE_SECRETKEY, mfl_identity_curve_sk_z85(identity),
                       41) != 0 ||
        s_setopt_int(self->dealer, ZMQ_IMMEDIATE, 1) != 0 ||
        s_setopt_int(self->dealer, ZMQ_LINGER, 0) != 0 ||
        s_setopt_int(self->dealer, ZMQ_SNDTIMEO, self->opts.send_timeout_ms) != 0 ||
        s_setopt_int(self->dealer, ZMQ_RECONNECT_IVL, self->opts.reconnect_ivl_ms) != 0 ||
        s_setopt_int(self->dealer, ZMQ_RECONNECT_IVL_MAX, self->opts.reconnect_ivl_max_ms) != 0 ||
        /* No ZMTP heartbeats (the coordinator would count our PINGs
         * against this connection's backlog bound, and libzmq 4.3.4 can
         * abort on heartbeat timeouts, docs/WIRE.md): liveness is our
         * Heartbeat messages; TCP keepalive finds a dead link. */
        s_setopt_int(self->dealer, ZMQ_TCP_KEEPALIVE, 1) != 0 ||
        s_setopt_int(self->dealer, ZMQ_TCP_KEEPALIVE_IDLE, 30) != 0 ||
        s_setopt_int(self->dealer, ZMQ_TCP_KEEPALIVE_INTVL, 10) != 0 ||
        s_setopt_int(self->dealer, ZMQ_TCP_KEEPALIVE_CNT, 3) != 0 ||
        mfl_wire_set_maxmsgsize(self->dealer, &self->opts.limits) != 0)
        goto out_zmq;
    char mon[64];
    snprintf(mon, sizeof mon, "inproc://mfl-client-monitor-%p", (void *)self);
    if (zmq_socket_monitor(self->dealer, mon,
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0)
        goto out_zmq;
    self->monitor = zmq_socket(self->ctx, ZMQ_PAIR);
    if (!self->monitor || s_setopt_int(self->monitor, ZMQ_LINGER, 0) != 0 ||
        zmq_connect(self->monitor, mon) != 0)
        goto out_zmq;
    if (zmq_connect(self->dealer, endpoint) != 0) {
        mfl_errf(err, errlen, "cannot connect to %s: %s", endpoint, zmq_strerror(errno));
        goto out_fail;
    }
    return self;
out_zmq:
    mfl_errf(err, errlen, "cannot set up the client socket for %s: %s", endpoint,
             zmq_strerror(errno));
out_fail:
    mfl_client_destroy(&self);
    return NULL;
}

void mfl_client_destroy(mfl_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_client_t *self = *self_p;
    if (self->dealer) {
        zmq_socket_monitor(self->dealer, NULL, 0);
        zmq_close(self->dealer);
    }
    if (self->monitor)
        zmq_close(self->monitor);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    free(self);
    *self_p = NULL;
}

void mfl_client_on_connect(mfl_client_t *self, mfl_client_connect_fn *fn, void *arg)
{
    self->on_connect = fn;
    self->on_connect_arg = arg;
}

bool mfl_client_connected(const mfl_client_t *self) { return self->connected != 0; }
const char *mfl_client_last_error(const mfl_client_t *self) { return self->last_error; }

/* Reads one monitor event if waiting; 1 if one was handled, 0 if none. */
static int s_monitor_event(mfl_client_t *self)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, self->monitor, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return 0;
    }
    uint16_t event = 0;
    uint32_t value = 0;
    if (zmq_msg_size(&m) >= 6) {
        const uint8_t *d = zmq_msg_data(&m);
        memcpy(&event, d, 2);
        memcpy(&value, d + 2, 4);
    }
    int more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    while (more) { /* the endpoint frame */
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->monitor, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    switch (event) {
    case ZMQ_EVENT_CONNECTED:
        self->tcp_up = 1;
        break;
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        self->tcp_up = 0;
        self->connected = 1;
        self->handshakes++;
        self->last_error[0] = '\0';
        self->redial_at_ms = 0;
        self->redial_backoff_ms = 0;
        self->last_heartbeat_ms = mfl_wire_now_ms();
        mfl_debug("connected to %s (handshake %u)", self->endpoint, self->handshakes);
        if (self->on_connect)
            self->on_connect(self, self->handshakes, self->on_connect_arg);
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        self->tcp_up = 0;
        snprintf(self->last_error, sizeof self->last_error,
                 "coordinator at %s refused our key '%s' (ZAP status %u): is %s.pub in its "
                 "allow-list directory?",
                 self->endpoint, self->name, value, self->name);
        self->redial_backoff_ms = self->redial_backoff_ms
                                      ? self->redial_backoff_ms * 2
                                      : S_REDIAL_FIRST_MS;
        if (self->redial_backoff_ms > S_REDIAL_MAX_MS)
            self->redial_backoff_ms = S_REDIAL_MAX_MS;
        self->redial_at_ms = (int64_t)mfl_clock_mono_ms() + self->redial_backoff_ms;
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
    case ZMQ_EVENT_DISCONNECTED:
        if (self->connected) {
            self->connected = 0;
            snprintf(self->last_error, sizeof self->last_error,
                     "connection to %s lost; reconnecting", self->endpoint);
        } else if (self->tcp_up || event != ZMQ_EVENT_DISCONNECTED) {
            /* The server closes a connection whose CURVE HELLO it cannot
             * decrypt: the usual cause is pinning the wrong server key. */
            if (!strstr(self->last_error, "refused our key"))
                snprintf(self->last_error, sizeof self->last_error,
                         "connection to %s closed during the CURVE handshake: the pinned "
                         "coordinator key ('%s', %.40s) is probably wrong for that server "
                         "(event 0x%x, value %u)",
                         self->endpoint, self->server_key.name, self->server_key.curve_pk_z85,
                         (unsigned)event, value);
        }
        self->tcp_up = 0;
        break;
    default:
        break;
    }
    return 1;
}

/* After a key refusal: dial again once the backoff has passed. */
static void s_redial_if_due(mfl_client_t *self)
{
    if (!self->redial_at_ms || (int64_t)mfl_clock_mono_ms() < self->redial_at_ms)
        return;
    self->redial_at_ms = 0;
    (void)zmq_disconnect(self->dealer, self->endpoint); /* may already be gone */
    if (zmq_connect(self->dealer, self->endpoint) != 0)
        mfl_warn("redial %s after the key refusal failed: %s", self->endpoint,
                 zmq_strerror(errno));
    else
        mfl_debug("redialling %s after the key refusal (next wait %lld ms if refused again)",
                  self->endpoint, (long long)self->redial_backoff_ms * 2);
}

static void s_drain_monitor(mfl_client_t *self)
{
    while (s_monitor_event(self)) {
    }
    s_redial_if_due(self);
}

int mfl_client_wait_connected(mfl_client_t *self, int timeout_ms, char *err, size_t errlen)
{
    int64_t deadline = (int64_t)mfl_clock_mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    self->last_error[0] = '\0';
    for (;;) {
        s_drain_monitor(self);
        if (self->connected)
            return 0;
        if (self->last_error[0])
            break; /* a handshake failed: retrying would fail the same way */
        int64_t left = deadline - (int64_t)mfl_clock_mono_ms();
        if (left <= 0)
            break;
        zmq_pollitem_t it = {self->monitor, 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, (long)left);
    }
    if (self->last_error[0])
        mfl_errf(err, errlen, "%s", self->last_error);
    else
        mfl_errf(err, errlen, "no connection to %s within %d ms (is the coordinator running "
                 "and reachable?)", self->endpoint, timeout_ms);
    return -1;
}

int mfl_client_send(mfl_client_t *self, const Metafl__Envelope *env,
                    const mfl_tensor_t *tensors, size_t n_tensors, mfl_release_fn *release,
                    void *hint, char *err, size_t errlen)
{
    s_drain_monitor(self);
    char why[256] = "";
    if (mfl_msg_send(self->dealer, NULL, 0, env, tensors, n_tensors, &self->opts.limits, release,
                     hint, why, sizeof why) != 0) {
        s_drain_monitor(self);
        if (self->last_error[0])
            mfl_errf(err, errlen, "%s: %s (%s)", self->endpoint, why, self->last_error);
        else
            mfl_errf(err, errlen, "%s: %s", self->endpoint, why);
        return -1;
    }
    return 0;
}

int mfl_client_heartbeat(mfl_client_t *self, char *err, size_t errlen)
{
    Metafl__Heartbeat hb = METAFL__HEARTBEAT__INIT;
    hb.unix_ms = mfl_wire_now_ms();
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__HEARTBEAT;
    env.body_case = METAFL__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    self->last_heartbeat_ms = hb.unix_ms;
    /* Never block for a heartbeat: if the queue is full or the link is down
     * the peer is not waiting for one anyway. */
    int zero = 0;
    zmq_setsockopt(self->dealer, ZMQ_SNDTIMEO, &zero, sizeof zero);
    int rc = mfl_client_send(self, &env, NULL, 0, NULL, NULL, err, errlen);
    zmq_setsockopt(self->dealer, ZMQ_SNDTIMEO, &self->opts.send_timeout_ms,
                   sizeof self->opts.send_timeout_ms);
    return rc;
}

mfl_recv_result_t mfl_client_recv(mfl_client_t *self, int timeout_ms, mfl_msg_t **msg,
                                  int *reason, char *err, size_t errlen)
{
    *msg = NULL;
    int64_t deadline = timeout_ms < 0 ? -1 : (int64_t)mfl_clock_mono_ms() + timeout_ms;
    for (;;) {
        s_drain_monitor(self);
        uint64_t now = mfl_wire_now_ms();
        int hb = (int)self->opts.heartbeat_ms;
        if (hb > 0 && self->connected && now - self->last_heartbeat_ms >= (uint64_t)hb)
            (void)mfl_client_heartbeat(self, NULL, 0); /* best effort */
        int wait = hb > 0 ? hb : -1;
        if (deadline >= 0) {
            int64_t left = deadline - (int64_t)mfl_clock_mono_ms();
            if (left < 0)
                left = 0;
            if (wait < 0 || left < wait)
                wait = (int)left;
        }
        zmq_pollitem_t it[2] = {{self->dealer, 0, ZMQ_POLLIN, 0},
                                {self->monitor, 0, ZMQ_POLLIN, 0}};
        int rc = zmq_poll(it, 2, wait);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            mfl_errf(err, errlen, "poll failed: %s", zmq_strerror(errno));
            return MFL_RECV_ERROR;
        }
        if (it[0].revents & ZMQ_POLLIN) {
            uint8_t rid[1];
            size_t rid_len = 0;
            char site[MFL_KEY_NAME_MAX + 1];
            mfl_msg_t *m = NULL;
            int why = 0;
            rc = mfl_msg_recv_raw(self->dealer, 0, &self->opts.limits, &m, rid, &rid_len, site,
                                  &why, err, errlen);
            if (rc < 0)
                return MFL_RECV_ERROR;
            if (rc > 0) {
                if (m) {
                    *msg = m;
                    return MFL_RECV_OK;
                }
                if (reason)
                    *reason = why;
                return MFL_RECV_REJECTED;
            }
        }
        if (deadline >= 0 && (int64_t)mfl_clock_mono_ms() >= deadline)
            return MFL_RECV_TIMEOUT;
    }
}
