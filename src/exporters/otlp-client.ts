// What every OTLP client here shares (the trace exporter, the findings' OTLP logs sink): where
// an endpoint setting points, and one gRPC unary Export call on a grpc-js channel with its
// answer classified as the collector's otlpexporter does (otlp-and-collector.md §1.5).
import * as grpc from '@grpc/grpc-js';
import { PermanentError, RetryableError } from '../errors.ts';
import { GrpcCode, retryDelayFromRpcStatus } from '../otlp/status.ts';
import type { TlsMaterial } from './otlp-transport.ts';

export interface OtlpTarget {
  /** gRPC: host:port. HTTP: the full URL of the signal's endpoint. */
  address: string;
  /** TLS, else plaintext. */
  secure: boolean;
}

export interface TargetProblem {
  path: string[];
  problem: string;
}

/** Client endpoints need a host, unlike a listener's bare :port. */
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^:/\s]+):\d{1,5}$/;

/**
 * Where to send and whether over TLS, or the key that is wrong and why. For HTTP, `endpoint` is a
 * base URL to which /v1/<signal> is appended, unless `signalEndpoint` (traces_endpoint,
 * logs_endpoint) gives the full URL; for gRPC, host:port or http(s)://host:port.
 */
export function resolveOtlpTarget(
  cfg: { endpoint: string; protocol: string; tls?: { insecure?: boolean | undefined } | undefined },
  signal: 'traces' | 'logs',
  signalEndpoint: string | undefined,
): OtlpTarget | TargetProblem {
  const signalKey = `${signal}_endpoint`;
  const insecure = cfg.tls?.insecure;
  const agrees = (url: URL): TargetProblem | undefined =>
    insecure === undefined || insecure === (url.protocol === 'http:')
      ? undefined
      : {
          path: ['tls', 'insecure'],
          problem: insecure
            ? 'true contradicts the https:// endpoint; use an http:// endpoint for plaintext'
            : 'false contradicts the http:// endpoint; use an https:// endpoint for TLS',
        };
  if (cfg.protocol === 'grpc') {
    if (signalEndpoint !== undefined) return { path: [signalKey], problem: 'applies to the http protocols only' };
    if (!cfg.endpoint.includes('://')) {
      if (!HOST_PORT.test(cfg.endpoint)) {
        return { path: ['endpoint'], problem: `must be host:port or http(s)://host:port for protocol grpc, got ${JSON.stringify(cfg.endpoint)}` };
      }
      return { address: cfg.endpoint, secure: insecure !== true };
    }
    const url = httpUrl(cfg.endpoint);
    if (!url || (url.pathname !== '/' && url.pathname !== '')) {
      return { path: ['endpoint'], problem: `must be host:port or http(s)://host:port (no path) for protocol grpc, got ${JSON.stringify(cfg.endpoint)}` };
    }
    const port = url.port || (url.protocol === 'https:' ? '443' : '80');
    return agrees(url) ?? { address: `${url.hostname}:${port}`, secure: url.protocol === 'https:' };
  }
  const mustBeUrl = `must be an http:// or https:// URL for protocol ${cfg.protocol}`;
  const base = httpUrl(cfg.endpoint);
  if (!base) return { path: ['endpoint'], problem: `${mustBeUrl}, got ${JSON.stringify(cfg.endpoint)}` };
  const url = signalEndpoint === undefined ? new URL(`${base.href.replace(/\/+$/, '')}/v1/${signal}`) : httpUrl(signalEndpoint);
  if (!url) return { path: [signalKey], problem: `${mustBeUrl}, got ${JSON.stringify(signalEndpoint)}` };
  return agrees(url) ?? { address: url.href, secure: url.protocol === 'https:' };
}

function httpUrl(text: string): URL | undefined {
  const url = URL.parse(text);
  return url && (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '' ? url : undefined;
}

const RETRYABLE_CODES: ReadonlySet<number> = new Set([
  GrpcCode.CANCELLED,
  GrpcCode.DEADLINE_EXCEEDED,
  GrpcCode.ABORTED,
  GrpcCode.OUT_OF_RANGE,
  GrpcCode.UNAVAILABLE,
  GrpcCode.DATA_LOSS,
]);

/**
 * grpc-js backs off reconnecting up to 120 s by default, which would notice a backend that came
 * back long after our own retries ask for it; keep the channel's backoff short.
 */
const MAX_RECONNECT_BACKOFF_MS = 5000;

const identity = (bytes: Buffer): Buffer => bytes;

export interface GrpcExporter {
  /** One Export call with already-encoded bytes; resolves with the response bytes. */
  call(path: string, request: Buffer, timeoutMs: number, signal: AbortSignal): Promise<Buffer | undefined>;
  close(): void;
}

export function grpcExporter(target: OtlpTarget, tls: TlsMaterial | undefined, headers: Record<string, string>, options: grpc.ChannelOptions = {}): GrpcExporter {
  const channelOptions: grpc.ChannelOptions = { 'grpc.max_reconnect_backoff_ms': MAX_RECONNECT_BACKOFF_MS, ...options };
  if (tls?.serverName) channelOptions['grpc.ssl_target_name_override'] = tls.serverName;
  const credentials = target.secure
    ? grpc.credentials.createSsl(tls?.ca ?? null, tls?.key ?? null, tls?.cert ?? null, { rejectUnauthorized: !tls?.skipVerify })
    : grpc.credentials.createInsecure();
  const client = new grpc.Client(target.address, credentials, channelOptions);
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(headers)) metadata.set(key.toLowerCase(), value);
  return {
    call: (path, request, timeoutMs, signal) =>
      new Promise((resolve, reject) => {
        signal.throwIfAborted();
        const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
        const call = client.makeUnaryRequest(path, identity, identity, request, metadata.clone(), { deadline }, (err, response) => {
          signal.removeEventListener('abort', cancel);
          if (err) reject(classifyGrpcError(err));
          else resolve(response);
        });
        const cancel = () => call.cancel();
        signal.addEventListener('abort', cancel, { once: true });
      }),
    close: () => client.close(),
  };
}

export function classifyGrpcError(err: grpc.ServiceError): Error {
  const details = err.metadata?.get('grpc-status-details-bin')[0];
  const retryAfterMs = details instanceof Buffer ? retryDelayFromRpcStatus(details) : undefined;
  const message = `gRPC ${grpc.status[err.code] ?? err.code}: ${err.details}`;
  // RESOURCE_EXHAUSTED is a throttle only when the server says when to come back;
  // otherwise it means "too large", which no retry fixes.
  if (RETRYABLE_CODES.has(err.code) || (err.code === GrpcCode.RESOURCE_EXHAUSTED && retryAfterMs !== undefined)) {
    return new RetryableError(message, { reason: 'downstream_unavailable', ...(retryAfterMs !== undefined && { retryAfterMs }), cause: err });
  }
  return new PermanentError(message, { cause: err });
}
