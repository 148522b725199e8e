// The agentsec command as users run it, in a child process: exit codes and messages, and a
// SIGTERM under load that loses nothing the collector acknowledged.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeTraceProtobuf } from '../../src/otlp/encode.ts';
import { toHex } from '../../src/otlp/ids.ts';
import { FakeBackend } from '../helpers/fake-backend.ts';
import { spawnCollector, type CollectorProcess } from '../helpers/collector.ts';
import { makeBatch, spansOf } from '../helpers/batch.ts';
import { grpcClient, grpcExport, postProtobuf } from '../receivers/otlp-helpers.ts';

const CLI = join(import.meta.dirname, '../../src/cli.ts');
const dir = mkdtempSync(join(tmpdir(), 'agentsec-cli-'));

function writeConfig(name: string, yaml: string): string {
  const file = join(dir, name);
  writeFileSync(file, yaml);
  return file;
}

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, AGENTSEC_OTLP_ENDPOINT: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const pipelineYaml = (http: string, grpc: string, exporter: string, extra = '') => `
receivers:
  otlp:
    protocols:
      http: { endpoint: "${http}" }
      grpc: { endpoint: "${grpc}" }
exporters:
  ${exporter}
service:
  telemetry: { logs: { level: info } }
  ${extra}
  pipelines:
    traces: { receivers: [otlp], exporters: [${exporter.split(':')[0]!.trim()}] }
`;

describe('exit codes', () => {
  it('validate: 0 for a good config, 3 naming every bad key, 3 for an unreadable file', () => {
    const good = cli('validate', '--config', writeConfig('good.yaml', pipelineYaml('127.0.0.1:0', '127.0.0.1:0', 'debug: {}')));
    expect(good).toMatchObject({ code: 0 });
    expect(good.stdout).toMatch(/good.yaml: valid/);

    const bad = cli('validate', '--config', writeConfig('bad.yaml', pipelineYaml('nowhere', '127.0.0.1:0', 'otlp: { protocol: smtp }')));
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/receivers::otlp::protocols::http::endpoint: must be host:port/);
    expect(bad.stderr).toMatch(/exporters::otlp::endpoint: is required/);
    expect(bad.stderr).toMatch(/exporters::otlp::protocol: /);

    const missing = cli('run', '--config', join(dir, 'nope.yaml'));
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/cannot read .*nope.yaml: no such file/);
  });

  it('2 for bad usage, and lists components', () => {
    expect(cli('launch').code).toBe(2);
    expect(cli('run', '--colour').code).toBe(2);
    const components = cli('components');
    expect(components.code).toBe(0);
    expect(components.stdout).toMatch(/receivers: otlp/);
    expect(components.stdout).toMatch(/exporters: debug, file, otlp/);
  });

  it('4 when a port is already in use, naming the endpoint', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = cli('run', '--config', writeConfig('busy.yaml', pipelineYaml(`127.0.0.1:${port}`, '127.0.0.1:0', 'debug: {}')));
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(new RegExp(`127.0.0.1:${port}.*address already in use`));
    } finally {
      blocker.close();
    }
  });
});

describe('SIGTERM under load', () => {
  let collector: CollectorProcess | undefined;
  let backend: FakeBackend | undefined;
  afterEach(async () => {
    collector?.child.kill('SIGKILL');
    await backend?.close();
  });

  it('drains and exits 0; every span it acknowledged reaches the downstream', async () => {
    backend = await FakeBackend.start();
    collector = await spawnCollector(
      join(dir, 'drain.yaml'),
      pipelineYaml(
        '127.0.0.1:0',
        '127.0.0.1:0',
        `otlp: { endpoint: "${backend.httpUrl}", protocol: http/protobuf, retry_on_failure: { initial_interval: 100ms } }`,
        'shutdown_timeout: 15s',
      ),
    );
    const endpoints = { http: collector.endpoints.otlp!.http!, grpc: collector.endpoints.otlp!.grpc! };

    const acknowledged = new Set<string>();
    let stop = false;
    const grpc = grpcClient(endpoints.grpc);
    const load = async (transport: 'http' | 'grpc') => {
      while (!stop) {
        const batch = makeBatch(50);
        const body = Buffer.from(encodeTraceProtobuf(batch.resourceSpans));
        try {
          const ok = transport === 'http' ? (await postProtobuf(endpoints.http, body)).status === 200 : (await grpcExport(grpc, body)).code === 0;
          if (ok) for (const s of spansOf(batch)) acknowledged.add(toHex(s.spanId));
          else await new Promise((r) => setTimeout(r, 20));
        } catch {
          return; // the receiver has closed
        }
      }
    };
    const loads = [load('http'), load('http'), load('grpc'), load('grpc')];
    await new Promise((r) => setTimeout(r, 800));
    // The downstream stumbles as the drain begins: the queue must be retried, not dropped.
    backend.answerNext({ kind: 'error', httpStatus: 503, retryAfter: '1' }, { kind: 'error', httpStatus: 503, retryAfter: '1' });
    const code = await collector.stop();
    stop = true;
    await Promise.all(loads);
    grpc.close();

    expect(code).toBe(0);
    expect(acknowledged.size).toBeGreaterThan(500);
    const delivered = new Set(backend.delivered().map((s) => toHex(s.spanId)));
    const lost = [...acknowledged].filter((id) => !delivered.has(id));
    expect(lost).toEqual([]);
  }, 40_000);
});
