// A decoded batch kept as the bytes it arrived in, and written out again with fields appended to
// its spans: how enrich holds batches without keeping their decoded objects alive (they would
// outlive the young generation and keep the garbage collector busy) and sends them on without
// encoding every span again. Protobuf allows it: a message's fields may come in any order, and a
// repeated field (a span's attributes, its events) sent again adds to what came before.
import { encodeSpanBody, encodeTraceProtobuf } from './encode.ts';
import type { Int64, Span, TraceBatch, WireSource } from './types.ts';
import { FieldReader, varintSize, WIRE_FIXED64, WIRE_LEN, writeVarint } from './wire.ts';

/** A batch held as its request bytes; spans a processor changed stay decoded. */
export interface HeldWire {
  readonly source: WireSource;
  /** ScopeSpans per ResourceSpans, spans per ScopeSpans: the batch's shape. */
  readonly scopesPerResource: Int32Array;
  readonly spansPerScope: Int32Array;
  /** Spans held decoded, by position in the batch: their bytes are stale, or `keepDecoded` asked for them. */
  readonly decoded: Map<number, Span>;
  /** ResourceSpans added to the batch after it was received (detect's finding spans), encoded. */
  readonly tail: Buffer | undefined;
}

/**
 * The batch as bytes, or undefined when it has no source, or its received part no longer has
 * the source's shape, or a resource or scope was changed (the batch is then held decoded, as a
 * whole). `keepDecoded` picks spans to hold decoded as well.
 */
export function holdWire(batch: TraceBatch, keepDecoded: (span: Span) => boolean): HeldWire | undefined {
  const source = batch.source;
  if (!source) return undefined;
  const rewritten = source.rewritten;
  const resources = source.resourceSpans.length / 2;
  if (batch.resourceSpans.length < resources) return undefined;
  const scopesPerResource = new Int32Array(resources);
  const spansPerScope = new Int32Array(source.scopeSpans.length / 2);
  const decoded = new Map<number, Span>();
  let scope = 0;
  let i = 0;
  for (let r = 0; r < resources; r++) {
    const rs = batch.resourceSpans[r]!;
    if (rewritten && rs.resource && rewritten.has(rs.resource)) return undefined;
    scopesPerResource[r] = rs.scopeSpans.length;
    for (const ss of rs.scopeSpans) {
      if (scope === spansPerScope.length || (rewritten && ss.scope && rewritten.has(ss.scope))) return undefined;
      spansPerScope[scope++] = ss.spans.length;
      for (const span of ss.spans) {
        if ((rewritten && rewritten.has(span)) || keepDecoded(span)) decoded.set(i, span);
        i++;
      }
    }
  }
  if (scope !== spansPerScope.length || 2 * i !== source.spans.length) return undefined;
  const added = batch.resourceSpans.length > resources ? encodeTraceProtobuf(batch.resourceSpans.slice(resources)) : undefined;
  return { source: { bytes: source.bytes, resourceSpans: source.resourceSpans, scopeSpans: source.scopeSpans, spans: source.spans }, scopesPerResource, spansPerScope, decoded, tail: added };
}

/**
 * A part of an ExportTraceServiceRequest to write: a held batch with `appended[i]` to go after
 * span i's bytes, or a request already encoded. Requests written one after another are one
 * request: their resource_spans add up.
 */
export type RequestPart = { readonly held: HeldWire; readonly appended: readonly (Uint8Array | undefined)[] } | Buffer;

/**
 * The parts as one ExportTraceServiceRequest, in one buffer: each held span its bytes with what
 * is appended to it (spans held decoded encoded as they are now), each resource and scope as it
 * came, encoded requests as they are.
 */
export function spliceRequests(parts: readonly RequestPart[]): Buffer {
  const measured = parts.map((part) => (Buffer.isBuffer(part) ? part : measure(part.held, part.appended)));
  let size = 0;
  for (const m of measured) size += Buffer.isBuffer(m) ? m.length : m.size;
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  for (let p = 0; p < parts.length; p++) {
    const part = parts[p]!;
    const m = measured[p]!;
    if (Buffer.isBuffer(m)) pos += m.copy(out, pos);
    else pos = write((part as Exclude<RequestPart, Buffer>).held, (part as Exclude<RequestPart, Buffer>).appended, m, out, pos);
  }
  if (pos !== size) throw new Error(`splice inconsistency: wrote ${pos} of ${size} bytes`);
  return out;
}

/** One held batch as an ExportTraceServiceRequest (see spliceRequests). */
export function spliceRequest(held: HeldWire, appended: readonly (Uint8Array | undefined)[]): Buffer {
  return spliceRequests([{ held, appended }]);
}

/** A held batch's sizes, measured before it is written: every span's and enclosing message's. */
interface Measured {
  size: number;
  bodies: (Uint8Array | undefined)[];
  spanSizes: Int32Array;
  scopeSizes: Int32Array;
  resourceSizes: Int32Array;
}

function measure(held: HeldWire, appended: readonly (Uint8Array | undefined)[]): Measured {
  const { source, scopesPerResource, spansPerScope, decoded } = held;
  const bytes = source.bytes;
  const spanCount = source.spans.length / 2;
  const bodies: (Uint8Array | undefined)[] = new Array(spanCount);
  const spanSizes = new Int32Array(spanCount);
  for (let i = 0; i < spanCount; i++) {
    const span = decoded.get(i);
    if (span) {
      const body = encodeSpanBody(span);
      bodies[i] = body;
      spanSizes[i] = body.length;
    } else {
      spanSizes[i] = source.spans[2 * i + 1]! - source.spans[2 * i]! + (appended[i]?.length ?? 0);
    }
  }
  const scopeSizes = new Int32Array(spansPerScope.length);
  const resourceSizes = new Int32Array(scopesPerResource.length);
  let size = 0;
  let scope = 0;
  let i = 0;
  for (let r = 0; r < scopesPerResource.length; r++) {
    let rsSize = headSize(bytes, source.resourceSpans[2 * r]!, source.resourceSpans[2 * r + 1]!);
    for (let s = 0; s < scopesPerResource[r]!; s++, scope++) {
      let ssSize = headSize(bytes, source.scopeSpans[2 * scope]!, source.scopeSpans[2 * scope + 1]!);
      for (let k = 0; k < spansPerScope[scope]!; k++, i++) ssSize += 1 + varintSize(spanSizes[i]!) + spanSizes[i]!;
      scopeSizes[scope] = ssSize;
      rsSize += 1 + varintSize(ssSize) + ssSize;
    }
    resourceSizes[r] = rsSize;
    size += 1 + varintSize(rsSize) + rsSize;
  }
  if (held.tail) size += held.tail.length;
  return { size, bodies, spanSizes, scopeSizes, resourceSizes };
}

function write(held: HeldWire, appended: readonly (Uint8Array | undefined)[], m: Measured, out: Buffer, pos: number): number {
  const { source, scopesPerResource, spansPerScope } = held;
  const bytes = source.bytes;
  const { bodies, spanSizes, scopeSizes, resourceSizes } = m;
  let scope = 0;
  let i = 0;
  for (let r = 0; r < scopesPerResource.length; r++) {
    out[pos++] = 0x0a; // ExportTraceServiceRequest.resource_spans
    pos = writeVarint(out, pos, resourceSizes[r]!);
    pos = copyHead(bytes, source.resourceSpans[2 * r]!, source.resourceSpans[2 * r + 1]!, out, pos);
    for (let s = 0; s < scopesPerResource[r]!; s++, scope++) {
      out[pos++] = 0x12; // ResourceSpans.scope_spans
      pos = writeVarint(out, pos, scopeSizes[scope]!);
      pos = copyHead(bytes, source.scopeSpans[2 * scope]!, source.scopeSpans[2 * scope + 1]!, out, pos);
      for (let k = 0; k < spansPerScope[scope]!; k++, i++) {
        out[pos++] = 0x12; // ScopeSpans.spans
        pos = writeVarint(out, pos, spanSizes[i]!);
        const body = bodies[i];
        if (body) {
          out.set(body, pos);
          pos += body.length;
          continue;
        }
        pos += bytes.copy(out, pos, source.spans[2 * i]!, source.spans[2 * i + 1]!);
        const extra = appended[i];
        if (extra) {
          out.set(extra, pos);
          pos += extra.length;
        }
      }
    }
  }
  if (held.tail) pos += held.tail.copy(out, pos);
  return pos;
}

/** Field 2 of ResourceSpans and of ScopeSpans holds their children: the head is every other field. */
const CHILDREN = 2;

function headSize(bytes: Buffer, start: number, end: number): number {
  let size = 0;
  const r = reader.reset(bytes, start, end);
  let at = start;
  while (r.next()) {
    if (r.field !== CHILDREN || r.wire !== WIRE_LEN) size += r.stop - at;
    at = r.stop;
  }
  return size;
}

function copyHead(bytes: Buffer, start: number, end: number, out: Buffer, pos: number): number {
  const r = reader.reset(bytes, start, end);
  let at = start;
  while (r.next()) {
    if (r.field !== CHILDREN || r.wire !== WIRE_LEN) pos += bytes.copy(out, pos, at, r.stop);
    at = r.stop;
  }
  return pos;
}

const reader = new FieldReader(Buffer.alloc(0));

/** A held span's end time (its start when it has none), for the events appended to it. */
export function spanEndTime(held: HeldWire, i: number): Int64 {
  const span = held.decoded.get(i);
  if (span) return span.endTimeUnixNano ?? span.startTimeUnixNano ?? 0;
  const bytes = held.source.bytes;
  const r = reader.reset(bytes, held.source.spans[2 * i]!, held.source.spans[2 * i + 1]!);
  let start = -1;
  let end = -1;
  while (r.next()) {
    if (r.wire !== WIRE_FIXED64) continue;
    if (r.field === 7) start = r.start;
    else if (r.field === 8) end = r.start;
  }
  const at = end >= 0 ? end : start;
  if (at < 0) return 0;
  return { low: bytes.readInt32LE(at), high: bytes.readInt32LE(at + 4), unsigned: true } as unknown as Int64;
}
