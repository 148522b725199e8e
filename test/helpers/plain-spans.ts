// Spans as plain data for comparisons: works on our decoded form and on any protobufjs
// decoding of the OTLP protos (e.g. the OpenTelemetry JS project's own generated code).
import { toHex } from '../../src/otlp/ids.ts';
import { int64String } from '../../src/otlp/encode.ts';
import type { AnyValue, KeyValue, ResourceSpans } from '../../src/otlp/types.ts';

/**
 * AnyValue as plain data: strings, booleans and doubles as themselves, ints as { int: decimal },
 * bytes as { bytes: hex }, arrays as arrays, kvlists as { kvlist: {...} }, no value as null.
 * Reads own fields only (protobufjs keeps oneof defaults on the prototype).
 */
export function plainValue(v: AnyValue | null | undefined): unknown {
  if (v === null || v === undefined) return null;
  const has = (k: keyof AnyValue): boolean => Object.hasOwn(v, k) && v[k] != null;
  if (has('stringValue')) return v.stringValue;
  if (has('boolValue')) return v.boolValue;
  if (has('intValue')) return { int: int64String(v.intValue) };
  if (has('doubleValue')) return v.doubleValue;
  if (has('bytesValue')) return { bytes: Buffer.from(v.bytesValue!).toString('hex') };
  if (has('arrayValue')) return (v.arrayValue!.values ?? []).map(plainValue);
  if (has('kvlistValue')) return { kvlist: plainAttributes(v.kvlistValue!.values) };
  return null;
}

export function plainAttributes(attrs: readonly KeyValue[] | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of attrs ?? []) out[kv.key] = plainValue(kv.value);
  return out;
}

export interface PlainSpan {
  resource: Record<string, unknown>;
  scope: { name: string; version: string; attributes: Record<string, unknown> };
  scopeSchemaUrl: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  kind: number;
  start: string;
  end: string;
  attributes: Record<string, unknown>;
  events: { name: string; time: string; attributes: Record<string, unknown> }[];
  links: { traceId: string; spanId: string; attributes: Record<string, unknown> }[];
  status: { code: number; message: string };
}

/** Every span of the batches with its resource and scope, in arrival order, as plain data. */
export function plainSpans(batches: readonly { resourceSpans: readonly ResourceSpans[] }[]): PlainSpan[] {
  const out: PlainSpan[] = [];
  for (const b of batches) {
    for (const rs of b.resourceSpans) {
      for (const ss of rs.scopeSpans) {
        for (const s of ss.spans) {
          out.push({
            resource: plainAttributes(rs.resource?.attributes),
            scope: { name: ss.scope?.name ?? '', version: ss.scope?.version ?? '', attributes: plainAttributes(ss.scope?.attributes) },
            scopeSchemaUrl: ss.schemaUrl ?? '',
            traceId: toHex(s.traceId),
            spanId: toHex(s.spanId),
            parentSpanId: toHex(s.parentSpanId),
            traceState: s.traceState ?? '',
            name: s.name ?? '',
            kind: s.kind ?? 0,
            start: int64String(s.startTimeUnixNano),
            end: int64String(s.endTimeUnixNano),
            attributes: plainAttributes(s.attributes),
            events: (s.events ?? []).map((e) => ({ name: e.name ?? '', time: int64String(e.timeUnixNano), attributes: plainAttributes(e.attributes) })),
            links: (s.links ?? []).map((l) => ({ traceId: toHex(l.traceId), spanId: toHex(l.spanId), attributes: plainAttributes(l.attributes) })),
            status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
          });
        }
      }
    }
  }
  return out;
}

/** An OTel HrTime in milliseconds since the epoch. */
export const hrMs = (t: readonly [number, number]) => t[0] * 1000 + t[1] / 1e6;
