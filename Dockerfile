# syntax=docker/dockerfile:1
# The Materi Deploy image: `materi` is the entrypoint, `materi up` the default command.
#   docker build -t materi-deploy .
#   docker run --init -p 4600:4600 -e MATERI_API_TOKEN=… materi-deploy            # the whole stack
#   docker run --init … materi-deploy worker health-monitor --port 4600           # one component
# Compose, systemd, Railway and Render: docs/deploying.md.

# --- build: compile TypeScript, build better-sqlite3's native module, drop dev dependencies ---
FROM node:20-slim AS build
# Only for better-sqlite3's node-gyp build when no prebuilt binary fits; never in the runtime image.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# `prepare` runs the build, which needs the sources: skip every install script here and run the
# one native build the runtime needs explicitly (prebuilt binary, else compiled from source).
RUN npm ci --ignore-scripts --no-audit --no-fund \
  && npm rebuild better-sqlite3
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build \
  && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# --- runtime: node and the compiled CLI, no compilers, not root ---
FROM node:20-slim AS runtime
ENV NODE_ENV=production \
  MATERI_HOST=0.0.0.0 \
  MATERI_DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
# The demo plan and its services, for `materi up --demo`.
COPY examples ./examples
RUN chmod 0755 bin/materi.js \
  && ln -s /app/bin/materi.js /usr/local/bin/materi \
  && groupadd --system --gid 10001 materi \
  && useradd --system --uid 10001 --gid materi --home-dir /data --no-create-home materi \
  && mkdir -p /data \
  && chown materi:materi /data
USER materi
# The embedded files (when no MATERI_REDIS_URL / MATERI_DATABASE_URL) and the local provider's state.
VOLUME ["/data"]
EXPOSE 4600
# Liveness of the HTTP server (slim has no curl). Worker containers need `--port` for it to answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.MATERI_PORT||4600)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM (docker stop) stops materi gracefully: work in flight finishes, forced exit after 20 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["materi"]
CMD ["up"]
