/* Per-connection backlog bound and connection cut for a ROUTER (conn_guard.h). */
#include "wire/conn_guard.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <zmq.h>

#include "core/log.h"

typedef struct {
    int fd;
    bool open;
    bool early;          /* seen in a delivery before its ACCEPTED event */
    uint64_t delivered;  /* wire bytes the application has taken */
} s_conn_t;

struct mfl_conn_guard {
    void *monitor;       /* PAIR, owned by the thread while it runs */
    pthread_t thread;
    bool running;
    atomic_int stop;
    pthread_mutex_t lock;
    s_conn_t *conns;     /* guarded by lock */
    size_t n, cap;
    uint64_t budget;
    size_t max_conns;
    mfl_conn_guard_stats_t stats;
    char endpoint[64];
};

uint64_t mfl_conn_guard_wire_bytes(size_t size)
{
    /* CurveZMQ MESSAGE body: "\x07MESSAGE" (8) + short nonce (8) + box
     * (16-byte MAC + 1 flags byte + payload); ZMTP 3 frame header: flags
     * byte + 1-byte size up to 255, else 8-byte size. */
    uint64_t body = 33 + (uint64_t)size;
    return body + (body <= 255 ? 2 : 9);
}

static int s_bytes_received(int fd, uint64_t *out)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return -1;
    if (len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
        return -1; /* a kernel without the counter (Linux < 4.1) */
    *out = ti.tcpi_bytes_received;
    return 0;
}

/* Under lock. */
static s_conn_t *s_find(mfl_conn_guard_t *self, int fd)
{
    for (size_t i = 0; i < self->n; i++)
        if (self->conns[i].fd == fd)
            return &self->conns[i];
    return NULL;
}

static s_conn_t *s_add(mfl_conn_guard_t *self, int fd)
{
    if (self->n == self->cap) {
        size_t cap = self->cap ? 2 * self->cap : 16;
        s_conn_t *g = realloc(self->conns, cap * sizeof *g);
        if (!g)
            return NULL;
        self->conns = g;
        self->cap = cap;
    }
    s_conn_t *c = &self->conns[self->n++];
    memset(c, 0, sizeof *c);
    c->fd = fd;
    return c;
}

static void s_remove(mfl_conn_guard_t *self, s_conn_t *c)
{
    *c = self->conns[--self->n];
}

static size_t s_open_count(const mfl_conn_guard_t *self)
{
    size_t k = 0;
    for (size_t i = 0; i < self->n; i++)
        k += self->conns[i].open;
    return k;
}

/* Under lock: shuts the connection down; libzmq notices and drops it. */
static void s_cut(s_conn_t *c)
{
    shutdown(c->fd, SHUT_RDWR);
    c->open = false;
}

static void s_on_event(mfl_conn_guard_t *self, uint16_t event, int fd)
{
    pthread_mutex_lock(&self->lock);
    s_conn_t *c = s_find(self, fd);
    if (event == ZMQ_EVENT_ACCEPTED) {
        /* A descriptor number comes back after a close: start afresh. */
        if (!c)
            c = s_add(self, fd);
        if (c) {
            /* The kernel counts from the accept, handshake included, so
             * the count starts at 0; deliveries that beat this event to
             * the table belong to this connection and are kept. */
            if (!c->early)
                c->delivered = 0;
            c->early = false;
            c->open = true;
            if (s_open_count(self) > self->max_conns) {
                s_cut(c);
                self->stats.cut_surplus++;
                mfl_warn("%s: connection refused: %zu connections open (limit %zu)",
                         self->endpoint, self->max_conns + 1, self->max_conns);
            }
        }
    } else if (c) { /* DISCONNECTED or CLOSED */
        s_remove(self, c);
    }
    self->stats.open = s_open_count(self);
    pthread_mutex_unlock(&self->lock);
}

static void s_check_backlogs(mfl_conn_guard_t *self)
{
    pthread_mutex_lock(&self->lock);
    self->stats.backlog_now = 0;
    for (size_t i = 0; i < self->n; i++) {
        s_conn_t *c = &self->conns[i];
        uint64_t got = 0;
        if (!c->open || s_bytes_received(c->fd, &got) != 0)
            continue;
        uint64_t taken = c->delivered;
        uint64_t backlog = got > taken ? got - taken : 0;
        if (backlog > self->stats.max_backlog)
            self->stats.max_backlog = backlog;
        if (backlog > self->stats.backlog_now)
            self->stats.backlog_now = backlog;
        if (backlog > self->budget) {
            s_cut(c);
            self->stats.cut_backlog++;
            mfl_warn("%s: connection cut: %llu bytes received and not yet taken (a message "
                     "still arriving or queued), over the per-connection bound of %llu",
                     self->endpoint, (unsigned long long)backlog,
                     (unsigned long long)self->budget);
        }
    }
    pthread_mutex_unlock(&self->lock);
}

/* One monitor event: frame 1 = uint16 event + uint32 value (the fd for
 * ACCEPTED / DISCONNECTED / CLOSED), frame 2 = endpoint. */
static void s_read_event(mfl_conn_guard_t *self)
{
    zmq_msg_t m;
    uint16_t event = 0;
    uint32_t value = 0;
    int more = 1, first = 1;
    while (more) {
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        if (first && zmq_msg_size(&m) >= 6) {
            memcpy(&event, zmq_msg_data(&m), 2);
            memcpy(&value, (uint8_t *)zmq_msg_data(&m) + 2, 4);
        }
        first = 0;
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    s_on_event(self, event, (int)value);
}

static void *s_main(void *arg)
{
    mfl_conn_guard_t *self = arg;
    while (!atomic_load(&self->stop)) {
        zmq_pollitem_t it = {self->monitor, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&it, 1, MFL_CONN_GUARD_TICK_MS);
        if (rc < 0 && errno == ETERM)
            break;
        if (rc > 0)
            s_read_event(self);
        s_check_backlogs(self);
    }
    return NULL;
}

mfl_conn_guard_t *mfl_conn_guard_new(void *ctx, void *router, uint64_t budget_bytes,
                                     size_t max_conns, char *err, size_t errlen)
{
    mfl_conn_guard_t *self = calloc(1, sizeof *self);
    if (!self) {
        mfl_errf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    atomic_init(&self->stop, 0);
    self->budget = budget_bytes;
    self->max_conns = max_conns ? max_conns : 1;
    snprintf(self->endpoint, sizeof self->endpoint, "coordinator socket");
    char name[64];
    snprintf(name, sizeof name, "inproc://mfl-conn-guard-%p", router);
    int zero = 0;
    if (zmq_socket_monitor(router, name,
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CLOSED) != 0 ||
        !(self->monitor = zmq_socket(ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(self->monitor, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_connect(self->monitor, name) != 0) {
        mfl_errf(err, errlen, "cannot monitor the server socket: %s", zmq_strerror(errno));
        goto out_fail;
    }
    if (pthread_create(&self->thread, NULL, s_main, self) != 0) {
        mfl_errf(err, errlen, "cannot start the connection guard thread");
        goto out_fail;
    }
    self->running = true;
    return self;
out_fail:
    mfl_conn_guard_destroy(&self);
    return NULL;
}

void mfl_conn_guard_destroy(mfl_conn_guard_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_conn_guard_t *self = *self_p;
    atomic_store(&self->stop, 1);
    if (self->running)
        pthread_join(self->thread, NULL);
    if (self->monitor)
        zmq_close(self->monitor);
    pthread_mutex_destroy(&self->lock);
    free(self->conns);
    free(self);
    *self_p = NULL;
}

void mfl_conn_guard_delivered(mfl_conn_guard_t *self, int fd, uint64_t wire_bytes)
{
    if (!self || fd < 0)
        return;
    pthread_mutex_lock(&self->lock);
    s_conn_t *c = s_find(self, fd);
    if (!c) { /* the message beat its ACCEPTED event to us */
        c = s_add(self, fd);
        if (c) {
            c->open = true;
            c->early = true;
        }
    }
    if (c)
        c->delivered += wire_bytes;
    pthread_mutex_unlock(&self->lock);
}

int mfl_conn_guard_cut(mfl_conn_guard_t *self, int fd)
{
    if (!self || fd < 0)
        return -1;
    int rc = -1;
    pthread_mutex_lock(&self->lock);
    s_conn_t *c = s_find(self, fd);
    if (c && c->open) {
        s_cut(c);
        self->stats.cut_asked++;
        rc = 0;
    }
    pthread_mutex_unlock(&self->lock);
    return rc;
}

mfl_conn_guard_stats_t mfl_conn_guard_stats(mfl_conn_guard_t *self)
{
    pthread_mutex_lock(&self->lock);
    mfl_conn_guard_stats_t s = self->stats;
    s.open = s_open_count(self);
    pthread_mutex_unlock(&self->lock);
    return s;
}
