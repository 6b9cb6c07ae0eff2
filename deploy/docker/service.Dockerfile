# One image recipe for every atoll service. Build it from the repository root:
#
#   docker build -f deploy/docker/service.Dockerfile --build-arg APP=content -t atoll/content .
#
# APP is gateway, auth, content or notifier, or dev-tools (the local stack's mail inbox and OpenID
# provider, apps/dev-tools: never part of a deployment). Stages:
#   base     node:24-slim with the pnpm version of package.json "packageManager"
#   prune    `turbo prune --docker`: APP and the workspace packages it uses, nothing else
#   build    install from the pruned lockfile, build APP and its dependencies with turbo, then
#            `pnpm deploy --prod` into /out: package.json, dist/ and production node_modules only
#   runtime  node:24-slim, non-root, /out as /app, `node dist/main.js` as PID 1
#   <APP>    the runtime plus the service's port; the last line picks it
#
# Needs BuildKit (the default builder since Docker Engine 23) for the pnpm store cache mount.
# packages/testkit/test/compose.test.ts checks this file statically (CI has no Docker engine).

# Pinned to the repository: pnpm as in package.json "packageManager", turbo as in pnpm-lock.yaml.
ARG PNPM_VERSION=10.34.9
ARG TURBO_VERSION=2.11.11
ARG APP

FROM node:24-slim AS base
ARG PNPM_VERSION
# Not corepack: its signature check of the downloaded pnpm is not reliable; npm is already here.
ENV PNPM_HOME=/pnpm \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    TURBO_TELEMETRY_DISABLED=1
RUN npm i -g pnpm@${PNPM_VERSION}

FROM base AS prune
ARG APP
ARG TURBO_VERSION
RUN npm i -g turbo@${TURBO_VERSION}
WORKDIR /repo
COPY . .
RUN case "${APP}" in \
      gateway|auth|content|notifier|dev-tools) ;; \
      *) echo "build with --build-arg APP=gateway|auth|content|notifier|dev-tools (got '${APP}')" >&2; exit 1 ;; \
    esac \
 && turbo prune "@atoll/${APP}" --docker

FROM base AS build
ARG APP
WORKDIR /repo
# Manifests and lockfile first, so this layer is reused until a dependency changes.
COPY --from=prune /repo/out/json/ ./
RUN --mount=type=cache,id=pnpm-store,target=/pnpm/store \
    pnpm install --frozen-lockfile
# Then the sources; turbo prune does not carry the root tsconfig every package extends.
COPY --from=prune /repo/out/full/ ./
COPY --from=prune /repo/tsconfig.base.json ./
RUN pnpm turbo run build --filter="@atoll/${APP}..."
# pnpm 10's deploy builds a dedicated lockfile for APP from pnpm-lock.yaml, so /out gets exactly the
# locked versions (the --legacy implementation resolves again instead). It requires injected workspace
# packages; they are turned on for this one command only: the workspace keeps symlinked packages for
# development (`atoll-source` condition, --watch). Injected workspace packages are copied with their
# built dist/ (no package has a "files" field and the root .gitignore does not apply inside them).
RUN --mount=type=cache,id=pnpm-store,target=/pnpm/store \
    pnpm --config.inject-workspace-packages=true deploy --filter="@atoll/${APP}" --prod /out

FROM node:24-slim AS runtime
ENV NODE_ENV=production
# At most 4 MiB per semi-space for V8's young generation: it holds each service's peak RSS down under
# load; `gc` for the full collection a service runs at rest; one V8 worker thread; glibc's malloc with
# two arenas at most and large blocks mapped apart, given back once freed (SERVICE_NODE_OPTIONS and
# SERVICE_ENV in packages/testkit/src/service-process.ts say why; a test keeps them equal).
ENV NODE_OPTIONS="--max-semi-space-size=4 --expose-gc --v8-pool-size=1"
ENV MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=32768
WORKDIR /app
# Owned by root and read-only for the service user: the process cannot rewrite its own code.
COPY --from=build /out/package.json ./package.json
COPY --from=build /out/node_modules ./node_modules
COPY --from=build /out/dist ./dist
USER node
# Liveness only (the process answers); readiness (/health/ready) is for orchestrators to ask.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + process.env.PORT + '/health/live', { signal: AbortSignal.timeout(2500) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Node itself receives SIGTERM: no package manager or shell in between (main.ts closes gracefully).
CMD ["node", "dist/main.js"]

# Each service's own port (the default of its config), for PORT, EXPOSE and the health check.
FROM runtime AS gateway
ENV PORT=3000
EXPOSE 3000

FROM runtime AS auth
ENV PORT=3001
EXPOSE 3001

FROM runtime AS content
ENV PORT=3002
EXPOSE 3002

FROM runtime AS notifier
ENV PORT=3003
EXPOSE 3003

# No health routes: compose asks each tool its own way.
FROM runtime AS dev-tools
HEALTHCHECK NONE
CMD ["node", "dist/mail.js"]

FROM ${APP}
