// One table from our error types to the OTLP answers (the collector's
// receiver/otlpreceiver/internal/errors): gRPC status code, HTTP status, and the
// google.rpc.Status body with RetryInfo that tells a client when to come back.
import { BadInputError, findRetryable, isPermanent, TooLargeError, UnsupportedMediaTypeError, errorMessage } from '../errors.ts';
import { RETRY_INFO_TYPE_URL, RetryInfo, RpcStatus, Long } from './proto.ts';

export const GrpcCode = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
} as const;

export interface ErrorStatus {
  grpcCode: number;
  httpStatus: number;
  message: string;
  /** Set for retryable answers: the client should wait at least this long. */
  retryAfterMs: number | undefined;
  /** Bounded label for agentsec_receiver_refused_spans_total{reason}. */
  reason: string;
}

/** The wait we suggest when a retryable error does not know better. */
export const DEFAULT_RETRY_AFTER_MS = 1000;

export function statusOf(err: unknown): ErrorStatus {
  const message = errorMessage(err);
  if (err instanceof TooLargeError) return { grpcCode: GrpcCode.RESOURCE_EXHAUSTED, httpStatus: 413, message, retryAfterMs: undefined, reason: 'too_large' };
  if (err instanceof UnsupportedMediaTypeError) return { grpcCode: GrpcCode.INVALID_ARGUMENT, httpStatus: 415, message, retryAfterMs: undefined, reason: 'unsupported_media_type' };
  if (err instanceof BadInputError) return { grpcCode: GrpcCode.INVALID_ARGUMENT, httpStatus: 400, message, retryAfterMs: undefined, reason: 'bad_input' };
  if (isPermanent(err)) return { grpcCode: GrpcCode.INTERNAL, httpStatus: 500, message, retryAfterMs: undefined, reason: 'permanent' };
  // Anything not marked permanent is retryable (consumererror semantics).
  const retryable = findRetryable(err);
  return {
    grpcCode: GrpcCode.UNAVAILABLE,
    httpStatus: 503,
    message,
    retryAfterMs: retryable?.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS,
    reason: retryable?.reason ?? 'internal',
  };
}

/** google.rpc.Status as protobufjs-ready fields, with RetryInfo when the answer is retryable. */
function rpcStatusFields(s: ErrorStatus): Record<string, unknown> {
  const details = [];
  if (s.retryAfterMs !== undefined) {
    const seconds = Math.floor(s.retryAfterMs / 1000);
    const nanos = (s.retryAfterMs % 1000) * 1_000_000;
    details.push({
      // protobufjs serves google/protobuf/any.proto from its bundled copy, whose field keeps its
      // proto name (keepCase: false does not apply to it): typeUrl would be dropped silently.
      type_url: RETRY_INFO_TYPE_URL,
      value: RetryInfo.encode({ retryDelay: { seconds: Long.fromNumber(seconds), nanos } } as never).finish(),
    });
  }
  return { code: s.grpcCode, message: s.message, details };
}

export function encodeRpcStatusProtobuf(s: ErrorStatus): Uint8Array {
  return RpcStatus.encode(rpcStatusFields(s) as never).finish();
}

export function encodeRpcStatusJson(s: ErrorStatus): string {
  const body: Record<string, unknown> = { code: s.grpcCode, message: s.message };
  if (s.retryAfterMs !== undefined) {
    body.details = [{ '@type': RETRY_INFO_TYPE_URL, retryDelay: `${(s.retryAfterMs / 1000).toFixed(3).replace(/\.?0+$/, '')}s` }];
  }
  return JSON.stringify(body);
}

/** Reads RetryInfo.retry_delay from a google.rpc.Status (gRPC trailer or HTTP body), in ms. */
export function retryDelayFromRpcStatus(bytes: Uint8Array): number | undefined {
  try {
    const status = RpcStatus.decode(bytes) as unknown as { details?: { type_url: string; value: Uint8Array }[] };
    for (const d of status.details ?? []) {
      if (d.type_url !== RETRY_INFO_TYPE_URL) continue;
      const info = RetryInfo.decode(d.value) as unknown as { retryDelay?: { seconds?: Long | number; nanos?: number } };
      const sec = Number(info.retryDelay?.seconds ?? 0);
      return sec * 1000 + Math.round((info.retryDelay?.nanos ?? 0) / 1e6);
    }
  } catch {
    // A malformed status body only means there is no server hint.
  }
  return undefined;
}

/** Parses Retry-After as seconds or an HTTP date (OTLP v1.11.0), in ms from `now`. */
export function parseRetryAfter(header: string | undefined | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
