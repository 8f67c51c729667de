/* Secure aggregation's codec on any bytes: they are unpacked as an
 * Envelope; one of secure aggregation's kinds goes through
 * mfl_secagg_wire_from_envelope. No crash; what decodes encodes back into
 * an envelope that packs, unpacks and decodes to the same plain message
 * (nothing cut or lost), and a decoded message never holds more entries
 * than its cap or an index outside 1..255. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/secagg_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mfl_secagg_wire_t s_a, s_b;
static mfl_secagg_env_t s_env;

static void s_check_indices(const mfl_secagg_wire_t *m)
{
    for (size_t i = 0; i < m->n_adverts; i++)
        if (m->adverts[i].index < 1 || m->adverts[i].index > MFL_SECAGG_MAX_SITES)
            abort();
    for (size_t i = 0; i < m->n_survivors; i++)
        if (m->survivors[i] < 1 || m->survivors[i] > MFL_SECAGG_MAX_SITES)
            abort();
    for (size_t i = 0; i < m->n_reveals; i++)
        if (m->reveals[i].kind != 1 && m->reveals[i].kind != 2)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    Metafl__Envelope *env = metafl__envelope__unpack(NULL, size, data);
    if (!env)
        return 0;
    char err[200];
    mfl_reject_t why;
    if (mfl_secagg_wire_from_envelope(env, &s_a, &why, err, sizeof err) == 0) {
        s_check_indices(&s_a);
        if (mfl_secagg_wire_to_envelope(&s_a, &s_env, err, sizeof err) != 0)
            abort();
        /* a masked input's tensor header is the transport's: carry it over */
        s_env.env.n_tensors = env->n_tensors;
        s_env.env.tensors = env->tensors;
        size_t n = metafl__envelope__get_packed_size(&s_env.env);
        uint8_t *buf = malloc(n ? n : 1);
        if (!buf)
            abort();
        metafl__envelope__pack(&s_env.env, buf);
        Metafl__Envelope *again = metafl__envelope__unpack(NULL, n, buf);
        if (!again || mfl_secagg_wire_from_envelope(again, &s_b, &why, err, sizeof err) != 0 ||
            memcmp(&s_a, &s_b, sizeof s_a) != 0)
            abort();
        metafl__envelope__free_unpacked(again, NULL);
        free(buf);
    }
    metafl__envelope__free_unpacked(env, NULL);
    return 0;
}
