# syntax=docker/dockerfile:1
# The mana-ai runner (apps/runner) as a container image. Build from the repository root:
#   docker build -t mana-ai-runner .
# Run: docker run -e DATABASE_URL=postgresql://… -e MANA_SERVICE_KEY=… -p 3067:3067 mana-ai-runner
# See docs/operations.md. Configuration: docs/configuration.md.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: install the workspace, build the runner and its packages, prune to production deps
FROM ${NODE_IMAGE} AS build
ENV CI=true \
    TURBO_TELEMETRY_DISABLED=1
RUN npm install -g pnpm@10.34.9
WORKDIR /src
# The lockfile alone decides what is downloaded: this layer stays cached until it changes.
COPY pnpm-lock.yaml pnpm-workspace.yaml ./
RUN pnpm fetch
COPY . .
RUN pnpm install --offline --frozen-lockfile
RUN pnpm turbo run build --filter=@mana-ai/runner... --output-logs=errors-only
# pnpm 10 deploys non-injected workspaces only with --legacy: the runner with its production
# dependencies (workspace packages included, as built above) in a self-contained directory.
RUN pnpm --filter=@mana-ai/runner deploy --prod --legacy /out

# ---- runtime: the built runner only, as the unprivileged `node` user
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3067 \
    LOG_LEVEL=info \
    TICK_ENABLED=true \
    TICK_INTERVAL_MS=60000
WORKDIR /app
COPY --from=build /out/package.json ./package.json
COPY --from=build /out/dist ./dist
COPY --from=build /out/node_modules ./node_modules
# Only used when DATABASE_URL is unset (embedded PostgreSQL in /app/.mana-ai/pg): mount a volume here.
RUN mkdir -p /app/.mana-ai && chown node:node /app/.mana-ai
USER node
EXPOSE 3067
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3067) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["start"]
