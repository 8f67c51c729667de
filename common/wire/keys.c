/* Key files: generation, loading with permission checks, allow-lists. */
#include "wire/keys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "core/fileio.h"
#include "core/log.h"

#define S_PUB_MAGIC "metafl-public-key v1"
#define S_SEC_MAGIC "metafl-secret-key v1"
#define S_ALLOW_MAX 100000 /* entries in one allow-list directory */

struct mfl_identity_t {
    mfl_public_key_t pub;
    /* sodium_malloc'd: guarded pages, wiped on free. */
    struct {
        uint8_t sign_sk[64];
        uint8_t curve_sk[32];
        char curve_sk_z85[41];
    } *secret;
};

struct mfl_allow_list_t {
    mfl_public_key_t *keys;
    size_t n;
};

static int s_sodium(char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        mfl_errf(err, errlen, "libsodium failed to initialise");
        return -1;
    }
    return 0;
}

int mfl_key_name_check(const char *name, char *err, size_t errlen)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > MFL_KEY_NAME_MAX) {
        mfl_errf(err, errlen, "key name must be 1..%d characters", MFL_KEY_NAME_MAX);
        return -1;
    }
    if (name[0] == '.' || name[0] == '-') {
        mfl_errf(err, errlen, "key name '%s' must not start with '%c'", name, name[0]);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            mfl_errf(err, errlen, "key name '%.64s' has a character outside [A-Za-z0-9._-]",
                     name);
            return -1;
        }
    }
    return 0;
}

/* Fills pk's derived fields from pk->sign_pk; -1 if it is not a valid point. */
static int s_public_derive(mfl_public_key_t *pk)
{
    if (crypto_sign_ed25519_pk_to_curve25519(pk->curve_pk, pk->sign_pk) != 0)
        return -1;
    if (!zmq_z85_encode(pk->curve_pk_z85, pk->curve_pk, 32))
        return -1;
    return 0;
}

/* The stem of a path: basename without the given extension; "" if the
 * extension does not match. */
static void s_stem(const char *path, const char *ext, char *out, size_t outlen)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base), e = strlen(ext);
    out[0] = '\0';
    if (n <= e || strcmp(base + n - e, ext) != 0 || n - e >= outlen)
        return;
    memcpy(out, base, n - e);
    out[n - e] = '\0';
}

/* A public key file loaded where the secret half belongs is the usual
 * slip (both files sit side by side after keygen, and a .pub is 0644):
 * name the mix-up instead of complaining about the mode. */
static int s_is_public_text(const char *text, size_t len, char name[MFL_KEY_NAME_MAX + 1])
{
    size_t m = strlen(S_PUB_MAGIC);
    name[0] = '\0';
    if (len < m || memcmp(text, S_PUB_MAGIC, m) != 0 ||
        (len > m && text[m] != '\n' && text[m] != '\r'))
        return 0;
    const char *n = strstr(text, "\nname:");
    if (n) {
        n += 7;
        while (*n == ' ')
            n++;
        size_t k = 0;
        while (k < MFL_KEY_NAME_MAX && n[k] && n[k] != '\n' && n[k] != '\r' && n[k] != ' ')
            k++;
        memcpy(name, n, k);
        name[k] = '\0';
        if (mfl_key_name_check(name, NULL, 0) != 0)
            name[0] = '\0';
    }
    return 1;
}

/* Reads a whole small file into a sodium_malloc'd, NUL-terminated buffer.
 * With `secret`, refuses a public key file and group/other permissions. */
static char *s_read_file(const char *path, int secret, size_t *len, char *err, size_t errlen)
{
    /* Symlinks are followed (secret mounts often are links); the checks below
     * apply to the file actually opened. Non-blocking open: a FIFO in the
     * key's place is refused at once instead of hanging the daemon. */
    struct stat st;
    int fd = mfl_file_open_regular(path, &st, err, errlen);
    if (fd < 0)
        return NULL;
    if (st.st_size > MFL_KEY_FILE_MAX) {
        mfl_errf(err, errlen, "%s: %lld bytes, more than a key file's %d", path,
                 (long long)st.st_size, MFL_KEY_FILE_MAX);
        close(fd);
        return NULL;
    }
    char *buf = sodium_malloc(MFL_KEY_FILE_MAX + 1);
    if (!buf) {
        mfl_errf(err, errlen, "%s: out of memory", path);
        close(fd);
        return NULL;
    }
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, MFL_KEY_FILE_MAX + 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            mfl_errf(err, errlen, "%s: read failed: %s", path, strerror(errno));
            goto out_fail;
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (got > MFL_KEY_FILE_MAX) {
            mfl_errf(err, errlen, "%s: larger than a key file's %d bytes", path,
                     MFL_KEY_FILE_MAX);
            goto out_fail;
        }
    }
    close(fd);
    fd = -1;
    buf[got] = '\0';
    char name[MFL_KEY_NAME_MAX + 1];
    if (secret && s_is_public_text(buf, got, name)) {
        if (name[0])
            mfl_errf(err, errlen, "%s is a public key file; the key file setting (site.key_file, "
                     "coordinator.key) needs the secret key (%s.key, made next to it by "
                     "`metafl keygen %s`)", path, name, name);
        else
            mfl_errf(err, errlen, "%s is a public key file; the key file setting (site.key_file, "
                     "coordinator.key) needs the secret key (NAME.key, made by `metafl "
                     "keygen`)", path);
        goto out_fail;
    }
    if (secret && (st.st_mode & 077)) {
        mfl_errf(err, errlen,
                 "%s: secret key is %s by others (mode %04o); run chmod 600 %s",
                 path, (st.st_mode & 044) ? "readable" : "accessible",
                 (unsigned)(st.st_mode & 07777), path);
        goto out_fail;
    }
    *len = got;
    return buf;
out_fail:
    sodium_free(buf);
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* Parses "magic\nname: X\n<field>: <64 hex>\n" (optional extra "curve:" line
 * in public files, '#' comments and blank lines allowed). Fills name and the
 * 32 bytes of <field>. */
static int s_parse(const char *text, size_t len, const char *origin, const char *magic,
                   const char *field, char name[MFL_KEY_NAME_MAX + 1], uint8_t bytes[32],
                   char curve_z85[41], char *err, size_t errlen)
{
    int have_magic = 0, have_name = 0, have_field = 0;
    size_t pos = 0;
    int line = 0;
    curve_z85[0] = '\0';
    while (pos < len) {
        line++;
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        size_t n = end - pos;
        const char *l = text + pos;
        pos = end + 1;
        if (n > 0 && l[n - 1] == '\r')
            n--;
        if (n == 0 || l[0] == '#')
            continue;
        if (memchr(l, '\0', n)) {
            mfl_errf(err, errlen, "%s:%d: NUL byte in key file", origin, line);
            return -1;
        }
        if (!have_magic) {
            if (n != strlen(magic) || memcmp(l, magic, n) != 0) {
                mfl_errf(err, errlen, "%s:%d: expected '%s' as the first line", origin, line,
                         magic);
                return -1;
            }
            have_magic = 1;
            continue;
        }
        const char *colon = memchr(l, ':', n);
        if (!colon) {
            mfl_errf(err, errlen, "%s:%d: expected 'key: value'", origin, line);
            return -1;
        }
        size_t klen = (size_t)(colon - l);
        const char *v = colon + 1;
        size_t vlen = n - klen - 1;
        while (vlen > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vlen--;
        }
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        if (klen == 4 && memcmp(l, "name", 4) == 0) {
            if (have_name || vlen == 0 || vlen > MFL_KEY_NAME_MAX) {
                mfl_errf(err, errlen, "%s:%d: bad or repeated 'name'", origin, line);
                return -1;
            }
            memcpy(name, v, vlen);
            name[vlen] = '\0';
            char why[128];
            if (mfl_key_name_check(name, why, sizeof why) != 0) {
                mfl_errf(err, errlen, "%s:%d: %s", origin, line, why);
                return -1;
            }
            have_name = 1;
        } else if (klen == strlen(field) && memcmp(l, field, klen) == 0) {
            size_t got = 0;
            if (have_field || vlen != 64 ||
                sodium_hex2bin(bytes, 32, v, vlen, NULL, &got, NULL) != 0 || got != 32) {
                mfl_errf(err, errlen, "%s:%d: '%s' must be 64 hex digits", origin, line, field);
                return -1;
            }
            have_field = 1;
        } else if (klen == 5 && memcmp(l, "curve", 5) == 0 && strcmp(field, "sign") == 0) {
            if (vlen != 40) {
                mfl_errf(err, errlen, "%s:%d: 'curve' must be 40 Z85 characters", origin, line);
                return -1;
            }
            memcpy(curve_z85, v, 40);
            curve_z85[40] = '\0';
        } else {
            mfl_errf(err, errlen, "%s:%d: unknown key '%.*s'", origin, line, (int)klen, l);
            return -1;
        }
    }
    if (!have_magic || !have_name || !have_field) {
        mfl_errf(err, errlen, "%s: incomplete key file (needs '%s', 'name:' and '%s:')",
                 origin, magic, field);
        return -1;
    }
    return 0;
}

int mfl_public_key_parse(const char *text, size_t len, const char *origin,
                         mfl_public_key_t *pk, char *err, size_t errlen)
{
    if (s_sodium(err, errlen) != 0)
        return -1;
    if (len > MFL_KEY_FILE_MAX) {
        mfl_errf(err, errlen, "%s: larger than a key file's %d bytes", origin, MFL_KEY_FILE_MAX);
        return -1;
    }
    char curve[41];
    memset(pk, 0, sizeof *pk);
    if (s_parse(text, len, origin, S_PUB_MAGIC, "sign", pk->name, pk->sign_pk, curve, err,
                errlen) != 0)
        return -1;
    if (s_public_derive(pk) != 0) {
        mfl_errf(err, errlen, "%s: 'sign' is not a valid Ed25519 public key", origin);
        return -1;
    }
    if (curve[0] && strcmp(curve, pk->curve_pk_z85) != 0) {
        mfl_errf(err, errlen, "%s: 'curve' does not match the key derived from 'sign'", origin);
        return -1;
    }
    return 0;
}

int mfl_public_key_load(const char *pub_path, mfl_public_key_t *pk, char *err, size_t errlen)
{
    if (s_sodium(err, errlen) != 0)
        return -1;
    size_t len = 0;
    char *text = s_read_file(pub_path, 0, &len, err, errlen);
    if (!text)
        return -1;
    int rc = mfl_public_key_parse(text, len, pub_path, pk, err, errlen);
    sodium_free(text);
    if (rc != 0)
        return -1;
    char stem[MFL_KEY_NAME_MAX + 2];
    s_stem(pub_path, ".pub", stem, sizeof stem);
    if (strcmp(stem, pk->name) != 0) {
        mfl_errf(err, errlen, "%s: names '%s' but the file stem must equal the name "
                 "(rename it to %s.pub)", pub_path, pk->name, pk->name);
        return -1;
    }
    return 0;
}

/* Creates `path` exclusively with `mode` and writes `text`; on failure leaves
 * nothing behind. */
static int s_create(const char *path, mode_t mode, const char *text, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        if (errno == EEXIST)
            mfl_errf(err, errlen, "%s: already exists; refusing to overwrite a key", path);
        else
            mfl_errf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    /* open() applied the umask, which can only remove bits; fchmod makes the
     * mode exact without ever having been wider. */
    if (fchmod(fd, mode) != 0 || mfl_file_write_full(fd, text, strlen(text)) != 0 || fsync(fd) != 0) {
        mfl_errf(err, errlen, "%s: write failed: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    if (close(fd) != 0) {
        mfl_errf(err, errlen, "%s: close failed: %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    return 0;
}

int mfl_keys_generate(const char *dir, const char *name, char *err, size_t errlen)
{
    if (s_sodium(err, errlen) != 0 || mfl_key_name_check(name, err, errlen) != 0)
        return -1;
    char key_path[4096], pub_path[4096];
    if ((size_t)snprintf(key_path, sizeof key_path, "%s/%s.key", dir, name) >= sizeof key_path ||
        (size_t)snprintf(pub_path, sizeof pub_path, "%s/%s.pub", dir, name) >= sizeof pub_path) {
        mfl_errf(err, errlen, "%s: directory path too long", dir);
        return -1;
    }
    if (access(key_path, F_OK) == 0) {
        mfl_errf(err, errlen, "%s: already exists; refusing to overwrite a key", key_path);
        return -1;
    }
    if (access(pub_path, F_OK) == 0) {
        mfl_errf(err, errlen, "%s: already exists; refusing to overwrite a key", pub_path);
        return -1;
    }
    int rc = -1;
    uint8_t *seed = sodium_malloc(32);
    char *text = sodium_malloc(512);
    if (!seed || !text) {
        mfl_errf(err, errlen, "out of memory");
        goto out_free;
    }
    mfl_public_key_t pk;
    memset(&pk, 0, sizeof pk);
    uint8_t sk[64];
    randombytes_buf(seed, 32);
    crypto_sign_seed_keypair(pk.sign_pk, sk, seed);
    sodium_memzero(sk, sizeof sk);
    if (s_public_derive(&pk) != 0) {
        mfl_errf(err, errlen, "key derivation failed");
        goto out_free;
    }
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, seed, 32);
    snprintf(text, 512, S_SEC_MAGIC "\nname: %s\nseed: %s\n", name, hex);
    sodium_memzero(hex, sizeof hex);
    if (s_create(key_path, 0600, text, err, errlen) != 0)
        goto out_free;
    sodium_bin2hex(hex, sizeof hex, pk.sign_pk, 32);
    snprintf(text, 512, S_PUB_MAGIC "\nname: %s\nsign: %s\ncurve: %s\n", name, hex,
             pk.curve_pk_z85);
    if (s_create(pub_path, 0644, text, err, errlen) != 0) {
        unlink(key_path);
        goto out_free;
    }
    rc = 0;
out_free:
    sodium_free(seed);
    sodium_free(text);
    return rc;
}

mfl_identity_t *mfl_identity_load(const char *key_path, char *err, size_t errlen)
{
    if (s_sodium(err, errlen) != 0)
        return NULL;
    size_t len = 0;
    char *text = s_read_file(key_path, 1, &len, err, errlen);
    if (!text)
        return NULL;
    mfl_identity_t *self = calloc(1, sizeof *self);
    uint8_t *seed = sodium_malloc(32);
    if (!self || !seed || !(self->secret = sodium_malloc(sizeof *self->secret))) {
        mfl_errf(err, errlen, "%s: out of memory", key_path);
        goto out_fail;
    }
    char curve[41];
    if (s_parse(text, len, key_path, S_SEC_MAGIC, "seed", self->pub.name, seed, curve, err,
                errlen) != 0)
        goto out_fail;
    char stem[MFL_KEY_NAME_MAX + 2];
    s_stem(key_path, ".key", stem, sizeof stem);
    if (strcmp(stem, self->pub.name) != 0) {
        mfl_errf(err, errlen, "%s: names '%s' but the file stem must equal the name",
                 key_path, self->pub.name);
        goto out_fail;
    }
    crypto_sign_seed_keypair(self->pub.sign_pk, self->secret->sign_sk, seed);
    if (s_public_derive(&self->pub) != 0 ||
        crypto_sign_ed25519_sk_to_curve25519(self->secret->curve_sk, self->secret->sign_sk) !=
            0 ||
        !zmq_z85_encode(self->secret->curve_sk_z85, self->secret->curve_sk, 32)) {
        mfl_errf(err, errlen, "%s: key derivation failed", key_path);
        goto out_fail;
    }
    sodium_free(seed);
    sodium_free(text);
    return self;
out_fail:
    sodium_free(seed);
    sodium_free(text);
    mfl_identity_destroy(&self);
    return NULL;
}

void mfl_identity_destroy(mfl_identity_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_identity_t *self = *self_p;
    if (self->secret)
        sodium_free(self->secret); /* wipes */
    free(self);
    *self_p = NULL;
}

const char *mfl_identity_name(const mfl_identity_t *self) { return self->pub.name; }
const mfl_public_key_t *mfl_identity_public(const mfl_identity_t *self) { return &self->pub; }
const uint8_t *mfl_identity_sign_sk(const mfl_identity_t *self) { return self->secret->sign_sk; }
const char *mfl_identity_curve_sk_z85(const mfl_identity_t *self)
{
    return self->secret->curve_sk_z85;
}

static int s_key_cmp(const void *a, const void *b)
{
    return strcmp(((const mfl_public_key_t *)a)->name, ((const mfl_public_key_t *)b)->name);
}

mfl_allow_list_t *mfl_allow_list_load(const char *dir, char *err, size_t errlen)
{
    if (s_sodium(err, errlen) != 0)
        return NULL;
    DIR *d = opendir(dir);
    if (!d) {
        mfl_errf(err, errlen, "%s: cannot open allow-list directory: %s", dir, strerror(errno));
        return NULL;
    }
    mfl_allow_list_t *self = calloc(1, sizeof *self);
    size_t cap = 0;
    if (!self)
        goto out_fail;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char stem[MFL_KEY_NAME_MAX + 2];
        s_stem(e->d_name, ".pub", stem, sizeof stem);
        if (!stem[0] || e->d_name[0] == '.')
            continue;
        if (self->n == S_ALLOW_MAX) {
            mfl_errf(err, errlen, "%s: more than %d public keys", dir, S_ALLOW_MAX);
            goto out_fail;
        }
        if (self->n == cap) {
            cap = cap ? 2 * cap : 16;
            mfl_public_key_t *k = realloc(self->keys, cap * sizeof *k);
            if (!k) {
                mfl_errf(err, errlen, "%s: out of memory", dir);
                goto out_fail;
            }
            self->keys = k;
        }
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path) {
            mfl_errf(err, errlen, "%s: path too long", dir);
            goto out_fail;
        }
        if (mfl_public_key_load(path, &self->keys[self->n], err, errlen) != 0)
            goto out_fail;
        self->n++;
    }
    closedir(d);
    d = NULL;
    if (self->n > 1)
        qsort(self->keys, self->n, sizeof *self->keys, s_key_cmp);
    for (size_t i = 0; i < self->n; i++)
        for (size_t j = i + 1; j < self->n; j++)
            if (sodium_memcmp(self->keys[i].curve_pk, self->keys[j].curve_pk, 32) == 0) {
                mfl_errf(err, errlen, "%s: %s.pub and %s.pub hold the same key", dir,
                         self->keys[i].name, self->keys[j].name);
                goto out_fail;
            }
    return self;
out_fail:
    if (d)
        closedir(d);
    mfl_allow_list_destroy(&self);
    return NULL;
}

void mfl_allow_list_destroy(mfl_allow_list_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->keys);
    free(*self_p);
    *self_p = NULL;
}

size_t mfl_allow_list_size(const mfl_allow_list_t *self) { return self->n; }

const mfl_public_key_t *mfl_allow_list_at(const mfl_allow_list_t *self, size_t i)
{
    return i < self->n ? &self->keys[i] : NULL;
}

const mfl_public_key_t *mfl_allow_list_find_name(const mfl_allow_list_t *self, const char *name)
{
    mfl_public_key_t probe;
    if (!name || strlen(name) > MFL_KEY_NAME_MAX)
        return NULL;
    snprintf(probe.name, sizeof probe.name, "%s", name);
    return bsearch(&probe, self->keys, self->n, sizeof *self->keys, s_key_cmp);
}

const mfl_public_key_t *mfl_allow_list_find_curve(const mfl_allow_list_t *self,
                                                  const uint8_t curve_pk[32])
{
    for (size_t i = 0; i < self->n; i++)
        if (sodium_memcmp(self->keys[i].curve_pk, curve_pk, 32) == 0)
            return &self->keys[i];
    return NULL;
}
