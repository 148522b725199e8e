// Trace batches for tests: distinct, recognisable spans with every kind of attribute value,
// so that a test comparing what was sent with what arrived notices any field going astray.
import { randomBytes } from 'node:crypto';
import { Long } from '../../src/otlp/proto.ts';
import type { Span, TraceBatch } from '../../src/otlp/types.ts';

let sequence = 0;

export function makeSpan(name = `span-${++sequence}`): Span {
  const start = Long.fromString('1760000000000000000', true).add(sequence * 1000);
  return {
    traceId: randomBytes(16),
    spanId: randomBytes(8),
    parentSpanId: randomBytes(8),
    name,
    kind: 3,
    startTimeUnixNano: start,
    endTimeUnixNano: start.add(1_500_000),
    attributes: [
      { key: 'gen_ai.tool.name', value: { stringValue: `tool-${sequence}` } },
      { key: 'gen_ai.usage.input_tokens', value: { intValue: Long.fromNumber(1234 + sequence) } },
      { key: 'retry', value: { boolValue: true } },
      { key: 'score', value: { doubleValue: 0.75 } },
      { key: 'tags', value: { arrayValue: { values: [{ stringValue: 'a' }, { intValue: Long.fromNumber(2) }] } } },
    ],
    status: { code: 2, message: 'boom' },
  };
}

/** One batch of `spans` spans under one resource and scope. */
export function makeBatch(spans: number, service = 'agent-under-test'): TraceBatch {
  return {
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] },
        scopeSpans: [{ scope: { name: 'test', version: '1.0.0' }, spans: Array.from({ length: spans }, () => makeSpan()) }],
      },
    ],
    spanCount: spans,
  };
}

export function spansOf(batch: TraceBatch): Span[] {
  return batch.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans));
}

/** The fields a round trip must preserve, in a form toEqual compares reliably (hex ids, decimal times). */
export function spanFingerprint(span: Span): Record<string, unknown> {
  const hex = (id: Uint8Array | null | undefined) => Buffer.from(id ?? []).toString('hex');
  const int = (v: unknown) => (v == null ? '0' : Long.fromValue(v as Long).toString());
  const value = (v: unknown): unknown => JSON.parse(JSON.stringify(v, (_k, x) => (Long.isLong(x) ? x.toString() : x)));
  return {
    traceId: hex(span.traceId),
    spanId: hex(span.spanId),
    parentSpanId: hex(span.parentSpanId),
    name: span.name,
    kind: span.kind,
    start: int(span.startTimeUnixNano),
    end: int(span.endTimeUnixNano),
    attributes: Object.fromEntries((span.attributes ?? []).map((a) => [a.key, value(a.value)])),
    status: { code: span.status?.code ?? 0, message: span.status?.message ?? '' },
  };
}
