// HTTP for the finding sinks: one keep-alive agent per sink (TLS material from the config), a
// POST that reads at most a small answer, and the answer classified as OTLP/HTTP clients do
// (otlp-and-collector.md §1.5–1.6): 2xx delivered; 429, 502, 503, 504 and connection failures
// retryable, with Retry-After (seconds or an HTTP date) as the wait; every other status final.
// Messages name the origin only: a webhook's path or query often is its secret (Slack, Teams).
import http from 'node:http';
import https from 'node:https';
import { PermanentError, RetryableError, errorMessage } from '../../errors.ts';
import { loadTls, type TlsMaterial } from '../../exporters/otlp-transport.ts';
import { parseRetryAfter } from '../../otlp/status.ts';
import { PRODUCT_VERSION } from './queue.ts';

export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);
/** Answers are only read for an error message or a partial success: keep at most this much. */
const MAX_ANSWER_BYTES = 64 * 1024;
/** How much of an error body goes into the log line. */
const MAX_DETAIL = 200;

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

export function httpPoster(url: URL, opts: { headers: Record<string, string>; contentType: string; tls?: TlsMaterial | undefined }): HttpPoster {
  const secure = url.protocol === 'https:';
  const tls = opts.tls;
  const agent = secure
    ? new https.Agent({ keepAlive: true, ca: tls?.ca, cert: tls?.cert, key: tls?.key, rejectUnauthorized: !tls?.skipVerify, servername: tls?.serverName })
    : new http.Agent({ keepAlive: true });
  const client = secure ? https : http;
  // Header names are case-insensitive: the configured ones, lower-cased, then ours over them.
  const headers: http.OutgoingHttpHeaders = { 'user-agent': `agentsec-collector/${PRODUCT_VERSION}` };
  for (const [k, v] of Object.entries(opts.headers)) headers[k.toLowerCase()] = v;
  headers['content-type'] = opts.contentType;

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
              if (size < MAX_ANSWER_BYTES) chunks.push(chunk);
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

/**
 * The error for a non-2xx answer: retryable for 429/502/503/504 (waiting at least Retry-After,
 * else `retryAfterMs` from the body), permanent otherwise. Undefined for a 2xx answer.
 */
export function httpFailure(post: HttpPoster, answer: HttpAnswer, detail?: { message?: string; retryAfterMs?: number | undefined }): Error | undefined {
  const { status } = answer;
  if (status >= 200 && status < 300) return undefined;
  const text = detail?.message ?? answer.body.toString('utf8', 0, Math.min(answer.body.byteLength, MAX_DETAIL)).trim();
  const message = `POST ${post.url.origin}: HTTP ${status}${text ? `: ${text}` : ''}`;
  if (RETRYABLE_STATUSES.has(status)) {
    const retryAfterMs = parseRetryAfter(answer.headers['retry-after']) ?? detail?.retryAfterMs;
    return new RetryableError(message, { reason: 'downstream_unavailable', ...(retryAfterMs !== undefined && { retryAfterMs }) });
  }
  return new PermanentError(message);
}

export interface SinkTlsSettings {
  ca_file?: string | undefined;
  cert_file?: string | undefined;
  key_file?: string | undefined;
  insecure_skip_verify: boolean;
  server_name_override?: string | undefined;
}

/** Reads the configured PEM files at start; a bad path fails the start naming the sink's key. */
export async function loadSinkTls(name: string, tls: SinkTlsSettings | undefined): Promise<TlsMaterial> {
  try {
    return await loadTls(tls);
  } catch (err) {
    // loadTls names tls::<file key>; the sink's own path goes before it.
    throw new Error(`sinks::${name.replace('/', '::')}::${errorMessage(err)}`, { cause: err });
  }
}
