/* metafl keygen NAME [--dir DIR]: one identity for a site or the coordinator. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"
#include "core/log.h"
#include "wire/keys.h"

int mfl_cmd_keygen(int argc, char **argv);

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: metafl keygen NAME [--dir DIR]\n\n"
            "Creates DIR/NAME.key (secret, mode 0600) and DIR/NAME.pub (public) for a site\n"
            "or the coordinator; NAME is the site id ([A-Za-z0-9._-], at most %d).\n"
            "One Ed25519 key signs updates; its X25519 form authenticates CurveZMQ.\n"
            "Existing files are never overwritten. Give NAME.pub to the other side:\n"
            "sites put the coordinator's in their config, the coordinator puts each\n"
            "site's in its allow-list directory.\n\n"
            "  --dir DIR   where to write (default: the current directory; created with\n"
            "              mode 0700 if missing)\n"
            "  --help      this text\n",
            MFL_KEY_NAME_MAX);
}

int mfl_cmd_keygen(int argc, char **argv)
{
    const char *name = NULL, *dir = ".";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strncmp(argv[i], "--dir=", 6) == 0) {
            dir = argv[i] + 6;
        } else if (argv[i][0] == '-' || name) {
            fprintf(stderr, "metafl keygen: unexpected argument '%s'\n", argv[i]);
            s_usage(stderr);
            return 2;
        } else {
            name = argv[i];
        }
    }
    if (!name) {
        s_usage(stderr);
        return 2;
    }
    char err[1024] = "";
    struct stat st;
    if (stat(dir, &st) != 0 && errno == ENOENT) {
        /* A key directory is private: only its owner lists it. */
        if (mfl_mkdir_p(dir, 0700, err, sizeof err) != 0) {
            fprintf(stderr, "metafl keygen: %s\n", err);
            return 1;
        }
        printf("created %s (mode 0700)\n", dir);
    }
    if (mfl_keys_generate(dir, name, err, sizeof err) != 0) {
        fprintf(stderr, "metafl keygen: %s\n", err);
        return 1;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.pub", dir, name);
    mfl_public_key_t pk;
    if (mfl_public_key_load(path, &pk, err, sizeof err) != 0) {
        fprintf(stderr, "metafl keygen: %s\n", err);
        return 1;
    }
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", pk.sign_pk[i]);
    printf("wrote %s/%s.key (secret, mode 0600: keep it on this host, never send it)\n"
           "  and %s (public: give it to the other side)\n"
           "signing key %s\n"
           "  (the .pub's 'sign:' line: read it to the other side by phone so they can\n"
           "  check the .pub arrived unchanged)\n"
           "curve public key: %s\n",
           dir, name, path, hex, pk.curve_pk_z85);
    return 0;
}
