/* safetensors reading (strict, bounded) and writing (atomic). */
#include "nn/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/json.h"
#include "core/log.h"

struct mfl_safetensors {
    uint8_t *owned;          /* the file's bytes when read from a path */
    const uint8_t *data;     /* start of the data section */
    size_t data_len;
    mfl_json_t *root;        /* the header; tensor names point into it */
    const mfl_json_t *meta;  /* "__metadata__" object or NULL */
    size_t n;
    mfl_st_tensor_t *tensors; /* sorted by begin */
};

static uint64_t s_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int s_by_begin(const void *a, const void *b)
{
    const mfl_st_tensor_t *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Fills *t from the header entry `name`: {"dtype","shape","data_offsets"}. */
static int s_parse_tensor(const mfl_json_t *v, const char *name, size_t data_len,
                          const char *label, mfl_st_tensor_t *t, char *err, size_t errlen)
{
    if (name[0] == '\0') {
        mfl_errf(err, errlen, "%s: header: empty tensor name", label);
        return -1;
    }
    if (mfl_json_type(v) != MFL_JSON_OBJECT) {
        mfl_errf(err, errlen, "%s: tensor '%s': entry must be an object", label, name);
        return -1;
    }
    for (size_t i = 0; i < mfl_json_array_len(v); i++) {
        const char *key;
        mfl_json_object_at(v, i, &key);
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 &&
            strcmp(key, "data_offsets") != 0) {
            mfl_errf(err, errlen, "%s: tensor '%s': unknown key '%s'", label, name, key);
            return -1;
        }
    }
    const char *dtype = mfl_json_string(mfl_json_get(v, "dtype"));
    if (!dtype) {
        mfl_errf(err, errlen, "%s: tensor '%s': missing string 'dtype'", label, name);
        return -1;
    }
    if (strcmp(dtype, "F32") != 0) {
        mfl_errf(err, errlen, "%s: tensor '%s': dtype '%.16s' not supported (only F32)", label,
                 name, dtype);
        return -1;
    }
    const mfl_json_t *shape = mfl_json_get(v, "shape");
    if (mfl_json_type(shape) != MFL_JSON_ARRAY ||
        mfl_json_array_len(shape) > MFL_MODEL_MAX_DIMS) {
        mfl_errf(err, errlen, "%s: tensor '%s': 'shape' must be an array of at most %d sizes",
                 label, name, MFL_MODEL_MAX_DIMS);
        return -1;
    }
    t->name = name;
    t->ndim = mfl_json_array_len(shape);
    t->count = 1;
    for (size_t d = 0; d < t->ndim; d++) {
        if (mfl_json_size(mfl_json_array_at(shape, d), &t->shape[d]) != 0) {
            mfl_errf(err, errlen, "%s: tensor '%s': shape[%zu] is not a size", label, name, d);
            return -1;
        }
        if (t->shape[d] && t->count > SIZE_MAX / 4 / t->shape[d]) {
            mfl_errf(err, errlen, "%s: tensor '%s': shape overflows", label, name);
            return -1;
        }
        t->count *= t->shape[d];
    }
    const mfl_json_t *off = mfl_json_get(v, "data_offsets");
    if (mfl_json_type(off) != MFL_JSON_ARRAY || mfl_json_array_len(off) != 2 ||
        mfl_json_size(mfl_json_array_at(off, 0), &t->begin) != 0 ||
        mfl_json_size(mfl_json_array_at(off, 1), &t->end) != 0) {
        mfl_errf(err, errlen, "%s: tensor '%s': 'data_offsets' must be [BEGIN, END]", label,
                 name);
        return -1;
    }
    if (t->begin > t->end || t->end > data_len) {
        mfl_errf(err, errlen,
                 "%s: tensor '%s': data_offsets [%zu, %zu] outside the %zu-byte data section",
                 label, name, t->begin, t->end, data_len);
        return -1;
    }
    if (t->end - t->begin != t->count * 4) {
        mfl_errf(err, errlen, "%s: tensor '%s': %zu bytes of data for %zu F32 values", label,
                 name, t->end - t->begin, t->count);
        return -1;
    }
    return 0;
}

static int s_parse_metadata(const mfl_json_t *meta, const char *label, char *err, size_t errlen)
{
    if (mfl_json_type(meta) != MFL_JSON_OBJECT) {
        mfl_errf(err, errlen, "%s: __metadata__ must be an object", label);
        return -1;
    }
    for (size_t i = 0; i < mfl_json_array_len(meta); i++) {
        const char *key;
        const mfl_json_t *v = mfl_json_object_at(meta, i, &key);
        const char *s = mfl_json_string(v);
        if (!s || strlen(s) != mfl_json_string_len(v)) {
            mfl_errf(err, errlen, "%s: __metadata__ '%s': value must be a string without NUL",
                     label, key);
            return -1;
        }
    }
    return 0;
}

mfl_safetensors_t *mfl_safetensors_parse(const uint8_t *data, size_t len, const char *label,
                                         char *err, size_t errlen)
{
    if (!label)
        label = "safetensors";
    if (len < 8) {
        mfl_errf(err, errlen, "%s: truncated: %zu bytes, a header length needs 8", label, len);
        return NULL;
    }
    if (len > MFL_ST_MAX_FILE) {
        mfl_errf(err, errlen, "%s: %zu bytes is over the %zu-byte limit", label, len,
                 MFL_ST_MAX_FILE);
        return NULL;
    }
    uint64_t hlen = s_le64(data);
    if (hlen > MFL_ST_MAX_HEADER) {
        mfl_errf(err, errlen, "%s: header length %llu over the %u-byte limit", label,
                 (unsigned long long)hlen, MFL_ST_MAX_HEADER);
        return NULL;
    }
    if (hlen > len - 8) {
        mfl_errf(err, errlen, "%s: truncated: header length %llu but only %zu bytes follow",
                 label, (unsigned long long)hlen, len - 8);
        return NULL;
    }
    mfl_safetensors_t *self = calloc(1, sizeof *self);
    if (!self) {
        mfl_errf(err, errlen, "%s: out of memory", label);
        return NULL;
    }
    self->data = data + 8 + hlen;
    self->data_len = len - 8 - (size_t)hlen;
    char jerr[160];
    self->root = mfl_json_parse((const char *)data + 8, (size_t)hlen, jerr, sizeof jerr);
    if (!self->root) {
        mfl_errf(err, errlen, "%s: header: %s", label, jerr);
        goto fail;
    }
    if (mfl_json_type(self->root) != MFL_JSON_OBJECT) {
        mfl_errf(err, errlen, "%s: header must be a JSON object", label);
        goto fail;
    }
    size_t members = mfl_json_array_len(self->root);
    if (members > MFL_ST_MAX_TENSORS + 1) {
        mfl_errf(err, errlen, "%s: more than %u tensors", label, MFL_ST_MAX_TENSORS);
        goto fail;
    }
    self->tensors = calloc(members ? members : 1, sizeof *self->tensors);
    if (!self->tensors) {
        mfl_errf(err, errlen, "%s: out of memory", label);
        goto fail;
    }
    for (size_t i = 0; i < members; i++) {
        const char *key;
        const mfl_json_t *v = mfl_json_object_at(self->root, i, &key);
        if (strcmp(key, "__metadata__") == 0) {
            if (s_parse_metadata(v, label, err, errlen) != 0)
                goto fail;
            self->meta = v;
            continue;
        }
        if (s_parse_tensor(v, key, self->data_len, label, &self->tensors[self->n], err,
                           errlen) != 0)
            goto fail;
        self->n++;
    }
    /* The format requires the data section to be covered exactly: no
     * holes (hidden payload) and no overlaps (aliased tensors). */
    qsort(self->tensors, self->n, sizeof *self->tensors, s_by_begin);
    size_t pos = 0;
    for (size_t i = 0; i < self->n; i++) {
        const mfl_st_tensor_t *t = &self->tensors[i];
        if (t->begin != pos) {
            mfl_errf(err, errlen, "%s: tensor '%s': data starts at byte %zu, expected %zu "
                     "(gap or overlap)", label, t->name, t->begin, pos);
            goto fail;
        }
        pos = t->end;
    }
    if (pos != self->data_len) {
        mfl_errf(err, errlen, "%s: %zu bytes of data after the last tensor", label,
                 self->data_len - pos);
        goto fail;
    }
    return self;
fail:
    mfl_safetensors_destroy(&self);
    return NULL;
}

void mfl_safetensors_destroy(mfl_safetensors_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_safetensors_t *self = *self_p;
    mfl_json_destroy(&self->root);
    free(self->tensors);
    free(self->owned);
    free(self);
    *self_p = NULL;
}

/* Reads a whole file, refusing more than MFL_ST_MAX_FILE bytes. */
static int s_read_file(const char *path, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        mfl_errf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        mfl_errf(err, errlen, "%s: not a regular file", path);
        goto fail;
    }
    if ((uint64_t)st.st_size > MFL_ST_MAX_FILE) {
        mfl_errf(err, errlen, "%s: %lld bytes is over the %zu-byte limit", path,
                 (long long)st.st_size, MFL_ST_MAX_FILE);
        goto fail;
    }
    size_t n = (size_t)st.st_size, got = 0;
    *out = malloc(n ? n : 1);
    if (!*out) {
        mfl_errf(err, errlen, "%s: out of memory for %zu bytes", path, n);
        goto fail;
    }
    while (got < n) {
        ssize_t r = read(fd, *out + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            mfl_errf(err, errlen, "%s: read failed after %zu of %zu bytes: %s", path, got, n,
                     r < 0 ? strerror(errno) : "file shrank");
            goto fail;
        }
        got += (size_t)r;
    }
    close(fd);
    *len = n;
    return 0;
fail:
    free(*out);
    *out = NULL;
    close(fd);
    return -1;
}

mfl_safetensors_t *mfl_safetensors_read(const char *path, char *err, size_t errlen)
{
    uint8_t *bytes;
    size_t len;
    if (s_read_file(path, &bytes, &len, err, errlen) != 0)
        return NULL;
    mfl_safetensors_t *self = mfl_safetensors_parse(bytes, len, path, err, errlen);
    if (!self) {
        free(bytes);
        return NULL;
    }
    self->owned = bytes;
    return self;
}

size_t mfl_safetensors_n_tensors(const mfl_safetensors_t *self) { return self->n; }

const mfl_st_tensor_t *mfl_safetensors_tensor(const mfl_safetensors_t *self, size_t index)
{
    return index < self->n ? &self->tensors[index] : NULL;
}

const mfl_st_tensor_t *mfl_safetensors_find(const mfl_safetensors_t *self, const char *name)
{
    for (size_t i = 0; i < self->n; i++)
        if (strcmp(self->tensors[i].name, name) == 0)
            return &self->tensors[i];
    return NULL;
}

void mfl_safetensors_copy(const mfl_safetensors_t *self, const mfl_st_tensor_t *t, float *dst)
{
    const uint8_t *p = self->data + t->begin;
    for (size_t i = 0; i < t->count; i++, p += 4) {
        uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24;
        memcpy(&dst[i], &u, 4);
    }
}

const char *mfl_safetensors_metadata(const mfl_safetensors_t *self, const char *key)
{
    return mfl_json_string(mfl_json_get(self->meta, key));
}

/* A growable text buffer for the header. */
typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} s_buf_t;

static void s_put(s_buf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->failed = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void s_puts(s_buf_t *b, const char *s)
{
    s_put(b, s, strlen(s));
}

static void s_putf(s_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_putf(s_buf_t *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    MFL_ASSERT(n >= 0 && (size_t)n < sizeof tmp);
    s_put(b, tmp, (size_t)n);
}

/* A JSON string literal: quotes, backslashes and control bytes escaped. */
static void s_put_json_string(s_buf_t *b, const char *s)
{
    s_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            s_put(b, e, 2);
        } else if (c < 0x20) {
            s_putf(b, "\\u%04x", c);
        } else {
            s_put(b, s, 1);
        }
    }
    s_put(b, "\"", 1);
}

int mfl_safetensors_encode(const mfl_model_t *model, const float *theta,
                           const char *const *metadata, uint8_t **out, size_t *out_len,
                           char *err, size_t errlen)
{
    *out = NULL;
    s_buf_t h = {0};
    s_puts(&h, "{\"__metadata__\":{\"spec\":");
    s_put_json_string(&h, mfl_model_spec(model));
    for (size_t i = 0; metadata && metadata[i]; i += 2) {
        if (!metadata[i + 1] || strcmp(metadata[i], "spec") == 0) {
            mfl_errf(err, errlen, "safetensors metadata '%s': %s", metadata[i],
                     metadata[i + 1] ? "key is reserved" : "missing value");
            free(h.p);
            return -1;
        }
        s_put(&h, ",", 1);
        s_put_json_string(&h, metadata[i]);
        s_put(&h, ":", 1);
        s_put_json_string(&h, metadata[i + 1]);
    }
    s_put(&h, "}", 1);
    size_t pos = 0;
    for (size_t i = 0; i < mfl_model_n_tensors(model); i++) {
        const mfl_tensor_info_t *t = mfl_model_tensor(model, i);
        s_put(&h, ",", 1);
        s_put_json_string(&h, t->name);
        s_puts(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (size_t d = 0; d < t->ndim; d++)
            s_putf(&h, "%s%zu", d ? "," : "", t->shape[d]);
        s_putf(&h, "],\"data_offsets\":[%zu,%zu]}", pos, pos + 4 * t->count);
        pos += 4 * t->count;
    }
    s_put(&h, "}", 1);
    while (!h.failed && (h.len % 8) != 0) /* align the data section to 8 bytes */
        s_put(&h, " ", 1);
    if (h.failed) {
        mfl_errf(err, errlen, "safetensors: out of memory for the header");
        free(h.p);
        return -1;
    }
    size_t total = 8 + h.len + pos;
    uint8_t *buf = malloc(total);
    if (!buf) {
        mfl_errf(err, errlen, "safetensors: out of memory for %zu bytes", total);
        free(h.p);
        return -1;
    }
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    memcpy(buf + 8, h.p, h.len);
    uint8_t *p = buf + 8 + h.len;
    const size_t n = mfl_model_n_params(model);
    for (size_t i = 0; i < n; i++, p += 4) {
        uint32_t u;
        memcpy(&u, &theta[i], 4);
        p[0] = (uint8_t)u;
        p[1] = (uint8_t)(u >> 8);
        p[2] = (uint8_t)(u >> 16);
        p[3] = (uint8_t)(u >> 24);
    }
    free(h.p);
    *out = buf;
    *out_len = total;
    return 0;
}

/* Writes via "PATH.tmp-XXXXXX" + fsync + rename + directory fsync. */
static int s_write_atomic(const char *path, const uint8_t *data, size_t len, char *err,
                          size_t errlen)
{
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp) {
        mfl_errf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    snprintf(tmp, pl + 16, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        mfl_errf(err, errlen, "%s: cannot create temp file: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            mfl_errf(err, errlen, "%s: write failed: %s", path, strerror(errno));
            goto fail;
        }
        done += (size_t)w;
    }
    if (fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
        mfl_errf(err, errlen, "%s: fsync failed: %s", path, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        mfl_errf(err, errlen, "%s: close failed: %s", path, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        mfl_errf(err, errlen, "%s: rename failed: %s", path, strerror(errno));
        goto fail;
    }
    /* Make the rename itself durable. */
    char *slash = strrchr(tmp, '/');
    if (slash)
        *slash = '\0';
    int dfd = open(slash ? (slash == tmp ? "/" : tmp) : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(tmp);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    free(tmp);
    return -1;
}

int mfl_safetensors_save(const char *path, const mfl_model_t *model, const float *theta,
                         const char *const *metadata, char *err, size_t errlen)
{
    uint8_t *buf;
    size_t len;
    if (mfl_safetensors_encode(model, theta, metadata, &buf, &len, err, errlen) != 0)
        return -1;
    int rc = s_write_atomic(path, buf, len, err, errlen);
    free(buf);
    return rc;
}

int mfl_safetensors_load(const char *path, const mfl_model_t *model, float *theta, char *err,
                         size_t errlen)
{
    mfl_safetensors_t *st = mfl_safetensors_read(path, err, errlen);
    if (!st)
        return -1;
    int rc = -1;
    const char *spec = mfl_safetensors_metadata(st, "spec");
    if (spec && strcmp(spec, mfl_model_spec(model)) != 0) {
        mfl_errf(err, errlen, "%s: holds model '%s', expected '%s'", path, spec,
                 mfl_model_spec(model));
        goto out;
    }
    const size_t nt = mfl_model_n_tensors(model);
    for (size_t i = 0; i < nt; i++) {
        const mfl_tensor_info_t *want = mfl_model_tensor(model, i);
        const mfl_st_tensor_t *t = mfl_safetensors_find(st, want->name);
        if (!t) {
            mfl_errf(err, errlen, "%s: tensor '%s' missing", path, want->name);
            goto out;
        }
        int same = t->ndim == want->ndim;
        for (size_t d = 0; same && d < t->ndim; d++)
            same = t->shape[d] == want->shape[d];
        if (!same) {
            char got[64] = "", exp[64] = "";
            for (size_t d = 0; d < t->ndim; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%zu", d ? "," : "",
                         t->shape[d]);
            for (size_t d = 0; d < want->ndim; d++)
                snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s%zu", d ? "," : "",
                         want->shape[d]);
            mfl_errf(err, errlen, "%s: tensor '%s': shape [%s], model '%s' wants [%s]", path,
                     want->name, got, mfl_model_spec(model), exp);
            goto out;
        }
    }
    if (mfl_safetensors_n_tensors(st) != nt) {
        for (size_t i = 0; i < mfl_safetensors_n_tensors(st); i++) {
            const char *name = mfl_safetensors_tensor(st, i)->name;
            int known = 0;
            for (size_t j = 0; j < nt && !known; j++)
                known = strcmp(name, mfl_model_tensor(model, j)->name) == 0;
            if (!known) {
                mfl_errf(err, errlen, "%s: tensor '%s' is not part of model '%s'", path, name,
                         mfl_model_spec(model));
                goto out;
            }
        }
    }
    for (size_t i = 0; i < nt; i++) {
        const mfl_tensor_info_t *want = mfl_model_tensor(model, i);
        mfl_safetensors_copy(st, mfl_safetensors_find(st, want->name), theta + want->offset);
    }
    rc = 0;
out:
    mfl_safetensors_destroy(&st);
    return rc;
}
