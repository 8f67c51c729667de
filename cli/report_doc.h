/* `metafl report --md / --html`: the report as a document with plots. */
#ifndef MFL_CLI_REPORT_DOC_H
#define MFL_CLI_REPORT_DOC_H

#include <stdbool.h>
#include <stddef.h>

#include "round/run_report.h"

/* Which feature scaling the run's model trained with, as far as the
 * metrics say: 1 the consortium's pooled mean and scale (a "scaling"
 * event, and model selection's winner, if any, says "scaling federated"),
 * 0 each hospital's own (nothing pooled, or selection chose a setting
 * without it). */
int mfl_cli_report_scaling_pooled(const mfl_report_t *r);

/* One sentence (no trailing period) saying that scaling and, when pooled,
 * from how many sites' fit rows, into out[cap]: what the text, JSON and
 * document reports print next to the chosen setting. */
void mfl_cli_report_scaling_text(const mfl_report_t *r, char *out, size_t cap);

/* Writes `out` (Markdown, or HTML if html) and, when gnuplot is on PATH,
 * STEM-loss.png (mean query loss per round, before and after local
 * training) and STEM-accuracy.png (per site: adapted and local-only
 * accuracy at each evaluation round) beside it, STEM being out without
 * its extension; without gnuplot the document says the plots were skipped
 * (and stderr too). 0, or -1 with err. */
int mfl_cli_report_doc_write(const mfl_report_t *r, const char *out, bool html, char *err, size_t errlen);

#endif
