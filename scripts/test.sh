#!/usr/bin/env bash
# The whole suite: unit tests (no privileges), kernel tests (root, real
# probes) and integration tests (real servers: rsyslog, nats-server, gRPC). Kernel tests fail, never skip, when they cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s globstar nullglob
files=(test/unit/**/*.test.ts test/kernel/**/*.test.ts test/integration/**/*.test.ts)
exec npx --no-install tsx --test --test-concurrency=1 "${files[@]}"
