// The downstream of the forwarding scenarios: a minimal OTLP/gRPC trace service (in the
// bench's own process) that accepts every export and counts its spans from the wire format
// without decoding them, so that it costs little next to the collector.
// It speaks gRPC over node:http2 itself rather than through a grpc-js server: grpc-js servers
// ignore grpc-node.flow_control_window (grpc/grpc-node#3058), and a sink with 64 KiB HTTP/2
// windows would throttle the collector's exporter and make the sink the thing measured.
import http2 from 'node:http2';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { TRACE_EXPORT_PATH } from '../src/otlp/proto.ts';

const FLOW_CONTROL_WINDOW = 8 * 1024 * 1024;
/** One gRPC message frame (uncompressed, 0 bytes) holding an empty ExportTraceServiceResponse: full success. */
const EMPTY_RESPONSE_FRAME = Buffer.alloc(5);
const GRPC_OK = '0';
const GRPC_UNIMPLEMENTED = '12';
const gunzipAsync = promisify(gunzip);

export interface GrpcSink {
  /** host:port */
  address: string;
  /** Spans received so far. */
  spans(): number;
  stop(): Promise<void>;
}

export async function startGrpcSink(): Promise<GrpcSink> {
  const server = http2.createServer({ settings: { initialWindowSize: FLOW_CONTROL_WINDOW } });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    session.setLocalWindowSize(FLOW_CONTROL_WINDOW);
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  let spans = 0;
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined); // a client that cancels or goes away: nothing to count
    if (headers[':path'] !== TRACE_EXPORT_PATH) {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': GRPC_UNIMPLEMENTED }, { endStream: true });
      return;
    }
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', async () => {
      for (const message of grpcMessages(Buffer.concat(chunks))) {
        // Not `spans += countSpans(await …)`: that reads `spans` before the await and would
        // lose the counts of the streams that finish meanwhile.
        const bytes = message.compressed ? await gunzipAsync(message.bytes) : message.bytes;
        spans += countSpans(bytes);
      }
      if (stream.destroyed) return;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': GRPC_OK }));
      stream.end(EMPTY_RESPONSE_FRAME);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as { port: number };
  return {
    address: `127.0.0.1:${port}`,
    spans: () => spans,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const session of sessions) session.destroy();
      }),
  };
}

/** gRPC length-prefixed messages: a compressed flag byte, a 4-byte big-endian length, the bytes. */
function* grpcMessages(body: Buffer): Generator<{ compressed: boolean; bytes: Buffer }> {
  for (let at = 0; at + 5 <= body.length; ) {
    const length = body.readUInt32BE(at + 1);
    yield { compressed: body[at] === 1, bytes: body.subarray(at + 5, at + 5 + length) };
    at += 5 + length;
  }
}

// ExportTraceServiceRequest.resource_spans = 1 → ResourceSpans.scope_spans = 2 → ScopeSpans.spans = 2.
const RESOURCE_SPANS = 1;
const SCOPE_SPANS = 2;
const SPANS = 2;

/** Spans in an encoded ExportTraceServiceRequest, found by walking field headers only. */
export function countSpans(request: Buffer): number {
  let spans = 0;
  forEachMessageField(request, 0, request.length, RESOURCE_SPANS, (rsStart, rsEnd) =>
    forEachMessageField(request, rsStart, rsEnd, SCOPE_SPANS, (ssStart, ssEnd) =>
      forEachMessageField(request, ssStart, ssEnd, SPANS, () => void spans++),
    ),
  );
  return spans;
}

/** Calls `visit(start, end)` for every length-delimited field number `field` in buf[start, end). */
function forEachMessageField(buf: Buffer, start: number, end: number, field: number, visit: (start: number, end: number) => void): void {
  let at = start;
  while (at < end) {
    const tag = readVarint(buf, at);
    at = tag.next;
    const wireType = tag.value & 7;
    if (wireType === 0) at = readVarint(buf, at).next;
    else if (wireType === 1) at += 8;
    else if (wireType === 5) at += 4;
    else if (wireType === 2) {
      const length = readVarint(buf, at);
      at = length.next + length.value;
      if (tag.value >>> 3 === field) visit(length.next, at);
    } else throw new Error(`unexpected protobuf wire type ${wireType} at byte ${at}`);
  }
}

function readVarint(buf: Buffer, at: number): { value: number; next: number } {
  let value = 0;
  for (let shift = 0; ; shift += 7) {
    const byte = buf[at++]!;
    // Tags and lengths fit in 32 bits; multiply instead of shifting to stay positive.
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return { value, next: at };
  }
}
