/* Reading and verifying an audit log: form, sequence, chain, hashes, the
 * writer's signatures and the sites' update signatures. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit_internal.h"
#include "core/fileio.h"
#include "core/log.h"
#include "wire/keys.h"
#include "wire/task.h"

/* A log opened for reading with its size checked against the cap. */
static FILE *s_open(const char *path, char *err, size_t errlen)
{
    struct stat st;
    int fd = mfl_file_open_regular(path, &st, err, errlen);
    if (fd < 0)
        return NULL;
    if ((uint64_t)st.st_size > MFL_AUDIT_FILE_MAX) {
        mfl_errf(err, errlen, "%s: audit log larger than %llu bytes", path,
                 (unsigned long long)MFL_AUDIT_FILE_MAX);
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        mfl_errf(err, errlen, "%s: cannot open audit log: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

int mfl_audit_foreach(const char *path, mfl_audit_each_fn *fn, void *arg, char *err,
                      size_t errlen)
{
    FILE *f = s_open(path, err, errlen);
    if (!f)
        return -1;
    char *buf = malloc(MFL_AUDIT_LINE_MAX + 2);
    mfl_audit_record_t *rec = malloc(sizeof *rec);
    int rc = 0;
    if (!buf || !rec) {
        mfl_errf(err, errlen, "%s: out of memory", path);
        rc = -1;
        goto out;
    }
    size_t len, line_no = 0;
    for (;;) {
        int r = mfl_audit_read_line(f, buf, MFL_AUDIT_LINE_MAX + 2, &len);
        if (r == 0)
            break;
        line_no++;
        char why[200];
        if (r < 0) {
            mfl_errf(err, errlen, "%s:%zu: line longer than %d bytes or unreadable", path,
                     line_no, MFL_AUDIT_LINE_MAX);
            rc = -1;
            break;
        }
        if (r == 2) {
            mfl_errf(err, errlen, "%s:%zu: truncated last line (no newline: torn write?)", path,
                     line_no);
            rc = -1;
            break;
        }
        if (mfl_audit_record_parse(buf, len, rec, why, sizeof why) != 0) {
            mfl_errf(err, errlen, "%s:%zu: malformed record: %s", path, line_no, why);
            rc = -1;
            break;
        }
        rc = fn(arg, line_no, rec);
        if (rc != 0)
            break;
    }
out:
    free(buf);
    free(rec);
    fclose(f);
    return rc;
}

/* Public keys looked up once per name. */
#define S_KEY_CACHE 64

typedef struct {
    char name[MFL_AUDIT_NAME_MAX + 1];
    uint8_t pk[32];
} s_key_t;

typedef struct {
    mfl_audit_key_fn *fn;
    void *arg;
    s_key_t keys[S_KEY_CACHE];
    size_t n;
} s_keys_t;

static int s_key(s_keys_t *k, const char *name, uint8_t pk[32], char *err, size_t errlen)
{
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->keys[i].name, name) == 0) {
            memcpy(pk, k->keys[i].pk, 32);
            return 0;
        }
    if (k->fn(k->arg, name, pk, err, errlen) != 0)
        return -1;
    if (k->n < S_KEY_CACHE) {
        snprintf(k->keys[k->n].name, sizeof k->keys[k->n].name, "%s", name);
        memcpy(k->keys[k->n].pk, pk, 32);
        k->n++;
    }
    return 0;
}

/* The site's signature over its UpdateHeader, and that the header says what
 * the record says. 0 or -1 with why. */
static int s_check_site(s_keys_t *keys, const mfl_audit_record_t *rec, char *why, size_t wl)
{
    uint8_t pk[32];
    char kerr[300];
    if (rec->site[0] == '\0') {
        mfl_errf(why, wl, "holds a site signature but no site name");
        return -1;
    }
    if (s_key(keys, rec->site, pk, kerr, sizeof kerr) != 0) {
        mfl_errf(why, wl, "cannot check site signature: %s", kerr);
        return -1;
    }
    if (crypto_sign_verify_detached(rec->update_sig, rec->signed_header,
                                    rec->signed_header_len, pk) != 0) {
        mfl_errf(why, wl, "site update signature invalid (key '%s')", rec->site);
        return -1;
    }
    mfl_update_header_t hdr, *h = &hdr;
    char derr[160];
    if (mfl_update_header_decode(rec->signed_header, rec->signed_header_len, h, derr,
                                 sizeof derr) != 0) {
        mfl_errf(why, wl, "signed header is not a valid UpdateHeader");
        return -1;
    }
    int rc = -1;
    if (h->round != rec->round) {
        mfl_errf(why, wl, "site signed round %" PRIu32 ", record says %" PRIu64, h->round,
                 rec->round);
        goto out;
    }
    if (strcmp(h->site, rec->site) != 0) {
        mfl_errf(why, wl, "site signed as '%s', record says '%s'", h->site, rec->site);
        goto out;
    }
    if (h->n_samples != rec->n) {
        mfl_errf(why, wl, "site signed n = %" PRIu64 ", record says %" PRIu64, h->n_samples,
                 rec->n);
        goto out;
    }
    if (rec->nonce_len &&
        (h->nonce_len != rec->nonce_len || memcmp(h->nonce, rec->nonce, rec->nonce_len) != 0)) {
        mfl_errf(why, wl, "site signed a different nonce");
        goto out;
    }
    if (rec->has_delta_hash) {
        if (h->digest_error[0]) {
            mfl_errf(why, wl, "signed header: %s", h->digest_error);
            goto out;
        }
        if (memcmp(h->digest, rec->delta_hash, 32) != 0) {
            mfl_errf(why, wl, "delta_hash is not the digest of the %zu tensor hash(es) the "
                              "site signed", h->n_tensor_hashes);
            goto out;
        }
    }
    /* The norm may be computed on either side (float vs double): allow
     * rounding, not a different delta. Written so a NaN the site signed
     * fails the check (a NaN compares false either way). */
    if (!(fabs(h->delta_norm - rec->norm) <= 1e-4 * fmax(1.0, fabs(rec->norm)))) {
        mfl_errf(why, wl, "site signed norm %.9g, record says %.9g", h->delta_norm, rec->norm);
        goto out;
    }
    rc = 0;
out:
    return rc;
}

/* One line's record: form, sequence number `expect`, canonical bytes,
 * chain from `head`, own hash, the writer's signature and, for a record
 * holding a site's signed update (not a rejected one), the site's. 0, or
 * -1 with why. Counts checked site signatures in *n_site_sigs. */
static int s_check_line(s_keys_t *keys, const char *buf, size_t len, mfl_audit_record_t *rec,
                        char *canon, const uint8_t head[32], uint64_t expect,
                        size_t *n_site_sigs, char *why, size_t wl)
{
    char perr[200];
    if (mfl_audit_record_parse(buf, len, rec, perr, sizeof perr) != 0) {
        mfl_errf(why, wl, "malformed: %s", perr);
        return -1;
    }
    if (rec->seq != expect) {
        mfl_errf(why, wl,
                 "sequence number is %" PRIu64 " (records deleted, duplicated or reordered)",
                 rec->seq);
        return -1;
    }
    size_t body;
    long n = mfl_audit_format(rec, 1, canon, MFL_AUDIT_LINE_MAX + 2, &body, perr, sizeof perr);
    if (n < 0 || (size_t)n != len || memcmp(canon, buf, len) != 0) {
        mfl_errf(why, wl, "not in canonical form (edited?)");
        return -1;
    }
    if (sodium_memcmp(rec->prev, head, 32) != 0) {
        if (expect == 1)
            mfl_errf(why, wl, "hash chain broken (first record's prev_hash is not "
                              "zero: records before it removed?)");
        else
            mfl_errf(why, wl,
                     "hash chain broken (prev_hash does not match record %" PRIu64 ")",
                     expect - 1);
        return -1;
    }
    uint8_t h[32];
    mfl_audit_hash_body(buf, body, h);
    if (sodium_memcmp(h, rec->hash, 32) != 0) {
        mfl_errf(why, wl, "record hash does not match its contents (altered)");
        return -1;
    }
    uint8_t pk[32], msg[64];
    size_t msg_len;
    if (s_key(keys, rec->writer, pk, perr, sizeof perr) != 0) {
        mfl_errf(why, wl, "cannot check writer signature: %s", perr);
        return -1;
    }
    mfl_audit_sig_message(rec->hash, msg, &msg_len);
    if (crypto_sign_verify_detached(rec->sig, msg, msg_len, pk) != 0) {
        mfl_errf(why, wl, "writer signature invalid (key '%s')", rec->writer);
        return -1;
    }
    /* A rejected update may be rejected *because* its signature or
     * header is bad: keeping it as evidence must not fail the log. */
    if (rec->has_update_sig && rec->signed_header_len > 0 &&
        rec->kind != MFL_AUDIT_UPDATE_REJECTED) {
        if (s_check_site(keys, rec, why, wl) != 0)
            return -1;
        (*n_site_sigs)++;
    }
    if (rec->kind == MFL_AUDIT_PEER_HEAD) {
        uint8_t ppk[32];
        if (!rec->has_update_sig || !rec->has_delta_hash || !rec->site[0]) {
            mfl_errf(why, wl, "peer_head without the peer's name, head or signature");
            return -1;
        }
        if (s_key(keys, rec->site, ppk, perr, sizeof perr) != 0) {
            mfl_errf(why, wl, "cannot check the peer's head signature: %s", perr);
            return -1;
        }
        if (mfl_audit_head_verify(ppk, rec->n, rec->delta_hash, rec->update_sig) != 0) {
            mfl_errf(why, wl, "peer head signature invalid (key '%s')", rec->site);
            return -1;
        }
        (*n_site_sigs)++;
    }
    return 0;
}

int mfl_audit_verify_with(const char *path, mfl_audit_key_fn *key_fn, void *keys_arg,
                          mfl_audit_report_t *report)
{
    memset(report, 0, sizeof *report);
    if (sodium_init() < 0) {
        mfl_errf(report->message, sizeof report->message, "libsodium failed to initialise");
        return -1;
    }
    FILE *f = s_open(path, report->message, sizeof report->message);
    if (!f)
        return -1;
    char *buf = malloc(MFL_AUDIT_LINE_MAX + 2);
    char *canon = malloc(MFL_AUDIT_LINE_MAX + 2);
    mfl_audit_record_t *rec = malloc(sizeof *rec);
    s_keys_t *keys = calloc(1, sizeof *keys);
    int rc = -1;
    if (!buf || !canon || !rec || !keys) {
        mfl_errf(report->message, sizeof report->message, "%s: out of memory", path);
        goto out;
    }
    keys->fn = key_fn;
    keys->arg = keys_arg;
    uint8_t head[32] = {0};
    uint64_t expect = 1;
    size_t len, line_no = 0;
    char why[400];
    for (;;) {
        int r = mfl_audit_read_line(f, buf, MFL_AUDIT_LINE_MAX + 2, &len);
        if (r == 0)
            break;
        line_no++;
        why[0] = '\0';
        if (r < 0) {
            mfl_errf(why, sizeof why, "line longer than %d bytes or unreadable",
                     MFL_AUDIT_LINE_MAX);
            goto bad;
        }
        if (r == 2) {
            mfl_errf(why, sizeof why,
                     "truncated last line (%zu bytes, no newline: the writer crashed "
                     "mid-write, or the file was cut)", len);
            goto bad;
        }
        if (s_check_line(keys, buf, len, rec, canon, head, expect, &report->n_site_sigs, why,
                         sizeof why) != 0)
            goto bad;
        memcpy(head, rec->hash, 32);
        expect++;
        report->n_records++;
    }
    rc = 0;
    snprintf(report->message, sizeof report->message,
             "ok: %zu record%s, chain intact, all signatures valid (%zu site update "
             "signature%s checked)", report->n_records, report->n_records == 1 ? "" : "s",
             report->n_site_sigs, report->n_site_sigs == 1 ? "" : "s");
    goto out;

bad:
    report->bad_line = line_no;
    report->bad_record = expect;
    snprintf(report->message, sizeof report->message, "%s:%zu: record %" PRIu64 ": %s", path,
             line_no, expect, why);
out:
    free(buf);
    free(canon);
    free(rec);
    free(keys);
    fclose(f);
    return rc;
}

static int s_dir_key(void *arg, const char *name, uint8_t pk[32], char *err, size_t errlen)
{
    const char *dir = arg;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s.pub", dir, name) >= sizeof path) {
        mfl_errf(err, errlen, "%s/%s.pub: path too long", dir, name);
        return -1;
    }
    mfl_public_key_t key;
    if (mfl_public_key_load(path, &key, err, errlen) != 0)
        return -1;
    memcpy(pk, key.sign_pk, 32);
    return 0;
}

int mfl_audit_verify(const char *path, const char *keys_dir, mfl_audit_report_t *report)
{
    return mfl_audit_verify_with(path, s_dir_key, (void *)keys_dir, report);
}
