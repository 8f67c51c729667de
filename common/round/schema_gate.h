/* The consortium's data schema at the coordinator's door.
 *
 * The schema comes from the coordinator's own configuration, never from a
 * site: `data.schema` names a schema file (the same file every site's
 * `data.schema` references, docs/DATA.md), loaded and checked against the
 * model once at start (input width = encoded feature count; output =
 * classes for the loss; at least n_way classes for episodic methods). Every
 * Hello is then checked against it: the site's schema hash must equal the
 * consortium's (an empty or missing hash is refused), and its declared
 * features and classes must fit the model. Without a schema file only the
 * model fit is checked (and the start-up log says so). A refusal's text
 * says what differs: which column, kind or level (from the canonical text
 * the site sends, data/csv_canon.h), or the feature count against the
 * model's inputs. A site whose training rows cannot form the configured
 * episodes (too few classes with k_shot + n_query rows) is refused too,
 * with its class counts.
 *
 * A small plain object: no transport, no clock, no protobuf; the daemon
 * copies the Hello's fields into mfl_schema_hello_t. */
#ifndef MFL_ROUND_SCHEMA_GATE_H
#define MFL_ROUND_SCHEMA_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "round/run_config.h"

typedef struct mfl_schema_gate mfl_schema_gate_t;

/* What a Hello says about the site's data (every pointer borrowed, from an
 * untrusted peer). */
typedef struct {
    const uint8_t *hash;
    size_t hash_len;
    const char *text;          /* canonical schema text, not NUL-terminated */
    size_t text_len;
    uint64_t n_features;       /* 0: not declared */
    uint64_t n_classes;
    const uint64_t *class_counts; /* training rows per class, [n_class_counts] */
    size_t n_class_counts;
} mfl_schema_hello_t;

typedef enum {
    MFL_SCHEMA_GATE_OK = 0,
    MFL_SCHEMA_GATE_SCHEMA, /* refuse: REJECT_SCHEMA */
    MFL_SCHEMA_GATE_DATA,   /* refuse: REJECT_DATA (the site cannot form the task) */
} mfl_schema_gate_verdict_t;

/* Loads config->schema_file (if set) and checks it, and the model, against
 * each other. NULL with "CONFIG:LINE: data.schema: FILE: what" in err when
 * the schema file is bad or does not fit the model. `config` borrowed. */
mfl_schema_gate_t *mfl_schema_gate_new(const mfl_coord_config_t *config, char *err,
                                       size_t errlen);

void mfl_schema_gate_destroy(mfl_schema_gate_t **self_p);

/* True when a schema file is in force (else only the model fit is checked). */
bool mfl_schema_gate_has_schema(const mfl_schema_gate_t *self);

/* Checks one Hello. OK, or a verdict with "what differs" in text[len]
 * (one line, printable, no site id: the caller adds it). */
mfl_schema_gate_verdict_t mfl_schema_gate_check(const mfl_schema_gate_t *self,
                                                const mfl_schema_hello_t *hello, char *text,
                                                size_t len);

#endif
