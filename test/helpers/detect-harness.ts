// The detection pipeline in-process (normalize → tracegraph → detect → enrich, hold 0) with a
// policy given as YAML, fed spans built compactly (send) or recorded by a real OTel SDK and
// serialised with the official OTLP/protobuf serializer (sendRecorded), for detector and
// scenario tests.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Normalize, NormalizeConfig } from '../../src/processors/normalize.ts';
import { TraceGraphConfig, TraceGraphProcessor } from '../../src/processors/tracegraph.ts';
import { Detect, DetectConfig } from '../../src/processors/detect.ts';
import { Enrich, EnrichConfig } from '../../src/processors/enrich.ts';
import { decodeTraceJson, decodeTraceProtobuf } from '../../src/otlp/decode.ts';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { Finding } from '../../src/detect/finding.ts';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { hrMs, plainSpans, type PlainSpan } from './plain-spans.ts';
import { TracesSink } from './sink.ts';
import { testSettings } from './settings.ts';

export interface SpanSpec {
  /** Short hex id, padded to 16 digits. */
  id: string;
  parent?: string;
  name?: string;
  /** OTLP kind: 1 internal, 2 server, 3 client. */
  kind?: number;
  /** Start, in ms from the trace's start. */
  t: number;
  /** Duration in ms (default 1). */
  d?: number;
  service?: string;
  trace?: string;
  attrs?: Record<string, string | number | string[]>;
  links?: { trace?: string; span: string }[];
}

export const TRACE = '0123456789abcdef0123456789abcdef';

/** A short span id as the harness pads it (16 hex digits). */
export const spanId = (short: string) => short.padStart(16, '0');

/** GenAI attributes of an invoke_agent span. */
export const agentAttrs = (name: string) => ({ 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': name });

/** GenAI attributes of an execute_tool span, with its arguments and result as JSON when given. */
export function toolAttrs(name: string, args?: unknown, result?: unknown): Record<string, string> {
  return {
    'gen_ai.operation.name': 'execute_tool',
    'gen_ai.tool.name': name,
    ...(args !== undefined ? { 'gen_ai.tool.call.arguments': JSON.stringify(args) } : {}),
    ...(result !== undefined ? { 'gen_ai.tool.call.result': JSON.stringify(result) } : {}),
  };
}
const BASE_MS = Date.parse('2026-11-21T10:00:00Z');

export function otlpJson(spans: SpanSpec[]): string {
  const byService = new Map<string, SpanSpec[]>();
  for (const s of spans) {
    const svc = s.service ?? 'agents';
    byService.set(svc, [...(byService.get(svc) ?? []), s]);
  }
  // Microsecond precision, so that fractional milliseconds work.
  const nanos = (ms: number) => (BigInt(Math.round((BASE_MS + ms) * 1000)) * 1000n).toString();
  return JSON.stringify({
    resourceSpans: [...byService].map(([svc, list]) => ({
      resource: { attributes: [{ key: 'service.name', value: { stringValue: svc } }] },
      scopeSpans: [{
        spans: list.map((s) => ({
          traceId: s.trace ?? TRACE,
          spanId: s.id.padStart(16, '0'),
          ...(s.parent ? { parentSpanId: s.parent.padStart(16, '0') } : {}),
          name: s.name ?? 'span',
          kind: s.kind ?? 1,
          startTimeUnixNano: nanos(s.t),
          endTimeUnixNano: nanos(s.t + (s.d ?? 1)),
          attributes: Object.entries(s.attrs ?? {}).map(([key, v]) => ({
            key,
            value: Array.isArray(v) ? { arrayValue: { values: v.map((x) => ({ stringValue: x })) } } : typeof v === 'number' ? { intValue: v } : { stringValue: v },
          })),
          links: (s.links ?? []).map((l) => ({ traceId: l.trace ?? s.trace ?? TRACE, spanId: l.span.padStart(16, '0') })),
        })),
      }],
    })),
  });
}

export interface DetectHarness {
  /** The pipeline's first processor (a sidecar's output can be chained into it). */
  normalize: Normalize;
  graph: TraceGraphProcessor;
  detect: Detect;
  sink: TracesSink;
  /** Sends spans as one batch (call several times for several batches). */
  send(spans: SpanSpec[]): Promise<void>;
  /** Sends spans a real SDK recorded as one OTLP/protobuf request. */
  sendRecorded(spans: ReadableSpan[]): Promise<void>;
  findings(): Finding[];
  exported(): PlainSpan[];
  /** Lines the stdout finding sink wrote. */
  stdout: string[];
}

export function detectHarness(policyYaml = '', detectConfig: Record<string, unknown> = {}, normalizeConfig: Record<string, unknown> = {}): DetectHarness {
  const dir = mkdtempSync(join(tmpdir(), 'agentsec-detect-'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(policy, policyYaml);
  const set = testSettings('detect');
  const sink = new TracesSink();
  const stdout: string[] = [];
  const enrich = new Enrich(set, EnrichConfig.parse({ hold: 0 }), sink);
  const detect = new Detect(set, DetectConfig.parse({ policy, sinks: { ndjson: [{ path: '-' }] }, ...detectConfig }), enrich, { write: (s: string) => stdout.push(s) });
  const graph = new TraceGraphProcessor(set, TraceGraphConfig.parse({}), detect);
  const normalize = new Normalize(set, NormalizeConfig.parse({ hmac_key: 'detect-harness-key-0123456789abcdef', ...normalizeConfig }), graph);
  detect.now = () => BASE_MS + 60_000;
  return {
    normalize,
    graph,
    detect,
    sink,
    stdout,
    async send(spans) {
      await normalize.consume(decodeTraceJson(otlpJson(spans)).batch, { receiver: 'test', transport: 'http' });
    },
    async sendRecorded(spans) {
      await normalize.consume(decodeTraceProtobuf(ProtobufTraceSerializer.serializeRequest(spans)!).batch, { receiver: 'test', transport: 'http' });
    },
    findings: () => detect.list({}).findings,
    exported: () => plainSpans(sink.batches),
  };
}

/** Spans an OTel SDK recorded, as the harness takes them (attributes as recorded; start floored and end ceiled to whole ms, so that containment is kept). */
export function specsFromSdk(spans: readonly ReadableSpan[]): SpanSpec[] {
  const t0 = Math.min(...spans.map((s) => hrMs(s.startTime)));
  return spans.map((s) => {
    const start = Math.floor(hrMs(s.startTime) - t0);
    const end = Math.ceil(hrMs(s.endTime) - t0);
    const attrs: NonNullable<SpanSpec['attrs']> = {};
    for (const [k, v] of Object.entries(s.attributes)) {
      if (typeof v === 'string') attrs[k] = v;
      else if (typeof v === 'number' && Number.isInteger(v)) attrs[k] = v;
      else if (typeof v === 'boolean') attrs[k] = String(v);
      else if (Array.isArray(v)) attrs[k] = v.map(String);
    }
    const parent = s.parentSpanContext?.spanId;
    return { id: s.spanContext().spanId, trace: s.spanContext().traceId, ...(parent ? { parent } : {}), name: s.name, kind: s.kind + 1, t: start, d: end - start, service: String(s.resource.attributes['service.name']), attrs };
  });
}

/** Findings without their detection time, in id order: comparable across runs and arrival orders. */
export function comparableFindings(fs: readonly Finding[]) {
  return fs.map(({ time: _t, ...f }) => f).sort((a, b) => a.id.localeCompare(b.id));
}
