// OTLP trace request encoding: protobuf (protobufjs, from the canonical form) and OTLP/JSON
// (hex ids, integer enums, 64-bit integers as decimal strings, bytes as base64).
import { ExportTraceServiceRequest, Long } from './proto.ts';
import { toHex } from './ids.ts';
import type { AnyValue, Int64, KeyValue, ResourceSpans, Span } from './types.ts';

export function encodeTraceProtobuf(resourceSpans: readonly ResourceSpans[]): Uint8Array {
  return ExportTraceServiceRequest.encode({ resourceSpans } as never).finish();
}

export function encodeTraceJson(resourceSpans: readonly ResourceSpans[]): string {
  return JSON.stringify({ resourceSpans: resourceSpans.map(jsonResourceSpans) });
}

type Json = Record<string, unknown>;

function jsonResourceSpans(rs: ResourceSpans): Json {
  const out: Json = {};
  if (rs.resource) out.resource = withAttributes({}, rs.resource);
  out.scopeSpans = (rs.scopeSpans ?? []).map((ss) => {
    const o: Json = {};
    if (ss.scope) {
      const scope: Json = {};
      if (ss.scope.name) scope.name = ss.scope.name;
      if (ss.scope.version) scope.version = ss.scope.version;
      o.scope = withAttributes(scope, ss.scope);
    }
    o.spans = (ss.spans ?? []).map(jsonSpan);
    if (ss.schemaUrl) o.schemaUrl = ss.schemaUrl;
    return o;
  });
  if (rs.schemaUrl) out.schemaUrl = rs.schemaUrl;
  return out;
}

function jsonSpan(s: Span): Json {
  const o: Json = { traceId: toHex(s.traceId), spanId: toHex(s.spanId) };
  if (s.traceState) o.traceState = s.traceState;
  if (s.parentSpanId && s.parentSpanId.length > 0) o.parentSpanId = toHex(s.parentSpanId);
  if (s.flags) o.flags = s.flags;
  o.name = s.name ?? '';
  o.kind = s.kind ?? 0;
  o.startTimeUnixNano = int64String(s.startTimeUnixNano);
  o.endTimeUnixNano = int64String(s.endTimeUnixNano);
  withAttributes(o, s);
  if (s.events && s.events.length > 0) {
    o.events = s.events.map((e) => withAttributes({ timeUnixNano: int64String(e.timeUnixNano), name: e.name ?? '' }, e));
  }
  if (s.droppedEventsCount) o.droppedEventsCount = s.droppedEventsCount;
  if (s.links && s.links.length > 0) {
    o.links = s.links.map((l) => {
      const lo: Json = { traceId: toHex(l.traceId), spanId: toHex(l.spanId) };
      if (l.traceState) lo.traceState = l.traceState;
      if (l.flags) lo.flags = l.flags;
      return withAttributes(lo, l);
    });
  }
  if (s.droppedLinksCount) o.droppedLinksCount = s.droppedLinksCount;
  if (s.status && (s.status.code || s.status.message)) {
    const st: Json = {};
    if (s.status.message) st.message = s.status.message;
    if (s.status.code) st.code = s.status.code;
    o.status = st;
  } else {
    o.status = {};
  }
  return o;
}

function withAttributes(o: Json, src: { attributes?: KeyValue[] | null; droppedAttributesCount?: number | null }): Json {
  const attrs = src.attributes;
  if (attrs && attrs.length > 0) o.attributes = jsonKeyValues(attrs);
  if (src.droppedAttributesCount) o.droppedAttributesCount = src.droppedAttributesCount;
  return o;
}

export function jsonKeyValues(attrs: readonly KeyValue[]): Json[] {
  const out: Json[] = new Array(attrs.length);
  for (let i = 0; i < attrs.length; i++) {
    const kv = attrs[i]!;
    out[i] = kv.value ? { key: kv.key, value: jsonAnyValue(kv.value) } : { key: kv.key, value: {} };
  }
  return out;
}

export function jsonAnyValue(v: AnyValue): Json {
  if (isSet(v, 'stringValue')) return { stringValue: v.stringValue };
  if (isSet(v, 'boolValue')) return { boolValue: v.boolValue };
  if (isSet(v, 'intValue')) return { intValue: int64String(v.intValue) };
  if (isSet(v, 'doubleValue')) return { doubleValue: Number.isFinite(v.doubleValue) ? v.doubleValue : String(v.doubleValue) };
  if (isSet(v, 'bytesValue')) return { bytesValue: Buffer.from(v.bytesValue!).toString('base64') };
  if (isSet(v, 'arrayValue')) return { arrayValue: { values: (v.arrayValue!.values ?? []).map(jsonAnyValue) } };
  if (isSet(v, 'kvlistValue')) return { kvlistValue: { values: jsonKeyValues(v.kvlistValue!.values ?? []) } };
  return {};
}

/**
 * Whether this AnyValue holds `k`. Own fields only: protobufjs puts the defaults of oneof members
 * on the message prototype ('' for stringValue, false for boolValue, …), so every decoded value
 * "has" a stringValue of ''.
 */
function isSet(v: AnyValue, k: keyof AnyValue): boolean {
  return Object.hasOwn(v, k) && v[k] != null;
}

export function int64String(v: Int64 | null | undefined): string {
  if (v === null || v === undefined) return '0';
  // Long, or a {low, high, unsigned} object after structuredClone.
  return typeof v === 'number' ? String(v) : Long.fromValue(v).toString();
}
