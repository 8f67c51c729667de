/* A YAML config file loaded (with libyaml) into a small tree of mappings,
 * sequences and scalars that remember their line, with typed getters by
 * dotted path and error messages that name FILE:LINE and the key.
 *
 * Paths: keys joined by '.', sequence elements by "[i]" (0-based):
 *   "model.spec", "data.columns[3].name", "sites[0]"; "" is the root.
 * Keys that contain '.' or '[' cannot be addressed (configs don't need them).
 *
 * Errors are sticky, so a config reader can read every field and check once:
 * a getter that meets a bad value records the first such error in the doc
 * and returns the default; mfl_yaml_error() then returns -1 with the message.
 *   const char *spec = mfl_yaml_get_string(doc, "model.spec", "mlp:13-32-1");
 *   int64_t rounds   = mfl_yaml_get_int(doc, "coordinator.rounds", 10);
 *   mfl_yaml_check_keys(doc, "coordinator", (const char *[]){"rounds", "bind", NULL});
 *   if (mfl_yaml_error(doc, err, errlen) < 0) goto out_bad_config;
 * Messages look like
 *   "site.yaml:12: key 'coordinator.rounds': expected an integer, got 'ten'"
 *   "site.yaml:4: unknown key 'rounds_' in 'coordinator'; known keys: rounds, bind"
 *   "site.yaml:3: missing required key 'model.spec'"
 *
 * Null: a plain scalar "~", "null", "Null", "NULL" or an empty value counts as
 * absent (the getter returns its default; a required getter fails).
 *
 * Bounded and billion-laughs safe: files larger than MFL_YAML_MAX_BYTES,
 * nesting deeper than MFL_YAML_MAX_DEPTH or more than MFL_YAML_MAX_NODES
 * nodes are rejected; anchors and aliases are refused outright (configs
 * don't need them, and aliases are how YAML bombs expand); only a single
 * document per file; mapping keys must be unique plain/quoted scalars.
 *
 * Thread-safety: a doc is not thread-safe (getters record errors in it);
 * use one doc per thread or read it under a lock. */
#ifndef MFL_CONFIG_YAML_DOC_H
#define MFL_CONFIG_YAML_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MFL_YAML_MAX_BYTES (1u * 1024u * 1024u) /* config file size */
#define MFL_YAML_MAX_DEPTH 32                   /* nested collections */
#define MFL_YAML_MAX_NODES 100000u              /* nodes in the tree */

typedef struct mfl_yaml_doc mfl_yaml_doc_t;

typedef enum {
    MFL_YAML_NONE = 0, /* no node at that path */
    MFL_YAML_NULL,     /* ~, null or empty */
    MFL_YAML_SCALAR,
    MFL_YAML_SEQUENCE,
    MFL_YAML_MAPPING,
} mfl_yaml_kind_t;

/* Loads and parses the YAML file at `path` (name borrowed only during the
 * call; a copy is kept for messages). Returns a doc owned by the caller, or
 * NULL with "FILE:LINE: what" (or "FILE: what") in err. */
mfl_yaml_doc_t *mfl_yaml_load(const char *path, char *err, size_t errlen);

/* Parses YAML text[0..len); `name` is used as FILE in messages. */
mfl_yaml_doc_t *mfl_yaml_parse(const char *text, size_t len, const char *name, char *err,
                               size_t errlen);

/* Frees the doc and nulls the pointer; accepts NULL. Every string a getter
 * returned becomes invalid. */
void mfl_yaml_destroy(mfl_yaml_doc_t **self_p);

/* The FILE name used in messages (borrowed). */
const char *mfl_yaml_file(const mfl_yaml_doc_t *self);

/* 0 if no getter/check has recorded an error; else -1 and the first error
 * message into err. */
int mfl_yaml_error(const mfl_yaml_doc_t *self, char *err, size_t errlen);

/* Records an error of the caller's own ("FILE:LINE: key 'path': <msg>"),
 * for semantic checks (e.g. "must be one of maml, reptile"); LINE is that
 * of the node at `path` (or its nearest existing parent). Keeps the first
 * error only. */
void mfl_yaml_fail(mfl_yaml_doc_t *self, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* What is at `path`: MFL_YAML_NONE if nothing (or a malformed path). */
mfl_yaml_kind_t mfl_yaml_kind(const mfl_yaml_doc_t *self, const char *path);

/* True if `path` exists and is not null. */
bool mfl_yaml_has(const mfl_yaml_doc_t *self, const char *path);

/* 1-based line of the node at `path`, or 0 if absent. */
size_t mfl_yaml_line(const mfl_yaml_doc_t *self, const char *path);

/* Number of elements of a sequence or entries of a mapping at `path`;
 * 0 if absent, null or a scalar. */
size_t mfl_yaml_len(const mfl_yaml_doc_t *self, const char *path);

/* The i-th key (document order) of the mapping at `path` (borrowed), or
 * NULL. For iterating e.g. a map of site names. */
const char *mfl_yaml_key_at(const mfl_yaml_doc_t *self, const char *path, size_t i);

/* Typed getters. Each returns `def` when `path` is absent or null; on a
 * value of the wrong shape or type it records an error and returns `def`.
 * Strings are borrowed from the doc. */
const char *mfl_yaml_get_string(mfl_yaml_doc_t *self, const char *path, const char *def);
/* Decimal integer (optional sign), or 0x hex; range of int64_t. */
int64_t mfl_yaml_get_int(mfl_yaml_doc_t *self, const char *path, int64_t def);
/* A finite number (".inf"/".nan" are rejected). */
double mfl_yaml_get_double(mfl_yaml_doc_t *self, const char *path, double def);
/* true/false, yes/no, on/off (any case). */
bool mfl_yaml_get_bool(mfl_yaml_doc_t *self, const char *path, bool def);
/* A non-negative integer with an optional binary suffix k/K, m/M, g/G
 * (×1024^n), e.g. "64M"; overflow rejected. For sizes and counts. */
size_t mfl_yaml_get_size(mfl_yaml_doc_t *self, const char *path, size_t def);

/* A sequence of scalars at `path` (a single scalar is rejected, to keep
 * configs unambiguous). Writes a malloc'd array of borrowed strings to
 * *items (caller frees the array only, with free()) and its length to *n.
 * Absent/null: *items = NULL, *n = 0, returns 0. Bad shape: records an
 * error, returns -1. OOM: returns -1 (and records "out of memory"). */
int mfl_yaml_get_string_list(mfl_yaml_doc_t *self, const char *path, const char ***items,
                             size_t *n);

/* Required variants: like the getters, but an absent or null value records
 * "FILE:LINE: missing required key 'path'" (LINE of the nearest existing
 * parent) and returns a zero value ("" for strings, never NULL). */
const char *mfl_yaml_require_string(mfl_yaml_doc_t *self, const char *path);
int64_t mfl_yaml_require_int(mfl_yaml_doc_t *self, const char *path);
double mfl_yaml_require_double(mfl_yaml_doc_t *self, const char *path);
bool mfl_yaml_require_bool(mfl_yaml_doc_t *self, const char *path);
size_t mfl_yaml_require_size(mfl_yaml_doc_t *self, const char *path);

/* Checks that the mapping at `path` ("" = root) has only keys listed in
 * `known` (NULL-terminated). Absent or null: fine (returns 0). Not a
 * mapping: records an error. An unknown key records
 * "FILE:LINE: unknown key 'rounds_' in 'coordinator'; known keys: a, b"
 * and returns -1. */
int mfl_yaml_check_keys(mfl_yaml_doc_t *self, const char *path, const char *const *known);

/* Integer range check helper: records "key 'p': N is out of range
 * [lo, hi]" unless lo ≤ v ≤ hi; returns 0 / -1. */
int mfl_yaml_check_range(mfl_yaml_doc_t *self, const char *path, int64_t v, int64_t lo,
                         int64_t hi);

#endif
