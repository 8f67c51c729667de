/* Open addressing with linear probing, at most half full. */
#include "core/strindex.h"

#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static unsigned char s_key[crypto_shorthash_KEYBYTES];
static pthread_once_t s_key_once = PTHREAD_ONCE_INIT;

static void s_key_init(void)
{
    if (sodium_init() < 0)
        return; /* the all-zero key: still correct, only unkeyed */
    randombytes_buf(s_key, sizeof s_key);
}

static size_t s_hash(const char *key, size_t len)
{
    pthread_once(&s_key_once, s_key_init);
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const unsigned char *)key, len, s_key);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return (size_t)v;
}

static int s_equal(const char *stored, const char *key, size_t len)
{
    return memcmp(stored, key, len) == 0 && stored[len] == '\0';
}

size_t mfl_strindex_find(const mfl_strindex_t *ix, char *const *keys, size_t count,
                         const char *key, size_t len)
{
    if (!ix->slots) {
        for (size_t i = 0; i < count; i++)
            if (strnlen(keys[i], len + 1) == len && s_equal(keys[i], key, len))
                return i;
        return SIZE_MAX;
    }
    size_t mask = ix->cap - 1;
    for (size_t slot = s_hash(key, len) & mask;; slot = (slot + 1) & mask) {
        size_t at = ix->slots[slot];
        if (at == 0)
            return SIZE_MAX;
        if (strnlen(keys[at - 1], len + 1) == len && s_equal(keys[at - 1], key, len))
            return at - 1;
    }
}

static void s_put(size_t *slots, size_t cap, const char *key, size_t pos)
{
    size_t mask = cap - 1;
    size_t slot = s_hash(key, strlen(key)) & mask;
    while (slots[slot])
        slot = (slot + 1) & mask;
    slots[slot] = pos + 1;
}

int mfl_strindex_added(mfl_strindex_t *ix, char *const *keys, size_t count)
{
    if (count < MFL_STRINDEX_MIN)
        return 0;
    if (ix->slots && 2 * count <= ix->cap) {
        s_put(ix->slots, ix->cap, keys[count - 1], count - 1);
        return 0;
    }
    size_t cap = ix->cap ? 2 * ix->cap : 4 * MFL_STRINDEX_MIN;
    if (cap > SIZE_MAX / sizeof *ix->slots)
        return -1;
    size_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < count; i++)
        s_put(slots, cap, keys[i], i);
    free(ix->slots);
    ix->slots = slots;
    ix->cap = cap;
    return 0;
}

void mfl_strindex_clear(mfl_strindex_t *ix)
{
    free(ix->slots);
    ix->slots = NULL;
    ix->cap = 0;
}
