/* A small strict JSON (RFC 8259) DOM parser with hard limits.
 *
 * Used for safetensors headers, the FLamby split file and reports. The
 * whole text is parsed into an immutable tree owned by the root; every
 * accessor is NULL-safe and type-checked, so callers can chain
 * `mfl_json_number(mfl_json_get(root, "x"), &v)` and check once.
 *
 * Strict: no comments, no trailing commas, no NaN/Infinity, no leading
 * zeros, no control characters in strings, no lone surrogates, valid UTF-8
 * only, a single top-level value followed only by whitespace. Duplicate
 * object keys are rejected (they make "which one wins" ambiguous).
 *
 * Errors are "LINE:COLUMN: what" (1-based; the column counts bytes); the
 * caller prefixes the file name. Thread-safety: a parsed tree is read-only,
 * so it may be read from several threads; parsing may run in several
 * threads too (its only shared state is a hash key set once). Objects of
 * many members are hash-indexed, so parsing and mfl_json_get stay linear. */
#ifndef MFL_CORE_JSON_H
#define MFL_CORE_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* Hard limits: input bigger, deeper or with more values is rejected. */
#define MFL_JSON_MAX_INPUT    (64u * 1024u * 1024u) /* bytes */
#define MFL_JSON_MAX_DEPTH    64                    /* nested arrays/objects */
#define MFL_JSON_MAX_ELEMENTS (4u * 1024u * 1024u)  /* values in the tree */

typedef enum {
    MFL_JSON_NULL = 0,
    MFL_JSON_BOOL,
    MFL_JSON_NUMBER,
    MFL_JSON_STRING,
    MFL_JSON_ARRAY,
    MFL_JSON_OBJECT,
} mfl_json_type_t;

typedef struct mfl_json mfl_json_t;

/* Parses text[0..len) (need not be NUL-terminated). Returns the root value,
 * owned by the caller (free with mfl_json_destroy), or NULL with
 * "LINE:COLUMN: message" in err (err may be NULL). */
mfl_json_t *mfl_json_parse(const char *text, size_t len, char *err, size_t errlen);

/* Frees a tree returned by mfl_json_parse and nulls the pointer; accepts
 * NULL. Only call it on a root, never on a value obtained via accessors. */
void mfl_json_destroy(mfl_json_t **self_p);

/* The value's type; MFL_JSON_NULL for a NULL pointer. */
mfl_json_type_t mfl_json_type(const mfl_json_t *self);

/* A short name for a type ("null", "bool", "number", ...), for messages. */
const char *mfl_json_type_name(mfl_json_type_t type);

/* Member `key` of an object (borrowed, valid while the root lives), or NULL
 * if self is NULL, not an object, or has no such key. */
const mfl_json_t *mfl_json_get(const mfl_json_t *self, const char *key);

/* Number of elements of an array or members of an object; 0 otherwise. */
size_t mfl_json_array_len(const mfl_json_t *self);

/* Element i of an array (borrowed), or NULL if not an array or i out of
 * range. */
const mfl_json_t *mfl_json_array_at(const mfl_json_t *self, size_t i);

/* Member i of an object in document order: its key (borrowed) into *key and
 * its value returned; NULL if not an object or i out of range. */
const mfl_json_t *mfl_json_object_at(const mfl_json_t *self, size_t i, const char **key);

/* Writes the value of a number into *out; returns 0, or -1 if self is not
 * a number (or NULL). */
int mfl_json_number(const mfl_json_t *self, double *out);

/* Writes a number that is an exact non-negative integer ≤ SIZE_MAX (and
 * ≤ 2^53) into *out; -1 otherwise. For indices and sizes. */
int mfl_json_size(const mfl_json_t *self, size_t *out);

/* Writes a bool into *out; -1 if self is not a bool. */
int mfl_json_bool(const mfl_json_t *self, bool *out);

/* The NUL-terminated UTF-8 contents of a string (borrowed), or NULL if self
 * is not a string. A string may contain "\u0000": use mfl_json_string_len
 * for its true length. */
const char *mfl_json_string(const mfl_json_t *self);

/* Byte length of a string value (without the terminator); 0 otherwise. */
size_t mfl_json_string_len(const mfl_json_t *self);

/* Line and column (1-based) where the value starts in the input; 0 for
 * NULL. Lets callers report "FILE:LINE:COL: key 'x' must be ...". */
size_t mfl_json_line(const mfl_json_t *self);
size_t mfl_json_column(const mfl_json_t *self);

#endif
