/* Private to the CSV loader (csv*.c): the text split into NUL-terminated
 * cells, one record per data line. Not a contract for other modules. */
#ifndef MFL_DATA_CSV_TABLE_H
#define MFL_DATA_CSV_TABLE_H

#include <stddef.h>

#include "data/csv.h"

typedef struct {
    size_t line;  /* 0-based physical line */
    size_t first; /* index of its first cell */
} mfl_csv_record_t;

typedef struct {
    const char *name; /* FILE in messages (borrowed) */
    char *buf;        /* owned copy of the text (cells point into it) */
    char **cells;
    size_t n_cells, cap_cells;
    mfl_csv_record_t *recs;
    size_t n_recs, cap_recs;
    char **header; /* [n_columns] when schema->header */
    size_t header_line;
} mfl_csv_table_t;

/* Copies text[0..len) (checked: size limit, no NUL byte) into t->buf and
 * splits it into records of exactly schema->n_columns cells, the header
 * line aside; honours skip_rows and max_rows. 0, or -1 with
 * "FILE:LINE: ..." in err. Free with mfl_csv_table_free either way. */
int mfl_csv_table_read(mfl_csv_table_t *t, const char *text, size_t len,
                       const mfl_csv_schema_t *schema, char *err, size_t errlen);

/* Cell of record r, column c. */
static inline const char *mfl_csv_table_cell(const mfl_csv_table_t *t, size_t r, size_t c)
{
    return t->cells[t->recs[r].first + c];
}

void mfl_csv_table_free(mfl_csv_table_t *t);

/* A whole-cell finite decimal number (no inf, nan or hex), or -1. */
int mfl_csv_number(const char *s, double *out);

#endif
