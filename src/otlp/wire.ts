// Reading protobuf wire format without decoding it into objects: what the collector needs to
// work on a request's bytes directly (find each span's bytes, transcode to OTLP/JSON, splice
// attributes in). The callers have decoded the same bytes with protobufjs first, so the input
// is known to be well formed; a malformed one still throws (WireError) rather than reading
// past the end.

export class WireError extends Error {}

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

/** A cursor over one message: next() moves to each field, its number, wire type and value range in turn. */
export class FieldReader {
  buf: Uint8Array;
  pos: number;
  end: number;
  /** The current field: number, wire type, and where its value starts and ends (for LEN: the payload). */
  field = 0;
  wire = 0;
  start = 0;
  stop = 0;

  constructor(buf: Uint8Array, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  /** Points the reader at another message (no allocation per message). */
  reset(buf: Uint8Array, start: number, end: number): this {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    return this;
  }

  next(): boolean {
    if (!(this.pos < this.end)) return false; // NaN bounds (a bug upstream) end the walk too
    const key = this.varint32();
    this.field = key >>> 3;
    this.wire = key & 7;
    switch (this.wire) {
      case WIRE_VARINT:
        this.start = this.pos;
        while (this.pos < this.end && this.buf[this.pos]! >= 0x80) this.pos++;
        this.pos++;
        break;
      case WIRE_FIXED64:
        this.start = this.pos;
        this.pos += 8;
        break;
      case WIRE_LEN: {
        const len = this.varint32();
        this.start = this.pos;
        this.pos += len;
        break;
      }
      case WIRE_FIXED32:
        this.start = this.pos;
        this.pos += 4;
        break;
      default:
        throw new WireError(`unsupported wire type ${this.wire} at byte ${this.pos}`);
    }
    if (this.pos > this.end) throw new WireError(`field ${this.field} runs past its message`);
    this.stop = this.pos;
    return true;
  }

  /** The current varint field's value, low 32 bits (enough for lengths, enums, uint32, bools). */
  uint32(): number {
    return varintLow32(this.buf, this.start, this.stop);
  }

  private varint32(): number {
    let v = 0;
    let shift = 0;
    let b: number;
    do {
      if (this.pos >= this.end) throw new WireError('varint runs past its message');
      b = this.buf[this.pos++]!;
      if (shift < 32) v |= (b & 0x7f) << shift;
      shift += 7;
    } while (b >= 0x80);
    return v >>> 0;
  }
}

/** The low 32 bits of the varint in buf[start, stop), unsigned (protobufjs's uint32; `| 0` gives its int32). */
export function varintLow32(buf: Uint8Array, start: number, stop: number): number {
  let v = 0;
  let shift = 0;
  for (let p = start; p < stop && shift < 32; p++, shift += 7) v |= (buf[p]! & 0x7f) << shift;
  return v >>> 0;
}

export function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

export function writeVarint(buf: Uint8Array, pos: number, v: number): number {
  while (v > 0x7f) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
  return pos;
}

/**
 * Writes a span's attributes (Span field 9: KeyValues of a string or a non-negative int) as
 * bytes to append to the span's own: what enrich adds to spans held as bytes, without building
 * KeyValue objects and encoding them.
 */
export class AttributeWriter {
  #buf = Buffer.allocUnsafe(1024);
  #pos = 0;

  string(key: Buffer, value: string): this {
    const len = Buffer.byteLength(value, 'utf8');
    const any = 1 + varintSize(len) + len; // AnyValue.string_value
    this.#head(key, any);
    this.#buf[this.#pos++] = 0x0a;
    this.#pos = writeVarint(this.#buf, this.#pos, len);
    this.#pos += this.#buf.write(value, this.#pos, len, 'utf8');
    return this;
  }

  /** An int attribute, 0 ≤ value < 2^31 (a depth, a count). */
  int(key: Buffer, value: number): this {
    const any = 1 + varintSize(value); // AnyValue.int_value
    this.#head(key, any);
    this.#buf[this.#pos++] = 0x18;
    this.#pos = writeVarint(this.#buf, this.#pos, value);
    return this;
  }

  /** The bytes written since the last take(). */
  take(): Buffer {
    const out = Buffer.allocUnsafe(this.#pos);
    this.#buf.copy(out, 0, 0, this.#pos);
    this.#pos = 0;
    return out;
  }

  /** Span.attributes' key and length, the KeyValue's key, and its value's key and length. */
  #head(key: Buffer, any: number): void {
    const kv = 1 + varintSize(key.length) + key.length + 1 + varintSize(any) + any;
    this.#room(1 + varintSize(kv) + kv);
    const buf = this.#buf;
    buf[this.#pos++] = 0x4a;
    this.#pos = writeVarint(buf, this.#pos, kv);
    buf[this.#pos++] = 0x0a;
    this.#pos = writeVarint(buf, this.#pos, key.length);
    this.#pos += key.copy(buf, this.#pos);
    buf[this.#pos++] = 0x12;
    this.#pos = writeVarint(buf, this.#pos, any);
  }

  #room(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(2 * this.#buf.length, this.#pos + n));
    this.#buf.copy(bigger, 0, 0, this.#pos);
    this.#buf = bigger;
  }
}
