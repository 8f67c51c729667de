/* The canonical text of a data schema: what a model needs to agree on
 * between the coordinator and every site, and nothing about one site's file
 * layout (delimiter, header, ignored columns, missing tokens, policy).
 *
 *   metafl-schema v2
 *   features 13
 *   classes 2
 *   label num greater 0
 *   numeric age
 *   categorical cp levels=1,2,3,4 drop_first
 *
 * Feature lines come in feature order (categorical_last respected); a
 * numeric level is written as its shortest round-trip number ("2.0" → 2),
 * so "1" and "1.0" agree. The consortium's schema hash is BLAKE2b-256 of
 * this text (mfl_schema_hash); a Hello carries the site's hash and (up to
 * MFL_SCHEMA_TEXT_MAX bytes) its text, so a refusal can say what differs. */
#ifndef MFL_DATA_CSV_CANON_H
#define MFL_DATA_CSV_CANON_H

#include <stddef.h>
#include <stdint.h>

#include "data/csv.h"

#define MFL_SCHEMA_TEXT_MAX (64u * 1024u) /* longest canonical text sent in a Hello */
#define MFL_SCHEMA_HASH_BYTES 32

/* The canonical text of `schema` as loaded: names[c] of each column (NULL:
 * the schema's), levels[c][0..n_levels[c]) the levels in use, n_classes the
 * data set's. Returns malloc'd text (caller frees), NULL on OOM. */
char *mfl_csv_canonical_build(const mfl_csv_schema_t *schema, const char *const *names,
                              const char *const *const *levels, const size_t *n_levels,
                              size_t n_classes);

/* The canonical text of a declared schema alone (no data): every column
 * must be named, every categorical must list its levels, and the label's
 * classes must follow from the schema (rule class needs n_classes). On
 * success returns malloc'd text and sets *n_features / *n_classes; NULL
 * with "column N 'name': what" in err. */
char *mfl_csv_canonical(const mfl_csv_schema_t *schema, size_t *n_features, size_t *n_classes,
                        char *err, size_t errlen);

/* The canonical text of data that is not a table of named columns: `n`
 * numeric features named names[i] (NULL: "f1".."fn"), or, when
 * channels/height/width are set, an image "image CxHxW"; label "class"
 * (n_classes > 0) or "regression". Malloc'd; NULL on OOM. */
char *mfl_schema_canonical_plain(const char *const *names, size_t n, size_t channels,
                                 size_t height, size_t width, size_t n_classes);

/* BLAKE2b-256 of text into hash[MFL_SCHEMA_HASH_BYTES]. */
void mfl_schema_hash(const char *text, uint8_t *hash);

/* Says in out[outlen] how the site's canonical text `have` (untrusted,
 * have_len bytes, may be empty: the site sent none) differs from the
 * consortium's `want`: the label, the classes, or the first feature column
 * that differs, with both sides quoted (non-printable bytes shown as '?').
 * E.g. "the site has 7 feature columns, the consortium 8: column 8 'x8'
 * (numeric) is missing at the site". */
void mfl_schema_diff(const char *want, const char *have, size_t have_len, char *out,
                     size_t outlen);

#endif
