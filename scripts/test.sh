#!/usr/bin/env bash
# The whole suite: unit tests (no privileges), kernel tests (root, real
# probes) and integration tests (real servers: rsyslog, nats-server, gRPC). Kernel tests fail, never skip, when they cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s globstar nullglob
files=(test/unit/**/*.test.ts test/kernel/**/*.test.ts test/integration/**/*.test.ts)
# --test-force-exit: a file whose tests are done exits even if a failed test left a handle open (a server,
# a child), so one failure cannot hang the run; --test-timeout: no single test may take more than 5 min.
exec npx --no-install tsx --test --test-concurrency=1 --test-force-exit --test-timeout=300000 "${files[@]}"
