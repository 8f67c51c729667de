/* `metafl report --md / --html`: the report as a document with plots. */
#ifndef MFL_CLI_REPORT_DOC_H
#define MFL_CLI_REPORT_DOC_H

#include <stdbool.h>
#include <stddef.h>

#include "report_data.h"

/* Writes `out` (Markdown, or HTML if html) and, when gnuplot is on PATH,
 * STEM-loss.png (mean query loss per round, before and after local
 * training) and STEM-accuracy.png (per site: adapted and local-only
 * accuracy at each evaluation round) beside it, STEM being out without
 * its extension; without gnuplot the document says the plots were skipped
 * (and stderr too). 0, or -1 with err. */
int report_doc_write(const report_t *r, const char *out, bool html, char *err, size_t errlen);

#endif
