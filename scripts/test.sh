#!/usr/bin/env bash
# The whole suite: unit tests (no privileges), kernel tests (root, real
# probes) and integration tests (real servers: rsyslog, nats-server, gRPC). Kernel tests fail, never skip, when they cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s globstar nullglob
files=(test/unit/**/*.test.ts test/kernel/**/*.test.ts test/integration/**/*.test.ts)
# --test-force-exit: a file whose tests are done exits even if a failed test left a handle open (a server,
# a child), so one failure cannot hang the run; --test-timeout: no single test may take more than 5 min.
# force-exit-flush.ts: that exit waits for the file's last results to reach the runner (nodejs/node#64833
# dropped them, with "fail 0"); check-tap.mjs then fails the run if any test that started has no verdict.
mkdir -p build
tap=build/test-results.tap
rc=0
npx --no-install tsx --import ./test/helpers/force-exit-flush.ts --test --test-concurrency=1 --test-force-exit \
  --test-timeout=300000 --test-reporter=tap --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap" "${files[@]}" || rc=$?
node scripts/check-tap.mjs "$tap" || rc=1
exit "$rc"
