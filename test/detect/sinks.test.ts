// The network finding sinks (webhook, Alertmanager, OTLP logs) on real loopback sockets: the
// shape each destination receives, retries that honour Retry-After / RetryInfo, permanent
// failures dropped and counted, a destination that comes up late, re-delivered (upgraded)
// findings, draining on close, and the bounded queue. Fakes: a scriptable HTTP server and a
// grpc-js LogsService, both recording arrival times.
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { createSinks, SinksConfig, type FindingSink } from '../../src/detect/sinks.ts';
import type { Finding } from '../../src/detect/finding.ts';
import { Detect, DetectConfig } from '../../src/processors/detect.ts';
import { formatIssues } from '../../src/config/issues.ts';
import { ExportLogsServiceRequest, ExportLogsServiceResponse, LOGS_EXPORT_PATH, Long } from '../../src/otlp/proto.ts';
import { encodeRpcStatusProtobuf, GrpcCode } from '../../src/otlp/status.ts';
import { detectHarness } from '../helpers/detect-harness.ts';
import { makeTestCertificate } from '../helpers/fake-backend.ts';
import { testHost, testSettings, type TestSettings } from '../helpers/settings.ts';
import { TracesSink } from '../helpers/sink.ts';
import { until } from '../helpers/wait.ts';
import { freePort } from '../../bench/collector-process.ts';

// ------------------------------------------------------------------ fakes and helpers

interface Answer {
  status?: number;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** Answer after this long. */
  delayMs?: number;
}

interface Received {
  /** Date.now() when the whole request had arrived. */
  at: number;
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  status: number;
}

/** An HTTP destination (webhook receiver, Alertmanager, OTLP/HTTP) answering from a script. */
class FakeHttp {
  readonly requests: Received[] = [];
  readonly #script: Answer[] = [];
  readonly #server: http.Server;
  #port: number;

  static async start(opts: { port?: number; tls?: { certFile: string; keyFile: string } } = {}): Promise<FakeHttp> {
    const fake = new FakeHttp(opts.port ?? 0, opts.tls);
    await fake.#listen();
    cleanups.push(() => fake.close());
    return fake;
  }

  private constructor(port: number, tls: { certFile: string; keyFile: string } | undefined) {
    this.#port = port;
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => void this.#answer(req, res);
    this.#server = tls ? https.createServer({ cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }, onRequest) : http.createServer(onRequest);
  }

  get port(): number {
    return this.#port;
  }

  url(path = ''): string {
    return `http://127.0.0.1:${this.#port}${path}`;
  }

  /** The next requests get these answers, in order; after them, 200. */
  answerNext(...answers: Answer[]): void {
    this.#script.push(...answers);
  }

  json(): unknown[] {
    return this.requests.map((r) => JSON.parse(r.body.toString('utf8')));
  }

  async close(): Promise<void> {
    if (!this.#server.listening) return;
    const closed = new Promise((r) => this.#server.close(r));
    this.#server.closeAllConnections();
    await closed;
  }

  #listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#port, '127.0.0.1', () => {
        this.#port = (this.#server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  async #answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = Buffer.concat(await req.toArray());
    const answer = this.#script.shift() ?? {};
    const status = answer.status ?? 200;
    this.requests.push({ at: Date.now(), method: req.method ?? '', path: req.url ?? '', headers: req.headers, body, status });
    if (answer.delayMs) await new Promise((r) => setTimeout(r, answer.delayMs));
    res.writeHead(status, answer.headers ?? {});
    res.end(answer.body ?? '');
  }
}

interface GrpcCall {
  at: number;
  metadata: Record<string, unknown>;
  body: Buffer;
}

/** An OTLP/gRPC LogsService: records each Export, answers OK or a scripted error code. */
class FakeLogsGrpc {
  readonly calls: GrpcCall[] = [];
  readonly #script: { code: number; details?: string }[] = [];
  readonly #server = new grpc.Server();
  port = 0;

  static async start(tls?: { certFile: string; keyFile: string }): Promise<FakeLogsGrpc> {
    const fake = new FakeLogsGrpc();
    const identity = (b: Buffer) => b;
    fake.#server.addService(
      { Export: { path: LOGS_EXPORT_PATH, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
      {
        Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          fake.calls.push({ at: Date.now(), metadata: call.metadata.getMap(), body: call.request });
          const next = fake.#script.shift();
          if (next) callback({ code: next.code, details: next.details ?? 'scripted' });
          else callback(null, Buffer.from(ExportLogsServiceResponse.encode({}).finish()));
        },
      },
    );
    const creds = tls
      ? grpc.ServerCredentials.createSsl(null, [{ private_key: readFileSync(tls.keyFile), cert_chain: readFileSync(tls.certFile) }])
      : grpc.ServerCredentials.createInsecure();
    fake.port = await new Promise<number>((resolve, reject) => fake.#server.bindAsync('127.0.0.1:0', creds, (err, port) => (err ? reject(err) : resolve(port))));
    cleanups.push(() => new Promise<void>((r) => fake.#server.tryShutdown(() => r())));
    return fake;
  }

  failNext(...codes: number[]): void {
    this.#script.push(...codes.map((code) => ({ code })));
  }
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const TRACE = '0123456789abcdef0123456789abcdef';

function finding(n = 1, over: Partial<Finding> = {}): Finding {
  return {
    id: `f${String(n).padStart(23, '0')}`,
    time: '2026-11-21T10:01:00.250Z',
    kind: 'credential_forwarding',
    severity: 'high',
    confidence: 'medium',
    traceId: TRACE,
    spanIds: ['00000000000000a4', '00000000000000a1'],
    chain: [
      { role: 'orchestrator', spanId: '00000000000000a1' },
      { role: 'research', spanId: '00000000000000a2', capability: 'web_fetch' },
      { role: 'analysis', spanId: '00000000000000a4', capability: 'customer_api' },
    ],
    summary: `analysis presented a credential held by orchestrator (#${n})`,
    evidence: { fingerprint: 'fp:9c1e77', hosts: ['customers.internal'], hops: 2, content: { overlap: 0.42, captured: true }, act_chain: [] },
    owasp: 'ASI03',
    link: `http://jaeger:16686/trace/${TRACE}`,
    ...over,
  };
}

interface Sinks {
  set: TestSettings;
  sinks: FindingSink[];
  sink: FindingSink;
  delivered(name: string): number;
  dropped(name: string, reason: string): number;
  retries(name: string): number;
  queueSize(name: string): number;
  warnings(): Record<string, unknown>[];
}

/** Creates and starts the sinks of a `sinks:` config, as the detect processor would. */
async function sinksFor(raw: Record<string, unknown>): Promise<Sinks> {
  const set = testSettings('detect');
  const sinks = createSinks(SinksConfig.parse(raw), { logger: set.logger, metrics: set.metrics });
  for (const s of sinks) await s.start();
  cleanups.push(() => Promise.all(sinks.map((s) => s.close(AbortSignal.timeout(1000)))));
  const m = set.metrics;
  return {
    set,
    sinks,
    sink: sinks[0]!,
    delivered: (name) => m.counter('agentsec_finding_sink_delivered_total', '', ['sink']).get(name),
    dropped: (name, reason) => m.counter('agentsec_finding_sink_dropped_total', '', ['sink', 'reason']).get(name, reason),
    retries: (name) => m.counter('agentsec_finding_sink_retries_total', '', ['sink']).get(name),
    queueSize: (name) => m.gauge('agentsec_finding_sink_queue_size', '', ['sink']).get(name),
    warnings: () => set.logs.filter((l) => l.level === 40),
  };
}

/** Retries fast, so that a wait the test measures comes from the server's hint. */
const FAST_RETRY = { initial_interval: '10ms', max_interval: '50ms', randomization_factor: 0 };



function issuesOf(raw: unknown): string[] {
  const result = DetectConfig.safeParse(raw);
  return result.success ? [] : formatIssues(['processors', 'detect'], result.error);
}

// ------------------------------------------------------------------ config

describe('sink config', () => {
  it('fills defaults for each sink type', () => {
    const cfg = SinksConfig.parse({ webhook: [{ url: 'http://hooks:8080/x' }], alertmanager: [{ url: 'http://am:9093' }], otlp_logs: [{ endpoint: 'http://loki:3100/otlp' }] });
    expect(cfg.ndjson).toEqual([]);
    expect(cfg.webhook[0]).toMatchObject({ format: 'native', headers: {}, timeout: 5000, max_queue: 10_000 });
    expect(cfg.webhook[0]!.retry).toMatchObject({ enabled: true, initial_interval: 1000, max_interval: 30_000, max_elapsed_time: 300_000 });
    expect(cfg.alertmanager[0]).toMatchObject({ timeout: 5000, max_queue: 10_000, max_batch: 100 });
    expect(cfg.otlp_logs[0]).toMatchObject({ protocol: 'http/protobuf', timeout: 5000, max_batch: 100 });
    expect(SinksConfig.parse(undefined)).toEqual({ ndjson: [], webhook: [], alertmanager: [], otlp_logs: [] });
  });

  it('names the offending key', () => {
    expect(issuesOf({ sinks: { webhook: [{ url: 'ftp://x' }] } })).toEqual(['processors::detect::sinks::webhook::0::url: must be an http:// or https:// URL']);
    expect(issuesOf({ sinks: { webhook: [{ url: 'http://x', format: 'xml' }] } })[0]).toMatch(/^processors::detect::sinks::webhook::0::format: /);
    expect(issuesOf({ sinks: { webhook: [{ url: 'http://x', headers: { 'X-Ok': 'a\r\nInjected: 1' } }] } })[0]).toMatch(/^processors::detect::sinks::webhook::0::headers::X-Ok: must not contain CR/);
    expect(issuesOf({ sinks: { webhook: [{ url: 'http://x', timeout: 'soon' }] } })[0]).toMatch(/^processors::detect::sinks::webhook::0::timeout: invalid duration/);
    expect(issuesOf({ sinks: { webhook: [{ url: 'http://x', tls: { ca_file: '/ca.pem' } }] } })).toEqual(['processors::detect::sinks::webhook::0::tls: applies to https:// URLs only']);
    expect(issuesOf({ sinks: { alertmanager: [{ url: 'http://am:9093', max_batch: 0 }] } })[0]).toMatch(/^processors::detect::sinks::alertmanager::0::max_batch: /);
    expect(issuesOf({ sinks: { alertmanager: [{ url: 'http://am', retry: { initial_intervall: '1s' } }] } })[0]).toMatch(/^processors::detect::sinks::alertmanager::0::retry: unknown key "initial_intervall"/);
    expect(issuesOf({ sinks: { otlp_logs: [{ endpoint: 'http://c:4317/v1', protocol: 'grpc' }] } })[0]).toMatch(/^processors::detect::sinks::otlp_logs::0::endpoint: must be host:port/);
    expect(issuesOf({ sinks: { otlp_logs: [{ endpoint: 'c:4318' }] } })[0]).toMatch(/^processors::detect::sinks::otlp_logs::0::endpoint: must be an http/);
    expect(issuesOf({ sinks: { otlp_logs: [{ endpoint: 'c:4317', protocol: 'grpc', logs_endpoint: 'http://c/v1/logs' }] } })[0]).toMatch(/^processors::detect::sinks::otlp_logs::0::logs_endpoint: /);
    expect(issuesOf({ sinks: { otlp_logs: [{ endpoint: 'https://c:4317', protocol: 'grpc', tls: { insecure: true } }] } })[0]).toMatch(/^processors::detect::sinks::otlp_logs::0::tls::insecure: /);
    expect(issuesOf({ sinks: { kafka: [] } })[0]).toMatch(/^processors::detect::sinks: unknown key "kafka"/);
  });

  it('fails the start naming the sink key when a TLS file cannot be read', async () => {
    const set = testSettings('detect');
    const [sink] = createSinks(SinksConfig.parse({ webhook: [{ url: 'https://127.0.0.1:1/x', tls: { ca_file: '/nonexistent/ca.pem' } }] }), { logger: set.logger, metrics: set.metrics });
    await expect(sink!.start()).rejects.toThrow(/^sinks::webhook::0::tls::ca_file: cannot read \/nonexistent\/ca.pem/);
    await sink!.close(AbortSignal.timeout(100));
  });
});

// ------------------------------------------------------------------ webhook

describe('webhook sink', () => {
  it('POSTs one JSON finding per request, native or OCSF, with the configured headers', async () => {
    const hook = await FakeHttp.start();
    const s = await sinksFor({
      webhook: [
        { url: hook.url('/native?token=s3cret'), headers: { Authorization: 'Bearer abc', 'Content-Type': 'text/plain' } },
        { url: hook.url('/ocsf'), format: 'ocsf' },
      ],
    });
    const a = finding(1);
    const b = finding(2, { severity: 'critical' });
    for (const sink of s.sinks) {
      sink.deliver(a);
      sink.deliver(b);
    }
    await until(() => hook.requests.length === 4);
    const native = hook.requests.filter((r) => r.path.startsWith('/native'));
    const ocsf = hook.requests.filter((r) => r.path === '/ocsf');
    expect(native.map((r) => JSON.parse(r.body.toString()))).toEqual([JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b))]);
    for (const r of hook.requests) {
      expect(r.method).toBe('POST');
      expect(r.headers['content-type']).toBe('application/json'); // ours wins over a configured one
    }
    expect(native[0]!.headers.authorization).toBe('Bearer abc');
    expect(ocsf[0]!.headers.authorization).toBeUndefined();
    const bodies = ocsf.map((r) => JSON.parse(r.body.toString()) as Record<string, any>);
    expect(bodies.map((o) => [o.class_uid, o.finding_info.uid, o.severity_id])).toEqual([[2004, a.id, 4], [2004, b.id, 5]]);
    await until(() => s.delivered('webhook/0') === 2 && s.delivered('webhook/1') === 2);
    expect(s.queueSize('webhook/0')).toBe(0);
  });

  it('retries 503 with Retry-After: waits at least that long, delivers once', async () => {
    const hook = await FakeHttp.start();
    hook.answerNext({ status: 503, headers: { 'retry-after': '1' } }, { status: 503, headers: { 'retry-after': '1' } });
    const s = await sinksFor({ webhook: [{ url: hook.url('/hook'), retry: FAST_RETRY }] });
    const f = finding();
    s.sink.deliver(f);
    await until(() => s.delivered('webhook/0') === 1, 10_000);
    expect(hook.requests.map((r) => r.status)).toEqual([503, 503, 200]);
    expect(hook.json().map((b) => (b as Finding).id)).toEqual([f.id, f.id, f.id]);
    const [first, second, third] = hook.requests.map((r) => r.at);
    expect(second! - first!).toBeGreaterThanOrEqual(950);
    expect(third! - second!).toBeGreaterThanOrEqual(950);
    expect(s.retries('webhook/0')).toBe(2);
    expect(s.dropped('webhook/0', 'retries_exhausted')).toBe(0);
    // One warning for the burst; the recovery is logged.
    expect(s.warnings()).toHaveLength(1);
    expect(s.set.logs.some((l) => l.msg === 'finding sink delivering again')).toBe(true);
    // Messages name the origin only: a webhook's path or query may be its secret.
    expect(JSON.stringify(s.set.logs)).not.toContain('/hook');
  });

  it('retries 429, 502 and 504 too, but drops 400 and 500 at once, counted, warning once per burst', async () => {
    const hook = await FakeHttp.start();
    hook.answerNext({ status: 429 }, { status: 502 }, { status: 504 });
    const s = await sinksFor({ webhook: [{ url: hook.url('/'), retry: FAST_RETRY }] });
    s.sink.deliver(finding(1));
    await until(() => s.delivered('webhook/0') === 1);
    expect(hook.requests.map((r) => r.status)).toEqual([429, 502, 504, 200]);

    hook.answerNext({ status: 400, body: 'bad finding' }, { status: 500 }, { status: 400 });
    const warnedBefore = s.warnings().length;
    s.sink.deliver(finding(2));
    s.sink.deliver(finding(3));
    s.sink.deliver(finding(4));
    await until(() => s.dropped('webhook/0', 'permanent_error') === 3);
    expect(hook.requests.map((r) => r.status)).toEqual([429, 502, 504, 200, 400, 500, 400]); // no retry
    expect(s.delivered('webhook/0')).toBe(1);
    const warned = s.warnings().slice(warnedBefore);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ reason: 'permanent_error', sink: 'webhook/0' });
    expect(String(warned[0]!.error)).toMatch(/HTTP 400: bad finding/);
  });

  it('delivers once a destination that was down at first comes up', async () => {
    const port = await freePort();
    const s = await sinksFor({ webhook: [{ url: `http://127.0.0.1:${port}/hook`, retry: { ...FAST_RETRY, max_interval: '100ms' } }] });
    const f = finding();
    s.sink.deliver(f);
    await until(() => s.retries('webhook/0') >= 2);
    expect(String(s.warnings()[0]?.error)).toMatch(/ECONNREFUSED/);
    expect(s.delivered('webhook/0')).toBe(0);
    const hook = await FakeHttp.start({ port });
    await until(() => s.delivered('webhook/0') === 1);
    expect(hook.json().map((b) => (b as Finding).id)).toEqual([f.id]);
    expect(s.dropped('webhook/0', 'retries_exhausted')).toBe(0);
  });

  it('gives up after max_elapsed_time and counts the finding', async () => {
    const port = await freePort();
    const s = await sinksFor({ webhook: [{ url: `http://127.0.0.1:${port}/`, retry: { ...FAST_RETRY, max_elapsed_time: '200ms' } }] });
    s.sink.deliver(finding());
    await until(() => s.dropped('webhook/0', 'retries_exhausted') === 1, 5000);
    expect(s.delivered('webhook/0')).toBe(0);
    expect(s.queueSize('webhook/0')).toBe(0);
  });

  it('posts an upgraded finding again, with the same id and what it had at each delivery', async () => {
    const hook = await FakeHttp.start();
    const s = await sinksFor({ webhook: [{ url: hook.url('/') }] });
    const f = finding();
    s.sink.deliver(f);
    // As the detect processor upgrades: the same object, changed in place, delivered again,
    // while the first delivery is still queued.
    f.severity = 'critical';
    f.summary = 'upgraded';
    s.sink.deliver(f);
    await until(() => s.delivered('webhook/0') === 2);
    const bodies = hook.json() as Finding[];
    expect(bodies.map((b) => b.id)).toEqual([f.id, f.id]);
    expect(bodies.map((b) => [b.severity, b.summary])).toEqual([['high', 'analysis presented a credential held by orchestrator (#1)'], ['critical', 'upgraded']]);
  });

  it('close() drains the queue before it resolves', async () => {
    const hook = await FakeHttp.start();
    for (let i = 0; i < 5; i++) hook.answerNext({ delayMs: 50 });
    const s = await sinksFor({ webhook: [{ url: hook.url('/') }] });
    for (let i = 1; i <= 5; i++) s.sink.deliver(finding(i));
    expect(s.queueSize('webhook/0')).toBe(5);
    await s.sink.close(AbortSignal.timeout(5000));
    expect(hook.requests).toHaveLength(5);
    expect(s.delivered('webhook/0')).toBe(5);
    expect(s.dropped('webhook/0', 'shutdown')).toBe(0);
  });

  it('close() gives up at its deadline and counts what is left as dropped', async () => {
    const hook = await FakeHttp.start();
    for (let i = 0; i < 100; i++) hook.answerNext({ status: 503 });
    const s = await sinksFor({ webhook: [{ url: hook.url('/'), retry: FAST_RETRY }] });
    for (let i = 1; i <= 3; i++) s.sink.deliver(finding(i));
    const started = Date.now();
    await s.sink.close(AbortSignal.timeout(300));
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(hook.requests.length).toBeGreaterThan(1); // it kept trying until the deadline
    expect(s.delivered('webhook/0')).toBe(0);
    expect(s.dropped('webhook/0', 'shutdown')).toBe(3);
    expect(s.queueSize('webhook/0')).toBe(0);
    expect(s.warnings().some((w) => w.msg === 'finding sink closed before its queue was delivered: dropped findings' && w.findings === 3)).toBe(true);
    s.sink.deliver(finding(4)); // after close: counted, not sent
    expect(s.dropped('webhook/0', 'shutdown')).toBe(4);
  });

  it('drops the oldest queued finding when the queue is full, and counts it', async () => {
    const hook = await FakeHttp.start();
    const s = await sinksFor({ webhook: [{ url: hook.url('/'), max_queue: 2 }] });
    for (let i = 1; i <= 5; i++) s.sink.deliver(finding(i));
    expect(s.queueSize('webhook/0')).toBe(2);
    expect(s.dropped('webhook/0', 'queue_full')).toBe(3);
    await until(() => s.delivered('webhook/0') === 2);
    expect((hook.json() as Finding[]).map((b) => b.id)).toEqual([finding(4).id, finding(5).id]);
    expect(s.warnings().filter((w) => /queue full/.test(String(w.msg)))).toHaveLength(1);
  });

  it('speaks HTTPS with the configured CA', async () => {
    const cert = makeTestCertificate();
    const hook = await FakeHttp.start({ tls: cert });
    const s = await sinksFor({ webhook: [{ url: `https://localhost:${hook.port}/`, tls: { ca_file: cert.certFile } }] });
    s.sink.deliver(finding());
    await until(() => s.delivered('webhook/0') === 1);
    const untrusted = await sinksFor({ webhook: [{ url: `https://localhost:${hook.port}/`, retry: { enabled: false } }] });
    untrusted.sink.deliver(finding());
    await until(() => untrusted.dropped('webhook/0', 'retries_exhausted') === 1);
    expect(String(untrusted.warnings()[0]?.error)).toMatch(/self-signed|certificate/i);
    expect(hook.requests).toHaveLength(1);
  });
});

// ------------------------------------------------------------------ alertmanager

describe('alertmanager sink', () => {
  it('posts what is queued as one batch of v2 alerts', async () => {
    const am = await FakeHttp.start();
    const s = await sinksFor({ alertmanager: [{ url: am.url('/am/'), headers: { 'X-Scope-OrgID': 'sec' } }] });
    const a = finding(1);
    const b = finding(2, { severity: 'critical', kind: 'data_exfiltration', owasp: 'ASI02' });
    const { link: _, ...withoutLink } = finding(3);
    const c: Finding = { ...withoutLink, chain: [] };
    for (const f of [a, b, c]) s.sink.deliver(f);
    await until(() => s.delivered('alertmanager/0') === 3);
    expect(am.requests).toHaveLength(1);
    const [req] = am.requests;
    expect(req!.path).toBe('/am/api/v2/alerts');
    expect(req!.headers['content-type']).toBe('application/json');
    expect(req!.headers['x-scope-orgid']).toBe('sec');
    const alerts = JSON.parse(req!.body.toString()) as Record<string, any>[];
    expect(alerts).toHaveLength(3);
    expect(alerts[0]).toEqual({
      labels: { alertname: 'AgentsecFinding', kind: 'credential_forwarding', severity: 'high', owasp: 'ASI03', trace_id: TRACE, root: 'orchestrator', role: 'analysis', finding_id: a.id },
      annotations: { summary: a.summary, description: expect.any(String), finding_id: a.id },
      generatorURL: a.link,
      startsAt: a.time,
    });
    const description = alerts[0]!.annotations.description as string;
    expect(description).toContain('chain: orchestrator → research [web_fetch] → analysis [customer_api]');
    expect(description).toContain('fingerprint=fp:9c1e77');
    expect(description).toContain('hosts=[customers.internal]');
    expect(description).toContain('content.overlap=0.42');
    expect(alerts[1]!.labels).toMatchObject({ kind: 'data_exfiltration', severity: 'critical', owasp: 'ASI02' });
    expect(alerts[2]).not.toHaveProperty('generatorURL');
    expect(alerts[2]!.labels).not.toHaveProperty('root');
    expect(alerts[2]!.labels).not.toHaveProperty('role');
    expect(alerts.every((x) => x.endsAt === undefined)).toBe(true);
  });

  it('splits batches at max_batch', async () => {
    const am = await FakeHttp.start();
    const s = await sinksFor({ alertmanager: [{ url: am.url(), max_batch: 2 }] });
    for (let i = 1; i <= 5; i++) s.sink.deliver(finding(i));
    await until(() => s.delivered('alertmanager/0') === 5);
    expect(am.json().map((alerts) => (alerts as unknown[]).length)).toEqual([2, 2, 1]);
  });

  it('resolves the alert an upgrade replaces, in the same request as the new one', async () => {
    const am = await FakeHttp.start();
    const s = await sinksFor({ alertmanager: [{ url: am.url() }] });
    const f = finding();
    s.sink.deliver(f);
    await until(() => s.delivered('alertmanager/0') === 1);
    f.severity = 'critical';
    s.sink.deliver(f);
    await until(() => s.delivered('alertmanager/0') === 2);
    const second = am.json()[1] as Record<string, any>[];
    expect(second.map((x) => [x.labels.severity, x.labels.finding_id, typeof x.endsAt])).toEqual([
      ['high', f.id, 'string'],
      ['critical', f.id, 'undefined'],
    ]);
    // Same labels again (a surer, not worse, finding): just the alert, nothing to resolve.
    f.confidence = 'high';
    s.sink.deliver(f);
    await until(() => s.delivered('alertmanager/0') === 3);
    expect((am.json()[2] as unknown[]).length).toBe(1);
  });

  it('retries a throttled batch honouring Retry-After and drops a refused one', async () => {
    const am = await FakeHttp.start();
    am.answerNext({ status: 429, headers: { 'retry-after': '1' } });
    const s = await sinksFor({ alertmanager: [{ url: am.url(), retry: FAST_RETRY }] });
    s.sink.deliver(finding(1));
    s.sink.deliver(finding(2));
    await until(() => s.delivered('alertmanager/0') === 2);
    expect(am.requests.map((r) => r.status)).toEqual([429, 200]);
    expect(am.requests[1]!.at - am.requests[0]!.at).toBeGreaterThanOrEqual(950);
    am.answerNext({ status: 400, body: '{"message":"bad alert"}' });
    s.sink.deliver(finding(3));
    await until(() => s.dropped('alertmanager/0', 'permanent_error') === 1);
    expect(am.requests).toHaveLength(3);
  });
});

// ------------------------------------------------------------------ otlp_logs

/** An AnyValue decoded by protobufjs, back to JSON. */
function fromAnyValue(v: Record<string, any>): unknown {
  if (v.kvlistValue) return Object.fromEntries(((v.kvlistValue.values ?? []) as Record<string, any>[]).map((kv) => [kv.key, fromAnyValue(kv.value)]));
  if (v.arrayValue) return ((v.arrayValue.values ?? []) as Record<string, any>[]).map(fromAnyValue);
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Long.fromValue(v.intValue).toNumber();
  if (v.doubleValue !== undefined) return v.doubleValue;
  return null;
}

function decodeLogs(body: Buffer): { resource: Record<string, unknown>; scope: Record<string, any>; records: Record<string, any>[] } {
  const req = ExportLogsServiceRequest.toObject(ExportLogsServiceRequest.decode(body), { longs: String, defaults: false }) as Record<string, any>;
  expect(req.resourceLogs).toHaveLength(1);
  const rl = req.resourceLogs[0];
  const resource = Object.fromEntries((rl.resource.attributes as Record<string, any>[]).map((kv) => [kv.key, fromAnyValue(kv.value)]));
  expect(rl.scopeLogs).toHaveLength(1);
  return { resource, scope: rl.scopeLogs[0].scope, records: rl.scopeLogs[0].logRecords };
}

function checkRecord(rec: Record<string, any>, f: Finding, severityNumber: number, severityText: string): void {
  expect(rec.eventName).toBe('agentsec.finding');
  expect(Buffer.from(rec.traceId).toString('hex')).toBe(f.traceId);
  expect(Buffer.from(rec.spanId).toString('hex')).toBe(f.spanIds[0]);
  expect(rec.severityNumber).toBe(severityNumber);
  expect(rec.severityText).toBe(severityText);
  expect(rec.timeUnixNano).toBe((BigInt(Date.parse(f.time)) * 1_000_000n).toString());
  expect(BigInt(rec.observedTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(rec.timeUnixNano));
  expect(fromAnyValue(rec.body)).toEqual(JSON.parse(JSON.stringify(f)));
  const attrs = Object.fromEntries((rec.attributes as Record<string, any>[]).map((kv) => [kv.key, fromAnyValue(kv.value)]));
  expect(attrs).toEqual({ 'agentsec.finding.id': f.id, 'agentsec.finding.kind': f.kind, 'agentsec.finding.severity': f.severity, 'agentsec.finding.owasp': f.owasp });
}

const BY_SEVERITY = [
  ['low', 9, 'INFO'],
  ['medium', 13, 'WARN'],
  ['high', 17, 'ERROR'],
  ['critical', 21, 'FATAL'],
] as const;

describe('otlp_logs sink', () => {
  it('exports a batch of log events over HTTP/protobuf, linked to the trace', async () => {
    const backend = await FakeHttp.start();
    backend.answerNext({ headers: { 'content-type': 'application/x-protobuf' }, body: ExportLogsServiceResponse.encode({}).finish() });
    const s = await sinksFor({ otlp_logs: [{ endpoint: backend.url('/otlp/'), headers: { 'X-Tenant': 'sec' } }] });
    const findings = BY_SEVERITY.map(([severity], i) => finding(i + 1, { severity }));
    for (const f of findings) s.sink.deliver(f);
    await until(() => s.delivered('otlp_logs/0') === 4);
    expect(backend.requests).toHaveLength(1);
    const [req] = backend.requests;
    expect(req!.path).toBe('/otlp/v1/logs');
    expect(req!.headers['content-type']).toBe('application/x-protobuf');
    expect(req!.headers['x-tenant']).toBe('sec');
    const { resource, scope, records } = decodeLogs(req!.body);
    expect(resource).toEqual({ 'service.name': 'agentsec' });
    expect(scope.name).toBe('agentsec.detect');
    expect(records).toHaveLength(4);
    BY_SEVERITY.forEach(([, number, text], i) => checkRecord(records[i]!, findings[i]!, number, text));
  });

  it('honours RetryInfo in an OTLP error body, and counts a partial success', async () => {
    const backend = await FakeHttp.start();
    const status = encodeRpcStatusProtobuf({ grpcCode: GrpcCode.UNAVAILABLE, httpStatus: 503, message: 'busy', retryAfterMs: 800, reason: 'test' });
    backend.answerNext(
      { status: 503, headers: { 'content-type': 'application/x-protobuf' }, body: status },
      { headers: { 'content-type': 'application/x-protobuf' }, body: ExportLogsServiceResponse.encode(ExportLogsServiceResponse.fromObject({ partialSuccess: { rejectedLogRecords: 1, errorMessage: 'one too old' } })).finish() },
    );
    const s = await sinksFor({ otlp_logs: [{ endpoint: backend.url(), retry: FAST_RETRY }] });
    s.sink.deliver(finding(1));
    s.sink.deliver(finding(2));
    await until(() => s.delivered('otlp_logs/0') === 1);
    expect(backend.requests.map((r) => r.status)).toEqual([503, 200]);
    expect(backend.requests[1]!.at - backend.requests[0]!.at).toBeGreaterThanOrEqual(750);
    expect(s.dropped('otlp_logs/0', 'rejected_by_downstream')).toBe(1);
    expect(String(s.warnings()[0]?.error)).toMatch(/HTTP 503: busy/);
  });

  it('exports over gRPC with headers as metadata; retries UNAVAILABLE, drops INVALID_ARGUMENT', async () => {
    const backend = await FakeLogsGrpc.start();
    backend.failNext(GrpcCode.UNAVAILABLE);
    const s = await sinksFor({ otlp_logs: [{ endpoint: `127.0.0.1:${backend.port}`, protocol: 'grpc', tls: { insecure: true }, headers: { 'X-Tenant': 'sec' }, retry: FAST_RETRY }] });
    const f = finding(1, { severity: 'medium' });
    s.sink.deliver(f);
    await until(() => s.delivered('otlp_logs/0') === 1);
    expect(backend.calls).toHaveLength(2);
    expect(backend.calls[1]!.metadata['x-tenant']).toBe('sec');
    const { resource, records } = decodeLogs(backend.calls[1]!.body);
    expect(resource['service.name']).toBe('agentsec');
    expect(records).toHaveLength(1);
    checkRecord(records[0]!, f, 13, 'WARN');

    backend.failNext(GrpcCode.INVALID_ARGUMENT);
    s.sink.deliver(finding(2));
    await until(() => s.dropped('otlp_logs/0', 'permanent_error') === 1);
    expect(backend.calls).toHaveLength(3);
  });

  it('exports over gRPC with TLS, verifying the server against the configured CA', async () => {
    const cert = makeTestCertificate();
    const backend = await FakeLogsGrpc.start(cert);
    const s = await sinksFor({ otlp_logs: [{ endpoint: `localhost:${backend.port}`, protocol: 'grpc', tls: { ca_file: cert.certFile } }] });
    s.sink.deliver(finding());
    await until(() => s.delivered('otlp_logs/0') === 1);
    expect(backend.calls).toHaveLength(1);
    const untrusted = await sinksFor({ otlp_logs: [{ endpoint: `localhost:${backend.port}`, protocol: 'grpc', retry: { enabled: false } }] });
    untrusted.sink.deliver(finding());
    await until(() => untrusted.dropped('otlp_logs/0', 'retries_exhausted') === 1);
    expect(backend.calls).toHaveLength(1);
  });
});

// ------------------------------------------------------------------ in the detect processor

describe('detect processor with network sinks', () => {
  it('delivers its findings to a webhook, reports sink metrics, drains on shutdown', async () => {
    const hook = await FakeHttp.start();
    for (let i = 0; i < 3; i++) hook.answerNext({ delayMs: 100 });
    const h = detectHarness('roles: { d: { max_depth: 1 } }', { sinks: { webhook: [{ url: hook.url('/') }] } });
    await h.detect.start(testHost(testSettings('detect')));
    await h.send([
      { id: '1', t: 0, d: 100, attrs: { 'gen_ai.agent.name': 'a' } },
      { id: '2', parent: '1', t: 1, d: 90, attrs: { 'gen_ai.agent.name': 'b' } },
      { id: '3', parent: '2', t: 2, d: 80, attrs: { 'gen_ai.agent.name': 'c' } },
      { id: '4', parent: '3', t: 3, d: 70, attrs: { 'gen_ai.agent.name': 'd' } },
    ]);
    const found = h.findings();
    expect(found.length).toBeGreaterThan(0);
    await h.detect.shutdown(AbortSignal.timeout(5000));
    expect((hook.json() as Finding[]).map((f) => f.id).sort()).toEqual(found.map((f) => f.id).sort());
  });

  it('gives the sinks the Settings metrics registry', () => {
    const set = testSettings('detect');
    new Detect(set, DetectConfig.parse({ sinks: { webhook: [{ url: 'http://127.0.0.1:1/' }], otlp_logs: [{ endpoint: 'http://127.0.0.1:1' }] } }), new TracesSink());
    const text = set.metrics.render();
    expect(text).toContain('agentsec_finding_sink_queue_size{sink="webhook/0"} 0');
    expect(text).toContain('agentsec_finding_sink_queue_size{sink="otlp_logs/0"} 0');
    expect(text).toContain('agentsec_finding_sink_dropped_total{sink="webhook/0",reason="queue_full"} 0');
  });
});
