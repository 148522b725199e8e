// The HTTP client every HTTP exporter here shares (OTLP/HTTP traces, the finding sinks): a
// keep-alive agent with the configured TLS material, a POST that reads at most a bounded
// answer, and the answer classified as OTLP/HTTP clients do (otlp-and-collector.md §1.5–1.6):
// 2xx delivered; 429, 502, 503, 504 and connection failures retryable, waiting at least
// Retry-After (seconds or an HTTP date) or the body's RetryInfo; every other status final.
// Messages name the origin only: a webhook's path or query often is its secret (Slack, Teams).
import http from 'node:http';
import https from 'node:https';
import { PermanentError, RetryableError, errorMessage } from '../errors.ts';
import { RETRY_INFO_TYPE_URL, RpcStatus } from '../otlp/proto.ts';
import { parseRetryAfter, retryDelayFromRpcStatus } from '../otlp/status.ts';
import type { TlsMaterial } from './otlp-transport.ts';

const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);
/** How much of a body that is no Status (a proxy's HTML page, say) goes into a message. */
const MAX_TEXT_DETAIL = 256;

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface HttpPoster {
  readonly url: URL;
  /** Resolves with any answer; rejects (RetryableError) only when there was none. */
  post(body: string | Buffer, signal: AbortSignal): Promise<HttpAnswer>;
  close(): void;
}

export interface PosterOptions {
  headers: Record<string, string>;
  contentType: string;
  contentEncoding?: string;
  userAgent?: string;
  tls?: TlsMaterial | undefined;
  /** Answers are read for an error message or a partial success only: keep at most this much. */
  maxAnswerBytes: number;
}

export function httpPoster(url: URL, opts: PosterOptions): HttpPoster {
  const secure = url.protocol === 'https:';
  const tls = opts.tls;
  const agent = secure
    ? new https.Agent({ keepAlive: true, ca: tls?.ca, cert: tls?.cert, key: tls?.key, rejectUnauthorized: !tls?.skipVerify, servername: tls?.serverName })
    : new http.Agent({ keepAlive: true });
  const client = secure ? https : http;
  // Header names are case-insensitive: the configured ones, lower-cased, then ours over them.
  const headers: http.OutgoingHttpHeaders = opts.userAgent ? { 'user-agent': opts.userAgent } : {};
  for (const [k, v] of Object.entries(opts.headers)) headers[k.toLowerCase()] = v;
  headers['content-type'] = opts.contentType;
  if (opts.contentEncoding) headers['content-encoding'] = opts.contentEncoding;

  return {
    url,
    post: (body, signal) =>
      new Promise<HttpAnswer>((resolve, reject) => {
        const failed = (err: unknown) =>
          // Refused, reset, timed out or aborted: the request may never have arrived.
          reject(new RetryableError(`POST ${url.origin} failed: ${errorMessage(err)}`, { reason: 'downstream_unavailable', cause: err }));
        let req: http.ClientRequest;
        try {
          req = client.request(url, { method: 'POST', agent, signal, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
            const chunks: Buffer[] = [];
            let size = 0;
            res.on('data', (chunk: Buffer) => {
              if (size < opts.maxAnswerBytes) chunks.push(chunk);
              size += chunk.byteLength;
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
            res.on('error', failed);
          });
        } catch (err) {
          failed(err);
          return;
        }
        req.on('error', failed);
        req.end(body);
      }),
    close: () => agent.destroy(),
  };
}

export interface FailureDetail {
  message?: string;
  retryAfterMs?: number | undefined;
}

/** The error for a non-2xx answer (undefined for a 2xx one), with `detail` from the body when it was a Status. */
export function httpFailure(answer: HttpAnswer, detail?: FailureDetail): Error | undefined {
  const { status } = answer;
  if (status >= 200 && status < 300) return undefined;
  const text = detail?.message ?? answer.body.toString('utf8', 0, Math.min(answer.body.byteLength, MAX_TEXT_DETAIL)).trim();
  const message = `HTTP ${status}${text ? `: ${text}` : ''}`;
  if (RETRYABLE_STATUSES.has(status)) {
    const retryAfterMs = parseRetryAfter(answer.headers['retry-after']) ?? detail?.retryAfterMs;
    return new RetryableError(message, { reason: 'downstream_unavailable', ...(retryAfterMs !== undefined && { retryAfterMs }) });
  }
  return new PermanentError(message);
}

/** The message and RetryInfo of an OTLP error body (a google.rpc.Status, protobuf or JSON); undefined when it is none. */
export function rpcStatusDetail(answer: HttpAnswer): FailureDetail | undefined {
  const contentType = String(answer.headers['content-type'] ?? '');
  try {
    if (contentType.includes('protobuf')) {
      const status = RpcStatus.decode(answer.body) as unknown as { message?: string };
      return { message: status.message ?? '', retryAfterMs: retryDelayFromRpcStatus(answer.body) };
    }
    if (contentType.includes('json')) {
      const status = JSON.parse(answer.body.toString('utf8')) as { message?: unknown; details?: { '@type'?: string; retryDelay?: string }[] };
      const retryDelay = status.details?.find((d) => d['@type'] === RETRY_INFO_TYPE_URL)?.retryDelay;
      const seconds = retryDelay === undefined ? NaN : Number.parseFloat(retryDelay);
      return { message: typeof status.message === 'string' ? status.message : '', retryAfterMs: Number.isFinite(seconds) ? seconds * 1000 : undefined };
    }
  } catch {
    // Not a Status after all: the raw text will do.
  }
  return undefined;
}
