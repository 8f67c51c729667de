/* Fuzzes the site config reader (a hospital's YAML, possibly hand-edited
 * badly), with its privacy policy. Properties: never crashes, never leaks;
 * a refusal says why; an accepted config's policy passes the policy's own
 * checks (so the worker never runs with a σ ≤ 0, δ ≥ 1, ε ≤ 0, clip ≤ 0 or
 * min records < 1), and a DP mode has an audit log for its ledger. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "privacy/policy.h"
#include "site/site_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mfl_site_config_t c;
    char err[512];
    if (mfl_site_config_parse((const char *)data, size, "fuzz.yaml", &c, err, sizeof err) != 0) {
        if (!memchr(err, '\0', sizeof err) || !err[0])
            abort(); /* a refusal must say why */
        return 0;
    }
    if (mfl_privacy_policy_check(&c.privacy, err, sizeof err) != 0)
        abort();
    if (c.privacy.mode != MFL_PRIVACY_MODE_NONE && !c.audit_log[0])
        abort();
    if (!(c.train_fraction > 0 && c.train_fraction <= 1) || c.threads < 1)
        abort();
    mfl_site_config_clear(&c);
    return 0;
}
