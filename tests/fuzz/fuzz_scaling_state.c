/* Fuzzes the federated standardisation record a restarted coordinator
 * reads (checkpoint_dir/scaling.state, mfl_scaling_state_parse;
 * docs/DATA.md): a damaged or planted file must be refused with a reason,
 * never crash or yield a scaling a site would refuse. Properties: no crash,
 * no leak; a refusal says why; what it accepts has 1 to
 * MFL_TASK_SCALING_MAX features, finite means and finite scales > 0, and
 * passes the task codec's own check (what every task then carries). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "round/scaling_record.h"
#include "wire/task_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MFL_SCALING_STATE_MAX) /* the reader refuses bigger files */
        return 0;
    mfl_task_scaling_t sc;
    char err[256] = "";
    int rc = mfl_scaling_state_parse((const char *)data, size, "fuzz", &sc, NULL, err, sizeof err);
    if (rc != 0) {
        if (err[0] == '\0')
            abort(); /* refused without saying why */
        return 0;
    }
    if (sc.n == 0 || sc.n > MFL_TASK_SCALING_MAX)
        abort();
    for (size_t j = 0; j < sc.n; j++)
        if (!isfinite(sc.mean[j]) || !isfinite(sc.scale[j]) || !(sc.scale[j] > 0))
            abort();
    /* what a site decodes from the task that carries it */
    mfl_round_task_t t;
    memset(&t, 0, sizeof t);
    t.round = 1;
    t.scaling = sc;
    mfl_round_task_msg_t msg;
    mfl_round_task_to_msg(&t, &msg);
    mfl_round_task_t back;
    if (mfl_round_task_from_msg(&msg.msg, &back, err, sizeof err) != 0 ||
        back.scaling.n != sc.n ||
        memcmp(back.scaling.mean, sc.mean, sc.n * sizeof sc.mean[0]) != 0 ||
        memcmp(back.scaling.scale, sc.scale, sc.n * sizeof sc.scale[0]) != 0)
        abort();
    return 0;
}
