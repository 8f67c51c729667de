/* CSV tokenising: a bounded copy of the text split in place into cells
 * (quotes, delimiters, blank lines, header, skip_rows, max_rows). */
#include "data/csv_table.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

void mfl_csv_table_free(mfl_csv_table_t *t)
{
    free(t->buf);
    free(t->cells);
    free(t->recs);
    free(t->header);
    t->buf = NULL;
    t->cells = NULL;
    t->recs = NULL;
    t->header = NULL;
}

int mfl_csv_number(const char *s, double *out)
{
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v) || strpbrk(s, "nNiIxX"))
        return -1;
    *out = v;
    return 0;
}

static int s_push_cell(mfl_csv_table_t *t, char *cell)
{
    if (t->n_cells == t->cap_cells) {
        size_t cap = t->cap_cells ? t->cap_cells * 2 : 1024;
        char **c = realloc(t->cells, cap * sizeof *c);
        if (!c)
            return -1;
        t->cells = c;
        t->cap_cells = cap;
    }
    t->cells[t->n_cells++] = cell;
    return 0;
}

static int s_push_rec(mfl_csv_table_t *t, size_t line, size_t first)
{
    if (t->n_recs == t->cap_recs) {
        size_t cap = t->cap_recs ? t->cap_recs * 2 : 256;
        mfl_csv_record_t *r = realloc(t->recs, cap * sizeof *r);
        if (!r)
            return -1;
        t->recs = r;
        t->cap_recs = cap;
    }
    t->recs[t->n_recs].line = line;
    t->recs[t->n_recs].first = first;
    t->n_recs++;
    return 0;
}

static char *s_trim(char *s, char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *end = '\0';
    return s;
}

/* Unescapes the quoted cell starting after the opening quote at *p, in
 * place (""" -> '"'); on return *p is just past the closing quote. */
static char *s_unquote(char **p, int *closed)
{
    char *src = *p + 1, *dst = src, *cell = src;
    *closed = 0;
    while (*src) {
        if (*src == '"') {
            if (src[1] != '"') {
                src++;
                *closed = 1;
                break;
            }
            src++; /* "" is one quote */
        }
        *dst++ = *src++;
    }
    *dst = '\0'; /* dst ≤ src - 1 once closed: never past the quote */
    *p = src;
    return cell;
}

/* One quoted cell at p: its text; *next_p is the delimiter or NUL after it. */
static char *s_quoted_cell(const mfl_csv_table_t *t, char *p, char delim, size_t lineno,
                           size_t field, char **next_p, char *err, size_t errlen)
{
    int closed;
    char *end = p;
    char *cell = s_unquote(&end, &closed);
    if (!closed) {
        mfl_errf(err, errlen, "%s:%zu: column %zu: unterminated quoted field", t->name,
                 lineno + 1, field + 1);
        return NULL;
    }
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end != '\0' && *end != delim) {
        mfl_errf(err, errlen, "%s:%zu: column %zu: text after a closing quote", t->name,
                 lineno + 1, field + 1);
        return NULL;
    }
    *next_p = end;
    return cell;
}

/* Splits one line (NUL-terminated, in place) into cells. */
static int s_split_line(mfl_csv_table_t *t, char *line, size_t lineno, char delim,
                        size_t *n_fields, char *err, size_t errlen)
{
    char *p = line;
    size_t fields = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        char *cell, *end, next;
        if (*p == '"') {
            cell = s_quoted_cell(t, p, delim, lineno, fields, &end, err, errlen);
            if (!cell)
                return -1;
            next = *end;
        } else {
            end = p;
            while (*end && *end != delim)
                end++;
            next = *end; /* before s_trim writes the terminator there */
            cell = s_trim(p, end);
        }
        if (s_push_cell(t, cell) < 0) {
            mfl_errf(err, errlen, "%s:%zu: out of memory", t->name, lineno + 1);
            return -1;
        }
        if (++fields > MFL_CSV_MAX_COLUMNS) {
            mfl_errf(err, errlen, "%s:%zu: more than %u columns", t->name, lineno + 1,
                     (unsigned)MFL_CSV_MAX_COLUMNS);
            return -1;
        }
        if (!next)
            break;
        p = end + 1;
    }
    *n_fields = fields;
    return 0;
}

/* Keeps the cells from `first` on as the header line. */
static int s_take_header(mfl_csv_table_t *t, size_t first, size_t fields, size_t lineno)
{
    t->header = malloc(fields * sizeof *t->header);
    if (!t->header)
        return -1;
    memcpy(t->header, t->cells + first, fields * sizeof *t->header);
    t->n_cells = first;
    t->header_line = lineno;
    return 0;
}

static int s_tokenize(mfl_csv_table_t *t, const mfl_csv_schema_t *schema, char *err,
                      size_t errlen)
{
    char delim = schema->delimiter ? schema->delimiter : ',';
    char *p = t->buf;
    size_t lineno = 0;
    int header_pending = schema->header;
    char *end_all = t->buf + strlen(t->buf);
    for (; p < end_all; lineno++) {
        char *nl = memchr(p, '\n', (size_t)(end_all - p));
        char *eol = nl ? nl : end_all;
        if ((size_t)(eol - p) > MFL_CSV_MAX_LINE) {
            mfl_errf(err, errlen, "%s:%zu: line longer than %u bytes", t->name, lineno + 1,
                     (unsigned)MFL_CSV_MAX_LINE);
            return -1;
        }
        char *line_end = eol;
        if (line_end > p && line_end[-1] == '\r')
            line_end--;
        *line_end = '\0';
        char *line = p;
        p = nl ? nl + 1 : end_all;
        if (lineno < schema->skip_rows || line == line_end)
            continue;
        size_t first = t->n_cells, fields;
        if (s_split_line(t, line, lineno, delim, &fields, err, errlen) < 0)
            return -1;
        if (fields != schema->n_columns) {
            mfl_errf(err, errlen, "%s:%zu: expected %zu columns, found %zu", t->name, lineno + 1,
                     schema->n_columns, fields);
            return -1;
        }
        if (header_pending) {
            header_pending = 0;
            if (s_take_header(t, first, fields, lineno) < 0)
                goto out_oom;
            continue;
        }
        if (schema->max_rows && t->n_recs >= schema->max_rows)
            break;
        if (s_push_rec(t, lineno, first) < 0)
            goto out_oom;
    }
    return 0;
out_oom:
    mfl_errf(err, errlen, "%s: out of memory", t->name);
    return -1;
}

int mfl_csv_table_read(mfl_csv_table_t *t, const char *text, size_t len,
                       const mfl_csv_schema_t *schema, char *err, size_t errlen)
{
    if (len > MFL_CSV_MAX_BYTES) {
        mfl_errf(err, errlen, "%s: %zu bytes exceeds the limit of %u", t->name, len,
                 (unsigned)MFL_CSV_MAX_BYTES);
        return -1;
    }
    const char *z = memchr(text, '\0', len);
    if (z) {
        size_t line = 1;
        for (const char *q = text; q < z; q++)
            line += *q == '\n';
        mfl_errf(err, errlen, "%s:%zu: NUL byte in text", t->name, line);
        return -1;
    }
    t->buf = malloc(len + 1);
    if (!t->buf) {
        mfl_errf(err, errlen, "%s: out of memory", t->name);
        return -1;
    }
    memcpy(t->buf, text, len);
    t->buf[len] = '\0';
    return s_tokenize(t, schema, err, errlen);
}
