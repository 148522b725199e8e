// OTLP/HTTP transport: POST to the traces URL over a keep-alive agent, protobuf or JSON,
// gzip when configured, and the answer classified as the collector's otlphttpexporter
// does: 429/502/503/504 retryable (Retry-After or RetryInfo), every other failure permanent.
import http from 'node:http';
import https from 'node:https';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { PermanentError, RetryableError, errorMessage } from '../errors.ts';
import { encodeTraceJson, encodeTraceProtobuf } from '../otlp/encode.ts';
import { RETRY_INFO_TYPE_URL, RpcStatus } from '../otlp/proto.ts';
import { parseRetryAfter, retryDelayFromRpcStatus } from '../otlp/status.ts';
import type { OtlpExporterSettings } from './otlp.ts';
import { partialSuccessFromJson, partialSuccessFromProtobuf, type OtlpTarget, type OtlpTransport, type TlsMaterial } from './otlp-transport.ts';

const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);
/** OTLP recommends servers keep responses under 4 MiB; read no more than that. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;
/** How much of a non-Status error body (a proxy's HTML page, say) goes into the message. */
const MAX_TEXT_DETAIL = 256;

const gzipAsync = promisify(gzip);
/** zlib's own default, which grpc-js uses too. */
const DEFAULT_GZIP_LEVEL = 6;

interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export function httpTransport(cfg: OtlpExporterSettings, target: OtlpTarget, tls: TlsMaterial): OtlpTransport {
  const url = new URL(target.address);
  const client = target.secure ? https : http;
  const agent = target.secure
    ? new https.Agent({ keepAlive: true, ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: !tls.skipVerify, servername: tls.serverName })
    : new http.Agent({ keepAlive: true });
  const json = cfg.protocol === 'http/json';
  const headers: http.OutgoingHttpHeaders = { ...cfg.headers, 'content-type': json ? 'application/json' : 'application/x-protobuf' };
  if (cfg.compression === 'gzip') headers['content-encoding'] = 'gzip';

  const post = (body: Buffer, signal: AbortSignal) =>
    new Promise<HttpAnswer>((resolve, reject) => {
      const req = client.request(url, { method: 'POST', agent, signal, headers: { ...headers, 'content-length': body.byteLength } }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          if (size < MAX_RESPONSE_BYTES) chunks.push(chunk);
          size += chunk.byteLength;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });

  return {
    encode(batch) {
      const encoded = json ? Buffer.from(encodeTraceJson(batch.resourceSpans)) : encodeTraceProtobuf(batch.resourceSpans);
      // Compressed once, off the event loop (zlib's thread pool); the queue holds the result.
      return cfg.compression === 'gzip' ? gzipAsync(encoded, { level: cfg.compression_level ?? DEFAULT_GZIP_LEVEL }) : encoded;
    },
    async send(request, signal) {
      let answer: HttpAnswer;
      try {
        answer = await post(request, signal);
      } catch (err) {
        // Refused, reset, timed out or aborted: the request may never have arrived.
        throw new RetryableError(`POST ${url.href} failed: ${errorMessage(err)}`, { reason: 'downstream_unavailable', cause: err });
      }
      const { status, headers: resHeaders, body } = answer;
      if (status >= 200 && status < 300) return json ? partialSuccessFromJson(body.toString('utf8')) : partialSuccessFromProtobuf(body);
      const detail = statusDetail(resHeaders['content-type'], body);
      const message = `HTTP ${status}${detail.message ? `: ${detail.message}` : ''}`;
      if (RETRYABLE_STATUSES.has(status)) {
        const retryAfterMs = parseRetryAfter(resHeaders['retry-after']) ?? detail.retryAfterMs;
        throw new RetryableError(message, { reason: 'downstream_unavailable', retryAfterMs });
      }
      throw new PermanentError(message);
    },
    close: () => agent.destroy(),
  };
}

/** The message and RetryInfo of a google.rpc.Status error body, in either encoding; else the text. */
function statusDetail(contentType: string | undefined, body: Buffer): { message: string; retryAfterMs?: number | undefined } {
  try {
    if (contentType?.includes('protobuf')) {
      const status = RpcStatus.decode(body) as unknown as { message?: string };
      return { message: status.message ?? '', retryAfterMs: retryDelayFromRpcStatus(body) };
    }
    if (contentType?.includes('json')) {
      const status = JSON.parse(body.toString('utf8')) as { message?: unknown; details?: { '@type'?: string; retryDelay?: string }[] };
      const retryDelay = status.details?.find((d) => d['@type'] === RETRY_INFO_TYPE_URL)?.retryDelay;
      const seconds = retryDelay === undefined ? NaN : Number.parseFloat(retryDelay);
      return { message: typeof status.message === 'string' ? status.message : '', retryAfterMs: Number.isFinite(seconds) ? seconds * 1000 : undefined };
    }
  } catch {
    // Not a Status after all: fall back to the raw text.
  }
  return { message: body.toString('utf8', 0, Math.min(body.byteLength, MAX_TEXT_DETAIL)).trim() };
}
