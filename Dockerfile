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
# Prometheus metrics when METRICS_PORT is set (compose sets 9464).
EXPOSE 9464
USER node
# The SDK handles SIGTERM (node as PID 1 gets no default handler): the worker drains and exits 0.
CMD ["node", "dist/worker/main.js"]
