# syntax=docker/dockerfile:1
# The recovery worker (and, with another command, the AnchorBrowser simulator for demos).
# glibc base: @temporalio/core-bridge ships prebuilt binaries for linux-gnu, not musl (no Alpine).
ARG NODE_IMAGE=node:24.11.1-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY activities ./activities
COPY anchor-api ./anchor-api
COPY client ./client
COPY dev ./dev
COPY simulator ./simulator
COPY worker ./worker
COPY workflows ./workflows
# Compile, then bundle the workflows once here so no container runs webpack at start.
RUN npm run build && npm run build:bundle -- dist/workflow-bundle.js

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
ENV WORKFLOW_BUNDLE_PATH=/app/dist/workflow-bundle.js
# The worker's memory (docs/scaling.md, waves 19 and 20), in each of its two V8 isolates (the main thread and the SDK's
# workflow thread; a V8 flag applies to both):
# - the young generation as on Node.js 20: from 22 on, V8 sizes it by the machine's memory (64 MiB semi-spaces on a
#   24 GiB machine, against 16);
# - the old generation collected at twice its live size (the CMD's --heap-growing-percent=100, which NODE_OPTIONS does
#   not take): V8 lets it grow to up to four times when collecting is cheap, and keeps the pages it grew to resident
#   while the worker is busy, so the start of thousands of recoveries set the worker's memory for good;
# - glibc's malloc in two arenas, not eight per core, for the SDK core's threads.
ENV NODE_OPTIONS=--max-semi-space-size=16
ENV MALLOC_ARENA_MAX=2
# Prometheus metrics when METRICS_PORT is set (compose sets 9464).
EXPOSE 9464
USER node
# The SDK handles SIGTERM (node as PID 1 gets no default handler): the worker drains and exits 0.
CMD ["node", "--heap-growing-percent=100", "dist/worker/main.js"]
