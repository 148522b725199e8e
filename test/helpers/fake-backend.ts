// A fake OTLP backend (Jaeger, Tempo, another collector) for exporter tests: it serves
// gRPC TraceService/Export and HTTP POST on real loopback sockets, records every request
// as it arrived on the wire (headers, compression, decoded spans, arrival time), answers
// with scripted outcomes, and can go down and come back on the same ports.
//
// gRPC is served from a bare node:http2 server rather than grpc-js so that the wire facts
// (grpc-encoding, the compressed flag, grpc-timeout) stay visible to the tests.
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import { mkdtempSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { decodeTraceJson, decodeTraceProtobuf } from '../../src/otlp/decode.ts';
import { ExportTraceServiceResponse } from '../../src/otlp/proto.ts';
import { encodeRpcStatusJson, encodeRpcStatusProtobuf, GrpcCode, type ErrorStatus } from '../../src/otlp/status.ts';
import type { ResourceSpans, Span } from '../../src/otlp/types.ts';
import { plainSpans, type PlainSpan } from './plain-spans.ts';

export type Outcome =
  /** 200 / OK, with partial success when rejectedSpans or errorMessage is set. */
  | { kind: 'success'; rejectedSpans?: number; errorMessage?: string }
  /** An error answer: a google.rpc.Status (HTTP body / gRPC trailers), RetryInfo when retryInfoMs is set. */
  | { kind: 'error'; httpStatus?: number; grpcCode?: number; message?: string; retryAfter?: string; retryInfoMs?: number };

export interface ReceivedRequest {
  transport: 'grpc' | 'http';
  /** Date.now() when the whole request had arrived. */
  at: number;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** Content-Encoding gzip (HTTP) or a gzip-compressed gRPC message. */
  compressed: boolean;
  /** The payload as it arrived, decompressed: protobuf bytes, or OTLP/JSON text when `json`. */
  body: Buffer;
  json: boolean;
  /** The request decoded, and its spans. */
  resourceSpans: ResourceSpans[];
  spans: Span[];
  answer: Outcome;
}

export interface TestCertificate {
  certFile: string;
  keyFile: string;
}

/** A self-signed certificate for localhost and 127.0.0.1, which also serves as its own CA. */
export function makeTestCertificate(): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'agentsec-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', keyFile, '-out', certFile,
  ], { stdio: 'ignore' });
  return { certFile, keyFile };
}

const SUCCESS: Outcome = { kind: 'success' };

export class FakeBackend {
  readonly requests: ReceivedRequest[] = [];
  readonly #script: Outcome[] = [];
  readonly #http: http.Server;
  readonly #grpc: http2.Http2Server;
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  readonly #secure: boolean;
  #httpPort = 0;
  #grpcPort = 0;

  static async start(opts: { tls?: TestCertificate } = {}): Promise<FakeBackend> {
    const backend = new FakeBackend(opts.tls);
    await backend.up();
    return backend;
  }

  private constructor(tls: TestCertificate | undefined) {
    this.#secure = tls !== undefined;
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => void this.#answerHttp(req, res);
    const onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void this.#answerGrpc(stream, headers);
    if (tls) {
      const pem = { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) };
      this.#http = https.createServer(pem, onRequest);
      this.#grpc = http2.createSecureServer(pem) as unknown as http2.Http2Server;
    } else {
      this.#http = http.createServer(onRequest);
      this.#grpc = http2.createServer();
    }
    this.#grpc.on('stream', onStream);
    this.#grpc.on('session', (session) => {
      this.#sessions.add(session);
      session.on('close', () => this.#sessions.delete(session));
    });
  }

  /** Base URL for the HTTP exporter (it appends /v1/traces). */
  get httpUrl(): string {
    return `${this.#secure ? 'https' : 'http'}://127.0.0.1:${this.#httpPort}`;
  }

  get grpcAddress(): string {
    return `127.0.0.1:${this.#grpcPort}`;
  }

  /** The next requests get these answers, in order; after them, success. */
  answerNext(...outcomes: Outcome[]): void {
    this.#script.push(...outcomes);
  }

  /** Spans of the requests answered with success (partially rejected ones included). */
  delivered(): Span[] {
    return this.requests.filter((r) => r.answer.kind === 'success').flatMap((r) => r.spans);
  }

  /** Every span received (`delivered`: of requests answered with success only), as plain data with its resource and scope. */
  plainSpans(which: 'received' | 'delivered' = 'received'): PlainSpan[] {
    return plainSpans(which === 'delivered' ? this.requests.filter((r) => r.answer.kind === 'success') : this.requests);
  }

  async waitForDelivered(spans: number, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.delivered().length < spans) {
      if (Date.now() > deadline) throw new Error(`fake backend: ${this.delivered().length} of ${spans} spans delivered after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Starts listening, on the same ports as before when it was down. */
  async up(): Promise<void> {
    const listen = (server: http.Server | http2.Http2Server, port: number) =>
      new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
          server.off('error', reject);
          resolve((server.address() as AddressInfo).port);
        });
      });
    this.#httpPort = await listen(this.#http, this.#httpPort);
    this.#grpcPort = await listen(this.#grpc, this.#grpcPort);
  }

  /** Stops listening and drops every connection: clients see refused connections. */
  async down(): Promise<void> {
    const closed = Promise.all([
      new Promise((r) => this.#http.close(r)),
      new Promise((r) => this.#grpc.close(r)),
    ]);
    this.#http.closeAllConnections();
    for (const session of this.#sessions) session.destroy();
    await closed;
  }

  close(): Promise<void> {
    return this.#http.listening || this.#grpc.listening ? this.down() : Promise.resolve();
  }

  #nextAnswer(): Outcome {
    return this.#script.shift() ?? SUCCESS;
  }

  async #answerHttp(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = Buffer.concat(await req.toArray());
    const compressed = req.headers['content-encoding'] === 'gzip';
    const json = req.headers['content-type'] === 'application/json';
    const raw = compressed ? gunzipSync(body) : body;
    const { resourceSpans } = (json ? decodeTraceJson(raw) : decodeTraceProtobuf(raw)).batch;
    const answer = this.#nextAnswer();
    this.requests.push({ transport: 'http', at: Date.now(), path: req.url ?? '', headers: req.headers, compressed, body: raw, json, resourceSpans, spans: spansOf(resourceSpans), answer });
    res.setHeader('content-type', json ? 'application/json' : 'application/x-protobuf');
    if (answer.kind === 'success') {
      res.end(json ? JSON.stringify(responseFields(answer)) : encodeResponse(answer));
      return;
    }
    const status = errorStatus(answer);
    if (answer.retryAfter !== undefined) res.setHeader('retry-after', answer.retryAfter);
    res.statusCode = status.httpStatus;
    res.end(json ? encodeRpcStatusJson(status) : encodeRpcStatusProtobuf(status));
  }

  async #answerGrpc(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Promise<void> {
    const body = Buffer.concat(await stream.toArray());
    // One length-prefixed message: 1 byte compressed flag, 4 bytes big-endian length.
    const compressed = body[0] === 1;
    const message = body.subarray(5, 5 + body.readUInt32BE(1));
    if (compressed && headers['grpc-encoding'] !== 'gzip') throw new Error(`fake backend: compressed message with grpc-encoding ${headers['grpc-encoding']}`);
    const raw = compressed ? gunzipSync(message) : message;
    const { resourceSpans } = decodeTraceProtobuf(raw).batch;
    const answer = this.#nextAnswer();
    this.requests.push({ transport: 'grpc', at: Date.now(), path: headers[':path'] ?? '', headers, compressed, body: raw, json: false, resourceSpans, spans: spansOf(resourceSpans), answer });
    if (answer.kind === 'success') {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      const response = encodeResponse(answer);
      const frame = Buffer.alloc(5 + response.byteLength);
      frame.writeUInt32BE(response.byteLength, 1);
      frame.set(response, 5);
      stream.end(frame);
      return;
    }
    const status = errorStatus(answer);
    const trailers: http2.OutgoingHttpHeaders = {
      ':status': 200,
      'content-type': 'application/grpc',
      'grpc-status': String(status.grpcCode),
      // gRPC percent-encodes only '%' and what is not printable ASCII.
      'grpc-message': status.message.replace(/[^\x20-\x24\x26-\x7e]/gu, encodeURIComponent),
    };
    if (answer.retryInfoMs !== undefined) trailers['grpc-status-details-bin'] = Buffer.from(encodeRpcStatusProtobuf(status)).toString('base64');
    stream.respond(trailers, { endStream: true }); // trailers-only answer
  }
}

function spansOf(resourceSpans: ResourceSpans[]): Span[] {
  return resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans));
}

function responseFields(answer: Extract<Outcome, { kind: 'success' }>): Record<string, unknown> {
  if (answer.rejectedSpans === undefined && answer.errorMessage === undefined) return {};
  return { partialSuccess: { rejectedSpans: String(answer.rejectedSpans ?? 0), errorMessage: answer.errorMessage ?? '' } };
}

function encodeResponse(answer: Extract<Outcome, { kind: 'success' }>): Uint8Array {
  return ExportTraceServiceResponse.encode(ExportTraceServiceResponse.fromObject(responseFields(answer))).finish();
}

function errorStatus(answer: Extract<Outcome, { kind: 'error' }>): ErrorStatus {
  return {
    grpcCode: answer.grpcCode ?? GrpcCode.INTERNAL,
    httpStatus: answer.httpStatus ?? 500,
    message: answer.message ?? 'scripted failure',
    retryAfterMs: answer.retryInfoMs,
    reason: 'scripted',
  };
}
