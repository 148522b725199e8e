// Shared by the otlp receiver suites: start a receiver on 127.0.0.1 port 0 in front of a
// TracesSink, and raw HTTP and gRPC clients that show exactly what the server answered.
import * as http from 'node:http';
import * as https from 'node:https';
import type { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { Receiver } from '../../src/component/types.ts';
import { otlpReceiverFactory } from '../../src/receivers/otlp/index.ts';
import { encodeTraceProtobuf } from '../../src/otlp/encode.ts';
import { Long, TRACE_EXPORT_PATH } from '../../src/otlp/proto.ts';
import type { Span } from '../../src/otlp/types.ts';
import { TracesSink } from '../helpers/sink.ts';
import { testHost, testSettings, type TestSettings } from '../helpers/settings.ts';

export interface Running {
  receiver: Receiver;
  sink: TracesSink;
  set: TestSettings;
  /** host:port of each protocol, as endpoints() reports them. */
  grpc: string;
  http: string;
  stop(): Promise<void>;
}

/** Both protocols on 127.0.0.1:0 unless `protocols` says otherwise. */
export async function startReceiver(protocols: Record<string, unknown> = {}, id = 'otlp', sink = new TracesSink()): Promise<Running> {
  const cfg = otlpReceiverFactory.config.parse({
    protocols: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' }, ...protocols },
  });
  const set = testSettings(id);
  const receiver = otlpReceiverFactory.create(set, cfg, sink);
  await receiver.start(testHost(set));
  const endpoints = receiver.endpoints();
  return {
    receiver,
    sink,
    set,
    grpc: endpoints.grpc ?? '',
    http: endpoints.http ?? '',
    stop: () => receiver.shutdown(AbortSignal.timeout(5000)),
  };
}

// ---------------------------------------------------------------- data

let nextId = 1;

/** A valid span with ids unique in this process; `overrides` replace any field. */
export function span(overrides: Partial<Span> = {}): Span {
  const n = nextId++;
  const traceId = Buffer.alloc(16, 0);
  traceId.writeUInt32BE(n, 12);
  traceId[0] = 0xab;
  const spanId = Buffer.alloc(8, 0);
  spanId.writeUInt32BE(n, 4);
  spanId[0] = 0xcd;
  return { traceId, spanId, name: `span-${n}`, kind: 1, startTimeUnixNano: Long.fromString('1700000000000000000', true), ...overrides };
}

/** An ExportTraceServiceRequest with the spans under one resource and scope. */
export function protobufRequest(spans: Span[]): Buffer {
  return Buffer.from(encodeTraceProtobuf([{ resource: { attributes: [] }, scopeSpans: [{ scope: { name: 'test' }, spans }] }]));
}

// ---------------------------------------------------------------- HTTP

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface HttpOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  /** For https: ca, cert, key. */
  tls?: https.RequestOptions;
}

/**
 * One request on a fresh connection. With a Readable body, resolves as soon as the answer is
 * complete even if the server stopped reading the body (the 413 case).
 */
export function httpRequest(endpoint: string, body: Buffer | string | Readable | undefined, opts: HttpOptions = {}): Promise<HttpAnswer> {
  const [host, port] = endpoint.split(':') as [string, string];
  const transport = opts.tls ? https : http;
  return new Promise((resolve, reject) => {
    // A server that answers before reading the whole body closes the connection: writing the
    // rest then fails, which does not matter once the answer is in.
    let answered = false;
    const req = transport.request(
      { host, port: Number(port), method: opts.method ?? 'POST', path: opts.path ?? '/v1/traces', headers: opts.headers, agent: false, ...opts.tls },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    if (body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) {
      req.end(body);
    } else {
      body.on('error', reject);
      body.pipe(req);
    }
  });
}

export function postProtobuf(endpoint: string, body: Buffer, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return httpRequest(endpoint, body, { headers: { 'content-type': 'application/x-protobuf', ...headers } });
}

/** `body` as is when it is text or bytes, else serialized. */
export function postJson(endpoint: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const bytes = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  return httpRequest(endpoint, bytes, { headers: { 'content-type': 'application/json', ...headers } });
}

// ---------------------------------------------------------------- gRPC

export interface GrpcAnswer {
  code: number;
  details: string;
  metadata: grpc.Metadata | undefined;
  response: Buffer | undefined;
}

const identity = (b: Buffer): Buffer => b;

export function grpcClient(endpoint: string, opts: { credentials?: grpc.ChannelCredentials; gzip?: boolean } = {}): grpc.Client {
  return new grpc.Client(endpoint, opts.credentials ?? grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': -1,
    ...(opts.gzip ? { 'grpc.default_compression_algorithm': grpc.compressionAlgorithms.gzip } : {}),
  });
}

/** One Export call with raw bytes; resolves with the status whatever it is. */
export function grpcExport(client: grpc.Client, body: Buffer): Promise<GrpcAnswer> {
  return new Promise((resolve) => {
    const deadline = Date.now() + 10_000;
    client.makeUnaryRequest(TRACE_EXPORT_PATH, identity, identity, body, new grpc.Metadata(), { deadline }, (err: grpc.ServiceError | null, response?: Buffer) => {
      if (err) resolve({ code: err.code, details: err.details, metadata: err.metadata, response: undefined });
      else resolve({ code: grpc.status.OK, details: '', metadata: undefined, response });
    });
  });
}

/** Samples RSS while `work` runs; returns the peak growth over the RSS before it, in bytes. */
export async function peakRssGrowth(work: () => Promise<void>): Promise<number> {
  const before = process.memoryUsage.rss();
  let peak = before;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return Math.max(peak, process.memoryUsage.rss()) - before;
}
