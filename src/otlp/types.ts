// The canonical in-memory form of OTLP trace data: the shape protobufjs decodes into,
// which the JSON decoder produces too. Fields a decoder did not see may be absent or
// come from the message prototype (shared, frozen empty arrays): never push onto a
// repeated field in place, assign a new array.
import type Long from 'long';

export type Int64 = Long | number;

export interface AnyValue {
  stringValue?: string | null;
  boolValue?: boolean | null;
  intValue?: Int64 | null;
  doubleValue?: number | null;
  arrayValue?: { values?: AnyValue[] | null } | null;
  kvlistValue?: { values?: KeyValue[] | null } | null;
  bytesValue?: Uint8Array | null;
}

export interface KeyValue {
  key: string;
  value?: AnyValue | null;
}

export interface Resource {
  attributes?: KeyValue[] | null;
  droppedAttributesCount?: number | null;
  entityRefs?: unknown[] | null;
}

export interface InstrumentationScope {
  name?: string | null;
  version?: string | null;
  attributes?: KeyValue[] | null;
  droppedAttributesCount?: number | null;
}

export interface SpanEvent {
  timeUnixNano?: Int64 | null;
  name?: string | null;
  attributes?: KeyValue[] | null;
  droppedAttributesCount?: number | null;
}

export interface SpanLink {
  traceId: Uint8Array;
  spanId: Uint8Array;
  traceState?: string | null;
  attributes?: KeyValue[] | null;
  droppedAttributesCount?: number | null;
  flags?: number | null;
}

export interface SpanStatus {
  message?: string | null;
  code?: number | null;
}

export interface Span {
  traceId: Uint8Array;
  spanId: Uint8Array;
  traceState?: string | null;
  parentSpanId?: Uint8Array | null;
  flags?: number | null;
  name?: string | null;
  kind?: number | null;
  startTimeUnixNano?: Int64 | null;
  endTimeUnixNano?: Int64 | null;
  attributes?: KeyValue[] | null;
  droppedAttributesCount?: number | null;
  events?: SpanEvent[] | null;
  droppedEventsCount?: number | null;
  links?: SpanLink[] | null;
  droppedLinksCount?: number | null;
  status?: SpanStatus | null;
}

export interface ScopeSpans {
  scope?: InstrumentationScope | null;
  spans: Span[];
  schemaUrl?: string | null;
}

export interface ResourceSpans {
  resource?: Resource | null;
  scopeSpans: ScopeSpans[];
  schemaUrl?: string | null;
}

/** What flows through a traces pipeline: one export request's worth of spans. */
export interface TraceBatch {
  resourceSpans: ResourceSpans[];
  /** Spans in the batch, counted once by the receiver. */
  spanCount: number;
  /** Where the decoded parts lie in the protobuf request they came from (receivers' protobuf path). */
  source?: WireSource;
  /**
   * The batch as ExportTraceServiceRequest bytes, when it travels encoded (after enrich's hold):
   * exporters send or transcode these instead of encoding objects. Never changed in place.
   */
  readonly protobuf?: Buffer;
}

/**
 * A decoded batch's request bytes and where each part lies in them ([start, end) pairs, in
 * batch order; rejected spans left out), so that a part nothing changed can leave as the bytes
 * it came in.
 */
export interface WireSource {
  readonly bytes: Buffer;
  readonly resourceSpans: Int32Array;
  readonly scopeSpans: Int32Array;
  readonly spans: Int32Array;
  /** Parts (spans, resources, scopes) a processor changed (normalize replacing credentials): their bytes are stale. */
  rewritten?: Set<object>;
}

export function countSpans(resourceSpans: readonly ResourceSpans[]): number {
  let n = 0;
  for (const rs of resourceSpans) for (const ss of rs.scopeSpans ?? []) n += ss.spans?.length ?? 0;
  return n;
}

export const SpanKind = { UNSPECIFIED: 0, INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 } as const;
export const StatusCode = { UNSET: 0, OK: 1, ERROR: 2 } as const;
