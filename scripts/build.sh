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

npx --no-install tsc -p tsconfig.json
