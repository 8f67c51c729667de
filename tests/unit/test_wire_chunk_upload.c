/* A site's chunked upload (wire/chunk_upload.h) over the real CURVE
 * transport on 127.0.0.1: chunks go zero-copy from the caller's buffer,
 * and a buffer handed over while chunks still read it (a new task arrives
 * before ZeroMQ is done) stays intact until the last chunk is released,
 * even when the site allocates and fills a fresh one meanwhile. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "wire/chunk_upload.h"
#include "wire/client.h"
#include "wire/keys.h"
#include "wire/message.h"
#include "wire/server.h"

#define T_WAIT 10000 /* ms: generous upper bounds, never expected to be reached */
#define S_CV ((uint64_t)1 << 18) /* values per chunk: 1 MiB of float32 */
#define S_CHUNKS MFL_CHUNK_WINDOW /* all queued by one pump */

static mfl_identity_t *s_make(const char *dir, const char *name)
{
    char err[512] = "", path[512];
    assert_int_equal(mfl_keys_generate(dir, name, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    mfl_identity_t *id = mfl_identity_load(path, err, sizeof err);
    if (!id)
        fail_msg("%s", err);
    return id;
}

static void test_handed_over_buffer_stays_intact_until_released(void **state)
{
    (void)state;
    char dir[64] = "/tmp/mfl-chunks-XXXXXX", cmd[256], err[512] = "";
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "mkdir -p %s/allow", dir);
    assert_int_equal(system(cmd), 0);
    mfl_identity_t *coord = s_make(dir, "coordinator"), *site = s_make(dir, "site01");
    snprintf(cmd, sizeof cmd, "cp %s/site01.pub %s/allow/", dir, dir);
    assert_int_equal(system(cmd), 0);
    char allow[128];
    snprintf(allow, sizeof allow, "%s/allow", dir);
    mfl_server_opts_t so;
    mfl_server_opts_default(&so);
    mfl_server_t *server = mfl_server_new("tcp://127.0.0.1:*", coord, allow, &so, err,
                                          sizeof err);
    if (!server)
        fail_msg("%s", err);
    mfl_client_opts_t co;
    mfl_client_opts_default(&co);
    mfl_client_t *client = mfl_client_new(mfl_server_endpoint(server), site,
                                          mfl_identity_public(coord), &co, err, sizeof err);
    if (!client || mfl_client_wait_connected(client, T_WAIT, err, sizeof err) != 0)
        fail_msg("%s", err);

    /* Δ: S_CHUNKS chunks of a known pattern, and their hashes */
    const uint64_t n = S_CV * S_CHUNKS;
    float *delta = malloc(n * sizeof *delta);
    assert_non_null(delta);
    for (uint64_t i = 0; i < n; i++)
        delta[i] = (float)(i % 1000) * 0.001f;
    uint8_t *hashes = malloc(S_CHUNKS * 32);
    assert_non_null(hashes);
    for (size_t c = 0; c < S_CHUNKS; c++)
        mfl_tensor_hash(delta + c * S_CV, S_CV, hashes + 32 * c);
    mfl_tensor_t t = mfl_tensor_vec("w", delta, n);
    uint8_t nonce[16] = {1}, header[8] = {2}, sig[64] = {3};

    mfl_chunk_upload_t *up = mfl_chunk_upload_new();
    assert_non_null(up);
    assert_int_equal(mfl_chunk_upload_in_flight(up), 0);
    if (mfl_chunk_upload_start(up, client, 1, nonce, sizeof nonce, header, sizeof header, sig,
                               sizeof sig, &t, 1, S_CV, hashes, S_CHUNKS,
                               MFL_CHUNK_FAULT_NONE, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(mfl_chunk_upload_pump(up, client, err, sizeof err), 1);
    assert_false(mfl_chunk_upload_active(up));
    /* Nobody reads at the server yet: its receive queue (16 messages) and
     * the sockets' buffers hold far less than 64 MiB, so chunks are still
     * in flight, reading `delta`. */
    assert_true(mfl_chunk_upload_in_flight(up) > 0);
    /* A new task: the worker's buffer goes to the sender, and the worker
     * allocates a fresh one and writes into it (with glibc, likely at the
     * old one's address if that were freed too early). */
    assert_int_equal(mfl_chunk_upload_adopt(up, delta), 0);
    float *fresh = malloc(n * sizeof *fresh);
    assert_non_null(fresh);
    memset(fresh, 0x7f, n * sizeof *fresh);

    /* every chunk arrives with the bytes it was signed for */
    mfl_msg_t *m = NULL;
    size_t got = 0;
    while (got < S_CHUNKS) {
        int reason = 0;
        mfl_recv_result_t r = mfl_server_recv(server, T_WAIT, &m, &reason, err, sizeof err);
        if (r == MFL_RECV_REJECTED && reason != MFL_REJECT_HASH && got == 0)
            continue; /* the UpdateBegin: a dummy signature */
        if (r != MFL_RECV_OK)
            fail_msg("chunk %zu: result %d (%s): %s", got, r, mfl_reject_reason_name(reason),
                     err);
        if (mfl_msg_kind(m) == METAFL__MESSAGE_KIND__UPDATE_CHUNK) {
            assert_int_equal(mfl_msg_envelope(m)->update_chunk->index, got);
            const mfl_tensor_t *ct = mfl_msg_tensor(m, 0);
            assert_int_equal(ct->count, S_CV);
            assert_memory_equal(ct->blake2b, hashes + 32 * got, 32);
            mfl_tensor_piece_t one;
            size_t np;
            const mfl_tensor_piece_t *p = mfl_tensor_pieces(ct, &one, &np);
            uint64_t at = got * S_CV;
            for (size_t k = 0; k < np; k++)
                for (uint64_t i = 0; i < p[k].count; i++, at++)
                    if (p[k].data[i] != (float)(at % 1000) * 0.001f)
                        fail_msg("chunk %zu: value %llu changed in flight", got,
                                 (unsigned long long)at);
            got++;
        }
        mfl_msg_destroy(&m);
    }
    /* all released once delivered (the adopted buffer with the last) */
    uint64_t t0 = mfl_clock_mono_ms();
    while (mfl_chunk_upload_in_flight(up) > 0 && mfl_clock_mono_ms() - t0 < T_WAIT)
        usleep(1000);
    assert_int_equal(mfl_chunk_upload_in_flight(up), 0);
    /* nothing in flight: a buffer handed over now is freed at once (the
     * sanitizer build's leak check holds this) */
    void *spare = malloc(64);
    assert_int_equal(mfl_chunk_upload_adopt(up, spare), 0);
    assert_int_equal(mfl_chunk_upload_adopt(up, NULL), 0);

    mfl_client_destroy(&client);
    mfl_chunk_upload_destroy(&up);
    mfl_chunk_upload_destroy(&up); /* NULL: no-op */
    free(fresh);
    free(hashes);
    mfl_server_destroy(&server);
    mfl_identity_destroy(&coord);
    mfl_identity_destroy(&site);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handed_over_buffer_stays_intact_until_released),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
