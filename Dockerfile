# syntax=docker/dockerfile:1
# The Doorwatch image: one binary for `doorwatch agent` (the DaemonSet, which runs it as root with
# CAP_BPF/CAP_PERFMON/CAP_SYS_RESOURCE) and `doorwatch collector` (the Deployment, non-root).
# Kept thin over scripts/build.sh, the build the tests run: same BPF object, same generated code, same tsc.
#
#   docker build -t registry.example/doorwatch:0.1.0 .
#
# The base is pinned to an exact Node.js release on Debian bookworm (the libbpf1 1.1 the agent is tested
# with). Pin it by digest too where you build (NODE_IMAGE=node:20.20.2-bookworm-slim@sha256:…).
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

FROM ${NODE_IMAGE} AS build
# clang compiles the CO-RE BPF program (its own BPF backend: no llc); libbpf-dev has its headers
# (bpf_helpers.h, bpf_core_read.h).
RUN apt-get update \
  && apt-get install -y --no-install-recommends clang libbpf-dev \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first: this layer is reused while the lock file does not change.
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json buf.yaml buf.gen.yaml ./
COPY bpf ./bpf
COPY proto ./proto
COPY src ./src
COPY scripts/build.sh scripts/bundle.mjs ./scripts/
# build/accept.bpf.o, src/gen (buf generate), dist/bundle/ (tsc --noEmit, then esbuild); then only production
# dependencies are kept (the bundle needs only koffi, a native addon, from node_modules).
RUN bash scripts/build.sh \
  && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="doorwatch" \
      org.opencontainers.image.description="Accept auditing for Kubernetes with eBPF: agent (DaemonSet) and collector" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
# The agent loads its BPF object through the system libbpf.so.1 (koffi); nothing else is added.
RUN apt-get update \
  && apt-get install -y --no-install-recommends libbpf1 \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/build/accept.bpf.o ./build/accept.bpf.o
COPY bin ./bin
# Non-root by default, for the collector (its Deployment sets the same uid). The agent's DaemonSet sets
# runAsUser: 0 explicitly: it reads the host's cgroupfs and /proc and writes its hostPath spool, limited by
# its capabilities (helm/doorwatch/values.yaml, docs/install.md).
USER 65532:65532
ENTRYPOINT ["/app/bin/doorwatch.js"]
CMD ["--help"]
