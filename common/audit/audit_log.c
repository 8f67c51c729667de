/* The audit log's writer: continues the chain of an existing log, appends
 * one line per record, fdatasync'd at once or (deferred mode, lazy appends)
 * at the caller's sync points. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit_internal.h"
#include "core/clock.h"
#include "core/fileio.h"
#include "core/log.h"

struct mfl_audit {
    pthread_mutex_t lock;
    int fd;
    char *path;
    char writer[MFL_AUDIT_NAME_MAX + 1];
    uint8_t *sk;            /* 64 bytes, sodium_malloc */
    uint64_t count;         /* records in the file */
    uint8_t head[32];       /* hash of the last record (zeros if none) */
    uint64_t synced_count;  /* the chain as of the last sync (durable) */
    uint8_t synced_head[32];
    /* mfl_audit_signed_head's last signature and what it signed: every
     * RoundTask of a round carries the same synced head, so one Ed25519
     * signature serves all N (signatures are deterministic: the bytes are
     * the same as signing again) */
    bool head_sig_valid;
    uint64_t head_sig_seq;
    uint8_t head_sig_head[32];
    uint8_t head_sig[64];
    uint64_t head_signs;    /* signatures made (mfl_audit_head_signs) */
    int failed;             /* the file's state is unknown: refuse the rest */
    off_t size;             /* bytes of complete records in the file */
    bool deferred;          /* fsync only in mfl_audit_sync (and destroy) */
    bool unsynced;          /* lines written since the last sync */
    char line[MFL_AUDIT_LINE_MAX + 2];
};

/* Checks one existing line's form, sequence, chain link and hash (not the
 * signature: that needs the public key, and verify does it). */
static int s_check_line(mfl_audit_t *self, const char *line, size_t len, char *why, size_t wl)
{
    static _Thread_local mfl_audit_record_t rec;
    char perr[200];
    if (mfl_audit_record_parse(line, len, &rec, perr, sizeof perr) != 0) {
        mfl_errf(why, wl, "malformed: %s", perr);
        return -1;
    }
    if (rec.seq != self->count + 1) {
        mfl_errf(why, wl, "sequence number is %" PRIu64 ", expected %" PRIu64, rec.seq,
                 self->count + 1);
        return -1;
    }
    if (sodium_memcmp(rec.prev, self->head, 32) != 0) {
        mfl_errf(why, wl, "hash chain broken (prev_hash does not match record %" PRIu64 ")",
                 self->count);
        return -1;
    }
    size_t body;
    long n = mfl_audit_format(&rec, 1, self->line, sizeof self->line, &body, perr, sizeof perr);
    if (n < 0 || (size_t)n != len || memcmp(self->line, line, len) != 0) {
        mfl_errf(why, wl, "not in canonical form (edited by hand?)");
        return -1;
    }
    uint8_t h[32];
    mfl_audit_hash_body(line, body, h);
    if (sodium_memcmp(h, rec.hash, 32) != 0) {
        mfl_errf(why, wl, "record hash does not match its contents (record altered)");
        return -1;
    }
    memcpy(self->head, rec.hash, 32);
    self->count++;
    return 0;
}

/* Reads the existing log: chain state into self; *keep = bytes of complete
 * lines; *torn = bytes of a torn last line. */
static int s_scan(mfl_audit_t *self, off_t *keep, off_t *torn, char *err, size_t errlen)
{
    *keep = 0;
    *torn = 0;
    FILE *f = fopen(self->path, "r");
    if (!f) {
        mfl_errf(err, errlen, "%s: cannot read: %s", self->path, strerror(errno));
        return -1;
    }
    static _Thread_local char buf[MFL_AUDIT_LINE_MAX + 2];
    size_t len, line_no = 0;
    int rc = 0;
    for (;;) {
        int r = mfl_audit_read_line(f, buf, sizeof buf, &len);
        if (r == 0)
            break;
        line_no++;
        if (r < 0) {
            mfl_errf(err, errlen, "%s:%zu: record %" PRIu64 ": line too long or unreadable",
                     self->path, line_no, self->count + 1);
            rc = -1;
            break;
        }
        if (r == 2) {
            *torn = (off_t)len;
            break;
        }
        char why[300];
        if (s_check_line(self, buf, len, why, sizeof why) != 0) {
            mfl_errf(err, errlen, "%s:%zu: record %" PRIu64 ": %s", self->path, line_no,
                     self->count + 1, why);
            rc = -1;
            break;
        }
        *keep += (off_t)len + 1;
    }
    fclose(f);
    return rc;
}

mfl_audit_t *mfl_audit_open(const char *path, const char *writer, const uint8_t sign_sk[64],
                            char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        mfl_errf(err, errlen, "%s: libsodium failed to initialise", path);
        return NULL;
    }
    size_t wn = strnlen(writer, MFL_AUDIT_NAME_MAX + 1);
    if (wn == 0 || wn > MFL_AUDIT_NAME_MAX) {
        mfl_errf(err, errlen, "%s: writer name must be 1..%d characters", path,
                 MFL_AUDIT_NAME_MAX);
        return NULL;
    }
    mfl_audit_t *self = calloc(1, sizeof *self);
    if (!self) {
        mfl_errf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    self->fd = -1;
    memcpy(self->writer, writer, wn + 1);
    self->path = strdup(path);
    self->sk = sodium_malloc(64);
    if (!self->path || !self->sk) {
        mfl_errf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    memcpy(self->sk, sign_sk, 64);
    sodium_mprotect_readonly(self->sk);

    struct stat st;
    int existed = stat(path, &st) == 0;
    if (!existed) {
        /* A fresh run directory is normal: make the log's parents. */
        const char *slash = strrchr(path, '/');
        if (slash && slash != path) {
            char dir[4096];
            size_t dn = (size_t)(slash - path);
            if (dn >= sizeof dir) {
                mfl_errf(err, errlen, "%s: path too long", path);
                goto fail;
            }
            memcpy(dir, path, dn);
            dir[dn] = '\0';
            if (mfl_mkdir_p(dir, 0755, err, errlen) != 0)
                goto fail;
        }
    }
    self->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (self->fd < 0) {
        mfl_errf(err, errlen, "%s: cannot open audit log: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(self->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        mfl_errf(err, errlen, "%s: audit log is not a regular file", path);
        goto fail;
    }
    /* One writer per log: a second one would fork the hash chain. The lock
     * goes with the fd, so a crashed writer never leaves it behind. */
    if (flock(self->fd, LOCK_EX | LOCK_NB) != 0) {
        mfl_errf(err, errlen, "%s: audit log is in use by another writer (%s)", path,
                 errno == EWOULDBLOCK ? "locked" : strerror(errno));
        goto fail;
    }
    off_t keep = 0, torn = 0;
    if (existed && s_scan(self, &keep, &torn, err, errlen) != 0)
        goto fail;
    self->synced_count = self->count; /* found on disk */
    memcpy(self->synced_head, self->head, 32);
    mfl_audit_record_t *note = calloc(1, sizeof *note);
    if (!note) {
        mfl_errf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    mfl_audit_record_init(note, MFL_AUDIT_LOG_OPENED, 0, NULL);
    if (torn > 0) {
        /* The torn line was being written when the process died; its fsync
         * never returned, so nothing acted on it. Cut it and say so. */
        if (ftruncate(self->fd, keep) != 0 || fsync(self->fd) != 0) {
            mfl_errf(err, errlen, "%s: cannot cut torn last line: %s", path, strerror(errno));
            free(note);
            goto fail;
        }
        mfl_warn("%s: cut a torn last line of %lld bytes after record %" PRIu64
                 " (crash during a write)", path, (long long)torn, self->count);
        snprintf(note->reason, sizeof note->reason,
                 "reopened after %" PRIu64 " records; cut a torn last line of %lld bytes",
                 self->count, (long long)torn);
    } else if (self->count) {
        snprintf(note->reason, sizeof note->reason, "reopened after %" PRIu64 " records",
                 self->count);
    } else {
        snprintf(note->reason, sizeof note->reason, "created");
    }
    if (fstat(self->fd, &st) != 0) {
        mfl_errf(err, errlen, "%s: cannot stat audit log: %s", path, strerror(errno));
        free(note);
        goto fail;
    }
    self->size = st.st_size;
    if (!existed && mfl_fsync_parent(path, err, errlen) != 0) {
        free(note);
        goto fail;
    }
    int rc = mfl_audit_append(self, note, NULL, err, errlen);
    free(note);
    if (rc != 0)
        goto fail;
    return self;

fail:
    mfl_audit_destroy(&self);
    return NULL;
}

void mfl_audit_destroy(mfl_audit_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_audit_t *self = *self_p;
    if (self->fd >= 0) {
        /* Shutdown is a sync point of deferred mode: nothing written is
         * left to the kernel's writeback once the writer is gone. */
        char err[300];
        if (self->unsynced && !self->failed && mfl_audit_sync(self, err, sizeof err) != 0)
            mfl_error("%s", err);
        close(self->fd);
    }
    sodium_free(self->sk); /* wipes */
    free(self->path);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* The durable point of an append or a sync: fdatasync, not fsync. For an
 * append-only file it flushes the new bytes and the metadata needed to read
 * them back (the file's size: POSIX, "synchronized I/O data integrity
 * completion"), and skips only the timestamps, which nothing reads. */
static int s_data_sync(int fd)
{
    return fdatasync(fd);
}

static int s_append(mfl_audit_t *self, const mfl_audit_record_t *rec, mfl_audit_record_t *out,
                    bool lazy, char *err, size_t errlen)
{
    mfl_audit_record_t *r = malloc(sizeof *r);
    if (!r) {
        mfl_errf(err, errlen, "%s: out of memory", self->path);
        return -1;
    }
    memcpy(r, rec, sizeof *r);
    /* Reasons are often error messages ("≥", "×", a peer's text): as
     * audit.h promises, bytes outside printable ASCII become '?' rather than
     * losing the record. */
    r->reason[MFL_AUDIT_REASON_MAX] = '\0';
    for (char *p = r->reason; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    pthread_mutex_lock(&self->lock);
    int rc = -1;
    if (self->failed) {
        mfl_errf(err, errlen, "%s: an earlier append failed; the log is closed for writing",
                 self->path);
        goto out;
    }
    r->seq = self->count + 1;
    if (r->time_ms == 0)
        r->time_ms = mfl_clock_wall_ms();
    memcpy(r->writer, self->writer, sizeof r->writer);
    memcpy(r->prev, self->head, 32);
    memset(r->hash, 0, 32);
    memset(r->sig, 0, 64);
    char why[200];
    size_t body;
    if (mfl_audit_format(r, 0, self->line, sizeof self->line, &body, why, sizeof why) < 0) {
        mfl_errf(err, errlen, "%s: record %" PRIu64 " not written: %s", self->path, r->seq, why);
        goto out;
    }
    mfl_audit_hash_body(self->line, body, r->hash);
    uint8_t msg[64];
    size_t msg_len;
    mfl_audit_sig_message(r->hash, msg, &msg_len);
    crypto_sign_detached(r->sig, NULL, msg, msg_len, self->sk);
    long n = mfl_audit_format(r, 1, self->line, sizeof self->line - 1, NULL, why, sizeof why);
    if (n < 0) {
        mfl_errf(err, errlen, "%s: record %" PRIu64 " not written: %s", self->path, r->seq, why);
        goto out;
    }
    self->line[n] = '\n';
    /* One write of the whole line (O_APPEND), then fsync: a crash leaves at
     * most this one line torn, which reopen cuts and verify reports. In
     * deferred mode the line is in the page cache once write returns (a
     * process crash loses nothing; readers see it) and the fsync waits for
     * mfl_audit_sync. */
    if (mfl_file_write_full(self->fd, self->line, (size_t)n + 1) != 0) {
        /* A full or failing volume (ENOSPC, EDQUOT, EFBIG): cut what part
         * of the line was written, so the file ends with the last
         * complete record and the append can be retried; if even that
         * fails the file's state is unknown and the log stays closed. */
        int e = errno;
        bool cut = ftruncate(self->fd, self->size) == 0;
        if (!cut)
            self->failed = 1;
        mfl_errf(err, errlen, "%s: append of record %" PRIu64 " failed: %s (%s)", self->path,
                 r->seq, strerror(e),
                 cut ? "nothing written; it can be retried" : "the log is closed for writing");
        goto out;
    }
    /* Not synced now (deferred mode, or a lazy append): the line waits in
     * the page cache for the next sync point; a sync now also makes every
     * lazy line before it durable (one fdatasync covers the whole file). */
    bool sync_now = !self->deferred && !lazy;
    if (sync_now && s_data_sync(self->fd) != 0) {
        self->failed = 1;
        mfl_errf(err, errlen, "%s: append of record %" PRIu64 " failed: fsync: %s", self->path,
                 r->seq, strerror(errno));
        goto out;
    }
    self->size += (off_t)n + 1;
    self->count = r->seq;
    memcpy(self->head, r->hash, 32);
    if (sync_now) {
        self->synced_count = self->count;
        memcpy(self->synced_head, self->head, 32);
    }
    self->unsynced = !sync_now;
    if (out)
        memcpy(out, r, sizeof *r);
    rc = 0;
out:
    pthread_mutex_unlock(&self->lock);
    free(r);
    return rc;
}

int mfl_audit_append(mfl_audit_t *self, const mfl_audit_record_t *rec, mfl_audit_record_t *out,
                     char *err, size_t errlen)
{
    return s_append(self, rec, out, false, err, errlen);
}

int mfl_audit_append_lazy(mfl_audit_t *self, const mfl_audit_record_t *rec,
                          mfl_audit_record_t *out, char *err, size_t errlen)
{
    return s_append(self, rec, out, true, err, errlen);
}

bool mfl_audit_failed(mfl_audit_t *self)
{
    pthread_mutex_lock(&self->lock);
    bool f = self->failed != 0;
    pthread_mutex_unlock(&self->lock);
    return f;
}

uint64_t mfl_audit_count(mfl_audit_t *self)
{
    pthread_mutex_lock(&self->lock);
    uint64_t n = self->count;
    pthread_mutex_unlock(&self->lock);
    return n;
}

void mfl_audit_head(mfl_audit_t *self, uint8_t out[32])
{
    pthread_mutex_lock(&self->lock);
    memcpy(out, self->head, 32);
    pthread_mutex_unlock(&self->lock);
}

void mfl_audit_set_deferred_sync(mfl_audit_t *self, bool deferred)
{
    pthread_mutex_lock(&self->lock);
    self->deferred = deferred;
    pthread_mutex_unlock(&self->lock);
}

int mfl_audit_sync(mfl_audit_t *self, char *err, size_t errlen)
{
    pthread_mutex_lock(&self->lock);
    int rc = 0;
    if (self->failed) {
        mfl_errf(err, errlen, "%s: an earlier append failed; the log is closed for writing",
                 self->path);
        rc = -1;
    } else if (self->unsynced) {
        if (s_data_sync(self->fd) != 0) {
            /* Which records reached the disk is now unknown (a failed fsync
             * may drop dirty pages): as with a failed append, stop. */
            self->failed = 1;
            mfl_errf(err, errlen, "%s: fsync after record %" PRIu64 " failed: %s", self->path,
                     self->count, strerror(errno));
            rc = -1;
        } else {
            self->unsynced = false;
        }
    }
    if (rc == 0) {
        self->synced_count = self->count;
        memcpy(self->synced_head, self->head, 32);
    }
    pthread_mutex_unlock(&self->lock);
    return rc;
}

/* "metafl-audit-head-v1" || seq (u64 LE) || head. */
static size_t s_head_message(uint64_t seq, const uint8_t head[32], uint8_t msg[64])
{
    static const char tag[] = "metafl-audit-head-v1";
    size_t n = sizeof tag - 1;
    memcpy(msg, tag, n);
    for (int i = 0; i < 8; i++)
        msg[n + (size_t)i] = (uint8_t)(seq >> (8 * i));
    memcpy(msg + n + 8, head, 32);
    return n + 8 + 32;
}

void mfl_audit_signed_head(mfl_audit_t *self, uint64_t *seq, uint8_t head[32], uint8_t sig[64])
{
    pthread_mutex_lock(&self->lock);
    *seq = self->synced_count;
    memcpy(head, self->synced_head, 32);
    if (!self->head_sig_valid || self->head_sig_seq != *seq ||
        memcmp(self->head_sig_head, head, 32) != 0) {
        uint8_t msg[64];
        size_t n = s_head_message(*seq, head, msg);
        crypto_sign_detached(self->head_sig, NULL, msg, n, self->sk);
        self->head_sig_seq = *seq;
        memcpy(self->head_sig_head, head, 32);
        self->head_sig_valid = true;
        self->head_signs++;
    }
    memcpy(sig, self->head_sig, 64);
    pthread_mutex_unlock(&self->lock);
}

uint64_t mfl_audit_head_signs(mfl_audit_t *self)
{
    pthread_mutex_lock(&self->lock);
    uint64_t n = self->head_signs;
    pthread_mutex_unlock(&self->lock);
    return n;
}

int mfl_audit_head_verify(const uint8_t pk[32], uint64_t seq, const uint8_t head[32],
                          const uint8_t sig[64])
{
    uint8_t msg[64];
    size_t n = s_head_message(seq, head, msg);
    return crypto_sign_verify_detached(sig, msg, n, pk) == 0 ? 0 : -1;
}
