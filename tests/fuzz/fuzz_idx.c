/* libFuzzer target: IDX headers and payloads. The first byte says where
 * the images file ends and the labels file begins (as a fraction of the
 * rest), so the fuzzer controls both files; its high bits pick rotations
 * (data/rotate.h) of the decoded images. */
#include <stddef.h>
#include <stdint.h>

#include "data/idx.h"
#include "data/rotate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t rest = size - 1;
    size_t cut = rest * data[0] / 255;
    const uint8_t *img = data + 1, *lab = data + 1 + cut;
    char err[256];
    mfl_dataset_t *ds = mfl_idx_parse(img, cut, lab, rest - cut, (size_t)(data[0] & 3), err, sizeof err);
    if (ds) {
        for (size_t i = 0; i < ds->n * ds->n_features; i++)
            if (!(ds->x[i] >= 0.0f && ds->x[i] <= 1.0f))
                __builtin_trap();
        if (ds->n_features != ds->height * ds->width || ds->channels != 1)
            __builtin_trap();
        /* data.rotations on what was decoded: the first byte's high bits
         * pick the orientations; every turned pixel is one of the image's
         * and every label is c + q·C. Keep it cheap: small sets only. */
        unsigned q[4];
        size_t nq = 0;
        for (unsigned b = 0; b < 4; b++)
            if (data[0] >> (4 + b) & 1u)
                q[nq++] = b;
        if (ds->n * ds->n_features <= (1u << 16)) {
            mfl_dataset_t *r = mfl_dataset_rotate_classes(ds, q, nq, NULL, 0, err, sizeof err);
            if (r) {
                if (r->n != nq * ds->n || r->n_classes != 4 * ds->n_classes)
                    __builtin_trap();
                for (size_t i = 0; i < r->n; i++)
                    if (r->y[i] != ds->y[i % ds->n] + (float)(q[i / ds->n] * ds->n_classes))
                        __builtin_trap();
            } else if (nq && ds->height == ds->width && ds->n_classes >= 2) {
                __builtin_trap(); /* a square image set with classes must turn */
            }
            mfl_dataset_destroy(&r);
        }
    }
    mfl_dataset_destroy(&ds);
    return 0;
}
