/* libFuzzer target: the strict JSON parser must never crash, leak or read
 * out of bounds, and every tree it accepts must be walkable. */
#include <stddef.h>
#include <stdint.h>

#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t s_walk(const mfl_json_t *v, int depth)
{
    size_t n = 1;
    double d;
    size_t s;
    bool b;
    (void)mfl_json_number(v, &d);
    (void)mfl_json_size(v, &s);
    (void)mfl_json_bool(v, &b);
    (void)mfl_json_string(v);
    (void)mfl_json_type_name(mfl_json_type(v));
    if (depth > MFL_JSON_MAX_DEPTH + 1)
        __builtin_trap(); /* the depth limit was not enforced */
    for (size_t i = 0; i < mfl_json_array_len(v); i++) {
        const char *key = NULL;
        const mfl_json_t *c = mfl_json_type(v) == MFL_JSON_OBJECT ? mfl_json_object_at(v, i, &key)
                                                                  : mfl_json_array_at(v, i);
        if (key && mfl_json_get(v, key) != c)
            __builtin_trap(); /* duplicate keys must have been rejected */
        n += s_walk(c, depth + 1);
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    mfl_json_t *j = mfl_json_parse((const char *)data, size, err, sizeof err);
    if (j)
        (void)s_walk(j, 0);
    mfl_json_destroy(&j);
    return 0;
}
