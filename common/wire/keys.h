/* Identities and public keys: one Ed25519 key pair per site or coordinator.
 *
 * The Ed25519 key signs updates; its X25519 (CURVE) key pair, derived with
 * crypto_sign_ed25519_{pk,sk}_to_curve25519, authenticates and encrypts the
 * ZeroMQ transport. So one key file serves both jobs.
 *
 * Files (text, one "key: value" per line, see docs/WIRE.md):
 *   DIR/NAME.pub  mode 0644   metafl-public-key v1 / name: NAME / sign: <64 hex>
 *   DIR/NAME.key  mode 0600   metafl-secret-key v1 / name: NAME / seed: <64 hex>
 * A name is 1..64 characters of [A-Za-z0-9._-], not starting with '.'; it is
 * the site id (the coordinator's allow-list maps file stem = site id). */
#ifndef MFL_WIRE_KEYS_H
#define MFL_WIRE_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define MFL_KEY_NAME_MAX 64
#define MFL_KEY_FILE_MAX 4096 /* hard cap on a key file's size */

/* A public key: plain data, copy freely. */
typedef struct {
    char name[MFL_KEY_NAME_MAX + 1];
    uint8_t sign_pk[32];     /* Ed25519 */
    uint8_t curve_pk[32];    /* X25519, derived from sign_pk */
    char curve_pk_z85[41];   /* curve_pk in Z85, for zmq_setsockopt */
} mfl_public_key_t;

/* A loaded secret identity; secrets live in sodium_malloc memory. */
typedef struct mfl_identity_t mfl_identity_t;

/* A set of admitted public keys (the coordinator's allow-list). */
typedef struct mfl_allow_list_t mfl_allow_list_t;

/* 0 if `name` is a valid key / site name, else -1 (with a reason in err). */
int mfl_key_name_check(const char *name, char *err, size_t errlen);

/* Generates a fresh identity NAME and writes DIR/NAME.key (created with
 * O_CREAT|O_EXCL, mode 0600, no umask window) and DIR/NAME.pub (0644).
 * Refuses to overwrite either file. DIR must exist. Returns 0 or -1 with
 * the file and reason in err. Thread-safe. */
int mfl_keys_generate(const char *dir, const char *name, char *err, size_t errlen);

/* Loads a secret key file. Refuses (NULL, err says which file and how to
 * fix it) a file readable or writable by group/others, a malformed file, or
 * a name that does not match the file stem. The caller owns the result. */
mfl_identity_t *mfl_identity_load(const char *key_path, char *err, size_t errlen);

/* Wipes and frees; accepts NULL and *self_p == NULL; nulls *self_p. */
void mfl_identity_destroy(mfl_identity_t **self_p);

/* Accessors: borrowed pointers valid until destroy. Thread-safe (read-only). */
const char *mfl_identity_name(const mfl_identity_t *self);
const mfl_public_key_t *mfl_identity_public(const mfl_identity_t *self);
const uint8_t *mfl_identity_sign_sk(const mfl_identity_t *self);   /* 64 bytes */
const char *mfl_identity_curve_sk_z85(const mfl_identity_t *self); /* 40 chars + NUL */

/* Loads DIR/NAME.pub into *pk. Checks the format, the name against the file
 * stem, and that the key is a valid Ed25519 point. 0 or -1 (err names file
 * and line). */
int mfl_public_key_load(const char *pub_path, mfl_public_key_t *pk, char *err, size_t errlen);

/* Parses public-key text (not NUL-terminated; at most MFL_KEY_FILE_MAX
 * bytes). `origin` names the source in errors. Does not check the stem. */
int mfl_public_key_parse(const char *text, size_t len, const char *origin,
                         mfl_public_key_t *pk, char *err, size_t errlen);

/* Loads every DIR/ *.pub (file stem = site id). A malformed file or two files
 * with the same CURVE key fail the whole load (a half-loaded allow-list is
 * worse than a clear error). An empty directory is allowed. Caller owns. */
mfl_allow_list_t *mfl_allow_list_load(const char *dir, char *err, size_t errlen);
void mfl_allow_list_destroy(mfl_allow_list_t **self_p);

/* Lookups; borrowed results valid until destroy; NULL if absent. Read-only,
 * so safe from several threads. */
size_t mfl_allow_list_size(const mfl_allow_list_t *self);
const mfl_public_key_t *mfl_allow_list_at(const mfl_allow_list_t *self, size_t i);
const mfl_public_key_t *mfl_allow_list_find_name(const mfl_allow_list_t *self, const char *name);
const mfl_public_key_t *mfl_allow_list_find_curve(const mfl_allow_list_t *self,
                                                  const uint8_t curve_pk[32]);

#endif
