// Reading OTLP AnyValues as the normalizer needs them. protobufjs keeps oneof defaults
// ("" / 0 / false) on the message prototype, so a field counts only when it is set
// meaningfully: a non-empty string, or an own property for the other types.
import type { AnyValue, KeyValue } from '../otlp/types.ts';
import { int64String } from '../otlp/encode.ts';

/** The value as a string when it is a string (non-empty), else undefined. */
export function stringOf(v: AnyValue | null | undefined): string | undefined {
  const s = v?.stringValue;
  return s ? s : undefined;
}

/** A number from an int, a double or a numeric string, else undefined. */
export function numberOf(v: AnyValue | null | undefined): number | undefined {
  if (!v) return undefined;
  if (Object.hasOwn(v, 'intValue') && v.intValue != null) return Number(int64String(v.intValue));
  if (Object.hasOwn(v, 'doubleValue') && v.doubleValue != null) return v.doubleValue;
  const s = v.stringValue;
  if (s) {
    const n = Number(s);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/** A scalar as text (strings, ints, doubles, bools); structured values as JSON. */
export function textOf(v: AnyValue | null | undefined): string | undefined {
  if (!v) return undefined;
  const s = v.stringValue;
  if (s) return s;
  if (Object.hasOwn(v, 'intValue') && v.intValue != null) return int64String(v.intValue);
  if (Object.hasOwn(v, 'doubleValue') && v.doubleValue != null) return String(v.doubleValue);
  if (Object.hasOwn(v, 'boolValue') && v.boolValue != null) return String(v.boolValue);
  if (v.arrayValue || v.kvlistValue) return JSON.stringify(plainOf(v));
  return undefined;
}

/** Strings of a string or an array of strings (e.g. http.request.header.* is string[]). */
export function stringsOf(v: AnyValue | null | undefined): string[] {
  const s = stringOf(v);
  if (s !== undefined) return [s];
  const values = v?.arrayValue?.values;
  if (!values) return [];
  const out: string[] = [];
  for (const item of values) {
    const t = stringOf(item);
    if (t !== undefined) out.push(t);
  }
  return out;
}

/** An AnyValue as plain JSON data. */
export function plainOf(v: AnyValue | null | undefined): unknown {
  if (!v) return null;
  if (v.stringValue) return v.stringValue;
  if (Object.hasOwn(v, 'stringValue') && v.stringValue === '') return '';
  if (Object.hasOwn(v, 'boolValue') && v.boolValue != null) return v.boolValue;
  if (Object.hasOwn(v, 'intValue') && v.intValue != null) return typeof v.intValue === 'number' ? v.intValue : Number(int64String(v.intValue));
  if (Object.hasOwn(v, 'doubleValue') && v.doubleValue != null) return v.doubleValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(plainOf);
  if (v.kvlistValue) {
    // No prototype: a key "__proto__" is data like any other (else it would vanish from the text detectors read).
    const o: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    for (const kv of v.kvlistValue.values ?? []) o[kv.key] = plainOf(kv.value);
    return o;
  }
  if (v.bytesValue && v.bytesValue.length > 0) return Buffer.from(v.bytesValue).toString('base64');
  return null;
}

export function findAttribute(attrs: readonly KeyValue[] | null | undefined, key: string): AnyValue | undefined {
  if (!attrs) return undefined;
  for (let i = 0; i < attrs.length; i++) if (attrs[i]!.key === key) return attrs[i]!.value ?? undefined;
  return undefined;
}

export function stringAttribute(attrs: readonly KeyValue[] | null | undefined, key: string): string | undefined {
  return stringOf(findAttribute(attrs, key));
}

/** Shares one copy of each distinct short string (roles, tools, hosts recur across millions of spans). */
export class StringPool {
  readonly #pool = new Map<string, string>();
  readonly #max: number;
  constructor(max = 100_000) {
    this.#max = max;
  }
  intern(s: string): string;
  intern(s: string | undefined): string | undefined;
  intern(s: string | undefined): string | undefined {
    if (s === undefined) return undefined;
    const hit = this.#pool.get(s);
    if (hit !== undefined) return hit;
    if (this.#pool.size >= this.#max) this.#pool.clear();
    this.#pool.set(s, s);
    return s;
  }
}
