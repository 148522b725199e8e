// Spans recorded by the real OpenTelemetry JS SDK with every attribute type, events, links,
// statuses, exact timestamps and a remote parent, and what each must look like once received.
import { context, propagation, SpanKind, SpanStatusCode, trace, TraceFlags, type Attributes, type HrTime } from '@opentelemetry/api';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { ExportResultCode, TraceState } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace';
import type { PlainSpan } from './plain-spans.ts';

const SCOPE_ATTRIBUTES = { 'scope.team': 'agents', 'scope.build': 7 };

/** Spans with every attribute type, events, links, statuses, exact timestamps and a remote parent. */
export async function recordSpans(): Promise<ReadableSpan[]> {
  const memory = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'research-agent', 'k8s.pod.name': 'research-7f9c', 'service.replicas': 3, 'host.arm': false }),
    spanProcessors: [new SimpleSpanProcessor({ exporter: memory })],
  });
  const tracer = provider.getTracer('agent-framework', '1.4.2', { schemaUrl: 'https://opentelemetry.io/schemas/1.30.0' });
  const attributes: Attributes = {
    'gen_ai.operation.name': 'invoke_agent',
    'gen_ai.agent.name': 'research',
    'agent.retry': true,
    'agent.enabled': false,
    'gen_ai.usage.input_tokens': 1234,
    'int.max_safe': Number.MAX_SAFE_INTEGER,
    'int.negative': -9007199254740991,
    'int.zero': 0,
    'gen_ai.request.temperature': 0.7,
    'double.tiny': 5e-324,
    'double.negative': -1234.5678,
    'gen_ai.request.stop_sequences': ['\n\n', 'END', ''],
    'array.bool': [true, false],
    'array.int': [1, -2, 3000000000],
    'array.double': [1.5, -0.25],
    'unicode.value': 'naïve — 日本語 🚀',
  };
  const remoteParent = trace.setSpanContext(context.active(), {
    traceId: '5b8efff798038103d269b633813fc60c',
    spanId: 'eee19b7ec3c1b174',
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
    traceState: new TraceState('vendor=abc,other=1'),
  });
  const root = tracer.startSpan('invoke_agent research', { kind: SpanKind.SERVER, startTime: [1_700_000_000, 123_456_789], attributes }, remoteParent);
  const other = tracer.startSpan('other trace', { kind: SpanKind.PRODUCER, startTime: [1_700_000_000, 1] }, context.active());
  other.end([1_700_000_000, 2]);
  const child = tracer.startSpan(
    'execute_tool web_search',
    {
      kind: SpanKind.CLIENT,
      startTime: [1_700_000_000, 223_456_789],
      links: [{ context: other.spanContext(), attributes: { 'link.reason': 'follows_from', 'link.weight': 2 } }],
      attributes: { 'gen_ai.tool.name': 'web_search', 'server.address': 'search.example.com' },
    },
    trace.setSpan(context.active(), root),
  );
  child.addEvent('gen_ai.tool.message', { 'message.length': 42, 'message.role': 'tool', 'message.flags': ['a', 'b'] }, [1_700_000_000, 300_000_001]);
  child.addEvent('no attributes', [1_700_000_000, 300_000_002]);
  child.setStatus({ code: SpanStatusCode.ERROR, message: 'tool failed: timeout' });
  child.end([1_700_000_001, 5]);
  const consumer = tracer.startSpan('consume', { kind: SpanKind.CONSUMER, startTime: [1_700_000_002, 0] }, trace.setSpan(context.active(), root));
  consumer.end([1_700_000_002, 1]);
  root.setStatus({ code: SpanStatusCode.OK });
  root.end([1_700_000_002, 999_999_999]);
  await provider.forceFlush();
  // The API has no scope attributes yet; the exporters send whatever the span's scope carries.
  return memory.getFinishedSpans().map((s) =>
    Object.create(s, { instrumentationScope: { value: { ...s.instrumentationScope, attributes: SCOPE_ATTRIBUTES } } }) as ReadableSpan,
  );
}

function nanos(t: HrTime): string {
  return (BigInt(t[0]) * 1_000_000_000n + BigInt(t[1])).toString();
}

/** An SDK attribute value as plainValue shows it: integers are intValue, other numbers doubleValue. */
function sdkValue(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sdkValue);
  if (typeof v === 'number') return Number.isInteger(v) ? { int: String(v) } : v;
  return v ?? null;
}

function sdkAttributes(attrs: Attributes | undefined): Record<string, unknown> {
  return Object.fromEntries(Object.entries(attrs ?? {}).map(([k, v]) => [k, sdkValue(v)]));
}

/** What the receiver must have: straight from the SDK's own span objects. */
export function expected(s: ReadableSpan): PlainSpan {
  const ctx = s.spanContext();
  return {
    resource: sdkAttributes(s.resource.attributes as Attributes),
    scope: { name: s.instrumentationScope.name, version: s.instrumentationScope.version ?? '', attributes: sdkAttributes(SCOPE_ATTRIBUTES) },
    scopeSchemaUrl: s.instrumentationScope.schemaUrl ?? '',
    traceId: ctx.traceId,
    spanId: ctx.spanId,
    parentSpanId: s.parentSpanContext?.spanId ?? '',
    traceState: ctx.traceState?.serialize() ?? '',
    name: s.name,
    kind: s.kind + 1, // the API counts from INTERNAL = 0, OTLP from UNSPECIFIED = 0
    start: nanos(s.startTime),
    end: nanos(s.endTime),
    attributes: sdkAttributes(s.attributes),
    events: s.events.map((e) => ({ name: e.name, time: nanos(e.time), attributes: sdkAttributes(e.attributes) })),
    links: s.links.map((l) => ({ traceId: l.context.traceId, spanId: l.context.spanId, attributes: sdkAttributes(l.attributes) })),
    status: { code: s.status.code, message: s.status.message ?? '' },
  };
}

export function exportWith(exporter: SpanExporter, spans: ReadableSpan[]): Promise<void> {
  return new Promise((resolve, reject) => {
    exporter.export(spans, (result) => (result.code === ExportResultCode.SUCCESS ? resolve() : reject(result.error ?? new Error('export failed'))));
  });
}

/** A started NodeSDK for `resource` (a service name, or resource attributes) recording every span in memory, and nothing else (no logs, metrics or instrumentations). */
export function startRecordingSdk(resource: string | Record<string, string>): { memory: InMemorySpanExporter; sdk: NodeSDK } {
  const memory = new InMemorySpanExporter();
  const sdk = new NodeSDK({
    resource: resourceFromAttributes(typeof resource === 'string' ? { 'service.name': resource } : resource),
    autoDetectResources: false,
    spanProcessors: [new SimpleSpanProcessor({ exporter: memory })],
    logRecordProcessors: [],
    metricReaders: [],
    instrumentations: [],
  });
  sdk.start();
  return { memory, sdk };
}

/** Shuts the SDK down and unregisters the OpenTelemetry globals, so that other suites in the worker start clean. */
export async function stopRecordingSdk(sdk: NodeSDK | undefined): Promise<void> {
  await sdk?.shutdown();
  trace.disable();
  context.disable();
  propagation.disable();
}

/** Runs `fn` under a recording NodeSDK for `resource` and returns the spans it ended, in end order. */
export async function runRecorded(resource: string | Record<string, string>, fn: () => Promise<unknown>): Promise<ReadableSpan[]> {
  const { memory, sdk } = startRecordingSdk(resource);
  let spans: ReadableSpan[] = [];
  try {
    await fn();
  } finally {
    spans = [...memory.getFinishedSpans()];
    await stopRecordingSdk(sdk);
  }
  return spans;
}
