# agentsec collector image. Node 24 runs the TypeScript sources directly (type stripping):
# there is no build step, only dependencies to install.
#   docker build -t agentsec-collector .               the collector (the last stage; production dependencies only)
#   docker build --target demo -t agentsec-demo .      the demo's agents (needs the OpenTelemetry SDK: every dependency)
# Configuration: a mounted file (`run --config=/etc/agentsec/config.yaml`), the whole YAML in a
# variable (`--config=env:VAR`, as the OpenTelemetry Operator does), or the embedded defaults
# chosen by AGENTSEC_OTLP_ENDPOINT / AGENTSEC_MODE=sidecar. State (the HMAC key, findings
# files) goes to the volume /var/lib/agentsec.

# ---------------------------------------------------------------- production dependencies
FROM node:24-slim AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error && npm cache clean --force

# ---------------------------------------------------------------- the demo's agents
# demo/run.ts with every dependency (the OpenTelemetry SDK and exporters are dev dependencies).
# docker-compose.yml points it at the collector with OTEL_EXPORTER_OTLP_ENDPOINT.
FROM node:24-slim AS demo
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error && npm cache clean --force
COPY src ./src
COPY proto ./proto
COPY config ./config
COPY bench/collector-process.ts ./bench/collector-process.ts
COPY demo ./demo
USER node
ENTRYPOINT ["/usr/bin/tini", "-s", "--", "node", "demo/run.ts"]

# ---------------------------------------------------------------- the collector
FROM node:24-slim AS runtime
# tini as PID 1: it forwards SIGTERM to node (node as PID 1 would ignore it) and reaps
# children; -s also lets it run under `docker run --init`.
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/agentsec && chown node:node /var/lib/agentsec
WORKDIR /app
# NODE_OPTIONS carries the flag `npm start` uses (a 64 MiB semi-space: +25% throughput for the
# batches enrich holds) so that a deployment can replace it whole, e.g. a sidecar with
# "--max-semi-space-size=16 --max-old-space-size=144" (node ignores NODE_OPTIONS flags that the
# command line repeats, so none are on the command line).
ENV NODE_OPTIONS="--max-semi-space-size=64" \
    AGENTSEC_DATA_DIR=/var/lib/agentsec
COPY --from=prod-deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY proto ./proto
COPY config ./config
# A config without service.data_dir (the Operator drops unknown service keys) uses ./data: the volume too.
RUN ln -s /var/lib/agentsec /app/data
VOLUME ["/var/lib/agentsec"]
# OTLP/gRPC, OTLP/HTTP, admin (/healthz /readyz /metrics /api)
EXPOSE 4317 4318 13133
USER node
# No curl in the slim image: node's fetch. The port follows AGENTSEC_ADMIN_ENDPOINT.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const p=(process.env.AGENTSEC_ADMIN_ENDPOINT||'').split(':').pop()||'13133';fetch('http://127.0.0.1:'+p+'/healthz',{signal:AbortSignal.timeout(3000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "-s", "--", "node", "src/cli.ts"]
CMD ["run"]
