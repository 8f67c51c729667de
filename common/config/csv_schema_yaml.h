/* The config layer's reader of CSV schemas: a YAML mapping (a site
 * config's data.schema, or a consortium schema file whose whole document is
 * that mapping) turned into the plain struct the data layer loads with
 * (data/csv.h). Shape in docs/DATA.md. */
#ifndef MFL_CONFIG_CSV_SCHEMA_YAML_H
#define MFL_CONFIG_CSV_SCHEMA_YAML_H

#include <stddef.h>

#include "config/yaml_doc.h"
#include "data/csv.h"

/* Builds a schema from the YAML mapping at `path` in `doc` ("" = the
 * document's root): header, delimiter, skip_rows, missing, on_missing,
 * categorical_last, max_rows, columns[]: name, kind, levels, drop_first,
 * rule, threshold, n_classes, missing. Unknown keys and bad values are
 * errors ("FILE:LINE: ..."). Strings are borrowed from `doc`, which must
 * outlive the schema. Returns 0, or -1 with err; free with
 * mfl_csv_schema_clear. The doc's errors are sticky: if an earlier getter
 * on `doc` already failed, this returns -1 with that (first) error. */
int mfl_csv_schema_from_yaml(mfl_yaml_doc_t *doc, const char *path, mfl_csv_schema_t *schema,
                             char *err, size_t errlen);

/* Loads a schema file (its root is the schema mapping): on success *doc_out
 * owns the document the schema borrows from (destroy it after clearing
 * the schema). -1 with "FILE:LINE: ..." in err. */
int mfl_csv_schema_file_load(const char *path, mfl_csv_schema_t *schema,
                             mfl_yaml_doc_t **doc_out, char *err, size_t errlen);

#endif
