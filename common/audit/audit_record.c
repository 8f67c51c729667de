/* The audit record's canonical JSON line: formatting and strict parsing. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit_internal.h"
#include "wire/task.h"
#include "core/json.h"
#include "core/log.h"

static const char *const s_kinds[MFL_AUDIT_KIND_COUNT] = {
    "log_opened",   "update_sent",  "update_accepted", "update_rejected",
    "round_opened", "round_closed", "round_abandoned", "run_aborted", "run_finished",
    "site_failed",  "site_revoked", "peer_head",    "secure_sum",
    "task_declined", "ledger_started", "selection", "secagg_phase", "secagg_masked",
    "scaling",      "model_refused",
};

const char *mfl_audit_kind_name(mfl_audit_kind_t kind)
{
    return (unsigned)kind < MFL_AUDIT_KIND_COUNT ? s_kinds[kind] : NULL;
}

int mfl_audit_kind_parse(const char *text, mfl_audit_kind_t *kind)
{
    for (int i = 0; text && i < MFL_AUDIT_KIND_COUNT; i++)
        if (strcmp(text, s_kinds[i]) == 0) {
            *kind = (mfl_audit_kind_t)i;
            return 0;
        }
    return -1;
}

void mfl_audit_record_init(mfl_audit_record_t *rec, mfl_audit_kind_t kind, uint64_t round,
                           const char *site)
{
    memset(rec, 0, sizeof *rec);
    rec->kind = kind;
    rec->round = round;
    if (site)
        snprintf(rec->site, sizeof rec->site, "%s", site);
}

void mfl_audit_delta_hash(const float *delta, size_t n, uint8_t out[32])
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "hashes floats as raw bytes: needs a little-endian host"
#endif
    crypto_generichash(out, 32, (const unsigned char *)delta, n * sizeof(float), NULL, 0);
}

void mfl_audit_update_digest(const uint8_t *hashes, size_t k, uint8_t out[32])
{
    mfl_update_digest(hashes, k, out); /* the codec's: one definition of the digest */
}

double mfl_audit_l2_norm(const float *delta, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)delta[i] * (double)delta[i];
    return sqrt(s);
}

void mfl_audit_hash_body(const char *body, size_t len, uint8_t out[32])
{
    crypto_generichash(out, 32, (const unsigned char *)body, len, NULL, 0);
}

void mfl_audit_sig_message(const uint8_t hash[32], uint8_t *msg, size_t *len)
{
    size_t t = sizeof MFL_AUDIT_SIG_TAG - 1;
    memcpy(msg, MFL_AUDIT_SIG_TAG, t);
    memcpy(msg + t, hash, 32);
    *len = t + 32;
}

/* ---- formatting ------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t cap, len;
    int overflow;
} s_out_t;

static void s_put(s_out_t *o, const char *s, size_t n)
{
    if (o->overflow || o->len + n >= o->cap) {
        o->overflow = 1;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void s_puts(s_out_t *o, const char *s)
{
    s_put(o, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void s_putf(s_out_t *o, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        o->overflow = 1;
        return;
    }
    s_put(o, tmp, (size_t)n);
}

static void s_puthex(s_out_t *o, const uint8_t *b, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        char c[2] = {hex[b[i] >> 4], hex[b[i] & 15]};
        s_put(o, c, 2);
    }
}

/* Names are key names: 1..64 of [A-Za-z0-9._-], or "" where allowed. */
static int s_name_ok(const char *s, int allow_empty)
{
    size_t n = strnlen(s, MFL_AUDIT_NAME_MAX + 1);
    if (n > MFL_AUDIT_NAME_MAX || (n == 0 && !allow_empty) || s[0] == '.' || s[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* The reason is printable ASCII; '"' and '\\' escaped. */
static int s_reason_ok(const char *s)
{
    size_t n = strnlen(s, MFL_AUDIT_REASON_MAX + 1);
    if (n > MFL_AUDIT_REASON_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

static void s_put_double(s_out_t *o, double v)
{
    /* The shortest of %.15g/%.16g/%.17g that reads back exactly: readable
     * (0.8, not 0.80000000000000004) and still a pure function of v, so
     * the canonical form is unique. %.17g always round-trips. */
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (prec == 17 || strtod(tmp, NULL) == v)
            break;
    }
    s_puts(o, tmp);
}

static int s_time_format(uint64_t ms, char out[64])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm) || tm.tm_year + 1900 > 9999)
        return -1;
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    return 0;
}

/* The record's fields against what the line can say: known kind, names,
 * printable reason, finite numbers, lengths, integers a JSON double holds,
 * a time that formats (into when[64]). 0 or -1 with err. */
static int s_format_check(const mfl_audit_record_t *r, char when[64], char *err, size_t errlen)
{
    if (!mfl_audit_kind_name(r->kind)) {
        mfl_errf(err, errlen, "kind %d unknown", (int)r->kind);
        return -1;
    }
    if (!s_name_ok(r->writer, 0) || !s_name_ok(r->site, 1)) {
        mfl_errf(err, errlen, "writer/site name must be [A-Za-z0-9._-]{1,64}");
        return -1;
    }
    if (!s_reason_ok(r->reason)) {
        mfl_errf(err, errlen, "reason must be printable ASCII of at most %d bytes",
                 MFL_AUDIT_REASON_MAX);
        return -1;
    }
    if (!isfinite(r->norm) || r->norm < 0) {
        mfl_errf(err, errlen, "norm must be finite and >= 0");
        return -1;
    }
    if (r->has_privacy && !(isfinite(r->privacy.clip) && isfinite(r->privacy.sigma) &&
                            isfinite(r->privacy.q) && isfinite(r->privacy.epsilon) &&
                            isfinite(r->privacy.delta))) {
        mfl_errf(err, errlen, "privacy fields must be finite");
        return -1;
    }
    if (r->nonce_len > MFL_AUDIT_NONCE_MAX || r->signed_header_len > MFL_AUDIT_SIGNED_MAX) {
        mfl_errf(err, errlen, "nonce or signed header too long");
        return -1;
    }
    /* JSON numbers are doubles: integers above 2^53 would not round-trip. */
    const uint64_t max_int = 1ull << 53;
    if (r->seq > max_int || r->round > max_int || r->n > max_int ||
        (r->has_privacy && r->privacy.steps > max_int)) {
        mfl_errf(err, errlen, "an integer field is above 2^53");
        return -1;
    }
    if (s_time_format(r->time_ms, when) != 0) {
        mfl_errf(err, errlen, "time out of range");
        return -1;
    }
    return 0;
}

/* The value of "privacy": null, or {"clip":..,"sigma":..,"q":..,"steps":..,
 * "epsilon":..,"delta":..} in that order. */
static void s_put_privacy(s_out_t *o, const mfl_audit_record_t *r)
{
    if (r->has_privacy) {
        s_puts(o, "{\"clip\":");
        s_put_double(o, r->privacy.clip);
        s_puts(o, ",\"sigma\":");
        s_put_double(o, r->privacy.sigma);
        s_puts(o, ",\"q\":");
        s_put_double(o, r->privacy.q);
        s_putf(o, ",\"steps\":%" PRIu64 ",\"epsilon\":", r->privacy.steps);
        s_put_double(o, r->privacy.epsilon);
        s_puts(o, ",\"delta\":");
        s_put_double(o, r->privacy.delta);
        s_puts(o, "}");
    } else {
        s_puts(o, "null");
    }
}

long mfl_audit_format(const mfl_audit_record_t *r, int with_tail, char *buf, size_t cap,
                      size_t *body_len, char *err, size_t errlen)
{
    char when[64];
    if (s_format_check(r, when, err, errlen) != 0)
        return -1;
    const char *kind = mfl_audit_kind_name(r->kind);
    s_out_t o = {buf, cap, 0, cap == 0};
    if (cap)
        buf[0] = '\0';
    /* Strings go through s_puts: s_putf's buffer is sized for numbers, and
     * a 64-byte writer name must fit (found by fuzz_audit). */
    s_putf(&o, "{\"seq\":%" PRIu64 ",\"time\":\"", r->seq);
    s_puts(&o, when);
    s_puts(&o, "\",\"writer\":\"");
    s_puts(&o, r->writer);
    s_puts(&o, "\",\"kind\":\"");
    s_puts(&o, kind);
    s_puts(&o, "\"");
    s_putf(&o, ",\"round\":%" PRIu64 ",\"site\":\"", r->round);
    s_puts(&o, r->site);
    s_puts(&o, "\",\"nonce\":\"");
    s_puthex(&o, r->nonce, r->nonce_len);
    s_puts(&o, "\",\"delta_hash\":\"");
    if (r->has_delta_hash)
        s_puthex(&o, r->delta_hash, 32);
    s_puts(&o, "\",\"norm\":");
    s_put_double(&o, r->norm);
    s_putf(&o, ",\"n\":%" PRIu64 ",\"privacy\":", r->n);
    s_put_privacy(&o, r);
    s_puts(&o, ",\"update_sig\":\"");
    if (r->has_update_sig)
        s_puthex(&o, r->update_sig, 64);
    s_puts(&o, "\",\"signed_header\":\"");
    s_puthex(&o, r->signed_header, r->signed_header_len);
    s_puts(&o, "\",\"reason\":\"");
    for (const char *p = r->reason; *p; p++) {
        if (*p == '"' || *p == '\\')
            s_put(&o, "\\", 1);
        s_put(&o, p, 1);
    }
    s_puts(&o, "\",\"prev\":\"");
    s_puthex(&o, r->prev, 32);
    s_puts(&o, "\"");
    if (body_len)
        *body_len = o.len;
    if (with_tail) {
        s_puts(&o, ",\"hash\":\"");
        s_puthex(&o, r->hash, 32);
        s_puts(&o, "\",\"sig\":\"");
        s_puthex(&o, r->sig, 64);
        s_puts(&o, "\"}");
    }
    if (o.overflow || o.len > MFL_AUDIT_LINE_MAX) {
        mfl_errf(err, errlen, "record longer than %d bytes", MFL_AUDIT_LINE_MAX);
        return -1;
    }
    return (long)o.len;
}

/* ---- parsing --------------------------------------------------------- */

static const char *const s_keys[] = {
    "seq",    "time",       "writer",        "kind",   "round", "site", "nonce",
    "delta_hash", "norm",   "n",             "privacy", "update_sig", "signed_header",
    "reason", "prev",       "hash",          "sig",
};
#define S_NKEYS (sizeof s_keys / sizeof s_keys[0])

static const char *const s_pkeys[] = {"clip", "sigma", "q", "steps", "epsilon", "delta"};

/* Lower-case hex only (the canonical form); exactly `want` bytes unless
 * `max` > 0 (then 0..max bytes). Returns the byte count or -1. */
static long s_unhex(const mfl_json_t *v, uint8_t *out, size_t want, size_t max)
{
    const char *s = mfl_json_string(v);
    if (!s)
        return -1;
    size_t n = mfl_json_string_len(v);
    if (n % 2)
        return -1;
    size_t bytes = n / 2;
    if (max ? bytes > max : bytes != want)
        return -1;
    for (size_t i = 0; i < bytes; i++) {
        int hv[2];
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + (size_t)k];
            if (c >= '0' && c <= '9')
                hv[k] = c - '0';
            else if (c >= 'a' && c <= 'f')
                hv[k] = c - 'a' + 10;
            else
                return -1;
        }
        out[i] = (uint8_t)(hv[0] << 4 | hv[1]);
    }
    return (long)bytes;
}

static int s_u64(const mfl_json_t *v, uint64_t *out)
{
    size_t s;
    if (mfl_json_size(v, &s) != 0)
        return -1;
    *out = (uint64_t)s;
    return 0;
}

static int s_str(const mfl_json_t *v, char *out, size_t cap)
{
    const char *s = mfl_json_string(v);
    if (!s)
        return -1;
    size_t n = mfl_json_string_len(v);
    if (n >= cap || strlen(s) != n)
        return -1;
    memcpy(out, s, n + 1);
    return 0;
}

static int s_time_parse(const char *s, uint64_t *ms)
{
    int y, mo, d, h, mi, se, mil, used = 0;
    if (strlen(s) != 24 ||
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &y, &mo, &d, &h, &mi, &se, &mil, &used) != 7 ||
        used != 24 || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        se > 60 || mil < 0)
        return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = se};
    time_t t = timegm(&tm);
    if (t < 0)
        return -1;
    *ms = (uint64_t)t * 1000 + (uint64_t)mil;
    char back[64];
    /* Reject dates timegm normalised (Feb 30th): the text must round-trip. */
    if (s_time_format(*ms, back) != 0 || strcmp(back, s) != 0)
        return -1;
    return 0;
}

int mfl_audit_record_parse(const char *line, size_t len, mfl_audit_record_t *rec, char *err,
                           size_t errlen)
{
    memset(rec, 0, sizeof *rec);
    if (len > MFL_AUDIT_LINE_MAX) {
        mfl_errf(err, errlen, "line longer than %d bytes", MFL_AUDIT_LINE_MAX);
        return -1;
    }
    char jerr[160];
    mfl_json_t *root = mfl_json_parse(line, len, jerr, sizeof jerr);
    if (!root) {
        mfl_errf(err, errlen, "not valid JSON (%s)", jerr);
        return -1;
    }
    int rc = -1;
    const char *bad = NULL;
    if (mfl_json_type(root) != MFL_JSON_OBJECT || mfl_json_array_len(root) != S_NKEYS) {
        mfl_errf(err, errlen, "not an audit record: expected an object with %zu keys",
                 (size_t)S_NKEYS);
        goto out;
    }
    const mfl_json_t *v[S_NKEYS];
    for (size_t i = 0; i < S_NKEYS; i++) {
        const char *key;
        v[i] = mfl_json_object_at(root, i, &key);
        if (!v[i] || strcmp(key, s_keys[i]) != 0) {
            mfl_errf(err, errlen, "key %zu is '%s', expected '%s'", i + 1, key ? key : "",
                     s_keys[i]);
            goto out;
        }
    }
    char tmp[32];
    if (s_u64(v[0], &rec->seq) != 0) { bad = "seq"; goto bad_field; }
    if (s_str(v[1], tmp, sizeof tmp) != 0 || s_time_parse(tmp, &rec->time_ms) != 0) {
        bad = "time"; goto bad_field;
    }
    if (s_str(v[2], rec->writer, sizeof rec->writer) != 0 || !s_name_ok(rec->writer, 0)) {
        bad = "writer"; goto bad_field;
    }
    if (mfl_audit_kind_parse(mfl_json_string(v[3]), &rec->kind) != 0) {
        bad = "kind"; goto bad_field;
    }
    if (s_u64(v[4], &rec->round) != 0) { bad = "round"; goto bad_field; }
    if (s_str(v[5], rec->site, sizeof rec->site) != 0 || !s_name_ok(rec->site, 1)) {
        bad = "site"; goto bad_field;
    }
    long nl = s_unhex(v[6], rec->nonce, 0, MFL_AUDIT_NONCE_MAX);
    if (nl < 0) { bad = "nonce"; goto bad_field; }
    rec->nonce_len = (size_t)nl;
    if (mfl_json_string_len(v[7]) == 0 && mfl_json_string(v[7])) {
        rec->has_delta_hash = false;
    } else if (s_unhex(v[7], rec->delta_hash, 32, 0) != 32) {
        bad = "delta_hash"; goto bad_field;
    } else {
        rec->has_delta_hash = true;
    }
    if (mfl_json_number(v[8], &rec->norm) != 0 || !(rec->norm >= 0)) {
        bad = "norm"; goto bad_field;
    }
    if (s_u64(v[9], &rec->n) != 0) { bad = "n"; goto bad_field; }
    if (mfl_json_type(v[10]) == MFL_JSON_NULL) {
        rec->has_privacy = false;
    } else {
        if (mfl_json_type(v[10]) != MFL_JSON_OBJECT || mfl_json_array_len(v[10]) != 6) {
            bad = "privacy"; goto bad_field;
        }
        double *dst[6] = {&rec->privacy.clip, &rec->privacy.sigma, &rec->privacy.q, NULL,
                          &rec->privacy.epsilon, &rec->privacy.delta};
        for (size_t i = 0; i < 6; i++) {
            const char *key;
            const mfl_json_t *pv = mfl_json_object_at(v[10], i, &key);
            if (!pv || strcmp(key, s_pkeys[i]) != 0) { bad = "privacy"; goto bad_field; }
            if (dst[i] ? mfl_json_number(pv, dst[i]) != 0 : s_u64(pv, &rec->privacy.steps) != 0) {
                bad = "privacy"; goto bad_field;
            }
        }
        rec->has_privacy = true;
    }
    if (mfl_json_string_len(v[11]) == 0 && mfl_json_string(v[11])) {
        rec->has_update_sig = false;
    } else if (s_unhex(v[11], rec->update_sig, 64, 0) != 64) {
        bad = "update_sig"; goto bad_field;
    } else {
        rec->has_update_sig = true;
    }
    long hl = s_unhex(v[12], rec->signed_header, 0, MFL_AUDIT_SIGNED_MAX);
    if (hl < 0) { bad = "signed_header"; goto bad_field; }
    rec->signed_header_len = (size_t)hl;
    if (s_str(v[13], rec->reason, sizeof rec->reason) != 0 || !s_reason_ok(rec->reason)) {
        bad = "reason"; goto bad_field;
    }
    if (s_unhex(v[14], rec->prev, 32, 0) != 32) { bad = "prev"; goto bad_field; }
    if (s_unhex(v[15], rec->hash, 32, 0) != 32) { bad = "hash"; goto bad_field; }
    if (s_unhex(v[16], rec->sig, 64, 0) != 64) { bad = "sig"; goto bad_field; }
    rc = 0;
    goto out;

bad_field:
    mfl_errf(err, errlen, "field '%s' is malformed", bad);
out:
    mfl_json_destroy(&root);
    return rc;
}

int mfl_audit_read_line(FILE *f, char *buf, size_t cap, size_t *len)
{
    size_t n = 0;
    int c;
    int too_long = 0;
    while ((c = getc(f)) != EOF) {
        if (c == '\n')
            break;
        if (n + 1 < cap && n < MFL_AUDIT_LINE_MAX)
            buf[n++] = (char)c;
        else
            too_long = 1;
    }
    buf[n] = '\0';
    *len = n;
    if (ferror(f))
        return -1;
    if (too_long)
        return -1;
    if (c == EOF)
        return n ? 2 : 0;
    return 1;
}
