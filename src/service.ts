// The running collector: config → component graph → start in order → ready → drain on
// shutdown (service/service.go). Used by the CLI and, in-process, by the tests.
import type { DestinationStream } from 'pino';
import type { ApiRoute, Host } from './component/types.ts';
import { typeOf, type Registry } from './component/registry.ts';
import { components } from './components.ts';
import { parseConfigText, readConfigSource, type Env } from './config/load.ts';
import { resolveConfig, type ResolvedConfig } from './config/schema.ts';
import { buildGraph, shutdownAll, shutdownOrder, startAll, startOrder, type Graph } from './pipeline/build.ts';
import { createLogger, type Logger } from './telemetry/logger.ts';
import { MetricsRegistry, registerProcessMetrics } from './telemetry/metrics.ts';
import { AdminServer } from './admin/server.ts';

export interface LoadOptions {
  /** A file path, or env:VAR. */
  source: string;
  env?: Env;
  registry?: Registry;
}

/** Reads, expands and validates a config; throws ConfigError listing every problem. */
export function loadConfig(opts: LoadOptions): ResolvedConfig {
  const env = opts.env ?? process.env;
  const { text, name } = readConfigSource(opts.source, env);
  return resolveConfig(parseConfigText(text, name, env), opts.registry ?? components());
}

export interface StartOptions {
  config: ResolvedConfig;
  registry?: Registry;
  /** Where logs go; stdout by default. */
  logDestination?: DestinationStream;
}

export class Service {
  readonly logger: Logger;
  readonly metrics: MetricsRegistry;
  readonly config: ResolvedConfig;
  readonly #graph: Graph;
  readonly #routes: ApiRoute[] = [];
  #ready = false;
  #stopping: Promise<void> | undefined;

  private constructor(opts: StartOptions) {
    this.config = opts.config;
    this.logger = createLogger(opts.config.service.telemetry.logs.level, opts.logDestination);
    this.metrics = new MetricsRegistry();
    registerProcessMetrics(this.metrics);
    this.#graph = buildGraph(opts.config, { registry: opts.registry ?? components(), logger: this.logger, metrics: this.metrics });
  }

  static async start(opts: StartOptions): Promise<Service> {
    const service = new Service(opts);
    const host: Host = {
      logger: service.logger,
      metrics: service.metrics,
      isReady: () => service.#ready,
      api: { add: (r) => void service.#routes.push(r), list: () => service.#routes },
    };
    await startAll(startOrder(service.#graph), host, AbortSignal.timeout(opts.config.service.shutdown_timeout));
    service.#warnRawPipelines();
    service.#ready = true;
    service.logger.info({ endpoints: service.endpoints() }, 'collector started');
    return service;
  }

  isReady(): boolean {
    return this.#ready;
  }

  /** A pipeline with no normalize exports credential attributes as they came: allowed (a plain forwarder), but said. */
  #warnRawPipelines(): void {
    for (const [pipeline, p] of Object.entries(this.config.service.pipelines)) {
      if (p.processors.some((id) => typeOf(id) === 'normalize')) continue;
      this.logger.warn({ pipeline, exporters: p.exporters }, 'pipeline has no normalize processor: credential attributes leave it raw, not fingerprinted');
    }
  }

  /** Listening addresses by component id, e.g. { otlp: { grpc: '…', http: '…' }, admin: { http: '…' } }. */
  endpoints(): Record<string, Record<string, string>> {
    const out: Record<string, Record<string, string>> = {};
    for (const r of this.#graph.receivers) out[r.id] = r.component.endpoints();
    for (const e of this.#graph.extensions) if (e.component instanceof AdminServer) out[e.id] = { http: e.component.address() };
    return out;
  }

  /** SIGHUP: every component that depends on files re-reads them (a broken one keeps what it had). */
  async reload(): Promise<void> {
    this.logger.info('reload requested');
    for (const c of startOrder(this.#graph)) await c.component.reload?.();
  }

  /**
   * Drains in the collector's order within service.shutdown_timeout: receivers stop
   * accepting, processors flush, exporters flush their queues. Idempotent.
   */
  shutdown(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#ready = false;
      const started = Date.now();
      this.logger.info({ timeout_ms: this.config.service.shutdown_timeout }, 'shutting down: draining receivers, processors, exporters');
      const errors = await shutdownAll(shutdownOrder(this.#graph), AbortSignal.timeout(this.config.service.shutdown_timeout), this.logger);
      this.logger.info({ duration_ms: Date.now() - started, errors: errors.length }, 'collector stopped');
    })();
    return this.#stopping;
  }
}
