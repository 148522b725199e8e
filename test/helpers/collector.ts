// Starts a real collector from a YAML string (ports :0), for end-to-end tests: in-process, or as
// `agentsec run` in a child process where a test needs signals and exit codes.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
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

const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;
/** How long stop() waits after SIGTERM before it kills the process. */
const STOP_GRACE_MS = 20_000;

export interface CollectorProcess {
  child: ChildProcess;
  /** Its log lines, parsed (the debug exporter's non-JSON lines are left out). */
  logs: Record<string, unknown>[];
  /** The endpoints it logged when started, as in `collector started`. */
  endpoints: { otlp?: { http?: string; grpc?: string }; admin?: { http?: string } };
  /** The exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** SIGTERM, and the exit code; SIGKILL (and null) if it has not exited after `graceMs`. */
  stop(graceMs?: number): Promise<number | null>;
}

/** Writes `yaml` to `configFile` and runs `agentsec run --config configFile`, until it logs `collector started`. */
export async function spawnCollector(configFile: string, yaml: string): Promise<CollectorProcess> {
  writeFileSync(configFile, yaml);
  const child = spawn(process.execPath, [CLI, 'run', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const endpoints = await new Promise<CollectorProcess['endpoints']>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return; // the debug exporter's lines
      }
      logs.push(entry);
      if (entry.msg === 'collector started') resolve(entry.endpoints as CollectorProcess['endpoints']);
    });
    void exited.then((code) => reject(new Error(`${configFile}: the collector exited with ${code} before it started: ${stderr}`)));
  });
  return {
    child,
    logs,
    endpoints,
    exited,
    async stop(graceMs = STOP_GRACE_MS) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const late = setTimeout(() => child.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(late);
      }
    },
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
