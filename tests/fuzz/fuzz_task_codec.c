/* The task codec's decoders on any protobuf bytes: byte 0 picks the
 * message (RoundTask, EvalTask, EvalReport, UpdateHeader), the rest is
 * its encoding (the corpus has federated standardisation's scaling lists
 * and moments too: their caps, lengths and values are checked here). No crash; what decodes into plain C encodes back into a
 * message that decodes to the same plain struct (nothing cut or lost). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/task_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_round_task(const uint8_t *p, size_t n)
{
    Metafl__RoundTask *m = metafl__round_task__unpack(NULL, n, p);
    if (!m)
        return;
    char err[160];
    mfl_round_task_t a, b;
    if (mfl_round_task_from_msg(m, &a, err, sizeof err) == 0) {
        mfl_round_task_msg_t back;
        mfl_round_task_to_msg(&a, &back);
        if (mfl_round_task_from_msg(&back.msg, &b, err, sizeof err) != 0 ||
            memcmp(&a, &b, sizeof a) != 0)
            abort();
    }
    metafl__round_task__free_unpacked(m, NULL);
}

static void s_eval_task(const uint8_t *p, size_t n)
{
    Metafl__EvalTask *m = metafl__eval_task__unpack(NULL, n, p);
    if (!m)
        return;
    char err[160];
    mfl_eval_task_t a, b;
    if (mfl_eval_task_from_msg(m, &a, err, sizeof err) == 0) {
        mfl_eval_task_msg_t back;
        mfl_eval_task_to_msg(&a, &back);
        if (mfl_eval_task_from_msg(&back.msg, &b, err, sizeof err) != 0 ||
            memcmp(&a, &b, sizeof a) != 0)
            abort();
    }
    metafl__eval_task__free_unpacked(m, NULL);
}

static void s_eval_report(const uint8_t *p, size_t n)
{
    Metafl__EvalReport *m = metafl__eval_report__unpack(NULL, n, p);
    if (!m)
        return;
    char err[160];
    mfl_eval_report_t a, b;
    if (mfl_eval_report_from_msg(m, &a, err, sizeof err) == 0) {
        Metafl__EvalReport back;
        mfl_eval_report_to_msg(&a, &back);
        if (mfl_eval_report_from_msg(&back, &b, err, sizeof err) != 0 ||
            memcmp(&a, &b, sizeof a) != 0)
            abort();
    }
    metafl__eval_report__free_unpacked(m, NULL);
}

/* Bytes → plain header; a header with a valid digest re-encodes (with
 * its tensor hashes) to bytes that decode and encode again to the same
 * bytes and the same plain header. The first decode is compared through
 * its encoding, not field by field: proto3 cannot carry a negative zero
 * (−0.0 equals the default and is omitted), so a −0.0 in the input comes
 * back as +0.0, with the same meaning and the same signed bytes. */
static void s_update_header(const uint8_t *p, size_t n)
{
    char err[160];
    mfl_update_header_t a, b, c;
    if (mfl_update_header_decode(p, n, &a, err, sizeof err) != 0)
        return;
    Metafl__UpdateHeader *m = metafl__update_header__unpack(NULL, n, p);
    if (!m)
        abort(); /* decode accepted what protobuf refuses */
    if (!a.digest_error[0]) {
        size_t k = m->n_tensor_hashes;
        uint8_t *hashes = malloc(32 * (k ? k : 1));
        if (!hashes)
            abort();
        for (size_t i = 0; i < k; i++)
            memcpy(hashes + 32 * i, m->tensor_hashes[i].data, 32);
        uint8_t *buf1 = NULL, *buf2 = NULL;
        size_t len1 = 0, len2 = 0;
        if (mfl_update_header_encode(&a, hashes, k, &buf1, &len1, err, sizeof err) != 0 ||
            mfl_update_header_decode(buf1, len1, &b, err, sizeof err) != 0 ||
            mfl_update_header_encode(&b, hashes, k, &buf2, &len2, err, sizeof err) != 0 ||
            mfl_update_header_decode(buf2, len2, &c, err, sizeof err) != 0 ||
            len1 != len2 || memcmp(buf1, buf2, len1) != 0 || memcmp(&b, &c, sizeof b) != 0)
            abort();
        free(buf1);
        free(buf2);
        free(hashes);
    }
    metafl__update_header__free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 16))
        return 0;
    switch (data[0] & 3) {
    case 0: s_round_task(data + 1, size - 1); break;
    case 1: s_eval_task(data + 1, size - 1); break;
    case 2: s_eval_report(data + 1, size - 1); break;
    default: s_update_header(data + 1, size - 1); break;
    }
    return 0;
}
