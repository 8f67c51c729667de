/* metafl audit verify|show: the privacy auditor's view of the signed,
 * hash-chained audit logs (docs/AUDIT.md). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "core/log.h"
#include "wire/task.h"

int mfl_cmd_audit(int argc, char **argv);
int mfl_cmd_audit_privacy(int argc, char **argv); /* cmd_audit_privacy.c */

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: metafl audit verify FILE... --keys DIR [--cross]\n"
            "       metafl audit show FILE [--site NAME] [--round N]\n"
            "       metafl audit privacy FILE --keys DIR\n\n"
            "Audit logs are JSON lines, one signed record per exchanged update, kept by\n"
            "the coordinator and by every site (docs/AUDIT.md).\n\n"
            "  verify   checks every record: form, sequence, the hash chain, each record's\n"
            "           hash, the writer's signature (DIR/WRITER.pub) and, where a record\n"
            "           keeps the site's signed update header, the site's signature\n"
            "           (DIR/SITE.pub) and that the header says what the record says.\n"
            "           Exit 0: \"ok: N records, ...\"; exit 1: the first bad record,\n"
            "           as FILE:LINE: record N: why.\n"
            "  --cross  then cross-checks the first FILE (one side, e.g. the coordinator's\n"
            "           log) against each other FILE (its peers', e.g. the sites'): every\n"
            "           signed chain head one side holds of the other must be a record of\n"
            "           the other's log; exit 1 names a TRUNCATED or FORKED log and the\n"
            "           record that proves it (docs/AUDIT.md, \"Truncation\"). With secure\n"
            "           aggregation, a masked input both logs record (secagg_masked) must\n"
            "           have the same hash in both (exit 1: DIFFERS).\n"
            "  show     prints the records as a table (form checked, not signatures),\n"
            "           optionally only one site's or one round's, and a legend.\n"
            "  privacy  recomputes each site's epsilon from the records and names every\n"
            "           record whose claimed epsilon disagrees (metafl audit privacy --help).\n\n"
            "Keys: DIR/NAME.pub for the log's writer (coordinator or site) and for every\n"
            "site named in it; the .pub files the parties exchanged at keygen time.\n\n"
            "  --help   this text\n");
}

/* What the auditor does next depends on why verification stopped: a
 * missing key is the auditor's setup, anything else is the log itself. */
static void s_advise(const char *file, const char *keys, const mfl_audit_report_t *rep)
{
    if (strstr(rep->message, "cannot check")) {
        fprintf(stderr, "  -> not a verdict on the log: %s needs NAME.pub of the log's writer "
                "and of every site in it (the coordinator's and each hospital's)\n", keys);
    } else if (rep->bad_record > 0) {
        fprintf(stderr, "  -> %s is NOT intact: record %llu (line %zu) fails and the records "
                "after it were not checked. Keep the file unchanged as evidence; every update "
                "is recorded by both its site and the coordinator, so compare with the other "
                "side's log (metafl audit show FILE --round N).\n",
                file, (unsigned long long)rep->bad_record, rep->bad_line);
    }
}

static int s_verify(int argc, char **argv)
{
    const char *keys = NULL;
    bool cross = false;
    const char *files[256];
    int n_files = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc) {
            keys = argv[++i];
        } else if (strncmp(argv[i], "--keys=", 7) == 0) {
            keys = argv[i] + 7;
        } else if (strcmp(argv[i], "--cross") == 0) {
            cross = true;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "metafl audit verify: unexpected argument '%s'\n", argv[i]);
            return 2;
        } else if (n_files == (int)(sizeof files / sizeof files[0])) {
            fprintf(stderr, "metafl audit verify: more than %zu files; verify them in batches\n",
                    sizeof files / sizeof files[0]);
            return 2;
        } else {
            files[n_files++] = argv[i];
        }
    }
    if (!keys || n_files == 0) {
        fprintf(stderr, "metafl audit verify: need FILE... and --keys DIR (see --help)\n");
        return 2;
    }
    int bad = 0;
    for (int i = 0; i < n_files; i++) {
        mfl_audit_report_t rep;
        if (mfl_audit_verify(files[i], keys, &rep) == 0) {
            if (n_files > 1)
                printf("%s: ", files[i]);
            printf("%s\n", rep.message);
        } else {
            fprintf(stderr, "%s\n", rep.message);
            s_advise(files[i], keys, &rep);
            bad = 1;
        }
    }
    if (cross && n_files < 2) {
        fprintf(stderr, "metafl audit verify: --cross needs two or more FILEs (both sides' "
                "logs)\n");
        return 2;
    }
    /* Cross-checking logs that failed on their own would only repeat it. */
    for (int i = 1; cross && !bad && i < n_files; i++) {
        char msg[1024];
        if (mfl_audit_cross_check(files[0], files[i], msg, sizeof msg) == 0) {
            printf("%s\n", msg);
        } else {
            fprintf(stderr, "%s\n", msg);
            bad = 1;
        }
    }
    return bad;
}

typedef struct {
    const char *site;
    int has_round;
    uint64_t round;
    size_t shown, total;
    uint64_t first_round, last_round;
} s_show_t;

static int s_show_row(void *arg, size_t line_no, const mfl_audit_record_t *r)
{
    (void)line_no;
    s_show_t *opt = arg;
    opt->total++;
    if (opt->site && strcmp(opt->site, r->site) != 0)
        return 0;
    if (opt->has_round && opt->round != r->round)
        return 0;
    char when[32] = "?";
    time_t secs = (time_t)(r->time_ms / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    char hash[13];
    for (int i = 0; i < 6; i++)
        snprintf(hash + 2 * i, 3, "%02x", r->hash[i]);
    /* A record keeping the site's signed header shows what the site did not
     * send (DP: docs/PRIVACY.md) as "not sent", never as a count of 0. */
    char n[24], withheld[160] = "";
    snprintf(n, sizeof n, "%" PRIu64, r->n);
    mfl_update_header_t h;
    char herr[160];
    if (r->signed_header_len &&
        mfl_update_header_decode(r->signed_header, r->signed_header_len, &h, herr,
                                 sizeof herr) == 0 && h.not_sent) {
        static const struct { uint32_t bit; const char *name; } f[] = {
            {MFL_STAT_N_SAMPLES, "n_samples"},     {MFL_STAT_LOSS_BEFORE, "loss_before"},
            {MFL_STAT_LOSS_AFTER, "loss_after"},   {MFL_STAT_N_TASKS, "n_tasks"},
            {MFL_STAT_PRE_CLIP_NORM, "pre_clip_norm"}};
        size_t at = (size_t)snprintf(withheld, sizeof withheld, "not sent:");
        for (size_t i = 0; i < sizeof f / sizeof f[0] && at < sizeof withheld; i++)
            if (h.not_sent & f[i].bit)
                at += (size_t)snprintf(withheld + at, sizeof withheld - at, " %s", f[i].name);
        if (h.not_sent & MFL_STAT_N_SAMPLES)
            snprintf(n, sizeof n, "not sent");
    }
    printf("%6" PRIu64 "  %s  %5" PRIu64 "  %-16.16s  %-15s  %8s  %10.4g  %s%s%s%s%s\n",
           r->seq, when, r->round, r->site[0] ? r->site : "-", mfl_audit_kind_name(r->kind),
           n, r->norm, hash, r->reason[0] ? "  " : "", r->reason, withheld[0] ? "  " : "",
           withheld);
    if (r->round && (!opt->first_round || r->round < opt->first_round))
        opt->first_round = r->round;
    if (r->round > opt->last_round)
        opt->last_round = r->round;
    opt->shown++;
    return 0;
}

static int s_show(int argc, char **argv)
{
    const char *file = NULL;
    s_show_t opt = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--site") == 0 && i + 1 < argc) {
            opt.site = argv[++i];
        } else if (strcmp(argv[i], "--round") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            opt.round = strtoull(argv[++i], &end, 10);
            /* strtoull takes "-1" (as 2^64-1) and blanks: digits only. */
            if (*end || !isdigit((unsigned char)argv[i][0]) || errno) {
                fprintf(stderr, "metafl audit show: --round wants a number, got '%s'\n",
                        argv[i]);
                return 2;
            }
            opt.has_round = 1;
        } else if (argv[i][0] == '-' || file) {
            fprintf(stderr, "metafl audit show: unexpected argument '%s'\n", argv[i]);
            return 2;
        } else {
            file = argv[i];
        }
    }
    if (!file) {
        fprintf(stderr, "metafl audit show: need FILE (see --help)\n");
        return 2;
    }
    printf("%6s  %-19s  %5s  %-16s  %-15s  %8s  %10s  %-12s  %s\n", "seq", "time (UTC)",
           "round", "site", "kind", "n", "norm", "hash", "note");
    char err[1024];
    if (mfl_audit_foreach(file, s_show_row, &opt, err, sizeof err) != 0) {
        fflush(stdout);
        fprintf(stderr, "metafl audit show: %s\n", err);
        return 1;
    }
    printf("\n%zu of %zu records shown", opt.shown, opt.total);
    if (opt.last_round)
        printf(", rounds %llu..%llu", (unsigned long long)opt.first_round,
               (unsigned long long)opt.last_round);
    printf(".\nn: rows the site trained on (round_* records: sites; 'not sent': a DP site\n"
           "withheld it, and the note lists every statistic its signed header left out);\n"
           "norm: |delta|;\n"
           "hash: the record's chain hash (first 12 hex). 'show' checks each record's\n"
           "form only; 'metafl audit verify FILE --keys DIR' checks chain and signatures.\n");
    return 0;
}

/* One row per audit subcommand. */
static const struct {
    const char *name;
    int (*run)(int, char **);
} s_subs[] = {
    {"verify", s_verify},
    {"show", s_show},
    {"privacy", mfl_cmd_audit_privacy},
};

int mfl_cmd_audit(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        s_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof s_subs / sizeof s_subs[0]; i++)
        if (strcmp(argv[1], s_subs[i].name) == 0)
            return s_subs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "metafl audit: unknown subcommand '%s' (see 'metafl audit --help')\n",
            argv[1]);
    return 2;
}
