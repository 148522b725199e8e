// Conformance through the whole collector: the official OTel JS exporters send spans with every
// attribute type to the receiver; the collector forwards them with its otlp exporter over gRPC,
// HTTP/protobuf and HTTP/JSON, and writes them with its file exporter. What leaves is checked
// field by field against the SDK's own span objects, decoding the exported protobuf with the
// OpenTelemetry JS project's own generated code (otlp-transformer's protobufjs root), not ours,
// and reading the exported JSON with a reader written here from the OTLP/JSON rules. Twice: as
// received (the exporters encode decoded spans), and through normalize, tracegraph and enrich's
// hold (the spans are held as the bytes they came in, leave with the agentsec.* attributes
// appended to those bytes, and the file exporter transcodes the bytes to OTLP/JSON), and the same
// with no hold.
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { FakeBackend, type ReceivedRequest } from '../helpers/fake-backend.ts';
import { startCollector, type TestCollector } from '../helpers/collector.ts';
import { exportWith, expected, recordSpans } from '../helpers/sdk-spans.ts';
import { plainSpans, type PlainSpan } from '../helpers/plain-spans.ts';

const require = createRequire(import.meta.url);
// OTel JS's generated static protobuf code (otlp-transformer 0.200, which still shipped it).
const otelRoot = require('otlp-transformer-protobufjs/build/src/generated/root.js') as {
  opentelemetry: { proto: { collector: { trace: { v1: { ExportTraceServiceRequest: { decode(b: Uint8Array): { resourceSpans: never[] } } } } } } };
};
const OtelExportTraceServiceRequest = otelRoot.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;

/** OTLP/JSON → PlainSpan, written from the spec's JSON rules (hex ids, int64 as strings, int enums). */
function plainFromJson(text: string): PlainSpan[] {
  type J = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const value = (v: J | undefined): unknown => {
    if (!v) return null;
    if ('stringValue' in v) return v.stringValue;
    if ('boolValue' in v) return v.boolValue;
    if ('intValue' in v) return { int: String(v.intValue) };
    if ('doubleValue' in v) return v.doubleValue;
    if ('bytesValue' in v) return { bytes: Buffer.from(v.bytesValue, 'base64').toString('hex') };
    if ('arrayValue' in v) return (v.arrayValue.values ?? []).map(value);
    if ('kvlistValue' in v) return { kvlist: attrs(v.kvlistValue.values) };
    return null;
  };
  const attrs = (list: J[] | undefined) => Object.fromEntries((list ?? []).map((kv) => [kv.key, value(kv.value)]));
  const out: PlainSpan[] = [];
  for (const rs of JSON.parse(text).resourceSpans as J[]) {
    for (const ss of rs.scopeSpans as J[]) {
      for (const s of ss.spans as J[]) {
        out.push({
          resource: attrs(rs.resource?.attributes),
          scope: { name: ss.scope?.name ?? '', version: ss.scope?.version ?? '', attributes: attrs(ss.scope?.attributes) },
          scopeSchemaUrl: ss.schemaUrl ?? '',
          traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? '', traceState: s.traceState ?? '',
          name: s.name, kind: s.kind, start: s.startTimeUnixNano, end: s.endTimeUnixNano,
          attributes: attrs(s.attributes),
          events: (s.events ?? []).map((e: J) => ({ name: e.name, time: e.timeUnixNano, attributes: attrs(e.attributes) })),
          links: (s.links ?? []).map((l: J) => ({ traceId: l.traceId, spanId: l.spanId, attributes: attrs(l.attributes) })),
          status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
        });
      }
    }
  }
  return out;
}

function exportedSpans(requests: ReceivedRequest[]): PlainSpan[] {
  return requests.flatMap((r) => (r.json ? plainFromJson(r.body.toString('utf8')) : plainSpans([OtelExportTraceServiceRequest.decode(r.body)])));
}

const clients: [string, (c: TestCollector) => SpanExporter][] = [
  ['gRPC', (c) => new GrpcExporter({ url: `http://${c.grpcAddress}` })],
  ['HTTP/protobuf', (c) => new ProtoExporter({ url: `${c.httpUrl}/v1/traces` })],
  ['HTTP/JSON', (c) => new JsonExporter({ url: `${c.httpUrl}/v1/traces` })],
];

const PIPELINES: [string, string, string][] = [
  ['as received', '', '[memory_limiter]'],
  ['through normalize, tracegraph and enrich (held as bytes)', 'normalize: {}\n  tracegraph: {}\n  enrich: { hold: 50ms }', '[memory_limiter, normalize, tracegraph, enrich]'],
  ['through normalize, tracegraph and enrich with no hold (sent on as bytes)', 'normalize: {}\n  tracegraph: {}\n  enrich: { hold: 0s }', '[memory_limiter, normalize, tracegraph, enrich]'],
];

/** The span as the SDK made it: what enrich adds (agentsec.* attributes) left out. */
function withoutEnrichment(s: PlainSpan): PlainSpan {
  return { ...s, attributes: Object.fromEntries(Object.entries(s.attributes).filter(([k]) => !k.startsWith('agentsec.'))) };
}

describe.each(PIPELINES)('through the collector, %s', (_pipeline, processorConfigs, processors) => {
  const enriched = processorConfigs !== '';
  let backend: FakeBackend;
  let collector: TestCollector;
  let sdkSpans: ReadableSpan[];
  const dataDir = mkdtempSync(join(tmpdir(), 'agentsec-e2e-'));

  beforeAll(async () => {
    backend = await FakeBackend.start();
    sdkSpans = await recordSpans();
    collector = await startCollector(`
receivers:
  otlp:
    protocols:
      grpc: { endpoint: "127.0.0.1:0" }
      http: { endpoint: "127.0.0.1:0" }
processors:
  memory_limiter: { limit_mib: 4096 }
  ${processorConfigs}
exporters:
  otlp/grpc: { endpoint: "${backend.grpcAddress}", protocol: grpc, tls: { insecure: true } }
  otlp/proto: { endpoint: "${backend.httpUrl}", protocol: http/protobuf }
  otlp/json: { endpoint: "${backend.httpUrl}", protocol: http/json, compression: none }
  file: { path: "${dataDir}/spans.jsonl" }
extensions:
  admin: { endpoint: "127.0.0.1:0" }
service:
  extensions: [admin]
  telemetry: { logs: { level: warn } }
  pipelines:
    traces: { receivers: [otlp], processors: ${processors}, exporters: [otlp/grpc, otlp/proto, otlp/json, file] }
`);
  });
  afterAll(async () => {
    await collector?.stop();
    await backend?.close();
  });

  it.each(clients)('%s in: every field leaves intact on every exporter', async (_name, make) => {
    backend.requests.length = 0;
    const exporter = make(collector);
    await exportWith(exporter, sdkSpans);
    await exporter.shutdown();
    await backend.waitForDelivered(3 * sdkSpans.length);

    const byTransport = {
      grpc: backend.requests.filter((r) => r.transport === 'grpc'),
      proto: backend.requests.filter((r) => r.transport === 'http' && !r.json),
      json: backend.requests.filter((r) => r.transport === 'http' && r.json),
    };
    for (const [name, requests] of Object.entries(byTransport)) {
      expect(requests.length, name).toBeGreaterThan(0);
      const got = new Map(exportedSpans(requests).map((s) => [s.spanId, s]));
      expect(got.size, name).toBe(sdkSpans.length);
      for (const s of sdkSpans) expect(withoutEnrichment(got.get(s.spanContext().spanId)!), `${name} ${s.name}`).toEqual(expected(s));
      // Not vacuous: enrich's attributes are there, on the agent's span, with the rest.
      const agentSpan = [...got.values()].find((x) => x.name === 'invoke_agent research')!;
      expect(agentSpan.attributes['agentsec.agent.role'], name).toBe(enriched ? 'research' : undefined);
    }
    // Not vacuous: the 64-bit edges survived both encodings.
    const root = exportedSpans(byTransport.json).find((s) => s.name === 'invoke_agent research')!;
    expect(root.attributes['int.negative']).toEqual({ int: '-9007199254740991' });
    expect(root.start).toBe('1700000000123456789');
  });

  it('writes the same spans to the file exporter as OTLP/JSON lines', async () => {
    await collector.service.shutdown();
    const lines = readFileSync(join(dataDir, 'spans.jsonl'), 'utf8').trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(clients.length);
    const fromFile = lines.flatMap(plainFromJson);
    expect(fromFile).toHaveLength(clients.length * sdkSpans.length);
    const byId = new Map(fromFile.map((s) => [s.spanId, s]));
    for (const s of sdkSpans) expect(withoutEnrichment(byId.get(s.spanContext().spanId)!)).toEqual(expected(s));
    const agentSpans = fromFile.filter((x) => x.name === 'invoke_agent research');
    expect(agentSpans.map((x) => x.attributes['agentsec.agent.role'])).toEqual(clients.map(() => (enriched ? 'research' : undefined)));
  });
});
