/* One line of plain numbers ("0.1, -2,3e-1"): the rows `metafl eval
 * --predict` scores, already preprocessed as the sites feed the model.
 * Strict and bounded: exactly n finite numbers separated by commas
 * (spaces, tabs and a trailing '\r' allowed), nothing else. */
#ifndef MFL_DATA_ROWS_H
#define MFL_DATA_ROWS_H

#include <stddef.h>

/* Parses line[0..len) (need not be NUL-terminated; at most
 * MFL_ROWS_MAX_LINE bytes) into x[n]. Returns 0, or -1 with
 * "LABEL:LINENO: what" in err (a field that is not a finite number, a stray
 * character, too many or too few values). x may be partly written on error. */
#define MFL_ROWS_MAX_LINE (1u << 20)
int mfl_rows_parse_line(const char *line, size_t len, size_t n, float *x, const char *label,
                        size_t lineno, char *err, size_t errlen);

#endif
