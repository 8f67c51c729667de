/* YAML config tree built from libyaml's event stream. libyaml never expands
 * aliases itself, and we refuse anchors/aliases, so the tree can never be
 * larger than the (bounded) input. */
#include "config/yaml_doc.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/strindex.h"

typedef struct s_node {
    mfl_yaml_kind_t kind;
    size_t line;
    char *value; /* scalars */
    size_t count, cap;
    struct s_node **items;
    char **keys; /* mappings, parallel to items */
    size_t *key_lines;
    mfl_strindex_t index; /* mappings: so duplicate checks stay O(1) */
} s_node_t;

struct mfl_yaml_doc {
    char *file;
    s_node_t *root;
    int failed;
    char err[512];
};

static void s_node_free(s_node_t *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->count; i++) {
        s_node_free(n->items[i]);
        if (n->keys)
            free(n->keys[i]);
    }
    free(n->items);
    free(n->keys);
    free(n->key_lines);
    mfl_strindex_clear(&n->index);
    free(n->value);
    free(n);
}

static int s_node_push(s_node_t *parent, s_node_t *child, char *key, size_t key_line)
{
    if (parent->count == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 4;
        s_node_t **items = realloc(parent->items, cap * sizeof *items);
        if (!items)
            return -1;
        parent->items = items;
        if (parent->kind == MFL_YAML_MAPPING) {
            char **keys = realloc(parent->keys, cap * sizeof *keys);
            if (!keys)
                return -1;
            parent->keys = keys;
            size_t *lines = realloc(parent->key_lines, cap * sizeof *lines);
            if (!lines)
                return -1;
            parent->key_lines = lines;
        }
        parent->cap = cap;
    }
    parent->items[parent->count] = child;
    if (parent->kind == MFL_YAML_MAPPING) {
        parent->keys[parent->count] = key;
        parent->key_lines[parent->count] = key_line;
    }
    parent->count++;
    if (parent->kind == MFL_YAML_MAPPING &&
        mfl_strindex_added(&parent->index, parent->keys, parent->count) < 0) {
        parent->count--; /* the caller still owns child and key */
        return -1;
    }
    return 0;
}

static int s_is_null(const yaml_event_t *ev)
{
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *v = (const char *)ev->data.scalar.value;
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

typedef struct {
    s_node_t *node;
    char *pending_key; /* mappings: a key waiting for its value */
    size_t pending_line;
} s_frame_t;

/* The builder's state: the open collections (stack[0 .. depth)), the
 * root, the node and document counts. */
typedef struct {
    s_frame_t stack[MFL_YAML_MAX_DEPTH + 1];
    int depth;
    s_node_t *root;
    size_t nodes;
    int documents;
    const char *name;
} s_builder_t;

/* Events that open no node: stream and document marks, collection ends,
 * and the refused ones (a second document, aliases). 1 if `ev` was one of
 * them and is handled, 0 if it opens a node, -1 with err. */
static int s_structural(s_builder_t *b, const yaml_event_t *ev, size_t line, char *err,
                        size_t errlen)
{
    yaml_event_type_t t = ev->type;
    if (t == YAML_DOCUMENT_START_EVENT) {
        if (++b->documents > 1)
            return mfl_errf(err, errlen, "%s:%zu: only one YAML document per file", b->name,
                            line), -1;
        return 1;
    }
    if (t == YAML_STREAM_START_EVENT || t == YAML_DOCUMENT_END_EVENT)
        return 1;
    if (t == YAML_ALIAS_EVENT)
        return mfl_errf(err, errlen, "%s:%zu: YAML aliases (*name) are not supported in configs",
                        b->name, line), -1;
    if (t == YAML_MAPPING_END_EVENT || t == YAML_SEQUENCE_END_EVENT) {
        if (b->depth == 0)
            return mfl_errf(err, errlen, "%s:%zu: unbalanced collection end", b->name, line), -1;
        b->depth--;
        free(b->stack[b->depth].pending_key);
        b->stack[b->depth].pending_key = NULL;
        return 1;
    }
    return 0;
}

/* A scalar event that is a key of the open mapping `top`: checked (scalar,
 * no NUL, not a duplicate) and kept until its value arrives. 0 or -1. */
static int s_take_key(const s_builder_t *b, s_frame_t *top, const yaml_event_t *ev, size_t line,
                      char *err, size_t errlen)
{
    if (ev->type != YAML_SCALAR_EVENT)
        return mfl_errf(err, errlen, "%s:%zu: mapping keys must be scalars", b->name, line), -1;
    const char *k = (const char *)ev->data.scalar.value;
    if (strlen(k) != ev->data.scalar.length)
        return mfl_errf(err, errlen, "%s:%zu: NUL byte in key", b->name, line), -1;
    if (mfl_strindex_find(&top->node->index, top->node->keys, top->node->count, k,
                          ev->data.scalar.length) != SIZE_MAX)
        return mfl_errf(err, errlen, "%s:%zu: duplicate key '%s'", b->name, line, k), -1;
    top->pending_line = line;
    top->pending_key = strdup(k);
    if (!top->pending_key)
        return mfl_errf(err, errlen, "%s: out of memory", b->name), -1;
    return 0;
}

/* A new node for a scalar, mapping-start or sequence-start event (the
 * node cap counted), or NULL with err. */
static s_node_t *s_new_node(s_builder_t *b, const yaml_event_t *ev, size_t line, char *err,
                            size_t errlen)
{
    if (++b->nodes > MFL_YAML_MAX_NODES) {
        mfl_errf(err, errlen, "%s:%zu: more than %u nodes", b->name, line,
                 (unsigned)MFL_YAML_MAX_NODES);
        return NULL;
    }
    s_node_t *node = calloc(1, sizeof *node);
    if (!node)
        goto out_oom;
    node->line = line;
    if (ev->type != YAML_SCALAR_EVENT) {
        node->kind = ev->type == YAML_MAPPING_START_EVENT ? MFL_YAML_MAPPING : MFL_YAML_SEQUENCE;
        return node;
    }
    /* "\0" in a quoted value would silently cut it short as a C string
     * (a path "a\0b" read as "a"): refuse, as for keys. */
    if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length) {
        free(node);
        mfl_errf(err, errlen, "%s:%zu: NUL byte in value", b->name, line);
        return NULL;
    }
    node->kind = s_is_null(ev) ? MFL_YAML_NULL : MFL_YAML_SCALAR;
    node->value = strdup((const char *)ev->data.scalar.value);
    if (!node->value) {
        free(node);
        goto out_oom;
    }
    return node;
out_oom:
    mfl_errf(err, errlen, "%s: out of memory", b->name);
    return NULL;
}

/* Hangs `node` (taken: freed on failure unless already in the tree) under
 * the open collection, or makes it the root; a collection is then opened.
 * 0 or -1 with err. */
static int s_place(s_builder_t *b, s_node_t *node, size_t line, char *err, size_t errlen)
{
    s_frame_t *top = b->depth > 0 ? &b->stack[b->depth - 1] : NULL;
    if (!top) {
        if (b->root) {
            s_node_free(node);
            return mfl_errf(err, errlen, "%s:%zu: more than one top-level value", b->name,
                            line), -1;
        }
        b->root = node;
    } else {
        char *key = top->pending_key;
        /* A value is reported at its key's line ("data:" rather than
         * the first line inside a block mapping). */
        if (top->node->kind == MFL_YAML_MAPPING)
            node->line = top->pending_line;
        if (s_node_push(top->node, node, key, top->pending_line) < 0) {
            s_node_free(node);
            return mfl_errf(err, errlen, "%s: out of memory", b->name), -1;
        }
        top->pending_key = NULL;
    }
    if (node->kind == MFL_YAML_MAPPING || node->kind == MFL_YAML_SEQUENCE) {
        if (b->depth >= MFL_YAML_MAX_DEPTH)
            return mfl_errf(err, errlen, "%s:%zu: nesting deeper than %d", b->name, line,
                            MFL_YAML_MAX_DEPTH), -1;
        b->stack[b->depth].node = node;
        b->stack[b->depth].pending_key = NULL;
        b->stack[b->depth].pending_line = 0;
        b->depth++;
    }
    return 0;
}

/* One event that is not structural: anchors refused, then a key of the
 * open mapping, or a value (scalar or collection) placed in the tree. */
static int s_on_node_event(s_builder_t *b, const yaml_event_t *ev, size_t line, char *err,
                           size_t errlen)
{
    yaml_event_type_t t = ev->type;
    const yaml_char_t *anchor = t == YAML_SCALAR_EVENT           ? ev->data.scalar.anchor
                                : t == YAML_MAPPING_START_EVENT ? ev->data.mapping_start.anchor
                                                                 : ev->data.sequence_start.anchor;
    if (anchor)
        return mfl_errf(err, errlen, "%s:%zu: YAML anchors (&%s) are not supported in configs",
                        b->name, line, (const char *)anchor), -1;
    s_frame_t *top = b->depth > 0 ? &b->stack[b->depth - 1] : NULL;
    if (top && top->node->kind == MFL_YAML_MAPPING && !top->pending_key)
        return s_take_key(b, top, ev, line, err, errlen);
    s_node_t *node = s_new_node(b, ev, line, err, errlen);
    if (!node)
        return -1;
    return s_place(b, node, line, err, errlen);
}

/* Builds the tree from the parser's events; returns root or NULL with err
 * filled. */
static s_node_t *s_build(yaml_parser_t *parser, const char *name, char *err, size_t errlen)
{
    s_builder_t b;
    memset(&b, 0, sizeof b);
    b.name = name;
    yaml_event_t ev;
    for (;;) {
        if (!yaml_parser_parse(parser, &ev)) {
            /* FILE:LINE:COLUMN, as compilers say it: a YAML syntax error
             * is usually one misplaced character. */
            mfl_errf(err, errlen, "%s:%zu:%zu: %s%s%s", name, parser->problem_mark.line + 1,
                     parser->problem_mark.column + 1,
                     parser->problem ? parser->problem : "syntax error",
                     parser->context ? " " : "", parser->context ? parser->context : "");
            goto out_fail;
        }
        size_t line = ev.start_mark.line + 1;
        if (ev.type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        int rc = s_structural(&b, &ev, line, err, errlen);
        if (rc == 0)
            rc = s_on_node_event(&b, &ev, line, err, errlen);
        yaml_event_delete(&ev);
        if (rc < 0)
            goto out_fail;
    }
    /* libyaml closes every collection before the stream ends; free any
     * pending key anyway rather than rely on it. */
    for (int i = 0; i < b.depth; i++)
        free(b.stack[i].pending_key);
    if (!b.root) {
        /* An empty file is an empty mapping: every getter returns defaults. */
        b.root = calloc(1, sizeof *b.root);
        if (!b.root) {
            mfl_errf(err, errlen, "%s: out of memory", name);
            return NULL;
        }
        b.root->kind = MFL_YAML_MAPPING;
        b.root->line = 1;
    }
    return b.root;

out_fail:
    for (int i = 0; i < b.depth; i++)
        free(b.stack[i].pending_key);
    s_node_free(b.root);
    return NULL;
}

mfl_yaml_doc_t *mfl_yaml_parse(const char *text, size_t len, const char *name, char *err,
                               size_t errlen)
{
    if (!name)
        name = "<yaml>";
    if (!text) {
        mfl_errf(err, errlen, "%s: no input", name);
        return NULL;
    }
    if (len > MFL_YAML_MAX_BYTES) {
        mfl_errf(err, errlen, "%s: %zu bytes exceeds the config size limit of %u", name, len,
                 (unsigned)MFL_YAML_MAX_BYTES);
        return NULL;
    }
    mfl_yaml_doc_t *self = calloc(1, sizeof *self);
    if (!self) {
        mfl_errf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    self->file = strdup(name);
    if (!self->file) {
        mfl_errf(err, errlen, "%s: out of memory", name);
        free(self);
        return NULL;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        mfl_errf(err, errlen, "%s: cannot initialise the YAML parser", name);
        goto out_free;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    self->root = s_build(&parser, name, err, errlen);
    yaml_parser_delete(&parser);
    if (!self->root)
        goto out_free;
    return self;
out_free:
    free(self->file);
    free(self);
    return NULL;
}

mfl_yaml_doc_t *mfl_yaml_load(const char *path, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    if (mfl_file_read_all(path, MFL_YAML_MAX_BYTES, &buf, &len, err, errlen) < 0)
        return NULL;
    mfl_yaml_doc_t *self = mfl_yaml_parse(buf, len, path, err, errlen);
    free(buf);
    return self;
}

void mfl_yaml_destroy(mfl_yaml_doc_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_yaml_doc_t *self = *self_p;
    s_node_free(self->root);
    free(self->file);
    free(self);
    *self_p = NULL;
}

const char *mfl_yaml_file(const mfl_yaml_doc_t *self)
{
    return self->file;
}

int mfl_yaml_error(const mfl_yaml_doc_t *self, char *err, size_t errlen)
{
    if (!self->failed)
        return 0;
    mfl_errf(err, errlen, "%s", self->err);
    return -1;
}

/* Resolves a path; *parent_line gets the line of the deepest node reached
 * (for "missing key" messages). Returns NULL if absent or malformed. */
static const s_node_t *s_resolve(const mfl_yaml_doc_t *self, const char *path,
                                 size_t *parent_line)
{
    const s_node_t *n = self->root;
    const char *p = path ? path : "";
    if (parent_line)
        *parent_line = n->line;
    while (*p) {
        if (*p == '[') {
            char *end;
            errno = 0;
            if (!isdigit((unsigned char)p[1]))
                return NULL;
            unsigned long long i = strtoull(p + 1, &end, 10);
            if (errno || *end != ']' || n->kind != MFL_YAML_SEQUENCE || i >= n->count)
                return NULL;
            n = n->items[i];
            p = end + 1;
        } else {
            if (*p == '.') {
                if (p == path)
                    return NULL;
                p++;
            }
            size_t k = strcspn(p, ".[");
            if (k == 0 || n->kind != MFL_YAML_MAPPING)
                return NULL;
            size_t at = mfl_strindex_find(&n->index, n->keys, n->count, p, k);
            const s_node_t *next = at == SIZE_MAX ? NULL : n->items[at];
            if (!next)
                return NULL;
            n = next;
            p += k;
        }
        if (parent_line)
            *parent_line = n->line;
    }
    return n;
}

static void s_vfail(mfl_yaml_doc_t *self, size_t line, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void s_vfail(mfl_yaml_doc_t *self, size_t line, const char *fmt, va_list ap)
{
    if (self->failed)
        return;
    self->failed = 1;
    int n = snprintf(self->err, sizeof self->err, "%s:%zu: ", self->file, line);
    if (n < 0 || (size_t)n >= sizeof self->err)
        return;
    vsnprintf(self->err + n, sizeof self->err - (size_t)n, fmt, ap);
}

static void s_fail(mfl_yaml_doc_t *self, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_fail(mfl_yaml_doc_t *self, size_t line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vfail(self, line, fmt, ap);
    va_end(ap);
}

void mfl_yaml_fail(mfl_yaml_doc_t *self, const char *path, const char *fmt, ...)
{
    size_t line;
    const s_node_t *n = s_resolve(self, path, &line);
    if (n)
        line = n->line;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s_fail(self, line, "key '%s': %s", path ? path : "", msg);
}

mfl_yaml_kind_t mfl_yaml_kind(const mfl_yaml_doc_t *self, const char *path)
{
    const s_node_t *n = s_resolve(self, path, NULL);
    return n ? n->kind : MFL_YAML_NONE;
}

bool mfl_yaml_has(const mfl_yaml_doc_t *self, const char *path)
{
    mfl_yaml_kind_t k = mfl_yaml_kind(self, path);
    return k != MFL_YAML_NONE && k != MFL_YAML_NULL;
}

size_t mfl_yaml_line(const mfl_yaml_doc_t *self, const char *path)
{
    const s_node_t *n = s_resolve(self, path, NULL);
    return n ? n->line : 0;
}

size_t mfl_yaml_len(const mfl_yaml_doc_t *self, const char *path)
{
    const s_node_t *n = s_resolve(self, path, NULL);
    if (!n || (n->kind != MFL_YAML_MAPPING && n->kind != MFL_YAML_SEQUENCE))
        return 0;
    return n->count;
}

const char *mfl_yaml_key_at(const mfl_yaml_doc_t *self, const char *path, size_t i)
{
    const s_node_t *n = s_resolve(self, path, NULL);
    if (!n || n->kind != MFL_YAML_MAPPING || i >= n->count)
        return NULL;
    return n->keys[i];
}

/* The scalar at path: NULL if absent/null (nothing recorded) or not a
 * scalar (error recorded, *bad set). */
static const s_node_t *s_scalar(mfl_yaml_doc_t *self, const char *path, int *bad)
{
    *bad = 0;
    const s_node_t *n = s_resolve(self, path, NULL);
    if (!n || n->kind == MFL_YAML_NULL)
        return NULL;
    if (n->kind != MFL_YAML_SCALAR) {
        s_fail(self, n->line, "key '%s': expected a scalar value, got a %s", path,
               n->kind == MFL_YAML_MAPPING ? "mapping" : "sequence");
        *bad = 1;
        return NULL;
    }
    return n;
}

const char *mfl_yaml_get_string(mfl_yaml_doc_t *self, const char *path, const char *def)
{
    int bad;
    const s_node_t *n = s_scalar(self, path, &bad);
    return n ? n->value : def;
}

static int s_parse_int(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || isspace((unsigned char)*s))
        return -1;
    long long v;
    const char *digits = s + (*s == '-' || *s == '+');
    if (digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X'))
        v = strtoll(s, &end, 16);
    else
        v = strtoll(s, &end, 10);
    if (errno || *end || end == s)
        return -1;
    *out = (int64_t)v;
    return 0;
}

int64_t mfl_yaml_get_int(mfl_yaml_doc_t *self, const char *path, int64_t def)
{
    int bad;
    const s_node_t *n = s_scalar(self, path, &bad);
    if (!n)
        return def;
    int64_t v;
    if (s_parse_int(n->value, &v) < 0) {
        s_fail(self, n->line, "key '%s': expected an integer, got '%.60s'", path, n->value);
        return def;
    }
    return v;
}

double mfl_yaml_get_double(mfl_yaml_doc_t *self, const char *path, double def)
{
    int bad;
    const s_node_t *n = s_scalar(self, path, &bad);
    if (!n)
        return def;
    char *end;
    errno = 0;
    const char *s = n->value;
    double v = strtod(s, &end);
    if (!*s || isspace((unsigned char)*s) || *end || errno == ERANGE || !isfinite(v) ||
        strpbrk(s, "nNiI") != NULL) {
        s_fail(self, n->line, "key '%s': expected a finite number, got '%.60s'", path, s);
        return def;
    }
    return v;
}

bool mfl_yaml_get_bool(mfl_yaml_doc_t *self, const char *path, bool def)
{
    int bad;
    const s_node_t *n = s_scalar(self, path, &bad);
    if (!n)
        return def;
    const char *s = n->value;
    if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
        return true;
    if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off"))
        return false;
    s_fail(self, n->line, "key '%s': expected true or false, got '%.60s'", path, s);
    return def;
}

size_t mfl_yaml_get_size(mfl_yaml_doc_t *self, const char *path, size_t def)
{
    int bad;
    const s_node_t *n = s_scalar(self, path, &bad);
    if (!n)
        return def;
    const char *s = n->value;
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)s[0]))
        goto out_bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        goto out_bad;
    unsigned shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10;
    else if (*end == 'm' || *end == 'M')
        shift = 20;
    else if (*end == 'g' || *end == 'G')
        shift = 30;
    if (shift)
        end++;
    if (*end)
        goto out_bad;
    if (v > (unsigned long long)(SIZE_MAX >> shift))
        goto out_bad;
    return (size_t)(v << shift);
out_bad:
    s_fail(self, n->line, "key '%s': expected a non-negative size (e.g. 100, 64K, 16M), got '%.60s'",
           path, s);
    return def;
}

int mfl_yaml_get_string_list(mfl_yaml_doc_t *self, const char *path, const char ***items,
                             size_t *n_out)
{
    *items = NULL;
    *n_out = 0;
    const s_node_t *n = s_resolve(self, path, NULL);
    if (!n || n->kind == MFL_YAML_NULL)
        return 0;
    if (n->kind != MFL_YAML_SEQUENCE) {
        s_fail(self, n->line, "key '%s': expected a list of strings", path);
        return -1;
    }
    const char **out = malloc((n->count ? n->count : 1) * sizeof *out);
    if (!out) {
        s_fail(self, n->line, "key '%s': out of memory", path);
        return -1;
    }
    for (size_t i = 0; i < n->count; i++) {
        if (n->items[i]->kind != MFL_YAML_SCALAR) {
            s_fail(self, n->items[i]->line, "key '%s[%zu]': expected a string", path, i);
            free(out);
            return -1;
        }
        out[i] = n->items[i]->value;
    }
    *items = out;
    *n_out = n->count;
    return 0;
}

static int s_require(mfl_yaml_doc_t *self, const char *path)
{
    size_t line;
    const s_node_t *n = s_resolve(self, path, &line);
    if (n && n->kind != MFL_YAML_NULL)
        return 0;
    s_fail(self, n ? n->line : line, "missing required key '%s'", path);
    return -1;
}

const char *mfl_yaml_require_string(mfl_yaml_doc_t *self, const char *path)
{
    if (s_require(self, path) < 0)
        return "";
    return mfl_yaml_get_string(self, path, "");
}

int64_t mfl_yaml_require_int(mfl_yaml_doc_t *self, const char *path)
{
    return s_require(self, path) < 0 ? 0 : mfl_yaml_get_int(self, path, 0);
}

double mfl_yaml_require_double(mfl_yaml_doc_t *self, const char *path)
{
    return s_require(self, path) < 0 ? 0.0 : mfl_yaml_get_double(self, path, 0.0);
}

bool mfl_yaml_require_bool(mfl_yaml_doc_t *self, const char *path)
{
    return s_require(self, path) < 0 ? false : mfl_yaml_get_bool(self, path, false);
}

size_t mfl_yaml_require_size(mfl_yaml_doc_t *self, const char *path)
{
    return s_require(self, path) < 0 ? 0 : mfl_yaml_get_size(self, path, 0);
}

int mfl_yaml_check_keys(mfl_yaml_doc_t *self, const char *path, const char *const *known)
{
    const s_node_t *n = s_resolve(self, path, NULL);
    const char *where = path && *path ? path : "<top level>";
    if (!n || n->kind == MFL_YAML_NULL)
        return 0;
    if (n->kind != MFL_YAML_MAPPING) {
        s_fail(self, n->line, "key '%s': expected a mapping", where);
        return -1;
    }
    for (size_t i = 0; i < n->count; i++) {
        int found = 0;
        for (size_t j = 0; known && known[j]; j++)
            if (strcmp(n->keys[i], known[j]) == 0) {
                found = 1;
                break;
            }
        if (found)
            continue;
        char list[300];
        size_t used = 0;
        list[0] = '\0';
        for (size_t j = 0; known && known[j] && used < sizeof list; j++) {
            int w = snprintf(list + used, sizeof list - used, "%s%s", j ? ", " : "", known[j]);
            if (w < 0)
                break;
            used += (size_t)w;
        }
        s_fail(self, n->key_lines[i], "unknown key '%.80s' in '%s'; known keys: %s",
               n->keys[i], where, known && known[0] ? list : "(none)");
        return -1;
    }
    return 0;
}

int mfl_yaml_check_range(mfl_yaml_doc_t *self, const char *path, int64_t v, int64_t lo,
                         int64_t hi)
{
    if (v >= lo && v <= hi)
        return 0;
    mfl_yaml_fail(self, path, "%" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", v, lo,
                  hi);
    return -1;
}
