/* Canonical schema text, its hash, and the words for how two differ. */
#include "data/csv_canon.h"

#include <ctype.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "data/csv_table.h"

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} s_buf_t;

__attribute__((format(printf, 2, 3)))
static void s_put(s_buf_t *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 256;
        while (cap <= b->len + (size_t)n)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

static char *s_done(s_buf_t *b)
{
    if (b->oom || !b->s) {
        free(b->s);
        return NULL;
    }
    return b->s;
}

/* A level as text: numbers in their shortest round-trip form. */
static void s_put_level(s_buf_t *b, const char *level)
{
    double v;
    if (mfl_csv_number(level, &v) == 0) {
        char num[40];
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(num, sizeof num, "%.*g", prec, v);
            if (strtod(num, NULL) == v)
                break;
        }
        s_put(b, "%s", num);
        return;
    }
    s_put(b, "%s", level);
}

static void s_put_label(s_buf_t *b, const mfl_csv_schema_t *schema, const char *const *names,
                        const char *const *const *levels, const size_t *n_levels)
{
    for (size_t c = 0; c < schema->n_columns; c++) {
        const mfl_csv_column_t *col = &schema->columns[c];
        if (col->kind != MFL_CSV_LABEL)
            continue;
        const char *name = names && names[c] ? names[c] : col->name ? col->name : "?";
        static const char *const rules[] = { "class", "greater", "less", "equal", "levels",
                                             "regression" };
        s_put(b, "label %s %s", name, rules[col->label_rule <= 5 ? col->label_rule : 0]);
        if (col->label_rule == MFL_CSV_LABEL_GREATER || col->label_rule == MFL_CSV_LABEL_LESS ||
            col->label_rule == MFL_CSV_LABEL_EQUAL) {
            char num[40];
            snprintf(num, sizeof num, "%.17g", col->threshold);
            s_put(b, " ");
            s_put_level(b, num);
        }
        if (col->label_rule == MFL_CSV_LABEL_LEVELS)
            for (size_t k = 0; k < n_levels[c]; k++) {
                s_put(b, "%s", k ? "," : " ");
                s_put_level(b, levels[c][k]);
            }
        s_put(b, "\n");
        return;
    }
    s_put(b, "label none\n");
}

static void s_put_column(s_buf_t *b, const mfl_csv_column_t *col, const char *name,
                         const char *const *levels, size_t n_levels)
{
    if (col->kind == MFL_CSV_NUMERIC) {
        s_put(b, "numeric %s\n", name);
        return;
    }
    s_put(b, "categorical %s levels=", name);
    for (size_t k = 0; k < n_levels; k++) {
        if (k)
            s_put(b, ",");
        s_put_level(b, levels[k]);
    }
    s_put(b, "%s\n", col->drop_first ? " drop_first" : "");
}

static size_t s_width(const mfl_csv_column_t *col, size_t n_levels)
{
    if (col->kind == MFL_CSV_NUMERIC)
        return 1;
    if (col->kind != MFL_CSV_CATEGORICAL)
        return 0;
    return col->drop_first ? (n_levels ? n_levels - 1 : 0) : n_levels;
}

char *mfl_csv_canonical_build(const mfl_csv_schema_t *schema, const char *const *names,
                              const char *const *const *levels, const size_t *n_levels,
                              size_t n_classes)
{
    s_buf_t b = { 0 };
    size_t nf = 0;
    for (size_t c = 0; c < schema->n_columns; c++)
        nf += s_width(&schema->columns[c], n_levels[c]);
    s_put(&b, "metafl-schema v2\nfeatures %zu\nclasses %zu\n", nf, n_classes);
    s_put_label(&b, schema, names, levels, n_levels);
    for (int pass = 0; pass < 2; pass++)
        for (size_t c = 0; c < schema->n_columns; c++) {
            const mfl_csv_column_t *col = &schema->columns[c];
            if (col->kind != MFL_CSV_NUMERIC && col->kind != MFL_CSV_CATEGORICAL)
                continue;
            int is_cat = col->kind == MFL_CSV_CATEGORICAL;
            int in_pass = schema->categorical_last ? (pass == 0 ? !is_cat : is_cat) : pass == 0;
            if (!in_pass)
                continue;
            char nbuf[32];
            const char *name = names && names[c] ? names[c] : col->name;
            if (!name) {
                snprintf(nbuf, sizeof nbuf, "col%zu", c + 1);
                name = nbuf;
            }
            s_put_column(&b, col, name, levels[c], n_levels[c]);
        }
    return s_done(&b);
}

char *mfl_csv_canonical(const mfl_csv_schema_t *schema, size_t *n_features, size_t *n_classes,
                        char *err, size_t errlen)
{
    size_t nc = schema->n_columns, classes = 0, nf = 0;
    if (nc == 0 || !schema->columns)
        return mfl_errf(err, errlen, "the schema lists no columns"), NULL;
    const char *const **levels = calloc(nc, sizeof *levels);
    size_t *n_levels = calloc(nc, sizeof *n_levels);
    char *text = NULL;
    if (!levels || !n_levels) {
        mfl_errf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t c = 0; c < nc; c++) {
        const mfl_csv_column_t *col = &schema->columns[c];
        const char *nm = col->name ? col->name : "";
        if (!col->name && col->kind != MFL_CSV_IGNORE) {
            mfl_errf(err, errlen, "column %zu: a consortium schema names every column", c + 1);
            goto out;
        }
        if (col->kind == MFL_CSV_CATEGORICAL && !col->levels) {
            mfl_errf(err, errlen, "column %zu '%s': a consortium schema lists the levels of "
                     "every categorical column (its one-hot width must be known without data)",
                     c + 1, nm);
            goto out;
        }
        levels[c] = col->levels;
        n_levels[c] = col->n_levels;
        nf += s_width(col, col->n_levels);
        if (col->kind != MFL_CSV_LABEL)
            continue;
        switch (col->label_rule) {
        case MFL_CSV_LABEL_CLASS:
            if (!col->n_classes) {
                mfl_errf(err, errlen, "column %zu '%s': a consortium schema gives the label's "
                         "n_classes (rule class)", c + 1, nm);
                goto out;
            }
            classes = col->n_classes;
            break;
        case MFL_CSV_LABEL_LEVELS: classes = col->n_levels; break;
        case MFL_CSV_LABEL_REGRESSION: classes = 0; break;
        default: classes = 2; break;
        }
    }
    text = mfl_csv_canonical_build(schema, NULL, levels, n_levels, classes);
    if (!text)
        mfl_errf(err, errlen, "out of memory");
    *n_features = nf;
    *n_classes = classes;
out:
    free(levels);
    free(n_levels);
    return text;
}

char *mfl_schema_canonical_plain(const char *const *names, size_t n, size_t channels,
                                 size_t height, size_t width, size_t n_classes)
{
    s_buf_t b = { 0 };
    s_put(&b, "metafl-schema v2\nfeatures %zu\nclasses %zu\nlabel %s\n", n, n_classes,
          n_classes ? "class" : "regression");
    if (channels && height && width) {
        s_put(&b, "image %zux%zux%zu\n", channels, height, width);
        return s_done(&b);
    }
    for (size_t i = 0; i < n; i++) {
        if (names && names[i])
            s_put(&b, "numeric %s\n", names[i]);
        else
            s_put(&b, "numeric f%zu\n", i + 1);
    }
    return s_done(&b);
}

void mfl_schema_hash(const char *text, uint8_t *hash)
{
    crypto_generichash(hash, MFL_SCHEMA_HASH_BYTES, (const unsigned char *)text, strlen(text),
                       NULL, 0);
}

/* ---- diff ---------------------------------------------------------- */

#define S_MAX_LINES 8192

typedef struct {
    const char *p[S_MAX_LINES];
    size_t len[S_MAX_LINES];
    size_t n;
    size_t features, classes; /* from the header lines; SIZE_MAX unknown */
    long label;               /* line index of "label ...", -1 none */
    size_t first_feature;     /* index of the first feature line */
} s_lines_t;

static void s_split(const char *text, size_t len, s_lines_t *l)
{
    l->n = 0;
    l->features = l->classes = SIZE_MAX;
    l->label = -1;
    l->first_feature = 0;
    const char *p = text, *end = text + len;
    while (p < end && l->n < S_MAX_LINES) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        l->p[l->n] = p;
        l->len[l->n] = n;
        unsigned long long v;
        char head[24];
        snprintf(head, sizeof head, "%.*s", (int)(n < 23 ? n : 23), p);
        if (sscanf(head, "features %llu", &v) == 1)
            l->features = (size_t)v;
        else if (sscanf(head, "classes %llu", &v) == 1)
            l->classes = (size_t)v;
        else if (n >= 6 && strncmp(p, "label ", 6) == 0)
            l->label = (long)l->n;
        if (l->label >= 0 && l->first_feature == 0)
            l->first_feature = (size_t)l->label + 1;
        l->n++;
        p = nl ? nl + 1 : end;
    }
}

/* A line quoted for a message: printable ASCII, at most 100 bytes. */
static void s_quote(const char *p, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < outlen && i < 100; i++)
        out[o++] = isprint((unsigned char)p[i]) ? p[i] : '?';
    if (n > 100 && o + 4 < outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* "numeric x8" → kind "numeric", name "x8" (quoted, bounded). */
static void s_kind_name(const char *p, size_t n, char *kind, size_t kl, char *name, size_t nl)
{
    const char *sp = memchr(p, ' ', n);
    if (!sp) {
        s_quote(p, n, kind, kl);
        name[0] = '\0';
        return;
    }
    s_quote(p, (size_t)(sp - p), kind, kl);
    const char *q = sp + 1, *sp2 = memchr(q, ' ', (size_t)(p + n - q));
    s_quote(q, sp2 ? (size_t)(sp2 - q) : (size_t)(p + n - q), name, nl);
}

static bool s_line_eq(const s_lines_t *a, size_t i, const s_lines_t *b, size_t j)
{
    return a->len[i] == b->len[j] && memcmp(a->p[i], b->p[j], a->len[i]) == 0;
}

static void s_diff_features(const s_lines_t *w, const s_lines_t *h, char *out, size_t outlen)
{
    size_t nw = w->n - w->first_feature, nh = h->n - h->first_feature;
    char prefix[160] = "";
    if (w->features != h->features && h->features != SIZE_MAX)
        snprintf(prefix, sizeof prefix, "the site has %zu features, the consortium %zu: ",
                 h->features, w->features);
    for (size_t i = 0; i < nw || i < nh; i++) {
        size_t a = w->first_feature + i, b = h->first_feature + i;
        if (i < nw && i < nh && s_line_eq(w, a, h, b))
            continue;
        char wk[32], wn[128], hk[32], hn[128], wq[128], hq[128];
        if (i >= nh) {
            s_kind_name(w->p[a], w->len[a], wk, sizeof wk, wn, sizeof wn);
            snprintf(out, outlen, "%scolumn %zu '%s' (%s) is missing at the site", prefix, i + 1,
                     wn, wk);
            return;
        }
        s_kind_name(h->p[b], h->len[b], hk, sizeof hk, hn, sizeof hn);
        if (i >= nw) {
            snprintf(out, outlen, "%sthe site has an extra column %zu '%s' (%s)", prefix, i + 1,
                     hn, hk);
            return;
        }
        s_kind_name(w->p[a], w->len[a], wk, sizeof wk, wn, sizeof wn);
        s_quote(w->p[a], w->len[a], wq, sizeof wq);
        s_quote(h->p[b], h->len[b], hq, sizeof hq);
        if (strcmp(wn, hn) == 0)
            snprintf(out, outlen, "%scolumn %zu '%s': the consortium has '%s', the site '%s'",
                     prefix, i + 1, wn, wq, hq);
        else
            snprintf(out, outlen, "%scolumn %zu: the consortium has '%s', the site '%s'", prefix,
                     i + 1, wq, hq);
        return;
    }
    snprintf(out, outlen, "%sthe texts agree but the hashes differ (another metafl version?)",
             prefix);
}

void mfl_schema_diff(const char *want, const char *have, size_t have_len, char *out,
                     size_t outlen)
{
    s_lines_t *w = malloc(sizeof *w), *h = malloc(sizeof *h);
    if (!w || !h) {
        snprintf(out, outlen, "its data schema differs (out of memory to say how)");
        goto out_free;
    }
    s_split(want, strlen(want), w);
    s_split(have ? have : "", have ? have_len : 0, h);
    if (w->label < 0) { /* not a canonical text of ours: nothing to compare line by line */
        snprintf(out, outlen, "its data schema differs");
        goto out_free;
    }
    if (h->n == 0 || h->label < 0) {
        snprintf(out, outlen, "its data schema differs (the site sent no schema text to "
                 "compare; the consortium has %zu features, %zu classes)", w->features,
                 w->classes);
        goto out_free;
    }
    char wq[128], hq[128];
    if (!s_line_eq(w, (size_t)w->label, h, (size_t)h->label)) {
        s_quote(w->p[w->label], w->len[w->label], wq, sizeof wq);
        s_quote(h->p[h->label], h->len[h->label], hq, sizeof hq);
        snprintf(out, outlen, "label: the consortium has '%s', the site '%s'", wq, hq);
    } else if (w->classes != h->classes) {
        snprintf(out, outlen, "classes: the consortium has %zu, the site's data %zu",
                 w->classes, h->classes);
    } else {
        s_diff_features(w, h, out, outlen);
    }
out_free:
    free(w);
    free(h);
}
