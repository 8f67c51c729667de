/* Fuzzes the envelope decoder: the input is frame 0 of a message (an
 * Envelope), optionally followed by nothing. Whatever decodes is also run
 * through the update verifier, which unpacks the signed header. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wire/message.h"
#include "wire/update_sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mfl_wire_limits_t lim;
    mfl_wire_limits_default(&lim);
    lim.max_envelope_bytes = 1 << 16;
    zmq_msg_t f;
    zmq_msg_init_size(&f, size);
    if (size)
        memcpy(zmq_msg_data(&f), data, size);
    int reason = 0;
    char err[256];
    mfl_msg_t *m = mfl_msg_decode(&f, 1, &lim, &reason, err, sizeof err);
    zmq_msg_close(&f);
    if (m) {
        const Metafl__Envelope *env = mfl_msg_envelope(m);
        if (env->kind == METAFL__MESSAGE_KIND__UPDATE) {
            /* A fixed, valid public key: the signature will not verify, but
             * the path up to it runs on fuzzed lengths. */
            mfl_public_key_t pk;
            memset(&pk, 0, sizeof pk);
            strcpy(pk.name, "fuzz");
            pk.sign_pk[0] = 1;
            Metafl__UpdateHeader *h =
                mfl_update_verify(env->update, &pk, NULL, 0, &reason, err, sizeof err);
            if (h)
                metafl__update_header__free_unpacked(h, NULL);
        }
        mfl_msg_destroy(&m);
    }
    /* The signed header decoder on its own. */
    Metafl__UpdateHeader *h = metafl__update_header__unpack(NULL, size, data);
    if (h) {
        int r2 = 0;
        uint8_t nonce[16] = {0};
        (void)mfl_update_check_fresh(h, 1, nonce, sizeof nonce, &r2, err, sizeof err);
        metafl__update_header__free_unpacked(h, NULL);
    }
    return 0;
}
