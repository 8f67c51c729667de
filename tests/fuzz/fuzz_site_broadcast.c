/* Fuzzes a site's application of a compressed broadcast's difference
 * (site/site_broadcast.h): the task's base and model hash and the
 * difference's tensors (count and values, NaN and infinities included) come
 * from the input; the held model is fixed. Whatever the input, the call
 * must return 0, -1 or -2, and on -1 leave the held model as it was. */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "site/site_broadcast.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_HELD 48

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4 || size > 4096)
        return 0;
    if (sodium_init() < 0)
        return 0;
    float held[S_HELD], before[S_HELD];
    for (int i = 0; i < S_HELD; i++)
        held[i] = (float)i * 0.25f - 3.0f;
    memcpy(before, held, sizeof held);
    uint8_t held_hash[32];
    crypto_generichash(held_hash, 32, (const unsigned char *)held, sizeof held, NULL, 0);
    mfl_round_task_t task;
    memset(&task, 0, sizeof task);
    uint8_t flags = data[0];
    size_t nt = (size_t)(data[1] % 5);
    task.has_broadcast_base = flags & 1;
    /* bit 1: the base is the held model's hash, else bytes of the input */
    if (flags & 2)
        memcpy(task.broadcast_base, held_hash, 32);
    else
        crypto_generichash(task.broadcast_base, 32, data, size, NULL, 0);
    task.model_hash_len = flags & 4 ? 32 : 0;
    crypto_generichash(task.model_hash, 32, data + 1, size - 1, NULL, 0);
    bool have = flags & 8;
    size_t pos = 2;
    mfl_tensor_t t[4];
    float *vals[4] = {0};
    for (size_t i = 0; i < nt; i++) {
        uint64_t count = pos < size ? data[pos++] % 40 : 0;
        vals[i] = calloc(count ? count : 1, sizeof(float));
        if (!vals[i])
            goto out_free;
        for (uint64_t k = 0; k < count && pos + 4 <= size; k++, pos += 4)
            memcpy(&vals[i][k], data + pos, 4);
        t[i] = mfl_tensor_vec("t", vals[i], count);
    }
    char err[256];
    int rc = mfl_site_broadcast_apply(held, S_HELD, held_hash, have, &task, t, nt, err,
                                      sizeof err);
    if (rc != 0 && rc != -1 && rc != -2)
        abort();
    if (rc == -1 && memcmp(held, before, sizeof held) != 0)
        abort();
out_free:
    for (size_t i = 0; i < nt; i++)
        free(vals[i]);
    return 0;
}
