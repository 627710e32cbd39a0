#!/usr/bin/env bash
# The whole suite: unit tests (no privileges) and kernel tests (root, real
# probes). Kernel tests fail, never skip, when they cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s globstar nullglob
files=(test/unit/**/*.test.ts test/kernel/**/*.test.ts)
exec npx --no-install tsx --test --test-concurrency=1 "${files[@]}"
