// admin: the collector's own HTTP endpoint (fastify): /healthz (the process is up),
// /readyz (receivers listen and exporters started; 503 while starting or draining),
// /metrics (Prometheus text) and /api/*, the routes other components publish through
// host.api at start. Extensions start before pipelines, so /api routes are matched at
// request time rather than registered with fastify.
import { z } from 'zod';
import Fastify, { type FastifyInstance } from 'fastify';
import type { ApiRoute, Extension, ExtensionFactory, Host, Settings } from '../component/types.ts';
import { hostPort, splitHostPort } from '../config/units.ts';
import { errorMessage } from '../errors.ts';

export const AdminConfig = z.strictObject({
  endpoint: hostPort.default('localhost:13133'),
});
export type AdminConfig = z.output<typeof AdminConfig>;

/** Thrown by an API handler to answer with a status other than 500. */
export class ApiError extends Error {
  readonly statusCode: number;
  constructor(statusCode: number, message: string) {
    super(message);
    this.statusCode = statusCode;
  }
}

interface CompiledRoute {
  route: ApiRoute;
  pattern: RegExp;
  params: string[];
}

function compile(route: ApiRoute): CompiledRoute {
  const params: string[] = [];
  const source = route.path
    .split('/')
    .map((seg) => (seg.startsWith(':') ? (params.push(seg.slice(1)), '([^/]+)') : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return { route, pattern: new RegExp(`^${source}/?$`), params };
}

export class AdminServer implements Extension {
  readonly #set: Settings;
  readonly #cfg: AdminConfig;
  #app: FastifyInstance | undefined;
  #address = '';
  readonly #startedAt = Date.now();

  constructor(set: Settings, cfg: AdminConfig) {
    this.#set = set;
    this.#cfg = cfg;
  }

  /** host:port the server listens on (the real port when configured with :0). */
  address(): string {
    return this.#address;
  }

  async start(host: Host): Promise<void> {
    const app = Fastify({ logger: false, forceCloseConnections: true });
    app.get('/healthz', async () => ({ status: 'ok', uptime_seconds: Math.round((Date.now() - this.#startedAt) / 1000) }));
    app.get('/readyz', async (_req, reply) => {
      const ready = host.isReady();
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready' });
    });
    app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(host.metrics.render()));

    let compiled: CompiledRoute[] = [];
    let compiledFrom: readonly ApiRoute[] = [];
    const dispatch = async (method: 'GET' | 'POST', url: string, query: Record<string, string | undefined>, body: unknown) => {
      const routes = host.api.list();
      if (routes !== compiledFrom || compiled.length !== routes.length) {
        compiled = routes.map(compile);
        compiledFrom = routes;
      }
      const path = url.slice('/api'.length).split('?')[0]!;
      for (const c of compiled) {
        if (c.route.method !== method) continue;
        const m = c.pattern.exec(path);
        if (!m) continue;
        const params: Record<string, string> = {};
        c.params.forEach((p, i) => (params[p] = decodeURIComponent(m[i + 1]!)));
        return c.route.handler({ params, query, body });
      }
      throw new ApiError(404, `no API route ${method} /api${path}`);
    };
    const api = async (req: { method: string; url: string; query: unknown; body: unknown }, reply: import('fastify').FastifyReply) => {
      try {
        return await dispatch(req.method as 'GET' | 'POST', req.url, (req.query ?? {}) as Record<string, string | undefined>, req.body);
      } catch (err) {
        const code = err instanceof ApiError ? err.statusCode : 500;
        if (code === 500) this.#set.logger.error({ err: errorMessage(err), url: req.url }, 'admin API handler failed');
        return reply.code(code).send({ error: errorMessage(err) });
      }
    };
    app.get('/api/*', api);
    app.post('/api/*', api);

    const { host: bindHost, port } = splitHostPort(this.#cfg.endpoint);
    try {
      await app.listen({ host: bindHost, port });
    } catch (err) {
      await app.close();
      throw new Error(`cannot listen on ${this.#cfg.endpoint}: ${listenProblem(err)}`, { cause: err });
    }
    const addr = app.server.address();
    this.#address = typeof addr === 'object' && addr ? `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` : this.#cfg.endpoint;
    this.#app = app;
    this.#set.logger.info({ endpoint: this.#address }, 'admin server listening (/healthz /readyz /metrics /api)');
  }

  async shutdown(): Promise<void> {
    const app = this.#app;
    this.#app = undefined;
    await app?.close();
  }
}

/** A short reason for a failed listen, e.g. "address already in use". */
export function listenProblem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'EADDRINUSE') return 'address already in use';
  if (code === 'EACCES') return 'permission denied (ports below 1024 need privileges)';
  if (code === 'EADDRNOTAVAIL') return 'address not available on this host';
  if (code === 'ENOTFOUND') return 'host name not found';
  return errorMessage(err);
}

export const adminExtensionFactory: ExtensionFactory<typeof AdminConfig> = {
  kind: 'extension',
  type: 'admin',
  stability: 'beta',
  config: AdminConfig,
  create: (set, cfg) => new AdminServer(set, cfg),
};
