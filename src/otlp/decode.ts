// OTLP trace request decoding (protobuf and JSON) into the canonical form, with per-span
// validation: a span with a bad id or field is rejected alone (counted in partial_success)
// so that one bad span never loses the rest of the batch. Structural damage (bytes that
// are not protobuf, text that is not JSON) fails the whole request as BadInputError.
import { BadInputError } from '../errors.ts';
import { ExportTraceServiceRequest, Long } from './proto.ts';
import { idProblem, parseHexId, sameId, SPAN_ID_BYTES, TRACE_ID_BYTES } from './ids.ts';
import { FieldReader, WIRE_LEN } from './wire.ts';
import type { AnyValue, Int64, KeyValue, ResourceSpans, ScopeSpans, Span, TraceBatch } from './types.ts';

export interface DecodedTraces {
  batch: TraceBatch;
  /** Spans dropped by validation; they are in `errors` too (first few only). */
  rejectedSpans: number;
  errors: string[];
}

const MAX_ERRORS_REPORTED = 10;

class FieldError extends Error {
  readonly path: string;
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.path = path;
  }
}

class Rejections {
  count = 0;
  readonly errors: string[] = [];
  add(n: number, message: string): void {
    this.count += n;
    if (this.errors.length < MAX_ERRORS_REPORTED) this.errors.push(message);
  }
  result(resourceSpans: ResourceSpans[], spanCount: number): DecodedTraces {
    const errors = this.errors.slice();
    if (this.count > errors.length) errors.push(`... ${this.count - errors.length} more rejected spans`);
    return { batch: { resourceSpans, spanCount }, rejectedSpans: this.count, errors };
  }
}

// ---------------------------------------------------------------- protobuf

export function decodeTraceProtobuf(body: Uint8Array): DecodedTraces {
  let msg: { resourceSpans?: ResourceSpans[] };
  try {
    msg = ExportTraceServiceRequest.decode(body) as unknown as { resourceSpans?: ResourceSpans[] };
  } catch (err) {
    throw new BadInputError(`request body is not a valid ExportTraceServiceRequest protobuf: ${(err as Error).message}`);
  }
  const resourceSpans = msg.resourceSpans ?? [];
  const rejections = new Rejections();
  const ranges = wireRanges(body);
  let spanCount = 0;
  let spanAt = 0;
  let scopeCount = 0;
  for (let r = 0; r < resourceSpans.length; r++) {
    const scopes = resourceSpans[r]!.scopeSpans;
    scopeCount += scopes.length;
    for (let s = 0; s < scopes.length; s++) {
      const ss = scopes[s]!;
      const all = ss.spans;
      const kept = filterValidSpans(all, `resource_spans[${r}].scope_spans[${s}].spans`, rejections);
      if (ranges && (kept !== all || spanCount !== spanAt)) moveKeptRanges(ranges.spans, spanCount, spanAt, all, kept);
      if (kept !== all) ss.spans = kept;
      spanAt += all.length;
      spanCount += kept.length;
    }
  }
  const decoded = rejections.result(resourceSpans, spanCount);
  if (ranges && ranges.resourceSpans.length === 2 * resourceSpans.length && ranges.scopeSpans.length === 2 * scopeCount && spanAt === ranges.spans.length / 2) {
    decoded.batch.source = { ...ranges, spans: ranges.spans.subarray(0, 2 * spanCount) };
  }
  return decoded;
}

/**
 * Where each ResourceSpans, ScopeSpans and Span of a request lies ([start, end) pairs, in the
 * order protobufjs decodes them), or undefined when the bytes are not laid out as one message per
 * part (a singular message field sent twice, which protobuf merges): those batches keep no source.
 */
function wireRanges(body: Uint8Array): { bytes: Buffer; resourceSpans: Int32Array; scopeSpans: Int32Array; spans: Int32Array } | undefined {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const rsList: number[] = [];
  const ssList: number[] = [];
  const spanList: number[] = [];
  const top = new FieldReader(bytes);
  const rsReader = new FieldReader(bytes);
  const ssReader = new FieldReader(bytes);
  while (top.next()) {
    if (top.field !== 1 || top.wire !== WIRE_LEN) continue;
    rsList.push(top.start, top.stop);
    let resources = 0;
    rsReader.reset(bytes, top.start, top.stop);
    while (rsReader.next()) {
      if (rsReader.wire !== WIRE_LEN) continue;
      if (rsReader.field === 1 && ++resources > 1) return undefined;
      if (rsReader.field !== 2) continue;
      ssList.push(rsReader.start, rsReader.stop);
      let scopes = 0;
      ssReader.reset(bytes, rsReader.start, rsReader.stop);
      while (ssReader.next()) {
        if (ssReader.wire !== WIRE_LEN) continue;
        if (ssReader.field === 1 && ++scopes > 1) return undefined;
        if (ssReader.field === 2) spanList.push(ssReader.start, ssReader.stop);
      }
    }
  }
  return { bytes, resourceSpans: Int32Array.from(rsList), scopeSpans: Int32Array.from(ssList), spans: Int32Array.from(spanList) };
}

/** Moves the ranges of `kept` (of `all`, the spans from `at` in the request) to span position `out`, past those of rejected spans. */
function moveKeptRanges(ranges: Int32Array, out: number, at: number, all: readonly Span[], kept: readonly Span[]): void {
  let k = 0;
  for (let i = 0; i < all.length; i++) {
    if (all[i] !== kept[k]) continue;
    ranges[2 * (out + k)] = ranges[2 * (at + i)]!;
    ranges[2 * (out + k) + 1] = ranges[2 * (at + i) + 1]!;
    k++;
  }
}

/** Returns `spans` itself when all are valid (the common case allocates nothing). */
function filterValidSpans(spans: Span[], path: string, rejections: Rejections): Span[] {
  let kept: Span[] | undefined;
  for (let i = 0; i < spans.length; i++) {
    const problem = spanIdProblem(spans[i]!);
    if (problem === undefined) {
      kept?.push(spans[i]!);
      continue;
    }
    kept ??= spans.slice(0, i);
    rejections.add(1, `${path}[${i}].${problem}`);
  }
  return kept ?? spans;
}

function spanIdProblem(span: Span): string | undefined {
  let p = idProblem(span.traceId, TRACE_ID_BYTES, true);
  if (p) return `trace_id ${p}`;
  p = idProblem(span.spanId, SPAN_ID_BYTES, true);
  if (p) return `span_id ${p}`;
  p = idProblem(span.parentSpanId, SPAN_ID_BYTES, false);
  if (p) return `parent_span_id ${p}`;
  if (sameId(span.parentSpanId, span.spanId)) return 'parent_span_id must not be the span_id (a span is not its own parent)';
  const links = span.links;
  if (links) {
    for (let i = 0; i < links.length; i++) {
      p = idProblem(links[i]!.traceId, TRACE_ID_BYTES, true) ?? idProblem(links[i]!.spanId, SPAN_ID_BYTES, true);
      if (p) return `links[${i}] id ${p}`;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------- JSON

/**
 * OTLP/JSON per the spec: lowerCamelCase keys (snake_case accepted too, as proto3 JSON
 * parsers do), hex ids, integer enums, 64-bit integers as strings or numbers, unknown
 * fields ignored. Converts the parsed tree in place to avoid a second copy of every span.
 */
export function decodeTraceJson(body: string | Uint8Array): DecodedTraces {
  const text = typeof body === 'string' ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  let root: unknown;
  try {
    root = text.length === 0 ? {} : JSON.parse(text);
  } catch (err) {
    throw new BadInputError(`request body is not valid JSON: ${jsonSyntaxMessage(err)}`);
  }
  if (!isObject(root)) throw new BadInputError('request body must be a JSON object (ExportTraceServiceRequest)');
  const list = field(root, 'resourceSpans', 'resource_spans');
  if (list === undefined || list === null) return new Rejections().result([], 0);
  if (!Array.isArray(list)) throw new BadInputError('resourceSpans: must be an array');

  const rejections = new Rejections();
  const out: ResourceSpans[] = [];
  let spanCount = 0;
  for (let r = 0; r < list.length; r++) {
    const path = `resourceSpans[${r}]`;
    const rs = list[r];
    try {
      if (!isObject(rs)) throw new FieldError(path, 'must be an object');
      const converted = jsonResourceSpans(rs, path, rejections);
      for (const ss of converted.scopeSpans) spanCount += ss.spans.length;
      out.push(converted);
    } catch (err) {
      if (!(err instanceof FieldError)) throw err;
      rejections.add(countJsonSpans(rs), err.message);
    }
  }
  return rejections.result(out, spanCount);
}

function jsonResourceSpans(rs: Record<string, unknown>, path: string, rejections: Rejections): ResourceSpans {
  const resource = rs.resource;
  if (resource !== undefined && resource !== null) {
    if (!isObject(resource)) throw new FieldError(`${path}.resource`, 'must be an object');
    normalizeAttributed(resource, `${path}.resource`);
    renameField(resource, 'entityRefs', 'entity_refs');
  }
  renameField(rs, 'schemaUrl', 'schema_url');
  checkString(rs.schemaUrl, `${path}.schemaUrl`);
  const scopes = arrayField(rs, 'scopeSpans', 'scope_spans', path);
  const outScopes: ScopeSpans[] = [];
  for (let s = 0; s < scopes.length; s++) {
    const spath = `${path}.scopeSpans[${s}]`;
    const ss = scopes[s];
    try {
      if (!isObject(ss)) throw new FieldError(spath, 'must be an object');
      const scope = ss.scope;
      if (scope !== undefined && scope !== null) {
        if (!isObject(scope)) throw new FieldError(`${spath}.scope`, 'must be an object');
        checkString(scope.name, `${spath}.scope.name`);
        checkString(scope.version, `${spath}.scope.version`);
        normalizeAttributed(scope, `${spath}.scope`);
      }
      renameField(ss, 'schemaUrl', 'schema_url');
      checkString(ss.schemaUrl, `${spath}.schemaUrl`);
      const spans = arrayField(ss, 'spans', 'spans', spath);
      const kept: Span[] = [];
      for (let i = 0; i < spans.length; i++) {
        const sp = spans[i];
        try {
          if (!isObject(sp)) throw new FieldError(`${spath}.spans[${i}]`, 'must be an object');
          kept.push(jsonSpan(sp, `${spath}.spans[${i}]`));
        } catch (err) {
          if (!(err instanceof FieldError)) throw err;
          rejections.add(1, err.message);
        }
      }
      ss.spans = kept;
      outScopes.push(ss as unknown as ScopeSpans);
    } catch (err) {
      if (!(err instanceof FieldError)) throw err;
      rejections.add(isObject(ss) && Array.isArray(ss.spans) ? ss.spans.length : 0, err.message);
    }
  }
  rs.scopeSpans = outScopes;
  return rs as unknown as ResourceSpans;
}

function jsonSpan(sp: Record<string, unknown>, path: string): Span {
  sp.traceId = jsonId(field(sp, 'traceId', 'trace_id'), TRACE_ID_BYTES, true, `${path}.traceId`);
  sp.spanId = jsonId(field(sp, 'spanId', 'span_id'), SPAN_ID_BYTES, true, `${path}.spanId`);
  sp.parentSpanId = jsonId(field(sp, 'parentSpanId', 'parent_span_id'), SPAN_ID_BYTES, false, `${path}.parentSpanId`);
  if (sameId(sp.parentSpanId as Uint8Array, sp.spanId as Uint8Array)) throw new FieldError(`${path}.parentSpanId`, 'must not be the spanId (a span is not its own parent)');
  renameField(sp, 'traceState', 'trace_state');
  checkString(sp.traceState, `${path}.traceState`);
  checkString(sp.name, `${path}.name`);
  sp.flags = jsonUint32(sp.flags, `${path}.flags`);
  sp.kind = jsonEnum(sp.kind, `${path}.kind`);
  sp.startTimeUnixNano = jsonUint64(field(sp, 'startTimeUnixNano', 'start_time_unix_nano'), `${path}.startTimeUnixNano`);
  sp.endTimeUnixNano = jsonUint64(field(sp, 'endTimeUnixNano', 'end_time_unix_nano'), `${path}.endTimeUnixNano`);
  normalizeAttributed(sp, path);
  sp.droppedEventsCount = jsonUint32(field(sp, 'droppedEventsCount', 'dropped_events_count'), `${path}.droppedEventsCount`);
  sp.droppedLinksCount = jsonUint32(field(sp, 'droppedLinksCount', 'dropped_links_count'), `${path}.droppedLinksCount`);

  const events = optionalArray(sp.events, `${path}.events`);
  for (let i = 0; i < events.length; i++) {
    const ev = events[i];
    const epath = `${path}.events[${i}]`;
    if (!isObject(ev)) throw new FieldError(epath, 'must be an object');
    ev.timeUnixNano = jsonUint64(field(ev, 'timeUnixNano', 'time_unix_nano'), `${epath}.timeUnixNano`);
    checkString(ev.name, `${epath}.name`);
    normalizeAttributed(ev, epath);
  }
  sp.events = events;

  const links = optionalArray(sp.links, `${path}.links`);
  for (let i = 0; i < links.length; i++) {
    const ln = links[i];
    const lpath = `${path}.links[${i}]`;
    if (!isObject(ln)) throw new FieldError(lpath, 'must be an object');
    ln.traceId = jsonId(field(ln, 'traceId', 'trace_id'), TRACE_ID_BYTES, true, `${lpath}.traceId`);
    ln.spanId = jsonId(field(ln, 'spanId', 'span_id'), SPAN_ID_BYTES, true, `${lpath}.spanId`);
    renameField(ln, 'traceState', 'trace_state');
    checkString(ln.traceState, `${lpath}.traceState`);
    ln.flags = jsonUint32(ln.flags, `${lpath}.flags`);
    normalizeAttributed(ln, lpath);
  }
  sp.links = links;

  const status = sp.status;
  if (status !== undefined && status !== null) {
    if (!isObject(status)) throw new FieldError(`${path}.status`, 'must be an object');
    checkString(status.message, `${path}.status.message`);
    status.code = jsonEnum(status.code, `${path}.status.code`);
  }
  return sp as unknown as Span;
}

/** attributes + droppedAttributesCount, shared by resource, scope, span, event and link. */
function normalizeAttributed(o: Record<string, unknown>, path: string): void {
  o.attributes = jsonKeyValues(o.attributes, `${path}.attributes`);
  o.droppedAttributesCount = jsonUint32(field(o, 'droppedAttributesCount', 'dropped_attributes_count'), `${path}.droppedAttributesCount`);
}

/**
 * How deep values may nest (arrays and key-value lists in one another). protobufjs refuses a
 * request nested past 47 messages, and every layer here walks values recursively: past this,
 * the span is rejected, naming the value.
 */
export const MAX_VALUE_DEPTH = 32;

function hasSecondKey(o: Record<string, unknown>): boolean {
  let keys = 0;
  for (const _ in o) if (++keys > 1) return true;
  return false;
}

const ANY_VALUE_MEMBERS = ['stringValue', 'string_value', 'boolValue', 'bool_value', 'intValue', 'int_value', 'doubleValue', 'double_value', 'bytesValue', 'bytes_value', 'arrayValue', 'array_value', 'kvlistValue', 'kvlist_value'];

function jsonKeyValues(v: unknown, path: string, depth = 0): KeyValue[] {
  const list = optionalArray(v, path);
  for (let i = 0; i < list.length; i++) {
    const kv = list[i];
    if (!isObject(kv)) throw new FieldError(`${path}[${i}]`, 'must be an object with key and value');
    if (typeof kv.key !== 'string') throw new FieldError(`${path}[${i}].key`, 'must be a string');
    const value = kv.value;
    if (value !== undefined && value !== null) jsonAnyValue(value, `${path}[${i}].value`, depth);
  }
  return list as KeyValue[];
}

/** Validates one AnyValue in place; it keeps only the member it was read as (an exporter writes one). */
function jsonAnyValue(v: unknown, path: string, depth: number): AnyValue {
  if (!isObject(v)) throw new FieldError(path, 'must be an AnyValue object');
  if (depth >= MAX_VALUE_DEPTH) throw new FieldError(path, `nests arrays or key-value lists deeper than ${MAX_VALUE_DEPTH} levels`);
  let member = '';
  if ('stringValue' in v || 'string_value' in v) {
    member = 'stringValue';
    const s = field(v, 'stringValue', 'string_value');
    if (s !== null && typeof s !== 'string') throw new FieldError(`${path}.stringValue`, 'must be a string');
  } else if ('boolValue' in v || 'bool_value' in v) {
    member = 'boolValue';
    const b = field(v, 'boolValue', 'bool_value');
    if (b !== null && typeof b !== 'boolean') throw new FieldError(`${path}.boolValue`, 'must be true or false');
  } else if ('intValue' in v || 'int_value' in v) {
    member = 'intValue';
    v.intValue = jsonInt64(field(v, 'intValue', 'int_value'), `${path}.intValue`);
  } else if ('doubleValue' in v || 'double_value' in v) {
    member = 'doubleValue';
    v.doubleValue = jsonDouble(field(v, 'doubleValue', 'double_value'), `${path}.doubleValue`);
  } else if ('bytesValue' in v || 'bytes_value' in v) {
    member = 'bytesValue';
    const b = field(v, 'bytesValue', 'bytes_value');
    // Buffer skips what is not base64: checked first, or garbage would pass for bytes.
    if (typeof b !== 'string' || !BASE64_VALUE_RE.test(b)) throw new FieldError(`${path}.bytesValue`, `must be a base64 string, got ${described(b)}`);
    v.bytesValue = Buffer.from(b, 'base64');
  } else if ('arrayValue' in v || 'array_value' in v) {
    member = 'arrayValue';
    const a = field(v, 'arrayValue', 'array_value');
    if (!isObject(a)) throw new FieldError(`${path}.arrayValue`, 'must be an object with values');
    const values = optionalArray(a.values, `${path}.arrayValue.values`);
    for (let i = 0; i < values.length; i++) jsonAnyValue(values[i], `${path}.arrayValue.values[${i}]`, depth + 1);
    a.values = values;
  } else if ('kvlistValue' in v || 'kvlist_value' in v) {
    member = 'kvlistValue';
    const kvl = field(v, 'kvlistValue', 'kvlist_value');
    if (!isObject(kvl)) throw new FieldError(`${path}.kvlistValue`, 'must be an object with values');
    kvl.values = jsonKeyValues(kvl.values, `${path}.kvlistValue.values`, depth + 1);
  }
  // Any other member sent beside it is dropped, unread (normalize and the exporters see one);
  // a snake_case spelling was copied to the camelCase one by field(). Most values have one key.
  if (hasSecondKey(v)) for (const k of ANY_VALUE_MEMBERS) if (k !== member && k in v) delete v[k];
  return v as AnyValue;
}

function jsonId(v: unknown, bytes: number, required: boolean, path: string): Uint8Array {
  const parsed = parseHexId(v, bytes);
  if (typeof parsed === 'string') throw new FieldError(path, parsed);
  const problem = idProblem(parsed, bytes, required);
  if (problem) throw new FieldError(path, problem);
  return parsed;
}

/**
 * A wrong value as messages name it: its type, and numbers and booleans themselves, never a
 * string's text. These messages go back to the sender, to `analyze`'s output and to the logs of
 * whoever reads partial successes, and the field may hold a credential.
 */
export function described(v: unknown): string {
  if (typeof v === 'string') return `a string of ${v.length} characters`;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : typeof v;
}

/**
 * A JSON parser's message without the piece of the input V8 quotes in it ("Unexpected token 'B',
 * "...": the text may be a credential); positions and the unexpected character stay.
 */
export function jsonSyntaxMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/, (?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s, ' (not valid JSON)').replace(/^(?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s, 'not valid JSON');
}

const UINT_RE = /^\d{1,20}$/;
/** Standard or URL-safe base64 (proto3 JSON accepts both), padded or not; empty is no bytes. */
const BASE64_VALUE_RE = /^[A-Za-z0-9+/_-]*={0,2}$/;
/** Long.fromString wraps silently past these: checked first. */
const UINT64_MAX = 2n ** 64n - 1n;
const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

/** A decimal string within [min, max]; only one of 19 digits or more can be out (timestamps have 19: this runs per span). */
function inRange(s: string, min: bigint, max: bigint): boolean {
  if (s.length < 19) return true;
  const n = BigInt(s);
  return n >= min && n <= max;
}
const INT_RE = /^-?\d{1,19}$/;

function jsonUint64(v: unknown, path: string): Int64 {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0) throw new FieldError(path, `must be a non-negative integer, got ${described(v)}`);
    return Number.isSafeInteger(v) ? v : Long.fromNumber(v, true);
  }
  if (typeof v === 'string' && UINT_RE.test(v) && inRange(v, 0n, UINT64_MAX)) return Long.fromString(v, true);
  throw new FieldError(path, `must be an unsigned 64-bit integer (a decimal string or number), got ${described(v)}`);
}

function jsonInt64(v: unknown, path: string): Int64 {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new FieldError(path, `must be an integer, got ${described(v)}`);
    return Number.isSafeInteger(v) ? v : Long.fromNumber(v, false);
  }
  if (typeof v === 'string' && INT_RE.test(v) && inRange(v, INT64_MIN, INT64_MAX)) return Long.fromString(v, false);
  throw new FieldError(path, `must be a 64-bit integer (a decimal string or number), got ${described(v)}`);
}

function jsonDouble(v: unknown, path: string): number {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  throw new FieldError(path, `must be a number, got ${described(v)}`);
}

function jsonUint32(v: unknown, path: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff) return v;
  throw new FieldError(path, `must be an unsigned 32-bit integer, got ${described(v)}`);
}

function jsonEnum(v: unknown, path: string): number {
  if (v === undefined || v === null) return 0;
  // Protobuf enums are int32: a larger one could not be exported.
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0x7fffffff) return v;
  const hint = typeof v === 'string' ? ' (OTLP/JSON enums are integers, not names)' : '';
  throw new FieldError(path, `must be a non-negative 32-bit integer${hint}, got ${described(v)}`);
}

function checkString(v: unknown, path: string): void {
  if (v !== undefined && v !== null && typeof v !== 'string') throw new FieldError(path, 'must be a string');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads a field by its lowerCamelCase name or, failing that, its proto name; stores it under the camel name. */
function field(o: Record<string, unknown>, camel: string, snake: string): unknown {
  const v = o[camel];
  if (v !== undefined || camel === snake) return v;
  const s = o[snake];
  if (s !== undefined) o[camel] = s;
  return s;
}

function renameField(o: Record<string, unknown>, camel: string, snake: string): void {
  field(o, camel, snake);
}

function arrayField(o: Record<string, unknown>, camel: string, snake: string, path: string): unknown[] {
  return optionalArray(field(o, camel, snake), `${path}.${camel}`);
}

function optionalArray(v: unknown, path: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new FieldError(path, 'must be an array');
  return v;
}

function countJsonSpans(rs: unknown): number {
  if (!isObject(rs)) return 0;
  const scopes = field(rs, 'scopeSpans', 'scope_spans');
  if (!Array.isArray(scopes)) return 0;
  let n = 0;
  for (const ss of scopes) if (isObject(ss) && Array.isArray(ss.spans)) n += ss.spans.length;
  return n;
}
