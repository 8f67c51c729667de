/* Shared between the audit log's writer, reader and verifier; not a public
 * contract. */
#ifndef MFL_AUDIT_INTERNAL_H
#define MFL_AUDIT_INTERNAL_H

#include <stdio.h>

#include "audit/audit.h"

/* Domain separation for the writer's signature over a record hash. */
#define MFL_AUDIT_SIG_TAG "metafl-audit-v1"

/* Bytes after the hashed body: ,"hash":"<64>","sig":"<128>"} */
#define MFL_AUDIT_TAIL_LEN (9 + 64 + 9 + 128 + 2)

/* Writes the canonical line of `rec` (no newline) into buf (cap bytes, NUL
 * terminated). *body_len receives the length of the hashed prefix. With
 * `with_tail` false only the body is written. Returns the line length, or
 * -1 if a field is invalid (err says which) or the line does not fit. */
long mfl_audit_format(const mfl_audit_record_t *rec, int with_tail, char *buf, size_t cap,
                      size_t *body_len, char *err, size_t errlen);

/* BLAKE2b-256 of the body, and the writer's signed message. */
void mfl_audit_hash_body(const char *body, size_t len, uint8_t out[32]);
void mfl_audit_sig_message(const uint8_t hash[32], uint8_t *msg /* tag + 32 */, size_t *len);

/* Reads one line into buf (cap ≥ MFL_AUDIT_LINE_MAX + 2) without the
 * newline. Returns 1 for a line ending in '\n', 2 for a last line without
 * one (torn), 0 at end of file, -1 for a line longer than MFL_AUDIT_LINE_MAX
 * (the rest of that line is skipped) or a read error. */
int mfl_audit_read_line(FILE *f, char *buf, size_t cap, size_t *len);

#endif
