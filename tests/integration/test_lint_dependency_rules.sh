#!/usr/bin/env bash
# The dependency rules of docs/ARCHITECTURE.md hold on this tree, and the
# checker really catches each kind of break (a small tree that breaks each
# rule once must fail, naming every file).
set -euo pipefail
cd "$(dirname "$0")/../.."
check=tests/lint/check_deps.sh

bash "$check"

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/common/{nn,round,wire,secagg} "$tmp"/coordinator "$tmp"/cli
echo '#include "coordinator/coordinator.h"' > "$tmp/common/round/a.c"   # rule 1
echo '#include "../wire/x.h"'               > "$tmp/common/round/b.c"   # rule 2
echo '#include "metafl.pb-c.h"'             > "$tmp/cli/c.c"            # rule 3
echo '#include "config/yaml_doc.h"'         > "$tmp/common/nn/d.c"      # rule 4
echo '#include "round/round_engine.h"'      > "$tmp/common/secagg/e.c"  # rule 4 (secagg)
echo '#include "fed/aggregate.h"'           > "$tmp/common/secagg/ok.c" # allowed
echo '#include "metafl.pb-c.h"'             > "$tmp/common/wire/ok.c"   # allowed
echo '#include "round/round_engine.h"'      > "$tmp/coordinator/ok.c"   # allowed
if out=$(bash "$check" "$tmp"); then
  echo "check_deps passed a tree that breaks every rule:"; echo "$out"; exit 1
fi
for want in 'common/round/a.c:1: .*rule 1' 'common/round/b.c:1: .*rule 2' \
            'cli/c.c:1: .*rule 3' 'common/nn/d.c:1: .*rule 4' \
            'common/secagg/e.c:1: .*rule 4'; do
  grep -qE "^$want" <<<"$out" || { echo "missing: $want"; echo "$out"; exit 1; }
done
if grep -qE 'ok\.c' <<<"$out"; then echo "flagged an allowed include:"; echo "$out"; exit 1; fi
# The test-pipe rule: the tree holds it, and a pipe into a quiet grep is
# caught (the fixture builds the pattern so this file does not hold it).
bash tests/lint/check_test_pipes.sh
mkdir -p "$tmp/tests/integration"
q='grep -q'; cq='grep -c -q'
printf '#!/bin/bash\nfoo | %s bar\nfoo | %s bar\n%s bar <<<"$x"\n' "$q" "$cq" "$q" >"$tmp/tests/integration/t.sh"
if out=$(bash tests/lint/check_test_pipes.sh "$tmp"); then
  echo "check_test_pipes passed a pipe into a quiet grep"; exit 1
fi
[ "$(grep -c '^tests/integration/t.sh:[23]:' <<<"$out")" = 2 ] || { echo "want lines 2 and 3 flagged:"; echo "$out"; exit 1; }
if grep -q '^tests/integration/t.sh:4:' <<<"$out"; then echo "flagged a here-string:"; echo "$out"; exit 1; fi
echo "dependency rules: the tree holds them, and the checker catches all four kinds of break; no test script pipes into a quiet grep"
