/* A hash index over an array of distinct NUL-terminated keys that the
 * caller owns and only appends to (object members of the JSON parser,
 * mapping keys of the YAML config tree). It makes "is this key already
 * there?" O(1), so parsing an object of n keys is O(n), not O(n²): an
 * object of 100k short keys took a minute with linear scans.
 *
 * Small arrays (fewer than MFL_STRINDEX_MIN keys) are scanned and carry no
 * index. Hashing is keyed SipHash with a random per-process key, so crafted
 * keys cannot pile into one probe chain. Thread-safety: an index is not
 * locked; distinct indexes may be used from different threads. */
#ifndef MFL_CORE_STRINDEX_H
#define MFL_CORE_STRINDEX_H

#include <stddef.h>

#define MFL_STRINDEX_MIN 16

typedef struct {
    size_t *slots; /* item position + 1; 0 = empty. NULL below MFL_STRINDEX_MIN */
    size_t cap;    /* slots, a power of two ≥ 2 × count */
} mfl_strindex_t;

/* Position of key[0..len) (no NUL inside) in keys[0..count), or SIZE_MAX.
 * Borrows everything. */
size_t mfl_strindex_find(const mfl_strindex_t *ix, char *const *keys, size_t count,
                         const char *key, size_t len);

/* Records that keys[count-1] was just appended (and is not a duplicate:
 * check with _find first). Grows the index as needed. Returns 0, or -1 when
 * out of memory (the index is then unchanged and still valid for
 * keys[0..count-2]). */
int mfl_strindex_added(mfl_strindex_t *ix, char *const *keys, size_t count);

/* Frees the slots and zeroes *ix; accepts a zeroed index. */
void mfl_strindex_clear(mfl_strindex_t *ix);

#endif
