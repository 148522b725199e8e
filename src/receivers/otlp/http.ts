// OTLP/HTTP on fastify: POST traces_url_path with application/x-protobuf or application/json on
// the same port, the answer in the request's encoding (collector otlphttp.go). The body is read
// here, not by fastify, so that the size limit holds for the bytes on the wire and again after
// decompression, and reading stops at the first byte over it.
import type { IncomingMessage } from 'node:http';
import type { Readable, Transform } from 'node:stream';
import { createGunzip, createInflate } from 'node:zlib';
import { fastify, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { BadInputError, PermanentError, RetryableError, TooLargeError, UnsupportedMediaTypeError } from '../../errors.ts';
import { encodeRpcStatusJson, encodeRpcStatusProtobuf, GrpcCode, statusOf, type ErrorStatus } from '../../otlp/status.ts';
import { splitHostPort } from '../../config/units.ts';
import { encodeExportResponseJson, encodeExportResponseProtobuf, type Encoding, type Ingest } from './ingest.ts';
import { ListenError, ListeningTransport, type TlsMaterial } from './listen.ts';
import { untilDoneOrAborted } from '../../component/types.ts';

export interface HttpTransportConfig {
  endpoint: string;
  maxRequestBodySize: number;
  tracesUrlPath: string;
  tls: TlsMaterial | undefined;
}

const PROTOBUF = 'application/x-protobuf';
const JSON_TYPE = 'application/json';

/** What the content-type parsers hand the route: the whole, decompressed body. */
interface RequestBody {
  encoding: Encoding;
  bytes: Buffer;
}

export class HttpTransport extends ListeningTransport {
  readonly protocol = 'http';
  readonly #config: HttpTransportConfig;
  readonly #ingest: Ingest;
  readonly #logger: Logger;
  #app: FastifyInstance | undefined;

  constructor(config: HttpTransportConfig, ingest: Ingest, logger: Logger) {
    super(config.endpoint);
    this.#config = config;
    this.#ingest = ingest;
    this.#logger = logger;
  }

  async start(): Promise<void> {
    const app = this.#build();
    const { host, port } = splitHostPort(this.#config.endpoint);
    try {
      await app.listen({ host, port });
    } catch (err) {
      await app.close();
      throw new ListenError('http', this.#config.endpoint, err);
    }
    const address = app.server.address();
    this.boundPort = typeof address === 'object' && address !== null ? address.port : port;
    this.#app = app;
    this.#logger.info({ endpoint: this.endpoint(), tls: this.#config.tls !== undefined }, 'OTLP/HTTP receiver listening');
  }

  protected async stop(signal: AbortSignal): Promise<void> {
    const app = this.#app;
    if (app === undefined) return;
    // close() stops accepting and waits for requests in flight (new ones on open connections
    // get fastify's 503 meanwhile); the signal cuts the connections that are still busy.
    await untilDoneOrAborted(signal, () => app.server.closeAllConnections(), () => app.close());
  }

  #build(): FastifyInstance {
    const tls = this.#config.tls;
    const app = fastify({
      logger: false,
      https: tls === undefined ? null : { cert: tls.cert, key: tls.key, ca: tls.clientCa, requestCert: tls.clientCa !== undefined, rejectUnauthorized: true },
    });
    const path = this.#config.tracesUrlPath;

    // Our parsers only: any other Content-Type is refused by fastify (FST_ERR_CTP_INVALID_MEDIA_TYPE → 415).
    app.removeAllContentTypeParsers();
    app.addContentTypeParser(PROTOBUF, (request: FastifyRequest, payload: IncomingMessage) => this.#parse(request, payload, 'protobuf'));
    app.addContentTypeParser(JSON_TYPE, (request: FastifyRequest, payload: IncomingMessage) => this.#parse(request, payload, 'json'));

    app.post(path, async (request, reply) => {
      const body = request.body as RequestBody | undefined;
      // Only a POST without body and without Content-Type gets here without one.
      if (body === undefined) throw new UnsupportedMediaTypeError(`missing Content-Type: send ${PROTOBUF} or ${JSON_TYPE}`);
      let result;
      try {
        result = await this.#ingest.export('http', body.encoding, body.bytes);
      } catch (err) {
        return sendStatus(reply, body.encoding, statusOf(err)); // counted by Ingest
      }
      return body.encoding === 'protobuf'
        ? reply.type(PROTOBUF).send(encodeExportResponseProtobuf(result))
        : reply.type(JSON_TYPE).send(encodeExportResponseJson(result));
    });

    app.setNotFoundHandler((request, reply) => {
      const onPath = request.url.split('?', 1)[0] === path;
      if (onPath) reply.header('allow', 'POST');
      return sendStatus(reply, responseEncoding(request), {
        grpcCode: GrpcCode.UNIMPLEMENTED,
        httpStatus: onPath ? 405 : 404,
        message: onPath ? `method ${request.method} is not allowed on ${path}: use POST` : `no route for ${request.method} ${request.url}: OTLP traces go to POST ${path}`,
        retryAfterMs: undefined,
        reason: onPath ? 'method_not_allowed' : 'not_found',
      });
    });

    // Everything that fails before the body reaches Ingest: body reading, Content-Type, fastify itself.
    app.setErrorHandler((err: FastifyError, request, reply) => {
      const failure = asRequestError(err, request);
      const status = statusOf(failure);
      this.#ingest.requestFailed('http', failure);
      this.#logger.debug({ transport: 'http', reason: status.reason, err: status.message }, 'request failed');
      return sendStatus(reply, responseEncoding(request), status);
    });
    return app;
  }

  async #parse(request: FastifyRequest, payload: IncomingMessage, encoding: Encoding): Promise<RequestBody | undefined> {
    // fastify runs parsers for unknown paths too; their 404 needs no body.
    if (request.is404) return undefined;
    const headers = request.headers;
    const bytes = await readBody(payload, headers['content-encoding'], headers['content-length'], this.#config.maxRequestBodySize);
    return { encoding, bytes };
  }
}

/** google.rpc.Status in the request's encoding; Retry-After (whole seconds) on 429 and 503. */
function sendStatus(reply: FastifyReply, encoding: Encoding, status: ErrorStatus): FastifyReply {
  if (status.retryAfterMs !== undefined && (status.httpStatus === 503 || status.httpStatus === 429)) {
    reply.header('retry-after', String(Math.ceil(status.retryAfterMs / 1000)));
  }
  reply.code(status.httpStatus);
  return encoding === 'protobuf'
    ? reply.type(PROTOBUF).send(Buffer.from(encodeRpcStatusProtobuf(status)))
    : reply.type(JSON_TYPE).send(encodeRpcStatusJson(status));
}

/** Protobuf when the request was protobuf; JSON for JSON and for anything we could not read. */
function responseEncoding(request: FastifyRequest): Encoding {
  const type = request.headers['content-type'];
  return type !== undefined && mediaType(type) === PROTOBUF ? 'protobuf' : 'json';
}

function mediaType(contentType: string): string {
  return contentType.split(';', 1)[0]!.trim().toLowerCase();
}

/** fastify's own errors as ours, so that statusOf maps them. */
function asRequestError(err: FastifyError, request: FastifyRequest): unknown {
  if (err instanceof PermanentError || err instanceof RetryableError) return err;
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    const type = request.headers['content-type'];
    const got = type === undefined ? 'missing Content-Type' : `unsupported Content-Type ${JSON.stringify(type)}`;
    return new UnsupportedMediaTypeError(`${got}: send ${PROTOBUF} or ${JSON_TYPE}`);
  }
  if (err.statusCode === 413) return new TooLargeError(err.message);
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) return new BadInputError(err.message);
  return err;
}

/** A decompressor per Content-Encoding; undefined for identity. */
function decompressorFor(contentEncoding: string | undefined): Transform | undefined {
  const coding = contentEncoding?.trim().toLowerCase() ?? '';
  switch (coding) {
    case '':
    case 'identity':
      return undefined;
    case 'gzip':
    case 'x-gzip':
      return createGunzip();
    case 'deflate': // zlib-wrapped, as HTTP defines it (RFC 9110 §8.4.1.2)
      return createInflate();
    default:
      throw new UnsupportedMediaTypeError(`unsupported Content-Encoding ${JSON.stringify(contentEncoding)}: send gzip, deflate or identity`);
  }
}

/**
 * Reads a request body into one Buffer, decompressing as it arrives. Fails at the first byte
 * over `limit`, counted on the wire and again after decompression, and stops reading and
 * decompressing there: a large body or a compression bomb never holds more than `limit` bytes.
 * The request is paused, not destroyed, so that the client still reads the 413.
 */
function readBody(raw: Readable, contentEncoding: string | undefined, contentLength: string | undefined, limit: number): Promise<Buffer> {
  const decompressor = decompressorFor(contentEncoding);
  if (contentLength !== undefined && Number(contentLength) > limit) {
    return Promise.reject(new TooLargeError(`request body of ${contentLength} bytes is larger than the limit of ${limit} bytes (max_request_body_size)`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let rawBytes = 0;
    let bodyBytes = 0;
    let done = false;

    const finish = (err: unknown): void => {
      if (done) return;
      done = true;
      raw.off('data', onRaw).off('end', onRawEnd).off('error', onRawError).off('close', onRawClose);
      if (err === undefined) {
        resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bodyBytes));
        return;
      }
      raw.pause();
      decompressor?.destroy();
      chunks.length = 0;
      reject(err);
    };
    const onBody = (chunk: Buffer): void => {
      bodyBytes += chunk.length;
      if (bodyBytes > limit) {
        finish(new TooLargeError(`request body decompresses to more than the limit of ${limit} bytes (max_request_body_size)`));
        return;
      }
      chunks.push(chunk);
    };
    const onRaw = (chunk: Buffer): void => {
      rawBytes += chunk.length;
      if (rawBytes > limit) {
        finish(new TooLargeError(`request body is larger than the limit of ${limit} bytes (max_request_body_size)`));
      } else if (decompressor === undefined) {
        onBody(chunk);
      } else if (!decompressor.write(chunk)) {
        raw.pause();
        decompressor.once('drain', () => {
          if (!done) raw.resume();
        });
      }
    };
    const onRawEnd = (): void => (decompressor === undefined ? finish(undefined) : void decompressor.end());
    const onRawError = (err: Error): void => finish(new BadInputError(`request body could not be read: ${err.message}`));
    // 'close' follows 'end' on a complete request; before it, the client went away.
    const onRawClose = (): void => {
      if (!raw.readableEnded) finish(new BadInputError('request body could not be read: the client closed the connection'));
    };

    if (decompressor !== undefined) {
      decompressor.on('data', onBody);
      decompressor.on('end', () => finish(undefined));
      decompressor.on('error', (err) => finish(new BadInputError(`request body is not valid ${contentEncoding}: ${err.message}`)));
    }
    raw.on('data', onRaw).on('end', onRawEnd).on('error', onRawError).on('close', onRawClose);
  });
}
