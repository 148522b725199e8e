// Starts a real collector in-process from a YAML string (ports :0), for end-to-end tests.
import { Writable } from 'node:stream';
import { parseConfigText } from '../../src/config/load.ts';
import { resolveConfig } from '../../src/config/schema.ts';
import { components } from '../../src/components.ts';
import { Service } from '../../src/service.ts';

export interface TestCollector {
  service: Service;
  logs: Record<string, unknown>[];
  /** http://host:port of the OTLP/HTTP receiver `otlp`. */
  httpUrl: string;
  /** host:port of the OTLP/gRPC receiver `otlp`. */
  grpcAddress: string;
  /** http://host:port of the admin server. */
  adminUrl: string;
  stop(): Promise<void>;
}

export async function startCollector(yaml: string, env: Record<string, string> = {}): Promise<TestCollector> {
  const logs: Record<string, unknown>[] = [];
  const logDestination = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const config = resolveConfig(parseConfigText(yaml, 'test.yaml', env), components());
  const service = await Service.start({ config, logDestination: logDestination as never });
  const endpoints = service.endpoints();
  const url = (addr: string | undefined) => (addr ? `http://${addr.replace('0.0.0.0', '127.0.0.1')}` : '');
  return {
    service,
    logs,
    httpUrl: url(endpoints.otlp?.http),
    grpcAddress: (endpoints.otlp?.grpc ?? '').replace('0.0.0.0', '127.0.0.1'),
    adminUrl: url(endpoints.admin?.http),
    stop: () => service.shutdown(),
  };
}

/** Reads one sample of a Prometheus text exposition, e.g. metric('x_total', {exporter: 'otlp'}). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (.+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return 0;
}

/** GET on a collector's admin server, JSON; any answer but 200 throws with its body. */
export async function adminGet<T>(adminUrl: string, path: string): Promise<T> {
  const res = await fetch(`${adminUrl}${path}`);
  if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}
