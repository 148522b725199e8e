// What both transports do with a request body once they have it: decode, hand the spans to
// the pipeline and wait for it (back-pressure reaches the client as the pipeline's error),
// count what happened, and shape the ExportTraceServiceResponse.
import type { Logger } from 'pino';
import { BadInputError, errorMessage, findRetryable, isPermanent } from '../../errors.ts';
import type { ConsumeContext, Settings, TracesConsumer } from '../../component/types.ts';
import { decodeTraceJson, decodeTraceProtobuf } from '../../otlp/decode.ts';
import { ExportTraceServiceResponse } from '../../otlp/proto.ts';
import { statusOf } from '../../otlp/status.ts';
import type { Counter, CounterHandle } from '../../telemetry/metrics.ts';

export type TransportName = 'grpc' | 'http';
export type Encoding = 'protobuf' | 'json';

/** What goes into partial_success; rejectedSpans 0 means plain success. */
export interface ExportResult {
  rejectedSpans: number;
  errorMessage: string;
}

const FULL_SUCCESS: ExportResult = Object.freeze({ rejectedSpans: 0, errorMessage: '' });
const EMPTY_RESPONSE = Buffer.alloc(0);

export class Ingest {
  readonly #next: TracesConsumer;
  readonly #logger: Logger;
  readonly #receiver: string;
  readonly #contexts: Record<TransportName, ConsumeContext>;
  readonly #accepted: Record<TransportName, CounterHandle>;
  readonly #refusedBadInput: CounterHandle;
  readonly #refused: Counter;
  readonly #refusedRequests: Counter;
  readonly #failedRequests: Counter;

  constructor(set: Settings, next: TracesConsumer) {
    this.#next = next;
    this.#logger = set.logger;
    this.#receiver = set.id;
    this.#contexts = {
      grpc: Object.freeze({ receiver: set.id, transport: 'grpc' }),
      http: Object.freeze({ receiver: set.id, transport: 'http' }),
    };
    const accepted = set.metrics.counter('agentsec_receiver_accepted_spans_total', 'Spans the pipeline accepted from a receiver.', ['receiver', 'transport']);
    this.#accepted = { grpc: accepted.labels(set.id, 'grpc'), http: accepted.labels(set.id, 'http') };
    this.#refused = set.metrics.counter(
      'agentsec_receiver_refused_spans_total',
      'Spans a receiver refused: bad_input for spans that failed validation, else why the pipeline refused them.',
      ['receiver', 'reason'],
    );
    this.#refusedBadInput = this.#refused.labels(set.id, 'bad_input');
    this.#refusedRequests = set.metrics.counter(
      'agentsec_receiver_refused_requests_total',
      'Requests a receiver refused before decoding them, because the pipeline would refuse their spans (memory_limit, hold_full, export_behind, queue_full, ...).',
      ['receiver', 'transport', 'reason'],
    );
    this.#failedRequests = set.metrics.counter(
      'agentsec_receiver_failed_requests_total',
      'Requests a receiver could not read: undecodable, too large or of an unsupported type.',
      ['receiver', 'transport', 'reason'],
    );
  }

  /**
   * Decodes one ExportTraceServiceRequest and waits for the pipeline to take it. Throws
   * BadInputError when the body cannot be decoded or every span in it is invalid, and
   * whatever the pipeline threw when it refused the spans (statusOf maps both).
   */
  async export(transport: TransportName, encoding: Encoding, body: Uint8Array): Promise<ExportResult> {
    // Refused before it is decoded: an overloaded pipeline neither decodes nor judges it.
    const refused = this.#next.refusal?.();
    if (refused) {
      this.#refusedRequests.inc([this.#receiver, transport, statusOf(refused).reason]);
      throw refused;
    }
    let decoded;
    try {
      decoded = encoding === 'protobuf' ? decodeTraceProtobuf(body) : decodeTraceJson(body);
    } catch (err) {
      this.requestFailed(transport, err);
      throw err;
    }
    const { batch, rejectedSpans, errors } = decoded;
    if (rejectedSpans > 0) {
      this.#refusedBadInput.inc(rejectedSpans);
      // Counts only: the messages can quote attribute values.
      this.#logger.debug({ transport, rejectedSpans, acceptedSpans: batch.spanCount }, 'rejected invalid spans');
    }
    const spanCount = batch.spanCount;
    if (spanCount === 0) {
      if (rejectedSpans > 0) throw new BadInputError(`all ${rejectedSpans} spans were rejected: ${errors.join('; ')}`);
      return FULL_SUCCESS; // An empty request is a success (OTLP §1.3); the pipeline never sees it.
    }
    try {
      await this.#next.consume(batch, this.#contexts[transport]);
    } catch (err) {
      const reason = statusOf(err).reason;
      this.#refused.inc([this.#receiver, reason], spanCount);
      // An error that is neither retryable nor permanent by type is a bug downstream: make it visible.
      const expected = findRetryable(err) !== undefined || isPermanent(err);
      this.#logger[expected ? 'debug' : 'warn']({ transport, spans: spanCount, reason, err: errorMessage(err) }, 'pipeline refused spans');
      throw err;
    }
    this.#accepted[transport].inc(spanCount);
    return rejectedSpans === 0 ? FULL_SUCCESS : { rejectedSpans, errorMessage: errors.join('; ') };
  }

  /** A request that could not be read: undecodable, too large, of an unsupported type or encoding. */
  requestFailed(transport: TransportName, err: unknown): void {
    this.#failedRequests.inc([this.#receiver, transport, statusOf(err).reason]);
  }
}

export function encodeExportResponseProtobuf(result: ExportResult): Buffer {
  if (result.rejectedSpans === 0) return EMPTY_RESPONSE;
  const bytes = ExportTraceServiceResponse.encode({ partialSuccess: result } as never).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** OTLP/JSON: int64 as a decimal string. */
export function encodeExportResponseJson(result: ExportResult): string {
  if (result.rejectedSpans === 0) return '{}';
  return JSON.stringify({ partialSuccess: { rejectedSpans: String(result.rejectedSpans), errorMessage: result.errorMessage } });
}
