/* The task codec: the plain task types (wire/task.h) to the protocol's
 * messages (proto/metafl.proto) and back. The one place that fills an
 * AlgorithmSpec, a RoundTask, an EvalTask, an EvalReport or reads an
 * UpdateHeader field by field; the transports (coord_wire.c, the site
 * agent, `metafl simulate`) call it at their edge, so the round engine and
 * the site worker see plain C only.
 *
 * Encoding borrows: a message built by a _to_msg function points into the
 * plain struct it came from (keep that alive while the message is packed
 * or sent). Decoding copies: the plain struct owns everything, and a field
 * longer than its cap is refused (-1 with err naming the field), never cut.
 * All functions are thread-safe (no shared state). */
#ifndef MFL_WIRE_TASK_CODEC_H
#define MFL_WIRE_TASK_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "metafl.pb-c.h"
#include "wire/task.h"

/* AlgorithmSpec: *out borrows a's strings. */
void mfl_task_algorithm_to_msg(const mfl_task_algorithm_t *a, Metafl__AlgorithmSpec *out);
/* NULL `m` (a task without an algorithm) is refused: "task has no algorithm". */
int mfl_task_algorithm_from_msg(const Metafl__AlgorithmSpec *m, mfl_task_algorithm_t *out,
                                char *err, size_t errlen);

/* RoundTask with its sub-messages, borrowing from the plain task. */
typedef struct {
    Metafl__RoundTask msg;
    Metafl__AlgorithmSpec algorithm;
    Metafl__PrivacySettings privacy;
    Metafl__SecAggSetup secagg;
    char *secagg_sites[MFL_TASK_SECAGG_MAX_SITES];
} mfl_round_task_msg_t;
/* A task's secagg setup is decoded only if complete: n_sites within
 * 1..MFL_TASK_SECAGG_MAX_SITES, each id non-empty, within its cap and
 * strictly ascending (the order fixes the indices); else refused. */
void mfl_round_task_to_msg(const mfl_round_task_t *t, mfl_round_task_msg_t *out);
int mfl_round_task_from_msg(const Metafl__RoundTask *m, mfl_round_task_t *out, char *err,
                            size_t errlen);

typedef struct {
    Metafl__EvalTask msg;
    Metafl__AlgorithmSpec algorithm;
} mfl_eval_task_msg_t;
void mfl_eval_task_to_msg(const mfl_eval_task_t *t, mfl_eval_task_msg_t *out);
int mfl_eval_task_from_msg(const Metafl__EvalTask *m, mfl_eval_task_t *out, char *err,
                           size_t errlen);

/* EvalReport: *out (initialised here) borrows r's site and nonce. */
void mfl_eval_report_to_msg(const mfl_eval_report_t *r, Metafl__EvalReport *out);
int mfl_eval_report_from_msg(const Metafl__EvalReport *m, mfl_eval_report_t *out, char *err,
                             size_t errlen);

/* A decoded UpdateHeader as the plain header (digest computed). */
int mfl_update_header_from_msg(const Metafl__UpdateHeader *m, mfl_update_header_t *out,
                               char *err, size_t errlen);

#endif
