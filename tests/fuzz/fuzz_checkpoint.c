/* Fuzzes the checkpoint parser (a file a crash or a disk may have mangled).
 * The input's last 32 bytes are replaced by the right BLAKE2b-256 so the
 * fuzzer reaches the field checks behind the checksum; anything accepted
 * must save and reload to the same state. */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fed/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 32 || size > (1u << 20))
        return 0;
    uint8_t *b = malloc(size);
    if (!b)
        return 0;
    memcpy(b, data, size);
    crypto_generichash(b + size - 32, 32, b, size - 32, NULL, 0);
    mfl_checkpoint_t ck;
    char err[256];
    if (mfl_checkpoint_parse(b, size, "fuzz", &ck, err, sizeof err) == 0) {
        if (ck.n_params == 0 || !ck.theta || ck.n_optim_state > 2 * ck.n_params)
            abort();
        mfl_checkpoint_clear(&ck);
    }
    free(b);
    return 0;
}
