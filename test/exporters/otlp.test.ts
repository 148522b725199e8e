import { afterEach, describe, expect, it } from 'vitest';
import { PermanentError, RetryableError } from '../../src/errors.ts';
import { OtlpExporterConfig, otlpExporterFactory } from '../../src/exporters/otlp.ts';
import { formatIssues } from '../../src/config/issues.ts';
import { GrpcCode } from '../../src/otlp/status.ts';
import { encodeTraceProtobuf, int64String } from '../../src/otlp/encode.ts';
import { ExportTraceServiceRequest, Long } from '../../src/otlp/proto.ts';
import type { ResourceSpans } from '../../src/otlp/types.ts';
import type { Exporter } from '../../src/component/types.ts';
import { makeBatch, spanFingerprint, spansOf } from '../helpers/batch.ts';
import { FakeBackend, makeTestCertificate } from '../helpers/fake-backend.ts';
import { testHost, testSettings, type TestSettings } from '../helpers/settings.ts';
import { until } from '../helpers/wait.ts';

const ID = 'otlp/backend';
const CTX = { receiver: 'otlp', transport: 'grpc' } as const;
const PROTOCOLS = ['grpc', 'http/protobuf', 'http/json'] as const;
type Protocol = (typeof PROTOCOLS)[number];

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function backend(opts?: Parameters<typeof FakeBackend.start>[0]): Promise<FakeBackend> {
  const b = await FakeBackend.start(opts);
  cleanups.push(() => b.close());
  return b;
}

function endpointOf(b: FakeBackend, protocol: Protocol): Record<string, unknown> {
  return protocol === 'grpc' ? { endpoint: b.grpcAddress, tls: { insecure: true } } : { endpoint: b.httpUrl };
}

interface Harness {
  set: TestSettings;
  exporter: Exporter;
  sent(): number;
  retries(): number;
  enqueueFailed(): number;
  dropped(reason: string): number;
}

/** Creates and starts an otlp exporter from a raw config, as the service would. */
async function exporterFor(raw: Record<string, unknown>): Promise<Harness> {
  const set = testSettings(ID);
  const exporter = otlpExporterFactory.create(set, OtlpExporterConfig.parse(raw));
  await exporter.start(testHost(set));
  cleanups.push(() => exporter.shutdown(AbortSignal.timeout(2000)));
  const counter = (name: string) => set.metrics.counter(name, '', ['exporter']).get(ID);
  return {
    set,
    exporter,
    sent: () => counter('agentsec_exporter_sent_spans_total'),
    retries: () => counter('agentsec_exporter_retries_total'),
    enqueueFailed: () => counter('agentsec_exporter_enqueue_failed_spans_total'),
    dropped: (reason) => set.metrics.counter('agentsec_exporter_dropped_spans_total', '', ['exporter', 'reason']).get(ID, reason),
  };
}

/** Retries fast, so that a wait the test measures comes from the server's hint. */
const FAST_RETRY = { initial_interval: '10ms', max_interval: '100ms', randomization_factor: 0 };


function parseIssues(raw: unknown): string[] {
  const result = OtlpExporterConfig.safeParse(raw);
  return result.success ? [] : formatIssues(['exporters', 'otlp'], result.error);
}

describe('config', () => {
  it('fills defaults', () => {
    const cfg = OtlpExporterConfig.parse({ endpoint: 'jaeger:4317' });
    expect(cfg).toMatchObject({ protocol: 'grpc', compression: 'gzip', timeout: 10_000, headers: {} });
    expect(cfg.sending_queue).toEqual({ enabled: true, num_consumers: 4, queue_size: 50_000 });
    expect(cfg.retry_on_failure.max_elapsed_time).toBe(300_000);
  });

  it.each([
    [{ protocol: 'http/protobuf', endpoint: 'localhost:4318' }, 'exporters::otlp::endpoint: must be an http:// or https:// URL for protocol http/protobuf, got "localhost:4318"'],
    [{ endpoint: 'http://tempo:4318', protocol: 'http/json', traces_endpoint: 'tempo/v1/traces' }, 'exporters::otlp::traces_endpoint: must be an http:// or https:// URL'],
    [{ endpoint: 'jaeger' }, 'exporters::otlp::endpoint: must be host:port or http(s)://host:port for protocol grpc'],
    [{ endpoint: 'http://jaeger:4317/v1/traces' }, 'exporters::otlp::endpoint: must be host:port or http(s)://host:port (no path)'],
    [{ endpoint: 'jaeger:4317', traces_endpoint: 'http://x/v1/traces' }, 'exporters::otlp::traces_endpoint: applies to the http protocols only'],
    [{ endpoint: 'https://jaeger:4317', tls: { insecure: true } }, 'exporters::otlp::tls::insecure: true contradicts the https:// endpoint'],
    [{ endpoint: 'jaeger:4317', tls: { cert_file: '/c.pem' } }, 'exporters::otlp::tls::key_file: client certificate needs both'],
    [{ endpoint: 'jaeger:4317', protocol: 'thrift' }, 'exporters::otlp::protocol:'],
    [{ endpoint: 'jaeger:4317', timeout: 'soon' }, 'exporters::otlp::timeout: invalid duration "soon"'],
    [{ endpoint: 'jaeger:4317', sending_queue: { queue_size: 0 } }, 'exporters::otlp::sending_queue::queue_size:'],
    [{ endpoint: 'jaeger:4317', compression_level: 1 }, 'exporters::otlp::compression_level: applies to the http protocols only'],
    [{ endpoint: 'http://tempo:4318', protocol: 'http/protobuf', compression: 'none', compression_level: 1 }, 'exporters::otlp::compression_level: needs compression: gzip'],
    [{ endpoint: 'http://tempo:4318', protocol: 'http/protobuf', compression_level: 10 }, 'exporters::otlp::compression_level:'],
    [{}, 'exporters::otlp::endpoint: is required'],
  ])('rejects %j with a message naming the key', (raw, message) => {
    expect(parseIssues(raw).join('\n')).toContain(message);
  });
});

describe.each(PROTOCOLS)('%s transport', (protocol) => {
  it.each(['gzip', 'none'] as const)('delivers spans intact with compression %s and the configured headers', async (compression) => {
    const b = await backend();
    const t = await exporterFor({ ...endpointOf(b, protocol), protocol, compression, headers: { 'x-tenant': 'acme', authorization: 'Bearer t0k' } });
    const batches = [makeBatch(3), makeBatch(2, 'other-agent')];
    const expected = batches.flatMap(spansOf).map(spanFingerprint);
    for (const batch of batches) await t.exporter.consume(batch, CTX);
    await until(() => t.sent() === 5); // the backend answered, and the exporter heard it

    expect(b.delivered().map(spanFingerprint)).toEqual(expect.arrayContaining(expected));
    expect(b.delivered()).toHaveLength(5);
    for (const r of b.requests) {
      expect(r.transport).toBe(protocol === 'grpc' ? 'grpc' : 'http');
      expect(r.compressed).toBe(compression === 'gzip');
      expect(r.headers['x-tenant']).toBe('acme');
      expect(r.headers.authorization).toBe('Bearer t0k');
      if (protocol === 'grpc') {
        expect(r.path).toBe('/opentelemetry.proto.collector.trace.v1.TraceService/Export');
        expect(r.headers['grpc-timeout']).toMatch(/^\d+[mSMu]$/); // the deadline travels
      } else {
        expect(r.path).toBe('/v1/traces');
        expect(r.headers['content-type']).toBe(protocol === 'http/json' ? 'application/json' : 'application/x-protobuf');
      }
    }
  });

  it('counts partial success as dropped{rejected_by_downstream}, sends the rest, and does not retry', async () => {
    const b = await backend();
    const t = await exporterFor({ ...endpointOf(b, protocol), protocol, retry_on_failure: FAST_RETRY });
    b.answerNext({ kind: 'success', rejectedSpans: 2, errorMessage: 'span limit for tenant' });
    await t.exporter.consume(makeBatch(5), CTX);
    await until(() => t.sent() === 3);
    expect(t.dropped('rejected_by_downstream')).toBe(2);
    await new Promise((r) => setTimeout(r, 100));
    expect(b.requests).toHaveLength(1);
    expect(t.retries()).toBe(0);
    expect(t.set.logs).toContainEqual(expect.objectContaining({ level: 40, rejected_spans: 2, message: 'span limit for tenant' }));
  });

  it('drops a permanent failure at once: dropped{permanent_error}, logged with the server message', async () => {
    const b = await backend();
    const t = await exporterFor({ ...endpointOf(b, protocol), protocol, retry_on_failure: FAST_RETRY });
    b.answerNext({ kind: 'error', httpStatus: 400, grpcCode: GrpcCode.INVALID_ARGUMENT, message: 'spans[0].trace_id: must be 16 bytes' });
    await t.exporter.consume(makeBatch(4), CTX);
    await until(() => t.dropped('permanent_error') === 4);
    await new Promise((r) => setTimeout(r, 100));
    expect(b.requests).toHaveLength(1);
    const log = t.set.logs.find((l) => l.reason === 'permanent_error');
    expect(log).toMatchObject({ level: 40, spans: 4 });
    expect(log?.error).toContain('spans[0].trace_id: must be 16 bytes');
    expect(log?.error).toMatch(protocol === 'grpc' ? /^gRPC INVALID_ARGUMENT/ : /^HTTP 400/);
  });

  it('refuses a batch that cannot be encoded as permanent when it is offered, without queueing or sending it', async () => {
    const b = await backend();
    const t = await exporterFor({ ...endpointOf(b, protocol), protocol, retry_on_failure: FAST_RETRY });
    const broken = makeBatch(2);
    spansOf(broken)[0]!.startTimeUnixNano = 'not-a-number' as never;
    const refused = await t.exporter.consume(broken, CTX).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(PermanentError);
    expect((refused as Error).message).toMatch(/^cannot encode the batch/);
    expect(t.dropped('permanent_error')).toBe(0); // the client is told; nothing accepted was lost
    await t.exporter.consume(makeBatch(1), CTX); // the next batch goes through
    await until(() => t.sent() === 1);
    expect(t.retries()).toBe(0);
    expect(b.requests).toHaveLength(1);
    expect(t.set.logs.find((l) => l.reason === 'permanent_error')?.error).toMatch(/^cannot encode the batch/);
  });

  it('when the backend is down, fills the queue, refuses with queue_full, then delivers every accepted span exactly once', async () => {
    const b = await backend();
    await b.down();
    const t = await exporterFor({
      ...endpointOf(b, protocol),
      protocol,
      retry_on_failure: { ...FAST_RETRY, max_interval: '200ms' },
      sending_queue: { queue_size: 10, num_consumers: 2 },
    });
    const accepted = [makeBatch(4), makeBatch(4)];
    for (const batch of accepted) await t.exporter.consume(batch, CTX);
    const refused = await t.exporter.consume(makeBatch(4), CTX).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RetryableError);
    expect(refused).toMatchObject({ reason: 'queue_full' });
    expect(t.enqueueFailed()).toBe(4);
    await until(() => t.retries() >= 4); // both consumers keep retrying while it is down

    await b.up();
    await until(() => t.sent() === 8, 20_000);
    await new Promise((r) => setTimeout(r, 200)); // time for a duplicate to show up, were there one
    // Connections were refused, so no request reached the backend twice: exactly once.
    const ids = b.delivered().map((s) => Buffer.from(s.spanId).toString('hex')).sort();
    expect(ids).toEqual(accepted.flatMap(spansOf).map((s) => Buffer.from(s.spanId).toString('hex')).sort());
    expect(t.sent()).toBe(8); // equals what was accepted
    expect(t.dropped('retries_exhausted') + t.dropped('shutdown')).toBe(0);
  });

  it('shutdown drains the queue to a live backend before resolving', async () => {
    const b = await backend();
    const t = await exporterFor({ ...endpointOf(b, protocol), protocol, sending_queue: { num_consumers: 1 } });
    for (let i = 0; i < 10; i++) await t.exporter.consume(makeBatch(2), CTX);
    expect(b.delivered().length).toBeLessThan(20);
    await t.exporter.shutdown(AbortSignal.timeout(10_000));
    expect(b.delivered()).toHaveLength(20);
    expect(t.sent()).toBe(20);
  });
});

describe('compression_level', () => {
  it('http: sets the gzip level (level 9 is smaller than level 1), and the spans arrive intact', async () => {
    const b = await backend();
    const sizes: number[] = [];
    for (const level of [1, 9]) {
      const t = await exporterFor({ endpoint: b.httpUrl, protocol: 'http/protobuf', compression_level: level });
      const batch = makeBatch(200);
      await t.exporter.consume(batch, CTX);
      await until(() => t.sent() === 200);
      const request = b.requests.at(-1)!;
      expect(request.compressed).toBe(true);
      expect(request.spans.map(spanFingerprint)).toEqual(spansOf(batch).map(spanFingerprint));
      sizes.push(Number(request.headers['content-length']));
    }
    expect(sizes[1]).toBeLessThan(sizes[0]!);
  });
});

describe('retries against the backend', () => {
  it.concurrent.each([
    ['http/protobuf', { kind: 'error', httpStatus: 503, retryAfter: '1', message: 'overloaded' }],
    ['http/json', { kind: 'error', httpStatus: 429, retryInfoMs: 1000, message: 'slow down' }], // RetryInfo in a JSON Status body
    ['grpc', { kind: 'error', grpcCode: GrpcCode.UNAVAILABLE, retryInfoMs: 1000, message: 'overloaded' }],
  ] as const)('%s: honours the server delay twice, then delivers once', async (protocol, failure) => {
    const b = await backend();
    const t = await exporterFor({ ...endpointOf(b, protocol), protocol, retry_on_failure: FAST_RETRY });
    b.answerNext(failure, failure);
    const batch = makeBatch(3);
    await t.exporter.consume(batch, CTX);
    await until(() => t.sent() === 3);

    expect(b.requests).toHaveLength(3);
    const [a, c, d] = b.requests.map((r) => r.at);
    expect(c! - a!).toBeGreaterThanOrEqual(950); // backoff alone would retry after 10 ms
    expect(d! - c!).toBeGreaterThanOrEqual(950);
    expect(b.delivered().map(spanFingerprint)).toEqual(spansOf(batch).map(spanFingerprint));
    expect(t.retries()).toBe(2);
  });

  it('gRPC RESOURCE_EXHAUSTED without RetryInfo is permanent; with RetryInfo it is a throttle', async () => {
    const b = await backend();
    const t = await exporterFor({ ...endpointOf(b, 'grpc'), retry_on_failure: FAST_RETRY });
    b.answerNext({ kind: 'error', grpcCode: GrpcCode.RESOURCE_EXHAUSTED, message: 'message larger than max' });
    await t.exporter.consume(makeBatch(2), CTX);
    await until(() => t.dropped('permanent_error') === 2);
    expect(b.requests).toHaveLength(1);

    b.answerNext({ kind: 'error', grpcCode: GrpcCode.RESOURCE_EXHAUSTED, retryInfoMs: 50, message: 'rate limited' });
    await t.exporter.consume(makeBatch(2), CTX);
    await until(() => t.sent() === 2);
    expect(b.requests).toHaveLength(3);
    expect(t.retries()).toBe(1);
  });

  it('HTTP statuses other than 429/502/503/504 are permanent, even 500', async () => {
    const b = await backend();
    const t = await exporterFor({ ...endpointOf(b, 'http/protobuf'), protocol: 'http/protobuf', retry_on_failure: FAST_RETRY });
    b.answerNext({ kind: 'error', httpStatus: 500, message: 'internal' }, { kind: 'error', httpStatus: 502 });
    await t.exporter.consume(makeBatch(1), CTX);
    await until(() => t.dropped('permanent_error') === 1);
    await t.exporter.consume(makeBatch(1), CTX);
    await until(() => t.sent() === 1);
    expect(b.requests.map((r) => r.answer.kind)).toEqual(['error', 'error', 'success']);
  });
});

describe('endpoints and TLS', () => {
  it('http: traces_endpoint is used as is', async () => {
    const b = await backend();
    const t = await exporterFor({ protocol: 'http/protobuf', endpoint: b.httpUrl, traces_endpoint: `${b.httpUrl}/custom/traces` });
    await t.exporter.consume(makeBatch(1), CTX);
    await b.waitForDelivered(1);
    expect(b.requests[0]!.path).toBe('/custom/traces');
  });

  it.each(PROTOCOLS)('%s: TLS with the CA from ca_file', async (protocol) => {
    const cert = makeTestCertificate();
    const b = await backend({ tls: cert });
    const endpoint = protocol === 'grpc' ? b.grpcAddress : b.httpUrl; // gRPC without scheme: TLS unless tls.insecure
    const t = await exporterFor({ protocol, endpoint, tls: { ca_file: cert.certFile } });
    await t.exporter.consume(makeBatch(2), CTX);
    await b.waitForDelivered(2);
  });

  it('http: insecure_skip_verify trusts an unknown certificate', async () => {
    const b = await backend({ tls: makeTestCertificate() });
    const t = await exporterFor({ protocol: 'http/json', endpoint: b.httpUrl, tls: { insecure_skip_verify: true } });
    await t.exporter.consume(makeBatch(1), CTX);
    await b.waitForDelivered(1);
  });

  it('start fails with the key and path of an unreadable TLS file', async () => {
    const set = testSettings(ID);
    const exporter = otlpExporterFactory.create(set, OtlpExporterConfig.parse({ endpoint: 'localhost:4317', tls: { ca_file: '/nonexistent/ca.pem' } }));
    await expect(exporter.start(testHost(set))).rejects.toThrow(/tls::ca_file: cannot read \/nonexistent\/ca.pem/);
    await exporter.shutdown(AbortSignal.timeout(1000));
  });
});

describe('shutdown', () => {
  it.each(PROTOCOLS)('%s: with an aborted signal and a dead backend it resolves promptly and counts dropped{shutdown}', async (protocol) => {
    const b = await backend();
    await b.down();
    const t = await exporterFor({ ...endpointOf(b, protocol), protocol, retry_on_failure: FAST_RETRY, sending_queue: { num_consumers: 2 } });
    for (let i = 0; i < 5; i++) await t.exporter.consume(makeBatch(3), CTX);
    await until(() => t.retries() > 0);
    const began = performance.now();
    await t.exporter.shutdown(AbortSignal.abort());
    expect(performance.now() - began).toBeLessThan(1000);
    expect(t.dropped('shutdown')).toBe(15);
    expect(t.sent()).toBe(0);
    expect(t.set.logs.filter((l) => l.reason === 'shutdown')).toEqual([expect.objectContaining({ level: 40, spans: 15 })]);
  });

  it('works without start, and twice', async () => {
    const exporter = otlpExporterFactory.create(testSettings(ID), OtlpExporterConfig.parse({ endpoint: 'http://127.0.0.1:1', protocol: 'http/json' }));
    const first = exporter.shutdown(AbortSignal.timeout(1000));
    expect(exporter.shutdown(AbortSignal.timeout(1000))).toBe(first);
    await first;
  });
});

describe('protobuf encoding', () => {
  const protobufjs = (resourceSpans: readonly ResourceSpans[]) => Buffer.from(ExportTraceServiceRequest.encode({ resourceSpans } as never).finish());
  /** What a decoder sees: every field, defaults included, 64-bit integers and bytes as text. */
  const decoded = (bytes: Uint8Array) =>
    ExportTraceServiceRequest.toObject(ExportTraceServiceRequest.decode(bytes), { longs: String, bytes: String, defaults: true, enums: Number });
  const u64 = (text: string) => Long.fromString(text, true);
  const i64 = (text: string) => Long.fromString(text, false);

  /** Every field and every kind of value, at and off its default, in every accepted representation. */
  function everything(): ResourceSpans[] {
    const id = (n: number, first: number) => Uint8Array.from({ length: n }, (_, i) => (first + i) & 0xff);
    return [
      {
        resource: {
          attributes: [{ key: 'service.name', value: { stringValue: 'agent' } }],
          droppedAttributesCount: 3,
          entityRefs: [{ schemaUrl: 'https://s', type: 'service', idKeys: ['service.name', ''], descriptionKeys: ['d'] }],
        },
        scopeSpans: [
          {
            scope: { name: 'scope', version: '1.2.3', attributes: [{ key: 'k', value: { boolValue: true } }], droppedAttributesCount: 1 },
            spans: [
              {
                traceId: id(16, 1),
                spanId: id(8, 100),
                traceState: 'a=b',
                parentSpanId: id(8, 200),
                flags: 0x301,
                name: 'tool call ✓',
                kind: 3,
                startTimeUnixNano: u64('18446744073709551615'),
                endTimeUnixNano: 1_760_000_000_000,
                attributes: [
                  { key: 'short', value: { stringValue: 'ascii' } },
                  { key: 'empty', value: { stringValue: '' } },
                  { key: 'long', value: { stringValue: 'x'.repeat(20_000) } },
                  { key: 'é 🔑 café', value: { stringValue: 'naïve — 日本語 😀'.repeat(5) } },
                  { key: 'false', value: { boolValue: false } },
                  { key: 'int', value: { intValue: i64('-9223372036854775808') } },
                  { key: 'int number', value: { intValue: -42 } },
                  { key: 'int big', value: { intValue: i64('9007199254740993') } },
                  { key: 'int zero', value: { intValue: 0 } },
                  { key: 'int text', value: { intValue: '123456789012' as never } },
                  { key: 'double', value: { doubleValue: -0.5 } },
                  { key: 'double zero', value: { doubleValue: 0 } },
                  { key: 'nan', value: { doubleValue: Number.NaN } },
                  { key: 'bytes', value: { bytesValue: id(40, 7) } },
                  { key: 'no bytes', value: { bytesValue: new Uint8Array(0) } },
                  { key: 'array', value: { arrayValue: { values: [{ stringValue: 'a' }, { intValue: 2 }, { arrayValue: { values: [] } }, {}] } } },
                  { key: 'kvlist', value: { kvlistValue: { values: [{ key: 'inner', value: { kvlistValue: { values: [{ key: 'deep', value: { doubleValue: 1e300 } }] } } }] } } },
                  { key: 'empty value', value: {} },
                  { key: 'no value' },
                ],
                droppedAttributesCount: 300,
                events: [
                  { timeUnixNano: structuredClone(u64('1760000000000000001')), name: 'e', attributes: [{ key: 'k', value: { stringValue: 'v' } }], droppedAttributesCount: 2 },
                  { timeUnixNano: null, name: '' },
                ],
                droppedEventsCount: 4,
                links: [{ traceId: id(16, 50), spanId: id(8, 60), traceState: 't=1', attributes: [{ key: 'l', value: { intValue: 1 } }], droppedAttributesCount: 5, flags: 1 }],
                droppedLinksCount: 2 ** 32 - 1,
                status: { message: 'boom', code: 2 },
              },
              { traceId: id(16, 9), spanId: id(8, 9), name: '', kind: 0, status: {} },
              { traceId: id(16, 10), spanId: id(8, 10), parentSpanId: new Uint8Array(0), startTimeUnixNano: '1760000000000000000' as never, status: null },
            ],
            schemaUrl: 'https://scope-schema',
          },
          { scopeSpans: undefined, spans: [] } as never,
        ],
        schemaUrl: 'https://resource-schema',
      },
      { scopeSpans: [] },
    ];
  }

  it('encodes every field and value as protobufjs does', () => {
    const input = everything();
    expect(decoded(encodeTraceProtobuf(input))).toEqual(decoded(protobufjs(input)));
  });

  it('produces the same bytes as protobufjs for decoded spans (field order, lengths, 64-bit integers)', () => {
    const batches = [makeBatch(50), makeBatch(1, 'another')];
    const received = ExportTraceServiceRequest.decode(protobufjs(batches.flatMap((b) => b.resourceSpans))) as unknown as { resourceSpans: ResourceSpans[] };
    const bytes = encodeTraceProtobuf(received.resourceSpans);
    expect(bytes.equals(protobufjs(received.resourceSpans))).toBe(true);
    expect(bytes.equals(encodeTraceProtobuf(structuredClone(received.resourceSpans)))).toBe(true); // Longs as {low, high}
  });

  it('takes bigint 64-bit integers, and writes an unpaired surrogate as U+FFFD', () => {
    const [rs] = everything();
    const span = rs!.scopeSpans[0]!.spans[0]!;
    const asLong = encodeTraceProtobuf([rs!]);
    span.startTimeUnixNano = 18446744073709551615n as never;
    span.endTimeUnixNano = 1_760_000_000_000n as never;
    expect(encodeTraceProtobuf([rs!]).equals(asLong)).toBe(true);
    span.name = 'bad \ud800 pair';
    const out = ExportTraceServiceRequest.decode(encodeTraceProtobuf([rs!])) as unknown as { resourceSpans: ResourceSpans[] };
    expect(out.resourceSpans[0]!.scopeSpans[0]!.spans[0]!.name).toBe('bad \ufffd pair');
  });

  it.each([
    ['a 64-bit integer that is not a number', (s: Record<string, unknown>) => (s.startTimeUnixNano = 'soon'), /expected a 64-bit integer, got "soon"/],
    ['an id that is not bytes', (s: Record<string, unknown>) => (s.traceId = '0af7651916cd43dd8448eb211c80319c'), /expected bytes/],
    ['a name that is not a string', (s: Record<string, unknown>) => (s.name = 42), /expected a string/],
  ])('throws on %s', (_what, spoil, message) => {
    const batch = makeBatch(2);
    spoil(spansOf(batch)[1] as unknown as Record<string, unknown>);
    expect(() => encodeTraceProtobuf(batch.resourceSpans)).toThrow(message);
  });
});

describe('int64String (OTLP/JSON)', () => {
  it('writes 64-bit integers in decimal as Long does, signed or unsigned, Long or {low, high}', () => {
    const texts = ['0', '1', '4294967295', '4294967296', '9007199254740991', '9007199254740992', '9007199254740993', '1760000000123456789', '9223372036854775807', '9223372036854775808', '10000000000000000000', '18446744073709551615'];
    const values = [...texts.map((t) => Long.fromString(t, true)), ...texts.slice(0, 9).flatMap((t) => [Long.fromString(t, false), Long.fromString(`-${t}`, false)])];
    values.push(Long.MIN_VALUE);
    for (let i = 0; i < 2000; i++) values.push(new Long((Math.random() * 2 ** 32) | 0, (Math.random() * 2 ** 32) | 0, i % 2 === 0));
    for (const v of values) {
      expect(int64String(v)).toBe(v.toString());
      expect(int64String(structuredClone(v))).toBe(v.toString());
    }
    expect(int64String(-7)).toBe('-7');
    expect(int64String(null)).toBe('0');
  });
});
