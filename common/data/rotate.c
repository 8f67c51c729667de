/* Rotated copies of images as further classes (data/rotate.h). */
#include "data/rotate.h"

#include <stdbool.h>
#include <stdlib.h>

#include "core/log.h"

static bool s_kept(uint32_t label, const uint32_t *keep, size_t n_keep)
{
    if (n_keep == 0)
        return true;
    for (size_t i = 0; i < n_keep; i++)
        if (keep[i] == label)
            return true;
    return false;
}

/* out = in turned clockwise by q quarter turns; h × w planes (square
 * when q is odd), `ch` of them. */
static void s_turn(const float *in, float *out, size_t ch, size_t h, size_t w, unsigned q)
{
    for (size_t c = 0; c < ch; c++) {
        const float *p = in + c * h * w;
        float *o = out + c * h * w;
        for (size_t i = 0; i < h; i++)
            for (size_t j = 0; j < w; j++) {
                size_t si = i, sj = j; /* o(i, j) = p(si, sj) */
                if (q == 1)
                    si = h - 1 - j, sj = i;
                else if (q == 2)
                    si = h - 1 - i, sj = w - 1 - j;
                else if (q == 3)
                    si = j, sj = w - 1 - i;
                o[i * w + j] = p[si * w + sj];
            }
    }
}

mfl_dataset_t *mfl_dataset_rotate_classes(const mfl_dataset_t *src, const unsigned *quarters,
                                          size_t n_quarters, const uint32_t *keep,
                                          size_t n_keep, char *err, size_t errlen)
{
    size_t ch = src->channels, h = src->height, w = src->width, nc = src->n_classes;
    if (ch == 0 || h == 0 || w == 0 || src->n_features != ch * h * w)
        return mfl_errf(err, errlen, "rotations need images (channels x height x width)"),
               NULL;
    if (nc < 2)
        return mfl_errf(err, errlen, "rotations need class labels (%zu classes)", nc), NULL;
    if (n_quarters == 0 || n_quarters > MFL_ROTATE_ORIENTATIONS)
        return mfl_errf(err, errlen, "expected 1..4 orientations, got %zu", n_quarters), NULL;
    bool seen[MFL_ROTATE_ORIENTATIONS] = {false};
    for (size_t i = 0; i < n_quarters; i++) {
        unsigned q = quarters[i];
        if (q >= MFL_ROTATE_ORIENTATIONS)
            return mfl_errf(err, errlen, "%u quarter turns is not one of 0..3", q), NULL;
        if (seen[q])
            return mfl_errf(err, errlen, "the rotation by %u degrees is listed twice", q * 90),
                   NULL;
        seen[q] = true;
        if ((q & 1u) && h != w)
            return mfl_errf(err, errlen, "a %u-degree rotation needs square images, these are "
                            "%zux%zu", q * 90, h, w), NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < n_quarters; i++)
        for (size_t r = 0; r < src->n; r++)
            n += s_kept(mfl_rotate_label((uint32_t)src->y[r], nc, quarters[i]), keep, n_keep);
    mfl_dataset_t *out = mfl_dataset_new(n, src->n_features);
    if (!out)
        return mfl_errf(err, errlen, "out of memory for %zu rotated images", n), NULL;
    out->channels = ch;
    out->height = h;
    out->width = w;
    out->n_classes = MFL_ROTATE_ORIENTATIONS * nc;
    size_t k = 0, d = src->n_features;
    for (size_t i = 0; i < n_quarters; i++)
        for (size_t r = 0; r < src->n; r++) {
            uint32_t label = mfl_rotate_label((uint32_t)src->y[r], nc, quarters[i]);
            if (!s_kept(label, keep, n_keep))
                continue;
            s_turn(src->x + r * d, out->x + k * d, ch, h, w, quarters[i]);
            out->y[k++] = (float)label;
        }
    return out;
}
