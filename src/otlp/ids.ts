// Trace and span ids: raw bytes inside, lowercase hex at the edges (OTLP/JSON, logs, APIs).

export const EMPTY_ID = new Uint8Array(0);
export const TRACE_ID_BYTES = 16;
export const SPAN_ID_BYTES = 8;

/** Lowercase hex, as one flat string: ids are kept for long in the trace graph, and a string
 * built by concatenation would keep its pieces (about 3× the memory). */
export function toHex(id: Uint8Array | null | undefined): string {
  if (!id || id.length === 0) return '';
  // Decoded ids are Buffers already (protobufjs on Node): no view to make for them.
  if (Buffer.isBuffer(id)) return id.toString('hex');
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex');
}

/** Both ids present (non-empty) and equal. */
export function sameId(a: Uint8Array | null | undefined, b: Uint8Array | null | undefined): boolean {
  return !!a && !!b && a.length > 0 && a.length === b.length && Buffer.compare(a, b) === 0;
}

export function isAllZero(id: Uint8Array): boolean {
  for (let i = 0; i < id.length; i++) if (id[i] !== 0) return false;
  return true;
}

/**
 * Why an id is unacceptable, or undefined when it is fine. An absent optional id
 * (parent span id) is fine; a required id must have its exact length and not be all zeros.
 */
export function idProblem(id: Uint8Array | null | undefined, bytes: number, required: boolean): string | undefined {
  const len = id?.length ?? 0;
  if (len === 0) return required ? 'is required and was empty' : undefined;
  if (len !== bytes) return `must be ${bytes} bytes, got ${len}`;
  if (required && isAllZero(id!)) return 'must not be all zeros';
  return undefined;
}

const HEX_RE = /^[0-9a-fA-F]*$/;
const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

/** Parses an OTLP/JSON id (case-insensitive hex); returns an error message instead of throwing. */
export function parseHexId(value: unknown, bytes: number): Uint8Array | string {
  if (value === undefined || value === null || value === '') return EMPTY_ID;
  if (typeof value !== 'string') return `must be a hex string, got ${typeof value}`;
  if (value.length !== bytes * 2 || !HEX_RE.test(value)) {
    const hint = BASE64_RE.test(value) && !HEX_RE.test(value) ? ' (OTLP/JSON ids are hex, not base64)' : '';
    return `must be ${bytes * 2} hex digits (${bytes} bytes), got ${value.length} characters${hint}`;
  }
  return Buffer.from(value, 'hex');
}
