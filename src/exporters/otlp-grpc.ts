// OTLP/gRPC transport: one unary TraceService/Export call per attempt on a generic
// grpc-js client, with the request already encoded (identity serializers), and the
// answer classified as the collector's otlpexporter does (otlp-and-collector.md §1.5).
import * as grpc from '@grpc/grpc-js';
import { PermanentError, RetryableError } from '../errors.ts';
import { encodeTraceProtobuf } from '../otlp/encode.ts';
import { TRACE_EXPORT_PATH } from '../otlp/proto.ts';
import { GrpcCode, retryDelayFromRpcStatus } from '../otlp/status.ts';
import type { OtlpExporterSettings } from './otlp.ts';
import { partialSuccessFromProtobuf, type OtlpTarget, type OtlpTransport, type TlsMaterial } from './otlp-transport.ts';

const RETRYABLE_CODES: ReadonlySet<number> = new Set([
  GrpcCode.CANCELLED,
  GrpcCode.DEADLINE_EXCEEDED,
  GrpcCode.ABORTED,
  GrpcCode.OUT_OF_RANGE,
  GrpcCode.UNAVAILABLE,
  GrpcCode.DATA_LOSS,
]);

/** grpc-js `CompressionAlgorithms.gzip`. */
const GZIP = 2;
/**
 * grpc-js backs off reconnecting up to 120 s by default, which would notice a backend that
 * came back long after our own retries ask for it; keep the channel's backoff short.
 */
const MAX_RECONNECT_BACKOFF_MS = 5000;

const identity = (bytes: Buffer): Buffer => bytes;

export function grpcTransport(cfg: OtlpExporterSettings, target: OtlpTarget, tls: TlsMaterial): OtlpTransport {
  const options: grpc.ChannelOptions = { 'grpc.max_reconnect_backoff_ms': MAX_RECONNECT_BACKOFF_MS };
  if (cfg.compression === 'gzip') options['grpc.default_compression_algorithm'] = GZIP;
  if (tls.serverName) options['grpc.ssl_target_name_override'] = tls.serverName;
  const credentials = target.secure
    ? grpc.credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null, { rejectUnauthorized: !tls.skipVerify })
    : grpc.credentials.createInsecure();
  const client = new grpc.Client(target.address, credentials, options);
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(cfg.headers)) metadata.set(key, value);

  return {
    // Compression, when on, is grpc-js's: per attempt, asynchronous (zlib's thread pool).
    encode: (batch) => encodeTraceProtobuf(batch.resourceSpans),
    send: (request, signal) =>
      new Promise((resolve, reject) => {
        signal.throwIfAborted();
        const deadline = cfg.timeout > 0 ? Date.now() + cfg.timeout : Infinity;
        const call = client.makeUnaryRequest(TRACE_EXPORT_PATH, identity, identity, request, metadata.clone(), { deadline }, (err, response) => {
          signal.removeEventListener('abort', cancel);
          if (err) reject(classify(err));
          else resolve(response && partialSuccessFromProtobuf(response));
        });
        const cancel = () => call.cancel();
        signal.addEventListener('abort', cancel, { once: true });
      }),
    close: () => client.close(),
  };
}

function classify(err: grpc.ServiceError): Error {
  const details = err.metadata?.get('grpc-status-details-bin')[0];
  const retryAfterMs = details instanceof Buffer ? retryDelayFromRpcStatus(details) : undefined;
  const message = `gRPC ${grpc.status[err.code] ?? err.code}: ${err.details}`;
  // RESOURCE_EXHAUSTED is a throttle only when the server says when to come back;
  // otherwise it means "too large", which no retry fixes.
  if (RETRYABLE_CODES.has(err.code) || (err.code === GrpcCode.RESOURCE_EXHAUSTED && retryAfterMs !== undefined)) {
    return new RetryableError(message, { reason: 'downstream_unavailable', retryAfterMs, cause: err });
  }
  return new PermanentError(message, { cause: err });
}
