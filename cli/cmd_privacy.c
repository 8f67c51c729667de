/* metafl privacy epsilon|sigma: the RDP accountant for people and scripts.
 * Plain numbers on stdout (one per line), --json for tools; bad values are
 * refused with a message and exit 2. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "privacy/accountant.h"

int mfl_cmd_privacy(int argc, char **argv);

/* Opacus's get_noise_multiplier tolerance: ε within 0.01 below the target. */
#define S_SIGMA_TOLERANCE 0.01

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: metafl privacy epsilon --q Q --sigma S --steps T --delta D\n"
            "                              [--orders A,B,...] [--classic] [--json]\n"
            "       metafl privacy sigma --epsilon E --delta D --q Q --steps T [--json]\n\n"
            "The Renyi-DP accountant the sites use (docs/PRIVACY.md), for the\n"
            "subsampled Gaussian mechanism: T steps, each on a Poisson sample of rate Q\n"
            "with noise multiplier S (noise std = S x clip norm).\n\n"
            "  epsilon   prints epsilon (%%.12g) and, on the next line, the Renyi order\n"
            "            that gave it; conversion to (epsilon, delta) by Balle et al. 2020\n"
            "            (as Opacus), or Mironov 2017 with --classic\n"
            "  sigma     prints the smallest noise multiplier found (like Opacus's\n"
            "            get_noise_multiplier: epsilon within 0.01 below E)\n\n"
            "  --q Q          sample rate, in (0, 1]; 1 = every record every step\n"
            "  --sigma S      noise multiplier, > 0\n"
            "  --steps T      number of steps (whole number >= 1)\n"
            "  --delta D      delta, in (0, 1)\n"
            "  --epsilon E    target epsilon, > 0\n"
            "  --orders LIST  comma-separated Renyi orders (> 1); default Opacus's\n"
            "                 1.1, 1.2, ..., 10.9, 12, ..., 63\n"
            "  --classic      use the classic conversion (looser; for comparison)\n"
            "  --json         one JSON object instead of plain numbers\n"
            "  --help         this text\n");
}

/* Parses a finite number from `s` for option `opt`; 0 or -1 with a message. */
static int s_number(const char *opt, const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v)) {
        fprintf(stderr, "metafl privacy: %s: '%s' is not a finite number\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Parses "a,b,c" into orders; 0 or -1 with a message. */
static int s_orders(const char *s, double *orders, size_t *n)
{
    *n = 0;
    const char *p = s;
    for (;;) {
        if (*n == MFL_RDP_MAX_ORDERS) {
            fprintf(stderr, "metafl privacy: --orders: more than %d orders\n", MFL_RDP_MAX_ORDERS);
            return -1;
        }
        char *end = NULL;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || (*end != ',' && *end != '\0') || errno == ERANGE) {
            fprintf(stderr, "metafl privacy: --orders: '%s' is not a comma-separated list of numbers\n", s);
            return -1;
        }
        orders[(*n)++] = v;
        if (*end == '\0')
            return 0;
        p = end + 1;
    }
}

typedef struct {
    double q, sigma, steps, delta, epsilon;
    double orders[MFL_RDP_MAX_ORDERS];
    size_t n_orders;
    int classic, json;
} s_args_t;

/* Reads options after the verb; 0, 1 for --help (printed), or -1 (bad). */
static int s_parse(int argc, char **argv, s_args_t *a)
{
    a->q = a->sigma = a->steps = a->delta = a->epsilon = NAN;
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            s_usage(stdout);
            return 1;
        }
        if (strcmp(o, "--json") == 0) {
            a->json = 1;
            continue;
        }
        if (strcmp(o, "--classic") == 0) {
            a->classic = 1;
            continue;
        }
        double *dst = strcmp(o, "--q") == 0         ? &a->q
                      : strcmp(o, "--sigma") == 0   ? &a->sigma
                      : strcmp(o, "--steps") == 0   ? &a->steps
                      : strcmp(o, "--delta") == 0   ? &a->delta
                      : strcmp(o, "--epsilon") == 0 ? &a->epsilon
                                                    : NULL;
        int is_orders = strcmp(o, "--orders") == 0;
        if ((!dst && !is_orders) || i + 1 >= argc) {
            fprintf(stderr, "metafl privacy: %s '%s'\n",
                    (!dst && !is_orders) ? "unexpected argument" : "missing value after", o);
            return -1;
        }
        const char *v = argv[++i];
        if (is_orders ? s_orders(v, a->orders, &a->n_orders) : s_number(o, v, dst))
            return -1;
    }
    return 0;
}

/* Names the first required option that was not given; 0 or -1. */
static int s_require(const char *verb, const char *names[], const double *vals[], int n)
{
    for (int k = 0; k < n; k++) {
        if (isnan(*vals[k])) {
            fprintf(stderr, "metafl privacy %s: %s is required (see --help)\n", verb, names[k]);
            return -1;
        }
    }
    return 0;
}

static int s_epsilon(const s_args_t *a)
{
    const char *names[] = {"--q", "--sigma", "--steps", "--delta"};
    const double *vals[] = {&a->q, &a->sigma, &a->steps, &a->delta};
    char err[256];
    if (s_require("epsilon", names, vals, 4) != 0)
        return 2;
    if (mfl_privacy_check_args(a->q, a->sigma, a->steps, a->delta, err, sizeof err) != 0) {
        fprintf(stderr, "metafl privacy epsilon: %s\n", err);
        return 2;
    }
    mfl_privacy_accountant_t acc;
    if (mfl_privacy_accountant_init(&acc, a->n_orders ? a->orders : NULL, a->n_orders, err,
                                    sizeof err) != 0) {
        fprintf(stderr, "metafl privacy epsilon: --%s\n", err);
        return 2;
    }
    double eps, order;
    mfl_rdp_conversion_t conv = a->classic ? MFL_RDP_CONVERT_CLASSIC : MFL_RDP_CONVERT_BALLE2020;
    if (mfl_privacy_accountant_add(&acc, a->q, a->sigma, a->steps, err, sizeof err) != 0 ||
        mfl_privacy_accountant_epsilon(&acc, a->delta, conv, &eps, &order, err, sizeof err) != 0) {
        fprintf(stderr, "metafl privacy epsilon: %s\n", err);
        return 1;
    }
    if (a->json)
        printf("{\"epsilon\":%.12g,\"order\":%.12g,\"q\":%.12g,\"sigma\":%.12g,\"steps\":%.0f,"
               "\"delta\":%.12g,\"conversion\":\"%s\"}\n",
               eps, order, a->q, a->sigma, a->steps, a->delta, a->classic ? "classic" : "balle2020");
    else
        printf("%.12g\n%.12g\n", eps, order);
    return 0;
}

static int s_sigma(const s_args_t *a)
{
    const char *names[] = {"--epsilon", "--delta", "--q", "--steps"};
    const double *vals[] = {&a->epsilon, &a->delta, &a->q, &a->steps};
    char err[256];
    if (s_require("sigma", names, vals, 4) != 0)
        return 2;
    if (a->n_orders || a->classic) {
        fprintf(stderr, "metafl privacy sigma: --orders and --classic apply to 'epsilon' only\n");
        return 2;
    }
    if (!(a->epsilon > 0.0)) {
        fprintf(stderr, "metafl privacy sigma: epsilon must be > 0, got %g\n", a->epsilon);
        return 2;
    }
    if (mfl_privacy_check_args(a->q, NAN, a->steps, a->delta, err, sizeof err) != 0) {
        fprintf(stderr, "metafl privacy sigma: %s\n", err);
        return 2;
    }
    double sigma;
    if (mfl_privacy_noise_for_epsilon(a->epsilon, a->delta, a->q, a->steps, S_SIGMA_TOLERANCE,
                                      &sigma, err, sizeof err) != 0) {
        fprintf(stderr, "metafl privacy sigma: %s\n", err);
        return 1;
    }
    if (a->json)
        printf("{\"sigma\":%.12g,\"epsilon\":%.12g,\"delta\":%.12g,\"q\":%.12g,\"steps\":%.0f}\n",
               sigma, a->epsilon, a->delta, a->q, a->steps);
    else
        printf("%.12g\n", sigma);
    return 0;
}

int mfl_cmd_privacy(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    const char *verb = argv[1];
    if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) {
        s_usage(stdout);
        return 0;
    }
    if (strcmp(verb, "epsilon") != 0 && strcmp(verb, "sigma") != 0) {
        fprintf(stderr, "metafl privacy: unknown verb '%s' (epsilon or sigma)\n", verb);
        return 2;
    }
    s_args_t a;
    memset(&a, 0, sizeof a);
    int rc = s_parse(argc, argv, &a);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    return verb[0] == 'e' ? s_epsilon(&a) : s_sigma(&a);
}
