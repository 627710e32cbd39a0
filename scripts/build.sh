#!/usr/bin/env bash
# Build everything from source: the CO-RE BPF object, the generated proto
# types, and the TypeScript. The Dockerfile runs this same script.
set -euo pipefail
cd "$(dirname "$0")/.."

CLANG=${CLANG:-clang}
ARCH=$(uname -m)
case "$ARCH" in
  x86_64) TARGET_ARCH=x86 ;;
  aarch64) TARGET_ARCH=arm64 ;;
  *) TARGET_ARCH=$ARCH ;;
esac

mkdir -p build
for src in bpf/*.bpf.c; do
  obj="build/$(basename "${src%.c}").o"
  # Rebuild when the program or any header it includes changed.
  if [[ ! -f "$obj" ]] || [[ -n "$(find bpf -newer "$obj" -name '*.[ch]' -print -quit)" ]]; then
    "$CLANG" -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_${TARGET_ARCH} -Ibpf -c "$src" -o "$obj"
    echo "built $obj" >&2
  fi
done

# Generated code is a build output (src/gen, git-ignored): the .proto is the
# single source, so it can never be stale in a commit.
if [[ ! -d src/gen ]] || [[ -n "$(find proto buf.gen.yaml -newer src/gen -print -quit)" ]]; then
  rm -rf src/gen
  npx --no-install buf generate
  touch src/gen
  echo "generated src/gen from proto/" >&2
fi

# Type-check, then bundle: one ESM bundle per command (esbuild, code
# splitting along main.ts's lazy imports) instead of ~1 500 module files,
# mostly @kubernetes/client-node's, whose index loads every generated API and
# model as a separate module (docs/benchmarks.md: less RSS, a faster start).
# Whitespace-minified: V8 keeps every module's source text in the heap, and
# kept comments (some with non-ASCII characters, which make V8 store the
# whole text as UTF-16) doubled a 14 MB chunk to 29 MB. Names are kept, so
# stack traces still name their functions; `node --enable-source-maps` maps
# them to src/ through the .map files. koffi is a native addon and stays in
# node_modules. `require` is defined for the bundled CommonJS dependencies
# (grpc-js, pino, ...), which require Node's built-ins. scripts/bundle.mjs
# holds the options, and two plugins that leave out code no command runs.
npx --no-install tsc -p tsconfig.json --noEmit
rm -rf dist
node scripts/bundle.mjs
