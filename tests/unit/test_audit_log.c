/* The audit log: append/verify round trip, any one flipped byte is caught
 * and pinned to its record, torn tails after a crash, site signatures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "core/fileio.h"
#include "metafl.pb-c.h"
#include "wire/keys.h"

#include "tmpdir.h"

static char s_dir[256];

typedef struct {
    char name[16];
    uint8_t pk[32], sk[64];
} s_id_t;

static s_id_t s_ids[3]; /* coord, hospital-a, hospital-b */

static int s_setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    const char *names[3] = {"coord", "hospital-a", "hospital-b"};
    for (int i = 0; i < 3; i++) {
        strcpy(s_ids[i].name, names[i]);
        crypto_sign_keypair(s_ids[i].pk, s_ids[i].sk);
    }
    return s_tmpdir_make(s_dir, sizeof s_dir, "audit");
}

static int s_teardown(void **state)
{
    (void)state;
    return s_tmpdir_remove(s_dir);
}

static int s_keys(void *arg, const char *name, uint8_t pk[32], char *err, size_t errlen)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        if (strcmp(s_ids[i].name, name) == 0) {
            memcpy(pk, s_ids[i].pk, 32);
            return 0;
        }
    snprintf(err, errlen, "no key for '%s'", name);
    return -1;
}

/* Writes DIR/file into path (300 bytes), removes any old file there and
 * opens a new log on it as "coord". */
static mfl_audit_t *s_open_fresh(char *path, const char *file)
{
    char err[512];
    snprintf(path, 300, "%s/%s", s_dir, file);
    unlink(path);
    mfl_audit_t *log = mfl_audit_open(path, "coord", s_ids[0].sk, err, sizeof err);
    assert_non_null(log);
    return log;
}

/* A record as the coordinator writes it on accepting a real signed update
 * from `site` (index into s_ids). `lie_n` makes the record disagree with
 * what the site signed. */
static void s_accepted(mfl_audit_record_t *rec, int site, uint64_t round, int lie_n)
{
    float delta[16];
    for (int i = 0; i < 16; i++)
        delta[i] = (float)(i - 8) * 0.01f * (float)(round + 1);
    uint8_t dh[32], nonce[16];
    mfl_audit_delta_hash(delta, 16, dh);
    memset(nonce, (int)round, sizeof nonce);
    double norm = mfl_audit_l2_norm(delta, 16);

    Metafl__UpdateHeader h = METAFL__UPDATE_HEADER__INIT;
    h.round = (uint32_t)round;
    h.nonce.data = nonce;
    h.nonce.len = sizeof nonce;
    h.site = s_ids[site].name;
    h.n_samples = 199;
    ProtobufCBinaryData th = {32, dh};
    h.n_tensor_hashes = 1;
    h.tensor_hashes = &th;
    h.delta_norm = norm;

    mfl_audit_record_init(rec, MFL_AUDIT_UPDATE_ACCEPTED, round, s_ids[site].name);
    memcpy(rec->nonce, nonce, sizeof nonce);
    rec->nonce_len = sizeof nonce;
    rec->has_delta_hash = true;
    memcpy(rec->delta_hash, dh, 32);
    rec->norm = norm;
    rec->n = lie_n ? 500 : 199;
    rec->signed_header_len = metafl__update_header__pack(&h, rec->signed_header);
    assert_true(rec->signed_header_len < MFL_AUDIT_SIGNED_MAX);
    rec->has_update_sig = true;
    crypto_sign_detached(rec->update_sig, NULL, rec->signed_header, rec->signed_header_len,
                         s_ids[site].sk);
    rec->has_privacy = true;
    rec->privacy = (mfl_audit_privacy_t){.clip = 1.0, .sigma = 1.1, .q = 1.0, .steps = 1,
                                         .epsilon = 0.1 * (double)round, .delta = 1e-5};
}

/* Writes a small log: opened, round 1 (open, 2 accepted, 1 rejected, close). */
static void s_make_log(const char *path)
{
    unlink(path);
    char err[512];
    mfl_audit_t *log = mfl_audit_open(path, "coord", s_ids[0].sk, err, sizeof err);
    assert_non_null(log);
    static mfl_audit_record_t rec;
    mfl_audit_record_init(&rec, MFL_AUDIT_ROUND_OPENED, 1, NULL);
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    s_accepted(&rec, 1, 1, 0);
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    s_accepted(&rec, 2, 1, 0);
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    mfl_audit_record_init(&rec, MFL_AUDIT_UPDATE_REJECTED, 1, "hospital-b");
    strcpy(rec.reason, "duplicate update \"twice\" \\ in round 1");
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    mfl_audit_record_init(&rec, MFL_AUDIT_ROUND_CLOSED, 1, NULL);
    rec.n = 2;
    rec.norm = 0.25;
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    assert_int_equal(mfl_audit_count(log), 6);
    mfl_audit_destroy(&log);
    assert_null(log);
}

/* Each test gets its own copy of one log written once (appends fsync, and
 * fsync is slow on a busy disk; the copy need not be durable). */
static void s_write_log(const char *path)
{
    static char base[300];
    if (!base[0]) {
        snprintf(base, sizeof base, "%s/base.audit", s_dir);
        s_make_log(base);
    }
    FILE *in = fopen(base, "rb"), *out = fopen(path, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

/* s_write_log(path), then its bytes into *data (malloc'd) and *len. */
static void s_write_log_and_read(const char *path, char **data, size_t *len)
{
    char err[512];
    s_write_log(path);
    assert_int_equal(mfl_file_read_all(path, 1 << 20, data, len, err, sizeof err), 0);
}

static void test_append_reopen_verify_round_trip(void **state)
{
    (void)state;
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/coord.audit", s_dir);
    s_write_log(path);
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), 0);
    assert_int_equal(rep.n_records, 6);
    assert_int_equal(rep.n_site_sigs, 2);
    assert_non_null(strstr(rep.message, "ok: 6 records, chain intact, all signatures valid"));

    /* Reopen: the chain continues across sessions. */
    mfl_audit_t *log = mfl_audit_open(path, "coord", s_ids[0].sk, err, sizeof err);
    assert_non_null(log);
    assert_int_equal(mfl_audit_count(log), 7); /* + log_opened */
    static mfl_audit_record_t rec, out;
    s_accepted(&rec, 1, 2, 0);
    assert_int_equal(mfl_audit_append(log, &rec, &out, err, sizeof err), 0);
    assert_int_equal(out.seq, 8);
    uint8_t head[32];
    mfl_audit_head(log, head);
    assert_memory_equal(head, out.hash, 32);
    mfl_audit_destroy(&log);
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), 0);
    assert_int_equal(rep.n_records, 8);
}

/* foreach callback: records the 4th record and counts. */
static int s_each(void *arg, size_t line_no, const mfl_audit_record_t *rec)
{
    mfl_audit_record_t *keep = arg;
    if (line_no == 4)
        memcpy(keep, rec, sizeof *rec);
    keep->seq = rec->seq; /* overwritten each call: ends with the last seq */
    return 0;
}

static void test_foreach_reads_back_fields(void **state)
{
    (void)state;
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/each.audit", s_dir);
    s_write_log(path);
    static mfl_audit_record_t keep;
    assert_int_equal(mfl_audit_foreach(path, s_each, &keep, err, sizeof err), 0);
    assert_int_equal(keep.seq, 6);
    assert_int_equal(keep.kind, MFL_AUDIT_UPDATE_ACCEPTED);
    assert_string_equal(keep.site, "hospital-b");
    assert_int_equal(keep.n, 199);
    assert_true(keep.has_privacy && keep.privacy.sigma == 1.1 && keep.privacy.delta == 1e-5);
    assert_string_equal(keep.writer, "coord");
}

/* Which line (1-based) holds byte `pos`? */
static size_t s_line_of(const char *data, size_t pos)
{
    size_t line = 1;
    for (size_t i = 0; i < pos; i++)
        line += data[i] == '\n';
    return line;
}

static void test_any_flipped_byte_names_its_record(void **state)
{
    (void)state;
    char path[300], bad[320];
    snprintf(path, sizeof path, "%s/flip.audit", s_dir);
    snprintf(bad, sizeof bad, "%s/flipped.audit", s_dir);
    char *data;
    size_t len;
    s_write_log_and_read(path, &data, &len);
    mfl_audit_report_t rep;
    const unsigned char masks[] = {0x01, 0x20, 0x80};
    size_t tried = 0;
    for (size_t pos = 0; pos < len; pos += 3) {
        unsigned char m = masks[pos % 3 == 0 ? (pos / 3) % 3 : 0];
        data[pos] = (char)(data[pos] ^ m);
        FILE *f = fopen(bad, "wb");
        fwrite(data, 1, len, f);
        fclose(f);
        int rc = mfl_audit_verify_with(bad, s_keys, NULL, &rep);
        if (rc != -1 || rep.bad_line != s_line_of(data, pos)) {
            fprintf(stderr, "flip at %zu (mask %#x, line %zu): rc %d, %s\n", pos, m,
                    s_line_of(data, pos), rc, rep.message);
            fail();
        }
        assert_int_equal(rep.bad_record, rep.bad_line); /* one record per line */
        data[pos] = (char)(data[pos] ^ m);
        tried++;
    }
    assert_true(tried > 1000);
    free(data);
}

static void test_chain_and_sequence_errors_say_what_happened(void **state)
{
    (void)state;
    char path[300], bad[320];
    snprintf(path, sizeof path, "%s/chain.audit", s_dir);
    snprintf(bad, sizeof bad, "%s/chain-bad.audit", s_dir);
    char *data;
    size_t len;
    s_write_log_and_read(path, &data, &len);
    /* Delete record 3 (line 3). */
    char *l3 = data;
    for (int i = 0; i < 2; i++)
        l3 = strchr(l3, '\n') + 1;
    char *l4 = strchr(l3, '\n') + 1;
    FILE *f = fopen(bad, "wb");
    fwrite(data, 1, (size_t)(l3 - data), f);
    fwrite(l4, 1, len - (size_t)(l4 - data), f);
    fclose(f);
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(bad, s_keys, NULL, &rep), -1);
    assert_int_equal(rep.bad_line, 3);
    assert_non_null(strstr(rep.message, "chain-bad.audit:3: record 3: sequence number is 4"));
    /* Drop record 1: the chain must start from zero. */
    char *l2 = strchr(data, '\n') + 1;
    f = fopen(bad, "wb");
    fwrite(l2, 1, len - (size_t)(l2 - data), f);
    fclose(f);
    assert_int_equal(mfl_audit_verify_with(bad, s_keys, NULL, &rep), -1);
    assert_int_equal(rep.bad_line, 1);
    /* An unknown writer key, and the wrong key for a writer. */
    f = fopen(bad, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
    uint8_t save[32];
    memcpy(save, s_ids[0].pk, 32);
    s_ids[0].pk[0] ^= 1;
    assert_int_equal(mfl_audit_verify_with(bad, s_keys, NULL, &rep), -1);
    assert_non_null(strstr(rep.message, "record 1: writer signature invalid (key 'coord')"));
    memcpy(s_ids[0].pk, save, 32);
    free(data);
}

static void test_torn_last_line_reported_then_cut_on_reopen(void **state)
{
    (void)state;
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/torn.audit", s_dir);
    char *data;
    size_t len;
    s_write_log_and_read(path, &data, &len);
    /* A crash in the middle of writing record 6. */
    assert_int_equal(truncate(path, (off_t)(len - 40)), 0);
    free(data);
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), -1);
    assert_int_equal(rep.bad_line, 6);
    assert_non_null(strstr(rep.message, "record 6: truncated last line"));
    /* The writer cuts the torn line and says so in a new record. */
    mfl_audit_t *log = mfl_audit_open(path, "coord", s_ids[0].sk, err, sizeof err);
    assert_non_null(log);
    assert_int_equal(mfl_audit_count(log), 6); /* 5 intact + log_opened */
    mfl_audit_destroy(&log);
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), 0);
    static mfl_audit_record_t last;
    assert_int_equal(mfl_audit_foreach(path, s_each, &last, err, sizeof err), 0);
    assert_int_equal(last.seq, 6);
}

static void test_open_refuses_a_tampered_log(void **state)
{
    (void)state;
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/tampered.audit", s_dir);
    char *data;
    size_t len;
    s_write_log_and_read(path, &data, &len);
    char *p = strstr(data, "\"n\":199");
    p[5] = '8';
    assert_int_equal(mfl_file_write_atomic(path, data, len, err, sizeof err), 0);
    free(data);
    mfl_audit_t *log = mfl_audit_open(path, "coord", s_ids[0].sk, err, sizeof err);
    assert_null(log);
    assert_non_null(strstr(err, "tampered.audit:3: record 3: record hash does not match"));
}

static void test_site_signature_must_match_the_record(void **state)
{
    (void)state;
    char path[300], err[512];
    mfl_audit_t *log = s_open_fresh(path, "lie.audit");
    static mfl_audit_record_t rec;
    /* The writer records n = 500 while the site signed n = 199: the chain
     * and writer signature are fine, the site's signature gives it away. */
    s_accepted(&rec, 1, 3, 1);
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    /* A site signature from the wrong key. */
    s_accepted(&rec, 1, 3, 0);
    crypto_sign_detached(rec.update_sig, NULL, rec.signed_header, rec.signed_header_len,
                         s_ids[2].sk);
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    /* A second writer on the same log is refused while the first has it. */
    assert_null(mfl_audit_open(path, "coord", s_ids[0].sk, err, sizeof err));
    assert_non_null(strstr(err, "in use by another writer"));
    mfl_audit_destroy(&log);
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), -1);
    assert_non_null(strstr(rep.message, "lie.audit:2: record 2: site signed n = 199, record says 500"));
    /* The same forged update kept as evidence of a rejection is fine. */
    unlink(path);
    log = mfl_audit_open(path, "coord", s_ids[0].sk, err, sizeof err);
    rec.kind = MFL_AUDIT_UPDATE_REJECTED;
    strcpy(rec.reason, "bad signature");
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    mfl_audit_destroy(&log);
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), 0);
    assert_int_equal(rep.n_site_sigs, 0);
}

static void test_append_rejects_bad_fields(void **state)
{
    (void)state;
    char path[300], err[512];
    mfl_audit_t *log = s_open_fresh(path, "fields.audit");
    static mfl_audit_record_t rec;
    mfl_audit_record_init(&rec, MFL_AUDIT_UPDATE_SENT, 1, "bad site");
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), -1);
    mfl_audit_record_init(&rec, MFL_AUDIT_UPDATE_SENT, 1, "ok");
    rec.norm = INFINITY;
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "norm"));
    /* (A reason with control bytes is not refused: see
     * test_reason_outside_ascii_is_kept_as_question_marks.) */
    /* Rejections wrote nothing: the log still verifies with 1 record. */
    assert_int_equal(mfl_audit_count(log), 1);
    mfl_audit_destroy(&log);
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), 0);
    assert_int_equal(rep.n_records, 1);
    assert_null(mfl_audit_open(path, "", s_ids[0].sk, err, sizeof err));
}

static void test_verify_with_key_files(void **state)
{
    (void)state;
    char keys[300], path[320], err[512];
    snprintf(keys, sizeof keys, "%s/keys", s_dir);
    snprintf(path, sizeof path, "%s/files.audit", s_dir);
    assert_int_equal(mfl_mkdir_p(keys, 0700, err, sizeof err), 0);
    assert_int_equal(mfl_keys_generate(keys, "coord2", err, sizeof err), 0);
    char kp[400];
    snprintf(kp, sizeof kp, "%s/coord2.key", keys);
    mfl_identity_t *id = mfl_identity_load(kp, err, sizeof err);
    assert_non_null(id);
    mfl_audit_t *log = mfl_audit_open(path, "coord2", mfl_identity_sign_sk(id), err, sizeof err);
    assert_non_null(log);
    mfl_audit_destroy(&log);
    mfl_identity_destroy(&id);
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify(path, keys, &rep), 0);
    assert_int_equal(mfl_audit_verify(path, s_dir, &rep), -1); /* no coord2.pub there */
    assert_non_null(strstr(rep.message, "record 1: cannot check writer signature"));
}

static void test_record_from_signed_update(void **state)
{
    (void)state;
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/from.audit", s_dir);
    unlink(path);
    uint8_t nonce[8] = {1, 2, 3, 4, 5, 6, 7, 8}, dh[32];
    float delta[4] = {0.5f, -0.5f, 0.25f, 0};
    mfl_audit_delta_hash(delta, 4, dh);
    Metafl__PrivacyRecord pr = METAFL__PRIVACY_RECORD__INIT;
    pr.applied = 1;
    pr.clip_norm = 2.0;
    pr.noise_multiplier = 0.9;
    pr.epsilon_spent = 1.5;
    Metafl__UpdateHeader h = METAFL__UPDATE_HEADER__INIT;
    h.round = 7;
    h.nonce.data = nonce;
    h.nonce.len = sizeof nonce;
    h.site = s_ids[2].name;
    h.n_samples = 89;
    ProtobufCBinaryData th = {32, dh};
    h.n_tensor_hashes = 1;
    h.tensor_hashes = &th;
    h.privacy = &pr;
    h.delta_norm = mfl_audit_l2_norm(delta, 4);
    uint8_t bytes[512], sig[64];
    size_t n = metafl__update_header__pack(&h, bytes);
    crypto_sign_detached(sig, NULL, bytes, n, s_ids[2].sk);

    static mfl_audit_record_t rec;
    assert_int_equal(mfl_audit_record_from_update(&rec, MFL_AUDIT_UPDATE_SENT, bytes, n, sig,
                                                  err, sizeof err), 0);
    assert_int_equal(rec.round, 7);
    assert_string_equal(rec.site, "hospital-b");
    assert_int_equal(rec.n, 89);
    assert_true(rec.has_delta_hash && memcmp(rec.delta_hash, dh, 32) == 0);
    assert_true(rec.norm == h.delta_norm);
    assert_true(rec.has_privacy && rec.privacy.sigma == 0.9 && rec.privacy.epsilon == 1.5);
    /* The site keeps its own log of what it sent. */
    mfl_audit_t *log = mfl_audit_open(path, "hospital-b", s_ids[2].sk, err, sizeof err);
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    mfl_audit_destroy(&log);
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), 0);
    assert_int_equal(rep.n_site_sigs, 1);
    assert_int_equal(mfl_audit_record_from_update(&rec, MFL_AUDIT_UPDATE_SENT, bytes, 3, sig,
                                                  err, sizeof err), -1);

    /* Δ sent as two tensors (e.g. weights and bias): delta_hash is the
     * digest of both signed hashes; the first tensor's hash alone fails. */
    uint8_t two[64], want[32];
    mfl_audit_delta_hash(delta, 2, two);
    mfl_audit_delta_hash(delta + 2, 2, two + 32);
    crypto_generichash(want, 32, two, 64, NULL, 0);
    ProtobufCBinaryData th2[2] = {{32, two}, {32, two + 32}};
    h.n_tensor_hashes = 2;
    h.tensor_hashes = th2;
    n = metafl__update_header__pack(&h, bytes);
    crypto_sign_detached(sig, NULL, bytes, n, s_ids[2].sk);
    assert_int_equal(mfl_audit_record_from_update(&rec, MFL_AUDIT_UPDATE_SENT, bytes, n, sig,
                                                  err, sizeof err), 0);
    assert_memory_equal(rec.delta_hash, want, 32);
    uint8_t digest[32];
    mfl_audit_update_digest(two, 2, digest);
    assert_memory_equal(digest, want, 32);
    unlink(path);
    log = mfl_audit_open(path, "hospital-b", s_ids[2].sk, err, sizeof err);
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    memcpy(rec.delta_hash, two, 32); /* the first tensor's hash only */
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    mfl_audit_destroy(&log);
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), -1);
    assert_int_equal(rep.bad_line, 3);
    assert_non_null(strstr(rep.message, "not the digest of the 2 tensor hash(es)"));
}

/* A log path naming a FIFO is refused by the writer and by verify, at
 * once: neither may block waiting for a peer that never comes. */
static void test_fifo_log_is_refused_without_blocking(void **state)
{
    (void)state;
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/fifo.audit", s_dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_null(mfl_audit_open(path, "coord", s_ids[0].sk, err, sizeof err));
    assert_non_null(strstr(err, "not a regular file"));
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), -1);
    assert_non_null(strstr(rep.message, "not a regular file"));
    unlink(path);
}

/* A rejection reason is often an error message with "≥" or a peer's
 * text: it is recorded with '?' for such bytes, never dropped. */
static void test_reason_outside_ascii_is_kept_as_question_marks(void **state)
{
    (void)state;
    char path[300], err[512];
    mfl_audit_t *log = s_open_fresh(path, "reason.audit");
    static mfl_audit_record_t rec, out;
    mfl_audit_record_init(&rec, MFL_AUDIT_UPDATE_REJECTED, 2, "hospital-a");
    snprintf(rec.reason, sizeof rec.reason, "norm \xe2\x89\xa5 10\n(clip)");
    if (mfl_audit_append(log, &rec, &out, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(out.reason, "norm ??? 10?(clip)");
    mfl_audit_destroy(&log);
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), 0);
}

/* A site that signed a NaN norm did not sign the finite norm the record
 * shows: verify must say so (NaN slipped through a "> tolerance" test). */
static void test_site_signed_nan_norm_does_not_verify(void **state)
{
    (void)state;
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/nan.audit", s_dir);
    unlink(path);
    static mfl_audit_record_t rec;
    s_accepted(&rec, 1, 4, 0);
    Metafl__UpdateHeader *h =
        metafl__update_header__unpack(NULL, rec.signed_header_len, rec.signed_header);
    assert_non_null(h);
    h->delta_norm = NAN;
    rec.signed_header_len = metafl__update_header__pack(h, rec.signed_header);
    metafl__update_header__free_unpacked(h, NULL);
    crypto_sign_detached(rec.update_sig, NULL, rec.signed_header, rec.signed_header_len,
                         s_ids[1].sk);
    mfl_audit_t *log = mfl_audit_open(path, "coord", s_ids[0].sk, err, sizeof err);
    assert_non_null(log);
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    mfl_audit_destroy(&log);
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), -1);
    assert_non_null(strstr(rep.message, "nan.audit:2: record 2: site signed norm nan"));
}

/* "ok: 1 records" reads like a bug to an auditor: singular for one. */
static void test_verify_message_says_one_record(void **state)
{
    (void)state;
    char path[300];
    mfl_audit_t *log = s_open_fresh(path, "one.audit");
    assert_int_equal(mfl_audit_count(log), 1); /* log_opened */
    mfl_audit_destroy(&log);
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), 0);
    assert_int_equal(rep.n_records, 1);
    assert_non_null(strstr(rep.message, "ok: 1 record, chain intact"));
    assert_non_null(strstr(rep.message, "(0 site update signatures checked)"));
}

/* An operator abort is its own record kind, and a log holding one
 * verifies and reads back. */
static void test_run_aborted_record_round_trips(void **state)
{
    (void)state;
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/abort.audit", s_dir);
    unlink(path);
    assert_string_equal(mfl_audit_kind_name(MFL_AUDIT_RUN_ABORTED), "run_aborted");
    mfl_audit_kind_t k;
    assert_int_equal(mfl_audit_kind_parse("run_aborted", &k), 0);
    assert_int_equal(k, MFL_AUDIT_RUN_ABORTED);
    mfl_audit_t *log = mfl_audit_open(path, "coord", s_ids[0].sk, err, sizeof err);
    assert_non_null(log);
    static mfl_audit_record_t rec;
    mfl_audit_record_init(&rec, MFL_AUDIT_RUN_ABORTED, 3, NULL);
    snprintf(rec.reason, sizeof rec.reason, "aborted by the operator after 2 rounds");
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    mfl_audit_destroy(&log);
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), 0);
    assert_int_equal(rep.n_records, 2);
    assert_non_null(strstr(rep.message, "ok: 2 records, chain intact"));
}

/* Appends `n` round_opened notes for `round` to `log`. */
static void s_notes(mfl_audit_t *log, uint64_t round, int n)
{
    static mfl_audit_record_t rec;
    char err[256];
    for (int i = 0; i < n; i++) {
        mfl_audit_record_init(&rec, MFL_AUDIT_ROUND_OPENED, round, NULL);
        assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    }
}

/* The site keeps the coordinator's signed head as a peer_head record;
 * verify checks that signature; --cross finds the coordinator's log
 * intact, then TRUNCATED (a copy cut before the head), then FORKED (a log
 * by the same key with other records at that position). */
static void test_peer_heads_name_a_truncated_or_forked_log(void **state)
{
    (void)state;
    char cpath[300], spath[300], cut[300], fork[300], err[512], msg[1024];
    snprintf(cpath, sizeof cpath, "%s/cross-coord.audit", s_dir);
    snprintf(spath, sizeof spath, "%s/cross-site.audit", s_dir);
    snprintf(cut, sizeof cut, "%s/cross-cut.audit", s_dir);
    snprintf(fork, sizeof fork, "%s/cross-fork.audit", s_dir);
    unlink(cpath), unlink(spath), unlink(cut), unlink(fork);
    mfl_audit_t *c = mfl_audit_open(cpath, "coord", s_ids[0].sk, err, sizeof err);
    mfl_audit_t *st = mfl_audit_open(spath, "hospital-a", s_ids[1].sk, err, sizeof err);
    assert_non_null(c);
    assert_non_null(st);
    s_notes(c, 1, 5); /* records 2..6 */
    static mfl_audit_record_t rec;
    uint64_t seq;
    uint8_t head[32], sig[64];
    mfl_audit_signed_head(c, &seq, head, sig);
    assert_int_equal(seq, 6);
    assert_int_equal(mfl_audit_head_verify(s_ids[0].pk, seq, head, sig), 0);
    assert_int_equal(mfl_audit_head_verify(s_ids[1].pk, seq, head, sig), -1);
    mfl_audit_record_init(&rec, MFL_AUDIT_PEER_HEAD, 1, "coord");
    rec.n = seq;
    rec.has_delta_hash = true;
    memcpy(rec.delta_hash, head, 32);
    rec.has_update_sig = true;
    memcpy(rec.update_sig, sig, 64);
    assert_int_equal(mfl_audit_append(st, &rec, NULL, err, sizeof err), 0);
    s_notes(c, 2, 3); /* later records: not covered by any head */
    mfl_audit_destroy(&c);
    mfl_audit_destroy(&st);
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(spath, s_keys, NULL, &rep), 0);
    assert_int_equal(mfl_audit_cross_check(cpath, spath, msg, sizeof msg), 0);
    assert_non_null(strstr(msg, "agree"));

    /* Cut to 4 records: verifies alone, not against the site's head. */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "head -n 4 '%s' > '%s'", cpath, cut);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(mfl_audit_verify_with(cut, s_keys, NULL, &rep), 0);
    assert_int_equal(mfl_audit_cross_check(cut, spath, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "cross-cut.audit is TRUNCATED"));
    assert_non_null(strstr(msg, "record 6"));
    /* Cut after the head: the records after it go unseen (documented). */
    snprintf(cmd, sizeof cmd, "head -n 7 '%s' > '%s'", cpath, cut);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(mfl_audit_cross_check(cut, spath, msg, sizeof msg), 0);

    /* A rewritten log by the same key: record 6 differs. */
    c = mfl_audit_open(fork, "coord", s_ids[0].sk, err, sizeof err);
    assert_non_null(c);
    s_notes(c, 9, 6);
    mfl_audit_destroy(&c);
    assert_int_equal(mfl_audit_verify_with(fork, s_keys, NULL, &rep), 0);
    assert_int_equal(mfl_audit_cross_check(spath, fork, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "cross-fork.audit is FORKED"));

    /* A peer_head whose signature is not the peer's fails verify. */
    st = mfl_audit_open(spath, "hospital-a", s_ids[1].sk, err, sizeof err);
    assert_non_null(st);
    rec.update_sig[0] ^= 1;
    assert_int_equal(mfl_audit_append(st, &rec, NULL, err, sizeof err), 0);
    mfl_audit_destroy(&st);
    assert_int_equal(mfl_audit_verify_with(spath, s_keys, NULL, &rep), -1);
    assert_non_null(strstr(rep.message, "peer head signature invalid"));
}

/* Key lookup that answers every name with the coordinator's key. */
static int s_any_name_is_coord(void *arg, const char *name, uint8_t pk[32], char *err,
                               size_t errlen)
{
    (void)arg, (void)name, (void)err, (void)errlen;
    memcpy(pk, s_ids[0].pk, 32);
    return 0;
}

/* Key names may be 64 bytes long; a writer and a site at that length must
 * be logged and verify (a 60-byte writer once overflowed the formatter). */
static void test_longest_names_are_written_and_verify(void **state)
{
    (void)state;
    char path[300], err[512], name[MFL_AUDIT_NAME_MAX + 1];
    snprintf(path, sizeof path, "%s/long.audit", s_dir);
    unlink(path);
    memset(name, 'w', MFL_AUDIT_NAME_MAX);
    name[MFL_AUDIT_NAME_MAX] = '\0';
    mfl_audit_t *log = mfl_audit_open(path, name, s_ids[0].sk, err, sizeof err);
    assert_non_null(log);
    static mfl_audit_record_t rec;
    name[0] = 's';
    mfl_audit_record_init(&rec, MFL_AUDIT_UPDATE_REJECTED, 7, name);
    snprintf(rec.reason, sizeof rec.reason, "norm over bound");
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    mfl_audit_destroy(&log);
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(path, s_any_name_is_coord, NULL, &rep), 0);
    assert_int_equal(rep.n_records, 2);
}

/* foreach callback: counts records. */
static int s_count_each(void *arg, size_t line_no, const mfl_audit_record_t *rec)
{
    (void)line_no;
    (void)rec;
    (*(size_t *)arg)++;
    return 0;
}

static size_t s_records_on_file(const char *path)
{
    char err[512];
    size_t n = 0;
    assert_int_equal(mfl_audit_foreach(path, s_count_each, &n, err, sizeof err), 0);
    return n;
}

/* Deferred mode (the coordinator's): appends are written at once, so a
 * reader (and a process that outlives a crashed writer) sees them before
 * any sync; sync makes them durable and is a no-op with nothing pending;
 * destroy syncs; the chain is the same as in the default mode. */
static void test_deferred_sync_appends_are_visible_before_sync(void **state)
{
    (void)state;
    char path[300], err[512];
    mfl_audit_t *log = s_open_fresh(path, "deferred.audit");
    assert_int_equal(mfl_audit_sync(log, err, sizeof err), 0); /* nothing pending */
    mfl_audit_set_deferred_sync(log, true);
    static mfl_audit_record_t rec;
    mfl_audit_record_init(&rec, MFL_AUDIT_ROUND_OPENED, 1, NULL);
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    s_accepted(&rec, 1, 1, 0);
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    s_accepted(&rec, 2, 1, 0);
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    /* Not synced yet, but in the file: a reader sees all four lines. */
    assert_int_equal(s_records_on_file(path), 4);
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), 0);
    assert_int_equal(rep.n_records, 4);
    assert_int_equal(mfl_audit_sync(log, err, sizeof err), 0);
    assert_int_equal(mfl_audit_sync(log, err, sizeof err), 0); /* again: nothing pending */
    mfl_audit_record_init(&rec, MFL_AUDIT_ROUND_CLOSED, 1, NULL);
    rec.n = 2;
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    assert_int_equal(mfl_audit_count(log), 5);
    mfl_audit_destroy(&log); /* syncs the round_closed line */
    assert_null(log);
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), 0);
    assert_int_equal(rep.n_records, 5);
    assert_int_equal(rep.n_site_sigs, 2);

    /* A reopened writer is back in the default mode and continues the chain. */
    log = mfl_audit_open(path, "coord", s_ids[0].sk, err, sizeof err);
    assert_non_null(log);
    assert_int_equal(mfl_audit_count(log), 6);
    s_accepted(&rec, 1, 2, 0);
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    assert_int_equal(s_records_on_file(path), 7);
    mfl_audit_destroy(&log);
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), 0);
    assert_int_equal(rep.n_records, 7);
}

/* Switching deferred mode off again: appends fsync one by one as before,
 * and a sync of what was pending still works. */
static void test_deferred_sync_can_be_switched_back(void **state)
{
    (void)state;
    char path[300], err[512];
    mfl_audit_t *log = s_open_fresh(path, "switch.audit");
    static mfl_audit_record_t rec;
    mfl_audit_set_deferred_sync(log, true);
    mfl_audit_record_init(&rec, MFL_AUDIT_ROUND_OPENED, 1, NULL);
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    mfl_audit_set_deferred_sync(log, false);
    assert_int_equal(mfl_audit_sync(log, err, sizeof err), 0);
    mfl_audit_record_init(&rec, MFL_AUDIT_ROUND_ABANDONED, 1, NULL);
    snprintf(rec.reason, sizeof rec.reason, "1 of 3 selected sites reported");
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    assert_int_equal(s_records_on_file(path), 3);
    mfl_audit_destroy(&log);
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), 0);
    assert_int_equal(rep.n_records, 3);
}

/* The coordinator hands the same synced head to every site of a round:
 * one Ed25519 signature serves all of them (the same bytes a fresh
 * signature would have: Ed25519 is deterministic), and a sync that moves
 * the head makes a new one. */
static void test_signed_head_is_signed_once_per_synced_head(void **state)
{
    (void)state;
    char path[300], err[512];
    mfl_audit_t *log = s_open_fresh(path, "head-once.audit"); /* record 1: log_opened */
    uint64_t seq, seq2;
    uint8_t head[32], sig[64], head2[32], sig2[64];
    mfl_audit_signed_head(log, &seq, head, sig);
    uint64_t signs = mfl_audit_head_signs(log);
    assert_int_equal(signs, 1);
    for (int i = 0; i < 8; i++) { /* a round's eight tasks */
        mfl_audit_signed_head(log, &seq2, head2, sig2);
        assert_int_equal(seq2, seq);
        assert_memory_equal(head2, head, 32);
        assert_memory_equal(sig2, sig, 64);
    }
    assert_int_equal(mfl_audit_head_signs(log), signs);
    /* the bytes a fresh signature over the same head has */
    uint8_t msg[8 + 20 + 32], fresh[64];
    memcpy(msg, "metafl-audit-head-v1", 20);
    for (int b = 0; b < 8; b++)
        msg[20 + b] = (uint8_t)(seq >> (8 * b));
    memcpy(msg + 28, head, 32);
    crypto_sign_detached(fresh, NULL, msg, 60, s_ids[0].sk);
    assert_memory_equal(fresh, sig, 64);
    /* a deferred append does not move the signed head; a sync does, and signs it */
    static mfl_audit_record_t rec;
    mfl_audit_set_deferred_sync(log, true);
    mfl_audit_record_init(&rec, MFL_AUDIT_ROUND_OPENED, 1, NULL);
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    mfl_audit_signed_head(log, &seq2, head2, sig2);
    assert_int_equal(seq2, seq);
    assert_int_equal(mfl_audit_head_signs(log), signs);
    assert_int_equal(mfl_audit_sync(log, err, sizeof err), 0);
    mfl_audit_signed_head(log, &seq2, head2, sig2);
    assert_int_equal(seq2, seq + 1);
    assert_memory_not_equal(head2, head, 32);
    assert_int_equal(mfl_audit_head_verify(s_ids[0].pk, seq2, head2, sig2), 0);
    assert_int_equal(mfl_audit_head_signs(log), signs + 1);
    mfl_audit_signed_head(log, &seq2, head2, sig2);
    assert_int_equal(mfl_audit_head_signs(log), signs + 1);
    mfl_audit_destroy(&log);
}

/* A lazy append (what a site does for its peer_head records; any kind
 * behaves the same) is in the file at once and in the
 * writer's own head, but the signed head (the durable chain, what the
 * coordinator hands out) moves past it only when a synced append or a sync
 * makes it durable: then one sync covers both lines. */
static void test_lazy_append_is_written_at_once_and_synced_by_the_next(void **state)
{
    (void)state;
    char path[300], err[512];
    mfl_audit_t *log = s_open_fresh(path, "lazy.audit"); /* record 1: log_opened */
    static mfl_audit_record_t rec;
    uint64_t seq;
    uint8_t head[32], sig[64], written[32];
    mfl_audit_signed_head(log, &seq, head, sig);
    assert_int_equal(seq, 1);
    mfl_audit_record_init(&rec, MFL_AUDIT_ROUND_OPENED, 1, NULL);
    assert_int_equal(mfl_audit_append_lazy(log, &rec, NULL, err, sizeof err), 0);
    /* written: readers and the writer's own count and head see it */
    assert_int_equal(s_records_on_file(path), 2);
    assert_int_equal(mfl_audit_count(log), 2);
    mfl_audit_head(log, written);
    /* not yet durable: the signed head still names record 1 */
    mfl_audit_signed_head(log, &seq, head, sig);
    assert_int_equal(seq, 1);
    assert_memory_not_equal(head, written, 32);
    /* the next (synced) append makes both durable */
    s_accepted(&rec, 1, 1, 0);
    assert_int_equal(mfl_audit_append(log, &rec, NULL, err, sizeof err), 0);
    mfl_audit_signed_head(log, &seq, head, sig);
    assert_int_equal(seq, 3);
    assert_int_equal(mfl_audit_head_verify(s_ids[0].pk, seq, head, sig), 0);
    /* a lazy line alone is synced by mfl_audit_sync (and by destroy) */
    mfl_audit_record_init(&rec, MFL_AUDIT_ROUND_OPENED, 2, NULL);
    assert_int_equal(mfl_audit_append_lazy(log, &rec, NULL, err, sizeof err), 0);
    mfl_audit_signed_head(log, &seq, head, sig);
    assert_int_equal(seq, 3);
    assert_int_equal(mfl_audit_sync(log, err, sizeof err), 0);
    mfl_audit_signed_head(log, &seq, head, sig);
    assert_int_equal(seq, 4);
    mfl_audit_head(log, written);
    assert_memory_equal(head, written, 32);
    mfl_audit_destroy(&log);
    mfl_audit_report_t rep;
    assert_int_equal(mfl_audit_verify_with(path, s_keys, NULL, &rep), 0);
    assert_int_equal(rep.n_records, 4);
}

/* Secure aggregation: both sides record each masked input's hash; the
 * cross-check matches them by (round, nonce, site) and names a difference. */
static void s_masked(mfl_audit_t *log, uint64_t round, const char *site, uint8_t fill)
{
    char err[256];
    mfl_audit_record_t *rec = calloc(1, sizeof *rec);
    mfl_audit_record_init(rec, MFL_AUDIT_SECAGG_MASKED, round, site);
    memset(rec->nonce, 0x5a, 16);
    rec->nonce_len = 16;
    rec->has_delta_hash = true;
    memset(rec->delta_hash, fill, 32);
    rec->n = 42;
    if (mfl_audit_append(log, rec, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
    free(rec);
}

static void test_cross_check_matches_masked_input_hashes(void **state)
{
    (void)state;
    char pc[300], ps[300], msg[1024], err[256];
    snprintf(pc, sizeof pc, "%s/masked-coord.log", s_dir);
    snprintf(ps, sizeof ps, "%s/masked-site.log", s_dir);
    unlink(pc);
    unlink(ps);
    mfl_audit_t *c = mfl_audit_open(pc, "coord", s_ids[0].sk, err, sizeof err);
    mfl_audit_t *a = mfl_audit_open(ps, "hospital-a", s_ids[1].sk, err, sizeof err);
    assert_non_null(c);
    assert_non_null(a);
    /* the site holds the coordinator's head, so the logs are peers */
    uint64_t seq;
    uint8_t head[32], sig[64];
    mfl_audit_signed_head(c, &seq, head, sig);
    mfl_audit_record_t *ph = calloc(1, sizeof *ph);
    mfl_audit_record_init(ph, MFL_AUDIT_PEER_HEAD, 1, "coord");
    ph->n = seq;
    ph->has_delta_hash = true;
    memcpy(ph->delta_hash, head, 32);
    ph->has_update_sig = true;
    memcpy(ph->update_sig, sig, 64);
    assert_int_equal(mfl_audit_append(a, ph, NULL, err, sizeof err), 0);
    free(ph);
    s_masked(a, 1, "hospital-a", 0x11);
    s_masked(c, 1, "hospital-a", 0x11);
    s_masked(c, 1, "hospital-b", 0x22); /* only one side: not an error */
    assert_int_equal(mfl_audit_cross_check(pc, ps, msg, sizeof msg), 0);
    if (!strstr(msg, "1 masked input(s) recorded by both with the same hash"))
        fail_msg("%s", msg);
    s_masked(a, 2, "hospital-a", 0x33);
    s_masked(c, 2, "hospital-a", 0x34); /* what arrived is not what was sent */
    assert_int_equal(mfl_audit_cross_check(pc, ps, msg, sizeof msg), -1);
    if (!strstr(msg, "masked input of site hospital-a in round 2 DIFFERS"))
        fail_msg("%s", msg);
    mfl_audit_destroy(&c);
    mfl_audit_destroy(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_reopen_verify_round_trip),
        cmocka_unit_test(test_longest_names_are_written_and_verify),
        cmocka_unit_test(test_foreach_reads_back_fields),
        cmocka_unit_test(test_any_flipped_byte_names_its_record),
        cmocka_unit_test(test_chain_and_sequence_errors_say_what_happened),
        cmocka_unit_test(test_torn_last_line_reported_then_cut_on_reopen),
        cmocka_unit_test(test_open_refuses_a_tampered_log),
        cmocka_unit_test(test_site_signature_must_match_the_record),
        cmocka_unit_test(test_append_rejects_bad_fields),
        cmocka_unit_test(test_verify_with_key_files),
        cmocka_unit_test(test_record_from_signed_update),
        cmocka_unit_test(test_fifo_log_is_refused_without_blocking),
        cmocka_unit_test(test_reason_outside_ascii_is_kept_as_question_marks),
        cmocka_unit_test(test_site_signed_nan_norm_does_not_verify),
        cmocka_unit_test(test_verify_message_says_one_record),
        cmocka_unit_test(test_run_aborted_record_round_trips),
        cmocka_unit_test(test_deferred_sync_appends_are_visible_before_sync),
        cmocka_unit_test(test_deferred_sync_can_be_switched_back),
        cmocka_unit_test(test_lazy_append_is_written_at_once_and_synced_by_the_next),
        cmocka_unit_test(test_signed_head_is_signed_once_per_synced_head),
        cmocka_unit_test(test_peer_heads_name_a_truncated_or_forked_log),
        cmocka_unit_test(test_cross_check_matches_masked_input_hashes),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
