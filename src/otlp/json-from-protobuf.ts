// OTLP/JSON written straight from ExportTraceServiceRequest protobuf bytes, without decoding
// into objects: the file exporter's encoding of batches that leave enrich as bytes. The output
// is byte for byte what encodeTraceJson writes for the same request once decoded (the tests
// compare both), so the two paths are interchangeable: the same keys, order and defaults,
// strings escaped as JSON.stringify does. A string that is plain printable ASCII, or valid
// UTF-8 needing no escape, is copied as it is; any other goes through the same UTF-8 decoding
// as protobufjs (Buffer) and JSON.stringify.
import { isUtf8 } from 'node:buffer';
import { uint64Chunks, uint64String } from './encode.ts';
import { FieldReader, varintLow32, WIRE_FIXED32, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT } from './wire.ts';

let out: Buffer = Buffer.allocUnsafe(1 << 16);
let o = 0;
let src: Buffer = Buffer.alloc(0);
/** One reader per nesting depth, reused: a message's reader stays valid while its children are read. */
const readers: FieldReader[] = [];
let depth = 0;

const HEX = Buffer.from('0123456789abcdef');

/**
 * The request as one OTLP/JSON line (ExportTraceServiceRequest), `suffix` (a newline) appended.
 * Written into `into` when given, and returned as a view of it (or of a larger buffer made when
 * it is too small: `returned.buffer` is then the one to reuse); else into a buffer of its own.
 */
export function jsonFromProtobuf(request: Uint8Array, suffix = '', into?: Buffer): Buffer {
  const scratch = out;
  if (into) out = into;
  src = Buffer.isBuffer(request) ? request : Buffer.from(request.buffer, request.byteOffset, request.byteLength);
  o = 0;
  depth = 0;
  try {
    ascii('{"resourceSpans":[');
    const r = enter(0, src.length);
    let n = 0;
    while (r.next()) {
      if (r.field !== 1 || r.wire !== WIRE_LEN) continue;
      if (n++ > 0) byte(0x2c);
      resourceSpans(r.start, r.stop);
    }
    leave();
    ascii(']}' + suffix);
    if (into) return out.subarray(0, o);
    const result = Buffer.allocUnsafe(o);
    out.copy(result, 0, 0, o);
    return result;
  } finally {
    out = into ? scratch : out.length > 1 << 24 ? Buffer.allocUnsafe(1 << 16) : out; // no huge scratch kept after one huge batch
    src = EMPTY;
  }
}

const EMPTY = Buffer.alloc(0);

function enter(start: number, end: number): FieldReader {
  const r = (readers[depth] ??= new FieldReader(EMPTY));
  depth++;
  return r.reset(src, start, end);
}

function leave(): void {
  depth--;
}

// ---------------------------------------------------------------- output

function room(n: number): void {
  if (o + n <= out.length) return;
  let size = Math.max(out.length * 2, 1 << 16);
  while (size < o + n) size *= 2;
  const bigger = Buffer.allocUnsafe(size);
  out.copy(bigger, 0, 0, o);
  out = bigger;
}

function byte(b: number): void {
  room(1);
  out[o++] = b;
}

/** ASCII text known to need no escaping (keys, punctuation, numbers). */
function ascii(s: string): void {
  const n = s.length;
  room(n);
  for (let i = 0; i < n; i++) out[o + i] = s.charCodeAt(i);
  o += n;
}

/** A string field's bytes as a JSON string: copied while checked, written again the slow way when it needs escapes. */
function string(start: number, end: number): void {
  const n = end - start;
  room(n + 2);
  const from = o;
  out[o++] = 0x22;
  let wide = false;
  let plain = true;
  if (n <= 64) {
    for (let i = 0; i < n; i++) {
      const b = src[start + i]!;
      out[o + i] = b;
      if (b < 0x20 || b === 0x22 || b === 0x5c) {
        plain = false;
        break;
      }
      if (b >= 0x80) wide = true;
    }
  } else {
    for (let i = start; i < end; i++) {
      const b = src[i]!;
      if (b < 0x20 || b === 0x22 || b === 0x5c) {
        plain = false;
        break;
      }
      if (b >= 0x80) wide = true;
    }
    if (plain) src.copy(out, o, start, end);
  }
  if (plain && (!wide || isUtf8(src.subarray(start, end)))) {
    o += n;
    out[o++] = 0x22;
    return;
  }
  o = from;
  const text = JSON.stringify(src.toString('utf8', start, end));
  room(text.length * 3);
  o += out.write(text, o, 'utf8');
}

function hex(start: number, end: number): void {
  room(2 * (end - start) + 2);
  out[o++] = 0x22;
  for (let i = start; i < end; i++) {
    const b = src[i]!;
    out[o++] = HEX[b >>> 4]!;
    out[o++] = HEX[b & 15]!;
  }
  out[o++] = 0x22;
}

// ---------------------------------------------------------------- scalars

function fixed32(at: number): number {
  return (src[at]! | (src[at + 1]! << 8) | (src[at + 2]! << 16) | (src[at + 3]! << 24)) >>> 0;
}

/** A fixed64 (unsigned) field as a quoted decimal, "0" when absent (at < 0). */
function fixed64String(at: number): void {
  if (at < 0) return ascii('"0"');
  byte(0x22);
  uint64Digits(fixed32(at), fixed32(at + 4));
  byte(0x22);
}

const chunks = new Float64Array(3);

/** An unsigned 64-bit integer's decimal digits, written without making a string (timestamps are ≥ 2^53). */
function uint64Digits(low: number, high: number): void {
  if (high <= 0x1fffff) return digits(high * 0x100000000 + low, 0);
  uint64Chunks(low, high, chunks);
  digits(chunks[0]!, 0);
  digits(chunks[1]!, 7);
  digits(chunks[2]!, 7);
}

/** A non-negative integer below 2^53 in decimal, left-padded with zeros to `width` digits. */
function digits(n: number, width: number): void {
  room(17);
  let len = 1;
  for (let p = 10; p <= n && len < 16; p *= 10) len++;
  if (len < width) len = width;
  for (let i = len - 1; i >= 0; i--) {
    out[o + i] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  o += len;
}

/** A varint read as int64, in decimal (negative as two's complement), like int64String. */
function int64Decimal(start: number, end: number): string {
  let lo = 0;
  let hi = 0;
  let shift = 0;
  for (let p = start; p < end; p++, shift += 7) {
    const b = src[p]! & 0x7f;
    if (shift < 28) lo |= b << shift;
    else if (shift === 28) {
      lo |= b << 28;
      hi |= b >>> 4;
    } else hi |= b << (shift - 32);
  }
  lo >>>= 0;
  hi >>>= 0;
  if (hi < 0x80000000) return uint64String(lo, hi);
  const negLow = (~lo + 1) >>> 0;
  return '-' + uint64String(negLow, (~hi + (negLow === 0 ? 1 : 0)) >>> 0);
}

/** A varint as int32 (enums): the low 32 bits, signed. */
function int32(r: FieldReader): number {
  return r.uint32() | 0;
}

// ---------------------------------------------------------------- messages
//
// Each message is read in two passes over its top-level fields: the first notes where its
// singular fields are (the last occurrence wins, as in protobuf) and whether repeated ones
// occur; the second writes the JSON in encodeTraceJson's order, walking the message again
// for each repeated field (they need not be contiguous on the wire).

/** Writes `"key":[…]` for every occurrence of repeated message field `field`, each through `each`. */
function repeated(key: string, start: number, end: number, field: number, each: (s: number, e: number) => void): void {
  ascii(key);
  byte(0x5b);
  const r = enter(start, end);
  let n = 0;
  while (r.next()) {
    if (r.field !== field || r.wire !== WIRE_LEN) continue;
    if (n++ > 0) byte(0x2c);
    each(r.start, r.stop);
  }
  leave();
  byte(0x5d);
}

function resourceSpans(start: number, end: number): void {
  let resS = -1;
  let resE = 0;
  let urlS = 0;
  let urlE = 0;
  const r = enter(start, end);
  while (r.next()) {
    if (r.wire !== WIRE_LEN) continue;
    if (r.field === 1) (resS = r.start), (resE = r.stop);
    else if (r.field === 3) (urlS = r.start), (urlE = r.stop);
  }
  leave();
  byte(0x7b);
  if (resS >= 0) {
    ascii('"resource":');
    attributed(resS, resE, 1, 2);
    byte(0x2c);
  }
  repeated('"scopeSpans":', start, end, 2, scopeSpans);
  if (urlE > urlS) {
    ascii(',"schemaUrl":');
    string(urlS, urlE);
  }
  byte(0x7d);
}

/** A message of attributes and a dropped count only (Resource): `{"attributes":[…],"droppedAttributesCount":n}`. */
function attributed(start: number, end: number, attrField: number, droppedField: number): void {
  byte(0x7b);
  attributesAndDropped(start, end, attrField, droppedField, false);
  byte(0x7d);
}

/**
 * Writes `"attributes":[…]` when there are any, and `"droppedAttributesCount":n` when not 0,
 * each preceded by a comma when `comma` (the object has keys already). Returns whether it wrote.
 */
function attributesAndDropped(start: number, end: number, attrField: number, droppedField: number, comma: boolean): boolean {
  let attrs = 0;
  let dropped = 0;
  const r = enter(start, end);
  while (r.next()) {
    if (r.field === attrField && r.wire === WIRE_LEN) attrs++;
    else if (r.field === droppedField && r.wire === WIRE_VARINT) dropped = r.uint32();
  }
  leave();
  if (attrs > 0) {
    if (comma) byte(0x2c);
    repeated('"attributes":', start, end, attrField, keyValue);
    comma = true;
  }
  if (dropped !== 0) {
    if (comma) byte(0x2c);
    ascii('"droppedAttributesCount":' + dropped);
    comma = true;
  }
  return comma;
}

function scopeSpans(start: number, end: number): void {
  let scopeS = -1;
  let scopeE = 0;
  let urlS = 0;
  let urlE = 0;
  const r = enter(start, end);
  while (r.next()) {
    if (r.wire !== WIRE_LEN) continue;
    if (r.field === 1) (scopeS = r.start), (scopeE = r.stop);
    else if (r.field === 3) (urlS = r.start), (urlE = r.stop);
  }
  leave();
  byte(0x7b);
  if (scopeS >= 0) {
    ascii('"scope":');
    scope(scopeS, scopeE);
    byte(0x2c);
  }
  repeated('"spans":', start, end, 2, span);
  if (urlE > urlS) {
    ascii(',"schemaUrl":');
    string(urlS, urlE);
  }
  byte(0x7d);
}

function scope(start: number, end: number): void {
  let nameS = 0;
  let nameE = 0;
  let verS = 0;
  let verE = 0;
  const r = enter(start, end);
  while (r.next()) {
    if (r.wire !== WIRE_LEN) continue;
    if (r.field === 1) (nameS = r.start), (nameE = r.stop);
    else if (r.field === 2) (verS = r.start), (verE = r.stop);
  }
  leave();
  byte(0x7b);
  let comma = false;
  if (nameE > nameS) {
    ascii('"name":');
    string(nameS, nameE);
    comma = true;
  }
  if (verE > verS) {
    if (comma) byte(0x2c);
    ascii('"version":');
    string(verS, verE);
    comma = true;
  }
  attributesAndDropped(start, end, 3, 4, comma);
  byte(0x7d);
}

function span(start: number, end: number): void {
  let traceS = 0;
  let traceE = 0;
  let spanS = 0;
  let spanE = 0;
  let stateS = 0;
  let stateE = 0;
  let parentS = 0;
  let parentE = 0;
  let flags = 0;
  let nameS = 0;
  let nameE = 0;
  let kind = 0;
  let startAt = -1;
  let endAt = -1;
  let attrs = 0;
  let droppedAttrs = 0;
  let events = 0;
  let droppedEvents = 0;
  let links = 0;
  let droppedLinks = 0;
  let statusS = -1;
  let statusE = 0;
  const r = enter(start, end);
  while (r.next()) {
    switch (r.field) {
      case 1: if (r.wire === WIRE_LEN) (traceS = r.start), (traceE = r.stop); break;
      case 2: if (r.wire === WIRE_LEN) (spanS = r.start), (spanE = r.stop); break;
      case 3: if (r.wire === WIRE_LEN) (stateS = r.start), (stateE = r.stop); break;
      case 4: if (r.wire === WIRE_LEN) (parentS = r.start), (parentE = r.stop); break;
      case 16: if (r.wire === WIRE_FIXED32) flags = fixed32(r.start); break;
      case 5: if (r.wire === WIRE_LEN) (nameS = r.start), (nameE = r.stop); break;
      case 6: if (r.wire === WIRE_VARINT) kind = int32(r); break;
      case 7: if (r.wire === WIRE_FIXED64) startAt = r.start; break;
      case 8: if (r.wire === WIRE_FIXED64) endAt = r.start; break;
      case 9: if (r.wire === WIRE_LEN) attrs++; break;
      case 10: if (r.wire === WIRE_VARINT) droppedAttrs = r.uint32(); break;
      case 11: if (r.wire === WIRE_LEN) events++; break;
      case 12: if (r.wire === WIRE_VARINT) droppedEvents = r.uint32(); break;
      case 13: if (r.wire === WIRE_LEN) links++; break;
      case 14: if (r.wire === WIRE_VARINT) droppedLinks = r.uint32(); break;
      case 15: if (r.wire === WIRE_LEN) (statusS = r.start), (statusE = r.stop); break;
    }
  }
  leave();
  ascii('{"traceId":');
  hex(traceS, traceE);
  ascii(',"spanId":');
  hex(spanS, spanE);
  if (stateE > stateS) {
    ascii(',"traceState":');
    string(stateS, stateE);
  }
  if (parentE > parentS) {
    ascii(',"parentSpanId":');
    hex(parentS, parentE);
  }
  if (flags !== 0) {
    ascii(',"flags":');
    digits(flags, 0);
  }
  ascii(',"name":');
  string(nameS, nameE);
  ascii(',"kind":');
  if (kind >= 0) digits(kind, 0);
  else ascii(String(kind));
  ascii(',"startTimeUnixNano":');
  fixed64String(startAt);
  ascii(',"endTimeUnixNano":');
  fixed64String(endAt);
  if (attrs > 0) repeated(',"attributes":', start, end, 9, keyValue);
  if (droppedAttrs !== 0) ascii(',"droppedAttributesCount":' + droppedAttrs);
  if (events > 0) repeated(',"events":', start, end, 11, event);
  if (droppedEvents !== 0) ascii(',"droppedEventsCount":' + droppedEvents);
  if (links > 0) repeated(',"links":', start, end, 13, link);
  if (droppedLinks !== 0) ascii(',"droppedLinksCount":' + droppedLinks);
  ascii(',"status":');
  status(statusS, statusE);
  byte(0x7d);
}

function status(start: number, end: number): void {
  let msgS = 0;
  let msgE = 0;
  let code = 0;
  if (start >= 0) {
    const r = enter(start, end);
    while (r.next()) {
      if (r.field === 2 && r.wire === WIRE_LEN) (msgS = r.start), (msgE = r.stop);
      else if (r.field === 3 && r.wire === WIRE_VARINT) code = int32(r);
    }
    leave();
  }
  byte(0x7b);
  if (msgE > msgS) {
    ascii('"message":');
    string(msgS, msgE);
    if (code !== 0) byte(0x2c);
  }
  if (code !== 0) ascii('"code":' + code);
  byte(0x7d);
}

function event(start: number, end: number): void {
  let timeAt = -1;
  let nameS = 0;
  let nameE = 0;
  const r = enter(start, end);
  while (r.next()) {
    if (r.field === 1 && r.wire === WIRE_FIXED64) timeAt = r.start;
    else if (r.field === 2 && r.wire === WIRE_LEN) (nameS = r.start), (nameE = r.stop);
  }
  leave();
  ascii('{"timeUnixNano":');
  fixed64String(timeAt);
  ascii(',"name":');
  string(nameS, nameE);
  attributesAndDropped(start, end, 3, 4, true);
  byte(0x7d);
}

function link(start: number, end: number): void {
  let traceS = 0;
  let traceE = 0;
  let spanS = 0;
  let spanE = 0;
  let stateS = 0;
  let stateE = 0;
  let flags = 0;
  const r = enter(start, end);
  while (r.next()) {
    if (r.field === 1 && r.wire === WIRE_LEN) (traceS = r.start), (traceE = r.stop);
    else if (r.field === 2 && r.wire === WIRE_LEN) (spanS = r.start), (spanE = r.stop);
    else if (r.field === 3 && r.wire === WIRE_LEN) (stateS = r.start), (stateE = r.stop);
    else if (r.field === 6 && r.wire === WIRE_FIXED32) flags = fixed32(r.start);
  }
  leave();
  ascii('{"traceId":');
  hex(traceS, traceE);
  ascii(',"spanId":');
  hex(spanS, spanE);
  if (stateE > stateS) {
    ascii(',"traceState":');
    string(stateS, stateE);
  }
  if (flags !== 0) ascii(',"flags":' + flags);
  attributesAndDropped(start, end, 4, 5, true);
  byte(0x7d);
}

function keyValue(start: number, end: number): void {
  let keyS = 0;
  let keyE = 0;
  let valueS = -1;
  let valueE = 0;
  const r = enter(start, end);
  while (r.next()) {
    if (r.wire !== WIRE_LEN) continue;
    if (r.field === 1) (keyS = r.start), (keyE = r.stop);
    else if (r.field === 2) (valueS = r.start), (valueE = r.stop);
  }
  leave();
  ascii('{"key":');
  string(keyS, keyE);
  ascii(',"value":');
  if (valueS >= 0) anyValue(valueS, valueE);
  else ascii('{}');
  byte(0x7d);
}

/**
 * An AnyValue: of several members sent, the one encodeTraceJson writes (string, bool, int,
 * double, bytes, array, kvlist, in that order; the last occurrence of each). The usual value,
 * one member alone, is written in one pass.
 */
function anyValue(start: number, end: number): void {
  const r = enter(start, end);
  if (r.next() && r.pos === end) {
    const field = r.field;
    const wire = r.wire;
    const s = r.start;
    const e = r.stop;
    leave();
    if (member(field, wire, s, e)) return;
    ascii('{}');
    return;
  }
  leave();
  const first = [-1, -1, -1, -1, -1, -1, -1, -1];
  const last = [0, 0, 0, 0, 0, 0, 0, 0];
  const wires = [-1, WIRE_LEN, WIRE_VARINT, WIRE_VARINT, WIRE_FIXED64, WIRE_LEN, WIRE_LEN, WIRE_LEN];
  const many = enter(start, end);
  while (many.next()) {
    const f = many.field;
    if (f >= 1 && f <= 7 && many.wire === wires[f]) (first[f] = many.start), (last[f] = many.stop);
  }
  leave();
  for (const f of MEMBER_ORDER) if (first[f]! >= 0 && member(f, wires[f]!, first[f]!, last[f]!)) return;
  ascii('{}');
}

/** encodeTraceJson's order of AnyValue members: string, bool, int, double, bytes, array, kvlist. */
const MEMBER_ORDER = [1, 2, 3, 4, 7, 5, 6];

/** Writes one AnyValue member as its JSON object; false when the field is no member (or of the wrong wire type). */
function member(field: number, wire: number, start: number, end: number): boolean {
  switch (field) {
    case 1:
      if (wire !== WIRE_LEN) return false;
      ascii('{"stringValue":');
      string(start, end);
      byte(0x7d);
      return true;
    case 2:
      if (wire !== WIRE_VARINT) return false;
      ascii(varintLow32(src, start, end) === 0 ? '{"boolValue":false}' : '{"boolValue":true}');
      return true;
    case 3:
      if (wire !== WIRE_VARINT) return false;
      ascii('{"intValue":"');
      ascii(int64Decimal(start, end));
      ascii('"}');
      return true;
    case 4: {
      if (wire !== WIRE_FIXED64) return false;
      const d = src.readDoubleLE(start);
      ascii('{"doubleValue":');
      ascii(Number.isFinite(d) ? String(d) : '"' + String(d) + '"');
      byte(0x7d);
      return true;
    }
    case 5:
      if (wire !== WIRE_LEN) return false;
      ascii('{"arrayValue":{');
      repeated('"values":', start, end, 1, anyValue);
      ascii('}}');
      return true;
    case 6:
      if (wire !== WIRE_LEN) return false;
      ascii('{"kvlistValue":{');
      repeated('"values":', start, end, 1, keyValue);
      ascii('}}');
      return true;
    case 7:
      if (wire !== WIRE_LEN) return false;
      ascii('{"bytesValue":"');
      ascii(src.toString('base64', start, end));
      ascii('"}');
      return true;
    default:
      return false;
  }
}
