// Batches that travel as ExportTraceServiceRequest bytes (what enrich sends on after its hold):
// exporters send or transcode the bytes; anything that reads the spans as objects decodes them
// then, once, and from then on the objects are the batch (a consumer may change them).
import { decodeTraceProtobuf } from './decode.ts';
import { encodeTraceJson, encodeTraceProtobuf } from './encode.ts';
import { jsonFromProtobuf } from './json-from-protobuf.ts';
import type { ResourceSpans, TraceBatch } from './types.ts';

export class EncodedTraceBatch implements TraceBatch {
  readonly spanCount: number;
  #protobuf: Buffer | undefined;
  #decoded: ResourceSpans[] | undefined;

  constructor(protobuf: Buffer, spanCount: number) {
    this.#protobuf = protobuf;
    this.spanCount = spanCount;
  }

  /** The bytes, until something reads the spans as objects. */
  get protobuf(): Buffer | undefined {
    return this.#protobuf;
  }

  get resourceSpans(): ResourceSpans[] {
    if (this.#decoded === undefined) {
      this.#decoded = decodeTraceProtobuf(this.#protobuf!).batch.resourceSpans;
      this.#protobuf = undefined;
    }
    return this.#decoded;
  }

  set resourceSpans(resourceSpans: ResourceSpans[]) {
    this.#decoded = resourceSpans;
    this.#protobuf = undefined;
  }
}

/** The batch as ExportTraceServiceRequest protobuf: its bytes when it travels encoded. */
export function batchProtobuf(batch: TraceBatch): Buffer {
  return batch.protobuf ?? encodeTraceProtobuf(batch.resourceSpans);
}

/**
 * The batch as OTLP/JSON (UTF-8), `suffix` appended: transcoded from its bytes when it travels
 * encoded, into `into` when given (see jsonFromProtobuf).
 */
export function batchJson(batch: TraceBatch, suffix = '', into?: Buffer): Buffer {
  const bytes = batch.protobuf;
  return bytes ? jsonFromProtobuf(bytes, suffix, into) : Buffer.from(encodeTraceJson(batch.resourceSpans) + suffix);
}

/** A copy a consumer may change: the bytes are shared (never changed in place), objects cloned. */
export function copyBatch(batch: TraceBatch): TraceBatch {
  const bytes = batch.protobuf;
  return bytes ? new EncodedTraceBatch(bytes, batch.spanCount) : structuredClone({ resourceSpans: batch.resourceSpans, spanCount: batch.spanCount });
}
