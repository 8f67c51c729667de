/* Plain number rows (see rows.h). */
#include "data/rows.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

int mfl_rows_parse_line(const char *line, size_t len, size_t n, float *x, const char *label,
                        size_t lineno, char *err, size_t errlen)
{
    if (len > MFL_ROWS_MAX_LINE)
        return mfl_errf(err, errlen, "%s:%zu: line longer than %u bytes", label, lineno,
                        MFL_ROWS_MAX_LINE), -1;
    /* strtod needs a terminated string: parse a copy. */
    char *buf = malloc(len + 1);
    if (!buf)
        return mfl_errf(err, errlen, "%s:%zu: out of memory", label, lineno), -1;
    memcpy(buf, line, len);
    buf[len] = '\0';
    if (strlen(buf) != len) {
        free(buf);
        return mfl_errf(err, errlen, "%s:%zu: a NUL byte in the line", label, lineno), -1;
    }
    int rc = -1;
    size_t k = 0;
    char *p = buf;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        char *end = NULL;
        /* strtod would also take "inf", "nan" and hex floats: only plain
         * decimal numbers are rows. */
        if (!((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.')) {
            mfl_errf(err, errlen, "%s:%zu: field %zu is not a number", label, lineno, k + 1);
            goto out;
        }
        double v = strtod(p, &end);
        size_t plain = strspn(p, "0123456789+-.eE");
        if (end == p || p + plain < end || !isfinite(v) || fabs(v) > 3.4e38) {
            mfl_errf(err, errlen, "%s:%zu: field %zu is not a finite number", label, lineno,
                     k + 1);
            goto out;
        }
        if (k < n)
            x[k] = (float)v;
        k++;
        p = end;
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (*p == '\0')
            break;
        if (*p != ',') {
            mfl_errf(err, errlen, "%s:%zu: field %zu: unexpected '%c'", label, lineno, k,
                     (*p >= 0x20 && *p < 0x7f) ? *p : '?');
            goto out;
        }
        p++;
    }
    if (k != n) {
        mfl_errf(err, errlen, "%s:%zu: %zu values; the model takes %zu inputs", label, lineno, k,
                 n);
        goto out;
    }
    rc = 0;
out:
    free(buf);
    return rc;
}
