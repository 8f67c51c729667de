/* Fuzzes the audit record parser (the auditor feeds it files nobody
 * vouches for). Property: anything it accepts formats back to a line that
 * parses to the same record, and accepted canonical lines are stable. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mfl_audit_record_t rec, again;
    static char line[MFL_AUDIT_LINE_MAX + 2];
    char err[256];
    if (mfl_audit_record_parse((const char *)data, size, &rec, err, sizeof err) != 0)
        return 0;
    size_t body;
    long n = mfl_audit_format(&rec, 1, line, sizeof line, &body, err, sizeof err);
    if (n < 0)
        abort(); /* the parser accepted a record the writer could not write */
    if (mfl_audit_record_parse(line, (size_t)n, &again, err, sizeof err) != 0)
        abort();
    if (memcmp(&rec, &again, sizeof rec) != 0)
        abort();
    return 0;
}
