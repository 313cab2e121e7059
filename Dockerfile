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
# V8's young generation as on Node.js 20: from 22 on, V8 sizes it by the machine's memory (64 MiB semi-spaces on a
# 24 GiB machine, against 16), in each of the worker's two isolates (the main thread and the SDK's workflow thread),
# which kept about 250 MiB more resident at 10,000 recoveries in flight (docs/scaling.md, wave 19).
ENV NODE_OPTIONS=--max-semi-space-size=16
# Prometheus metrics when METRICS_PORT is set (compose sets 9464).
EXPOSE 9464
USER node
# The SDK handles SIGTERM (node as PID 1 gets no default handler): the worker drains and exits 0.
CMD ["node", "dist/worker/main.js"]
