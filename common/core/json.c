/* Strict JSON DOM parser: a recursive descent bounded by MFL_JSON_MAX_DEPTH,
 * so the C stack stays small whatever the input. */
#include "core/json.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/strindex.h"

struct mfl_json {
    mfl_json_type_t type;
    size_t line, column;
    bool boolean;
    double number;
    char *str;             /* string contents, NUL-terminated */
    size_t str_len;
    size_t count, cap;     /* array elements / object members */
    mfl_json_t **items;
    char **keys;           /* objects only, parallel to items */
    size_t *key_lens;
    mfl_strindex_t index;  /* objects: keys' hash index, so parsing stays linear */
};

typedef struct {
    const char *p;
    size_t len, pos;
    size_t line, line_start;
    size_t elements;
    char *err;
    size_t errlen;
    int failed;
} s_parser_t;

static void s_fail(s_parser_t *ps, const char *msg)
{
    if (ps->failed)
        return;
    ps->failed = 1;
    mfl_errf(ps->err, ps->errlen, "%zu:%zu: %s", ps->line, ps->pos - ps->line_start + 1, msg);
}

static void s_skip_ws(s_parser_t *ps)
{
    while (ps->pos < ps->len) {
        char c = ps->p[ps->pos];
        if (c == '\n') {
            ps->pos++;
            ps->line++;
            ps->line_start = ps->pos;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            ps->pos++;
        } else {
            break;
        }
    }
}

static void s_free(mfl_json_t *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->count; i++) {
        s_free(v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->key_lens);
    mfl_strindex_clear(&v->index);
    free(v->str);
    free(v);
}

/* Item index of `key` in object v, or SIZE_MAX. */
static size_t s_find(const mfl_json_t *v, const char *key, size_t len)
{
    return mfl_strindex_find(&v->index, v->keys, v->count, key, len);
}

static mfl_json_t *s_node(s_parser_t *ps, mfl_json_type_t type)
{
    if (++ps->elements > MFL_JSON_MAX_ELEMENTS) {
        s_fail(ps, "too many values (limit " "4194304" ")");
        return NULL;
    }
    mfl_json_t *v = calloc(1, sizeof *v);
    if (!v) {
        s_fail(ps, "out of memory");
        return NULL;
    }
    v->type = type;
    v->line = ps->line;
    v->column = ps->pos - ps->line_start + 1;
    return v;
}

static int s_push(s_parser_t *ps, mfl_json_t *parent, mfl_json_t *child, char *key, size_t key_len)
{
    if (parent->count == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 4;
        mfl_json_t **items = realloc(parent->items, cap * sizeof *items);
        if (!items)
            goto out_oom;
        parent->items = items;
        if (parent->type == MFL_JSON_OBJECT) {
            char **keys = realloc(parent->keys, cap * sizeof *keys);
            if (!keys)
                goto out_oom;
            parent->keys = keys;
            size_t *lens = realloc(parent->key_lens, cap * sizeof *lens);
            if (!lens)
                goto out_oom;
            parent->key_lens = lens;
        }
        parent->cap = cap;
    }
    parent->items[parent->count] = child;
    if (parent->type == MFL_JSON_OBJECT) {
        parent->keys[parent->count] = key;
        parent->key_lens[parent->count] = key_len;
    }
    parent->count++;
    if (parent->type == MFL_JSON_OBJECT &&
        mfl_strindex_added(&parent->index, parent->keys, parent->count) < 0) {
        parent->count--; /* the caller frees child and key */
        goto out_oom;
    }
    return 0;
out_oom:
    s_fail(ps, "out of memory");
    return -1;
}

static int s_hex4(s_parser_t *ps, unsigned *out)
{
    if (ps->len - ps->pos < 4) {
        s_fail(ps, "truncated \\u escape");
        return -1;
    }
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = ps->p[ps->pos];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else {
            s_fail(ps, "bad hex digit in \\u escape");
            return -1;
        }
        v = v * 16 + d;
        ps->pos++;
    }
    *out = v;
    return 0;
}

static size_t s_utf8_encode(unsigned cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid
 * (overlong forms, surrogates and code points above U+10FFFF rejected). */
static size_t s_utf8_valid(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t need;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < need + 1)
        return 0;
    for (size_t i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need + 1;
}

/* Parses a string at ps->pos (on the opening quote) into a fresh buffer. */
static char *s_string(s_parser_t *ps, size_t *out_len)
{
    ps->pos++; /* opening quote */
    /* The decoded string is never longer than the raw text. */
    size_t start = ps->pos, end = start;
    while (end < ps->len && ps->p[end] != '"') {
        if (ps->p[end] == '\\')
            end++;
        end++;
    }
    if (end > ps->len)
        end = ps->len;
    char *buf = malloc(end - start + 1);
    if (!buf) {
        s_fail(ps, "out of memory");
        return NULL;
    }
    size_t n = 0;
    for (;;) {
        if (ps->pos >= ps->len) {
            s_fail(ps, "unterminated string");
            goto out_free;
        }
        unsigned char c = (unsigned char)ps->p[ps->pos];
        if (c == '"') {
            ps->pos++;
            break;
        }
        if (c < 0x20) {
            s_fail(ps, "control character in string");
            goto out_free;
        }
        if (c != '\\') {
            size_t k = s_utf8_valid((const unsigned char *)ps->p + ps->pos, ps->len - ps->pos);
            if (k == 0) {
                s_fail(ps, "invalid UTF-8 in string");
                goto out_free;
            }
            memcpy(buf + n, ps->p + ps->pos, k);
            n += k;
            ps->pos += k;
            continue;
        }
        ps->pos++;
        if (ps->pos >= ps->len) {
            s_fail(ps, "unterminated string");
            goto out_free;
        }
        char e = ps->p[ps->pos++];
        switch (e) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (s_hex4(ps, &cp) < 0)
                goto out_free;
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                s_fail(ps, "lone low surrogate in \\u escape");
                goto out_free;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (ps->len - ps->pos < 2 || ps->p[ps->pos] != '\\' || ps->p[ps->pos + 1] != 'u') {
                    s_fail(ps, "high surrogate not followed by \\u low surrogate");
                    goto out_free;
                }
                ps->pos += 2;
                if (s_hex4(ps, &lo) < 0)
                    goto out_free;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    s_fail(ps, "high surrogate not followed by a low surrogate");
                    goto out_free;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            /* \uXXXX is 6 raw bytes (12 for a pair); UTF-8 needs ≤ 4. */
            n += s_utf8_encode(cp, buf + n);
            break;
        }
        default:
            ps->pos--;
            s_fail(ps, "invalid escape in string");
            goto out_free;
        }
    }
    buf[n] = '\0';
    *out_len = n;
    return buf;
out_free:
    free(buf);
    return NULL;
}

static int s_number(s_parser_t *ps, double *out)
{
    size_t start = ps->pos, i = ps->pos;
    const char *p = ps->p;
    if (i < ps->len && p[i] == '-')
        i++;
    if (i >= ps->len || p[i] < '0' || p[i] > '9')
        goto out_bad;
    if (p[i] == '0') {
        i++;
        if (i < ps->len && p[i] >= '0' && p[i] <= '9')
            goto out_bad;
    } else {
        while (i < ps->len && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    if (i < ps->len && p[i] == '.') {
        i++;
        if (i >= ps->len || p[i] < '0' || p[i] > '9')
            goto out_bad;
        while (i < ps->len && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    if (i < ps->len && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < ps->len && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= ps->len || p[i] < '0' || p[i] > '9')
            goto out_bad;
        while (i < ps->len && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    size_t n = i - start;
    char small[64];
    char *tmp = n < sizeof small ? small : malloc(n + 1);
    if (!tmp) {
        s_fail(ps, "out of memory");
        return -1;
    }
    memcpy(tmp, p + start, n);
    tmp[n] = '\0';
    errno = 0;
    double v = strtod(tmp, NULL);
    if (tmp != small)
        free(tmp);
    if (!isfinite(v)) {
        s_fail(ps, "number out of range");
        return -1;
    }
    *out = v;
    ps->pos = i;
    return 0;
out_bad:
    s_fail(ps, "malformed number");
    return -1;
}

static int s_literal(s_parser_t *ps, const char *word)
{
    size_t n = strlen(word);
    if (ps->len - ps->pos < n || memcmp(ps->p + ps->pos, word, n) != 0) {
        s_fail(ps, "unexpected token");
        return -1;
    }
    ps->pos += n;
    return 0;
}

static mfl_json_t *s_value(s_parser_t *ps, int depth);

static mfl_json_t *s_container(s_parser_t *ps, int depth, int is_object)
{
    if (depth >= MFL_JSON_MAX_DEPTH) {
        s_fail(ps, "nesting too deep (limit 64)");
        return NULL;
    }
    mfl_json_t *v = s_node(ps, is_object ? MFL_JSON_OBJECT : MFL_JSON_ARRAY);
    if (!v)
        return NULL;
    char close = is_object ? '}' : ']';
    ps->pos++;
    s_skip_ws(ps);
    if (ps->pos < ps->len && ps->p[ps->pos] == close) {
        ps->pos++;
        return v;
    }
    for (;;) {
        char *key = NULL;
        size_t key_len = 0;
        s_skip_ws(ps);
        if (is_object) {
            if (ps->pos >= ps->len || ps->p[ps->pos] != '"') {
                s_fail(ps, "expected a string key");
                goto out_free;
            }
            size_t kline = ps->line, kcol = ps->pos - ps->line_start + 1;
            key = s_string(ps, &key_len);
            if (!key)
                goto out_free;
            /* Keys are looked up as C strings: a NUL would make one
             * unreachable (or alias a shorter key). */
            if (memchr(key, '\0', key_len)) {
                if (!ps->failed) {
                    ps->failed = 1;
                    mfl_errf(ps->err, ps->errlen, "%zu:%zu: NUL character in object key", kline, kcol);
                }
                free(key);
                goto out_free;
            }
            if (s_find(v, key, key_len) != SIZE_MAX) {
                if (!ps->failed) {
                    ps->failed = 1;
                    mfl_errf(ps->err, ps->errlen, "%zu:%zu: duplicate key '%s'", kline, kcol, key);
                }
                free(key);
                goto out_free;
            }
            s_skip_ws(ps);
            if (ps->pos >= ps->len || ps->p[ps->pos] != ':') {
                s_fail(ps, "expected ':' after key");
                free(key);
                goto out_free;
            }
            ps->pos++;
            s_skip_ws(ps);
        }
        mfl_json_t *child = s_value(ps, depth + 1);
        if (!child) {
            free(key);
            goto out_free;
        }
        if (s_push(ps, v, child, key, key_len) < 0) {
            s_free(child);
            free(key);
            goto out_free;
        }
        s_skip_ws(ps);
        if (ps->pos >= ps->len) {
            s_fail(ps, is_object ? "unterminated object" : "unterminated array");
            goto out_free;
        }
        char c = ps->p[ps->pos];
        if (c == ',') {
            ps->pos++;
            s_skip_ws(ps);
            if (ps->pos < ps->len && ps->p[ps->pos] == close) {
                s_fail(ps, "trailing comma");
                goto out_free;
            }
            continue;
        }
        if (c == close) {
            ps->pos++;
            return v;
        }
        s_fail(ps, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
        goto out_free;
    }
out_free:
    s_free(v);
    return NULL;
}

static mfl_json_t *s_value(s_parser_t *ps, int depth)
{
    s_skip_ws(ps);
    if (ps->pos >= ps->len) {
        s_fail(ps, "unexpected end of input");
        return NULL;
    }
    char c = ps->p[ps->pos];
    mfl_json_t *v;
    switch (c) {
    case '{':
        return s_container(ps, depth, 1);
    case '[':
        return s_container(ps, depth, 0);
    case '"':
        v = s_node(ps, MFL_JSON_STRING);
        if (!v)
            return NULL;
        v->str = s_string(ps, &v->str_len);
        if (!v->str) {
            s_free(v);
            return NULL;
        }
        return v;
    case 't':
    case 'f':
        v = s_node(ps, MFL_JSON_BOOL);
        if (!v)
            return NULL;
        v->boolean = c == 't';
        if (s_literal(ps, c == 't' ? "true" : "false") < 0) {
            s_free(v);
            return NULL;
        }
        return v;
    case 'n':
        v = s_node(ps, MFL_JSON_NULL);
        if (!v)
            return NULL;
        if (s_literal(ps, "null") < 0) {
            s_free(v);
            return NULL;
        }
        return v;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            v = s_node(ps, MFL_JSON_NUMBER);
            if (!v)
                return NULL;
            if (s_number(ps, &v->number) < 0) {
                s_free(v);
                return NULL;
            }
            return v;
        }
        s_fail(ps, "unexpected character");
        return NULL;
    }
}

mfl_json_t *mfl_json_parse(const char *text, size_t len, char *err, size_t errlen)
{
    s_parser_t ps = { .p = text, .len = len, .line = 1, .err = err, .errlen = errlen };
    if (!text) {
        mfl_errf(err, errlen, "1:1: no input");
        return NULL;
    }
    if (len > MFL_JSON_MAX_INPUT) {
        mfl_errf(err, errlen, "1:1: input of %zu bytes exceeds the limit of %u", len,
                 (unsigned)MFL_JSON_MAX_INPUT);
        return NULL;
    }
    mfl_json_t *root = s_value(&ps, 0);
    if (!root)
        return NULL;
    s_skip_ws(&ps);
    if (ps.pos != ps.len) {
        s_fail(&ps, "trailing data after the value");
        s_free(root);
        return NULL;
    }
    return root;
}

void mfl_json_destroy(mfl_json_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_free(*self_p);
    *self_p = NULL;
}

mfl_json_type_t mfl_json_type(const mfl_json_t *self)
{
    return self ? self->type : MFL_JSON_NULL;
}

const char *mfl_json_type_name(mfl_json_type_t type)
{
    switch (type) {
    case MFL_JSON_NULL: return "null";
    case MFL_JSON_BOOL: return "bool";
    case MFL_JSON_NUMBER: return "number";
    case MFL_JSON_STRING: return "string";
    case MFL_JSON_ARRAY: return "array";
    case MFL_JSON_OBJECT: return "object";
    }
    return "unknown";
}

const mfl_json_t *mfl_json_get(const mfl_json_t *self, const char *key)
{
    if (!self || self->type != MFL_JSON_OBJECT || !key)
        return NULL;
    size_t i = s_find(self, key, strlen(key));
    return i == SIZE_MAX ? NULL : self->items[i];
}

size_t mfl_json_array_len(const mfl_json_t *self)
{
    if (!self || (self->type != MFL_JSON_ARRAY && self->type != MFL_JSON_OBJECT))
        return 0;
    return self->count;
}

const mfl_json_t *mfl_json_array_at(const mfl_json_t *self, size_t i)
{
    if (!self || self->type != MFL_JSON_ARRAY || i >= self->count)
        return NULL;
    return self->items[i];
}

const mfl_json_t *mfl_json_object_at(const mfl_json_t *self, size_t i, const char **key)
{
    if (!self || self->type != MFL_JSON_OBJECT || i >= self->count)
        return NULL;
    if (key)
        *key = self->keys[i];
    return self->items[i];
}

int mfl_json_number(const mfl_json_t *self, double *out)
{
    if (!self || self->type != MFL_JSON_NUMBER)
        return -1;
    *out = self->number;
    return 0;
}

int mfl_json_size(const mfl_json_t *self, size_t *out)
{
    double v;
    if (mfl_json_number(self, &v) < 0)
        return -1;
    if (!(v >= 0.0) || v > 9007199254740992.0 || floor(v) != v || v > (double)SIZE_MAX)
        return -1;
    *out = (size_t)v;
    return 0;
}

int mfl_json_bool(const mfl_json_t *self, bool *out)
{
    if (!self || self->type != MFL_JSON_BOOL)
        return -1;
    *out = self->boolean;
    return 0;
}

const char *mfl_json_string(const mfl_json_t *self)
{
    if (!self || self->type != MFL_JSON_STRING)
        return NULL;
    return self->str;
}

size_t mfl_json_string_len(const mfl_json_t *self)
{
    if (!self || self->type != MFL_JSON_STRING)
        return 0;
    return self->str_len;
}

size_t mfl_json_line(const mfl_json_t *self)
{
    return self ? self->line : 0;
}

size_t mfl_json_column(const mfl_json_t *self)
{
    return self ? self->column : 0;
}
