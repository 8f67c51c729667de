/* Fuzzes the public-key file parser (what the coordinator reads from its
 * allow-list directory and the site from its pinned coordinator key). */
#include <stddef.h>
#include <stdint.h>

#include "wire/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mfl_public_key_t pk;
    char err[256];
    if (mfl_public_key_parse((const char *)data, size, "fuzz.pub", &pk, err, sizeof err) == 0) {
        /* a parsed key is always a valid name with a derived CURVE key */
        if (mfl_key_name_check(pk.name, err, sizeof err) != 0 || pk.curve_pk_z85[40] != '\0')
            __builtin_trap();
    }
    return 0;
}
