/* metafl audit privacy LOG --keys DIR: recompute each site's ε from the
 * DP parameters in a verified audit log, independently of the ε the site
 * wrote, and name every record whose claim disagrees (docs/PRIVACY.md). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "privacy/ledger.h"

int mfl_cmd_audit_privacy(int argc, char **argv);

#define S_MAX_SITES 1024

typedef struct {
    char site[MFL_AUDIT_NAME_MAX + 1];
    size_t releases;
    double claimed, recomputed, delta;
} s_site_t;

typedef struct {
    const char *file;
    s_site_t sites[S_MAX_SITES];
    size_t n_sites;
    size_t overflow;
} s_state_t;

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: metafl audit privacy LOG --keys DIR\n\n"
            "Verifies LOG (as 'metafl audit verify'), then recomputes, per site, the\n"
            "epsilon spent after every differentially private update recorded in it,\n"
            "from the record's own (q, sigma, steps, delta) and the records before it,\n"
            "with the same RDP accountant as the sites (docs/PRIVACY.md), ignoring the\n"
            "epsilon the site claims. Every record whose claim disagrees is named as\n"
            "LOG:LINE: record N. Works on a site's log (update_sent) and on the\n"
            "coordinator's (update_accepted and update_rejected, per site).\n\n"
            "Exit 0: every claim agrees; 1: a claim disagrees or the log does not verify.\n\n"
            "  --keys DIR   NAME.pub of the log's writer and of every site in it\n"
            "  --help       this text\n");
}

static void s_on_release(void *arg, const mfl_privacy_release_t *r)
{
    s_state_t *st = arg;
    if (r->disagrees)
        printf("%s:%zu: record %llu: site %s round %llu claims epsilon %.12g, recomputed "
               "%.12g (q %g, sigma %g, steps %llu, delta %g)\n",
               st->file, r->line, (unsigned long long)r->seq, r->site,
               (unsigned long long)r->round, r->claimed, r->recomputed, r->q, r->sigma,
               (unsigned long long)r->steps, r->delta);
    s_site_t *s = NULL;
    for (size_t i = 0; i < st->n_sites && !s; i++)
        if (strcmp(st->sites[i].site, r->site) == 0)
            s = &st->sites[i];
    if (!s) {
        if (st->n_sites == S_MAX_SITES) {
            st->overflow++;
            return;
        }
        s = &st->sites[st->n_sites++];
        snprintf(s->site, sizeof s->site, "%s", r->site);
    }
    s->releases++;
    s->claimed = r->claimed;
    s->recomputed = r->recomputed;
    s->delta = r->delta;
}

int mfl_cmd_audit_privacy(int argc, char **argv)
{
    const char *file = NULL, *keys = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc) {
            keys = argv[++i];
        } else if (argv[i][0] != '-' && !file) {
            file = argv[i];
        } else {
            fprintf(stderr, "metafl audit privacy: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!file || !keys) {
        fprintf(stderr, "metafl audit privacy: need LOG and --keys DIR (see --help)\n");
        return 2;
    }
    static s_state_t st; /* ~100 KB: not on the stack */
    memset(&st, 0, sizeof st);
    st.file = file;
    mfl_audit_report_t rep;
    if (mfl_audit_verify(file, keys, &rep) != 0) {
        fprintf(stderr, "%s\n  -> the log does not verify, so its privacy records prove "
                "nothing; see 'metafl audit verify'\n", rep.message);
        return 1;
    }
    char err[1024];
    long bad = mfl_privacy_audit_log(file, s_on_release, &st, err, sizeof err);
    if (bad < 0) {
        fprintf(stderr, "metafl audit privacy: %s\n", err);
        return 1;
    }
    printf("%-24s %9s %16s %16s %10s\n", "site", "releases", "claimed eps", "recomputed eps",
           "delta");
    for (size_t i = 0; i < st.n_sites; i++) {
        const s_site_t *s = &st.sites[i];
        printf("%-24s %9zu %16.10g %16.10g %10g\n", s->site, s->releases, s->claimed,
               s->recomputed, s->delta);
    }
    if (st.overflow)
        printf("(%zu releases of sites beyond the first %d not tabulated; all were checked)\n",
               st.overflow, S_MAX_SITES);
    if (bad > 0) {
        printf("%ld record(s) claim an epsilon the recorded parameters do not give\n", bad);
        return 1;
    }
    printf("ok: %zu site(s); every claimed epsilon agrees with the recomputation (%s)\n",
           st.n_sites, rep.message);
    return 0;
}
