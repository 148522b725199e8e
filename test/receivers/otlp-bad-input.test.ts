// Bad input over both transports: each answer must have the right status and say what was wrong,
// and the receiver must keep serving afterwards. Size limits hold on the wire and after
// decompression, and a compression bomb or an endless body costs no more than about the limit.
import { gzipSync, deflateSync } from 'node:zlib';
import * as http2 from 'node:http2';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { ExportTraceServiceResponse, RpcStatus, TRACE_EXPORT_PATH } from '../../src/otlp/proto.ts';
import {
  grpcClient,
  grpcExport,
  httpRequest,
  peakRssGrowth,
  postJson,
  postProtobuf,
  protobufRequest,
  span,
  startReceiver,
  type HttpAnswer,
  type Running,
} from './otlp-helpers.ts';

const MiB = 1024 * 1024;

let r: Running;
let client: grpc.Client;

beforeAll(async () => {
  r = await startReceiver();
  client = grpcClient(r.grpc, { gzip: false });
});
afterAll(async () => {
  client.close();
  await r.stop();
});
afterEach(async () => {
  // Whatever the last request did, the receiver still takes a good one on both transports.
  r.sink.reset();
  expect((await postProtobuf(r.http, protobufRequest([span()]))).status).toBe(200);
  expect((await grpcExport(client, protobufRequest([span()]))).code).toBe(grpc.status.OK);
  expect(r.sink.spanCount()).toBe(2);
  r.sink.reset();
});

function statusMessage(res: HttpAnswer): string {
  const type = res.headers['content-type'] ?? '';
  if (type.startsWith('application/x-protobuf')) return (RpcStatus.decode(res.body) as unknown as { message: string }).message;
  return (JSON.parse(res.body.toString()) as { message: string }).message;
}

function partialSuccess(bytes: Buffer | undefined): { rejectedSpans: string; errorMessage: string } {
  const msg = ExportTraceServiceResponse.toObject(ExportTraceServiceResponse.decode(bytes!), { longs: String }) as {
    partialSuccess?: { rejectedSpans: string; errorMessage: string };
  };
  return msg.partialSuccess!;
}

/** gzip members concatenated (RFC 1952 §2.2): 1 GiB of zeros in about 1 MB, built in milliseconds. */
function gzipBomb(decompressedBytes: number): Buffer {
  const member = gzipSync(Buffer.alloc(MiB), { level: 9 });
  return Buffer.concat(Array.from({ length: decompressedBytes / MiB }, () => member));
}

describe('undecodable bodies', () => {
  const valid = protobufRequest([span({ attributes: [{ key: 'k', value: { stringValue: 'v'.repeat(100) } }] })]);
  const truncated = valid.subarray(0, valid.length - 7);
  const garbage = Buffer.from('this is not protobuf at all');

  it('truncated protobuf over HTTP: 400 naming the protobuf problem', async () => {
    const res = await postProtobuf(r.http, truncated);
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toBe('application/x-protobuf');
    expect(statusMessage(res)).toMatch(/not a valid ExportTraceServiceRequest protobuf: index out of range/);
    expect(r.sink.batches).toHaveLength(0);
  });

  it('truncated protobuf over gRPC: INVALID_ARGUMENT naming the protobuf problem', async () => {
    const res = await grpcExport(client, truncated);
    expect(res.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(res.details).toMatch(/not a valid ExportTraceServiceRequest protobuf: index out of range/);
  });

  it('garbage bytes over HTTP: 400 naming the wire problem', async () => {
    const res = await postProtobuf(r.http, garbage);
    expect(res.status).toBe(400);
    expect(statusMessage(res)).toMatch(/not a valid ExportTraceServiceRequest protobuf: invalid wire type 4/);
  });

  it('garbage bytes over gRPC: INVALID_ARGUMENT', async () => {
    const res = await grpcExport(client, garbage);
    expect(res.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(res.details).toMatch(/invalid wire type 4/);
  });

  it('malformed JSON: 400 with the parser message, answered in JSON', async () => {
    const res = await postJson(r.http, '{"resourceSpans": [');
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(statusMessage(res)).toMatch(/^request body is not valid JSON: /);
  });

  it('malformed JSON: the parser message without the piece of the body it would quote', async () => {
    const res = await postJson(r.http, '{"resourceSpans": [{"x": Bearer sk-live-QUOTED-0123}]}');
    expect(res.status).toBe(400);
    expect(statusMessage(res)).toBe("request body is not valid JSON: Unexpected token 'B' (not valid JSON)");
  });

  it('JSON that is not an object: 400', async () => {
    const res = await postJson(r.http, '[1,2]');
    expect(res.status).toBe(400);
    expect(statusMessage(res)).toMatch(/must be a JSON object/);
  });
});

/** An AnyValue of arrays in arrays, `depth` deep (built without recursion). */
function nested(depth: number): Record<string, unknown> {
  let v: Record<string, unknown> = { stringValue: 'bottom' };
  for (let i = 0; i < depth; i++) v = { arrayValue: { values: [v] } };
  return v;
}

describe('invalid spans: partial success when some are good, 400 when none is', () => {
  const good = { traceId: '5b8efff798038103d269b633813fc60c', spanId: 'eee19b7ec3c1b174', name: 'good', kind: 1 };
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['a base64 traceId', { ...good, traceId: 'W47/95gDgQPSabYzgT/GDA==' }, /spans\[1\]\.traceId: must be 32 hex digits.*\(OTLP\/JSON ids are hex, not base64\)/],
    ['a 15-byte spanId', { ...good, spanId: 'eee19b7ec3c1b174eee19b7ec3c1b1' }, /spans\[1\]\.spanId: must be 16 hex digits \(8 bytes\)/],
    ['an enum name for kind', { ...good, kind: 'SPAN_KIND_SERVER' }, /spans\[1\]\.kind: must be a non-negative 32-bit integer \(OTLP\/JSON enums are integers, not names\)/],
    ['a kind too large for protobuf', { ...good, kind: 2 ** 32 }, /spans\[1\]\.kind: must be a non-negative 32-bit integer, got 4294967296$/],
    ['an intValue past 64 bits (it would wrap)', { ...good, attributes: [{ key: 'n', value: { intValue: '9999999999999999999' } }] }, /spans\[1\]\.attributes\[0\]\.value\.intValue: must be a 64-bit integer/],
    ['bytes that are not base64', { ...good, attributes: [{ key: 'b', value: { bytesValue: 'not base64!' } }] }, /spans\[1\]\.attributes\[0\]\.value\.bytesValue: must be a base64 string, got a string of 11 characters$/],
    ['a timestamp past 64 bits', { ...good, startTimeUnixNano: '99999999999999999999' }, /spans\[1\]\.startTimeUnixNano: must be an unsigned 64-bit integer/],
    ['a span that is its own parent', { ...good, parentSpanId: good.spanId }, /spans\[1\]\.parentSpanId: must not be the spanId/],
    ['a value nested 1,000 arrays deep', { ...good, attributes: [{ key: 'deep', value: nested(1_000) }] }, /spans\[1\]\.attributes\[0\]\.value(\.arrayValue\.values\[0\]){32}: nests arrays or key-value lists deeper than 32 levels$/],
    // The value is described, never quoted: the field may hold a credential.
    ['a token where an intValue belongs', { ...good, attributes: [{ key: 'agentsec.credential', value: { intValue: 'Bearer sk-live-QUOTED-0123' } }] }, /spans\[1\]\.attributes\[0\]\.value\.intValue: must be a 64-bit integer \(a decimal string or number\), got a string of 26 characters$/],
  ];

  it.each(cases)('%s next to a good span: 200 with rejectedSpans and the field path', async (_name, bad, message) => {
    const res = await postJson(r.http, { resourceSpans: [{ scopeSpans: [{ spans: [good, bad] }] }] });
    expect(res.status).toBe(200);
    const answer = JSON.parse(res.body.toString()) as { partialSuccess: { rejectedSpans: string; errorMessage: string } };
    expect(answer.partialSuccess.rejectedSpans).toBe('1');
    expect(answer.partialSuccess.errorMessage).toMatch(/^resourceSpans\[0\]\.scopeSpans\[0\]\./);
    expect(answer.partialSuccess.errorMessage).toMatch(message);
    expect(r.sink.spans().map((s) => s.name)).toEqual(['good']);
  });

  it.each(cases)('%s alone: 400 with the field path', async (_name, bad, message) => {
    const res = await postJson(r.http, { resourceSpans: [{ scopeSpans: [{ spans: [bad, bad] }] }] });
    expect(res.status).toBe(400);
    expect(statusMessage(res)).toMatch(/^all 2 spans were rejected: /);
    expect(statusMessage(res)).toMatch(message);
    expect(r.sink.batches).toHaveLength(0);
  });

  it('protobuf over gRPC: a 15-byte span id next to a good span gives partial_success', async () => {
    const res = await grpcExport(client, protobufRequest([span(), span({ spanId: Buffer.alloc(15, 1) })]));
    expect(res.code).toBe(grpc.status.OK);
    expect(partialSuccess(res.response)).toEqual({ rejectedSpans: '1', errorMessage: 'resource_spans[0].scope_spans[0].spans[1].span_id must be 8 bytes, got 15' });
    expect(r.sink.spanCount()).toBe(1);
  });

  it('protobuf over HTTP: an all-zero trace id next to a good span gives partial_success in protobuf', async () => {
    const res = await postProtobuf(r.http, protobufRequest([span({ traceId: Buffer.alloc(16) }), span()]));
    expect(res.status).toBe(200);
    expect(partialSuccess(res.body)).toEqual({ rejectedSpans: '1', errorMessage: 'resource_spans[0].scope_spans[0].spans[0].trace_id must not be all zeros' });
  });

  it('protobuf over gRPC with no good span: INVALID_ARGUMENT', async () => {
    const res = await grpcExport(client, protobufRequest([span({ spanId: Buffer.alloc(0) })]));
    expect(res.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(res.details).toBe('all 1 spans were rejected: resource_spans[0].scope_spans[0].spans[0].span_id is required and was empty');
  });
});

describe('content type, encoding and method', () => {
  it('an unsupported Content-Type: 415 naming it', async () => {
    const res = await httpRequest(r.http, 'hello', { headers: { 'content-type': 'text/plain' } });
    expect(res.status).toBe(415);
    expect(statusMessage(res)).toBe('unsupported Content-Type "text/plain": send application/x-protobuf or application/json');
  });

  it('a body without Content-Type: 415', async () => {
    const res = await httpRequest(r.http, protobufRequest([span()]));
    expect(res.status).toBe(415);
    expect(statusMessage(res)).toMatch(/^missing Content-Type/);
    expect(r.sink.batches).toHaveLength(0);
  });

  it('Content-Type parameters are allowed', async () => {
    const res = await postProtobuf(r.http, protobufRequest([span()]), { 'content-type': 'application/x-protobuf; proto=opentelemetry' });
    expect(res.status).toBe(200);
    expect(r.sink.spanCount()).toBe(1);
  });

  it('an unsupported Content-Encoding: 415 naming it', async () => {
    const res = await postProtobuf(r.http, protobufRequest([span()]), { 'content-encoding': 'br' });
    expect(res.status).toBe(415);
    expect(statusMessage(res)).toBe('unsupported Content-Encoding "br": send gzip, deflate or identity');
  });

  it('gzip, deflate and identity bodies are read', async () => {
    const body = protobufRequest([span()]);
    expect((await postProtobuf(r.http, gzipSync(body), { 'content-encoding': 'gzip' })).status).toBe(200);
    expect((await postProtobuf(r.http, deflateSync(body), { 'content-encoding': 'deflate' })).status).toBe(200);
    expect((await postProtobuf(r.http, body, { 'content-encoding': 'identity' })).status).toBe(200);
    const json = await postJson(r.http, gzipSync('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708"}]}]}]}'), {
      'content-encoding': 'gzip',
    });
    expect(json.status).toBe(200);
    expect(r.sink.spanCount()).toBe(4);
  });

  it('a corrupt gzip body: 400 naming the encoding', async () => {
    const res = await postProtobuf(r.http, gzipSync(protobufRequest([span()])).subarray(0, 20), { 'content-encoding': 'gzip' });
    expect(res.status).toBe(400);
    expect(statusMessage(res)).toMatch(/^request body is not valid gzip: unexpected end of file/);
  });

  it('gzip over gRPC (grpc-encoding) is read', async () => {
    const gzipClient = grpcClient(r.grpc, { gzip: true });
    try {
      const res = await grpcExport(gzipClient, protobufRequest([span(), span()]));
      expect(res.code).toBe(grpc.status.OK);
      expect(r.sink.spanCount()).toBe(2);
    } finally {
      gzipClient.close();
    }
  });

  it('GET on the traces path: 405 with Allow: POST', async () => {
    const res = await httpRequest(r.http, undefined, { method: 'GET' });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('POST');
    expect(statusMessage(res)).toBe('method GET is not allowed on /v1/traces: use POST');
  });

  it('another path: 404 naming the traces path', async () => {
    const res = await httpRequest(r.http, '{}', { path: '/v1/logs', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(404);
    expect(statusMessage(res)).toMatch(/OTLP traces go to POST \/v1\/traces/);
  });
});

describe('empty requests succeed and reach nobody', () => {
  it('empty protobuf body over HTTP: 200, empty response', async () => {
    const res = await postProtobuf(r.http, Buffer.alloc(0));
    expect(res.status).toBe(200);
    expect(res.body).toHaveLength(0);
    expect(r.sink.batches).toHaveLength(0);
  });

  it('empty JSON body and {} over HTTP: 200 {}', async () => {
    for (const body of ['', '{}', '{"resourceSpans":[]}']) {
      const res = await postJson(r.http, body);
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe('{}');
    }
    expect(r.sink.batches).toHaveLength(0);
  });

  it('a resource with no spans: 200, the pipeline is not called', async () => {
    const res = await postJson(r.http, { resourceSpans: [{ resource: {}, scopeSpans: [{ spans: [] }] }] });
    expect(res.status).toBe(200);
    expect(r.sink.batches).toHaveLength(0);
  });

  it('empty request over gRPC: OK', async () => {
    const res = await grpcExport(client, Buffer.alloc(0));
    expect(res.code).toBe(grpc.status.OK);
    expect(res.response).toHaveLength(0);
    expect(r.sink.batches).toHaveLength(0);
  });
});

describe('size limits', () => {
  let small: Running;
  let smallClient: grpc.Client;
  const LIMIT = 64 * 1024;
  // About 100 KiB of protobuf: over the limit as it is, far under it gzipped.
  const big = protobufRequest([span({ attributes: Array.from({ length: 1000 }, (_, i) => ({ key: `attribute.${i}`, value: { stringValue: 'x'.repeat(80) } })) })]);

  beforeAll(async () => {
    small = await startReceiver({ grpc: { endpoint: '127.0.0.1:0', max_recv_msg_size: '64KiB' }, http: { endpoint: '127.0.0.1:0', max_request_body_size: '64KiB' } });
    smallClient = grpcClient(small.grpc);
  });
  afterAll(async () => {
    smallClient.close();
    await small.stop();
  });

  it('a body over the limit with Content-Length: 413 before reading it', async () => {
    expect(big.length).toBeGreaterThan(LIMIT);
    const res = await postProtobuf(small.http, big);
    expect(res.status).toBe(413);
    expect(statusMessage(res)).toBe(`request body of ${big.length} bytes is larger than the limit of 65536 bytes (max_request_body_size)`);
    expect(small.sink.batches).toHaveLength(0);
  });

  it('a chunked body over the limit: 413 once the limit is passed', async () => {
    const res = await httpRequest(small.http, Readable.from([big.subarray(0, 50_000), big.subarray(50_000)]), { headers: { 'content-type': 'application/x-protobuf' } });
    expect(res.status).toBe(413);
    expect(statusMessage(res)).toBe('request body is larger than the limit of 65536 bytes (max_request_body_size)');
  });

  it('a gzip body under the limit that decompresses over it: 413', async () => {
    const gz = gzipSync(big);
    expect(gz.length).toBeLessThan(LIMIT);
    const res = await postProtobuf(small.http, gz, { 'content-encoding': 'gzip' });
    expect(res.status).toBe(413);
    expect(statusMessage(res)).toBe('request body decompresses to more than the limit of 65536 bytes (max_request_body_size)');
    expect(small.sink.batches).toHaveLength(0);
  });

  it('a body of exactly the limit is accepted', async () => {
    const json = JSON.stringify({ resourceSpans: [] });
    const res = await postJson(small.http, json + ' '.repeat(LIMIT - json.length));
    expect(res.status).toBe(200);
  });

  it('gRPC message over max_recv_msg_size: RESOURCE_EXHAUSTED', async () => {
    const res = await grpcExport(smallClient, big);
    expect(res.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(res.details).toMatch(/^Received message larger than max \(\d+ vs 65536\)$/);
  });

  it('gzip gRPC message that decompresses over max_recv_msg_size: RESOURCE_EXHAUSTED', async () => {
    const gzipClient = grpcClient(small.grpc, { gzip: true });
    try {
      const res = await grpcExport(gzipClient, big);
      expect(res.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(res.details).toBe('Received message that decompresses to a size larger than 65536');
    } finally {
      gzipClient.close();
    }
  });
});

describe('memory stays bounded', () => {
  // Measured in this process, which runs both client and server: the bound covers both.
  const RSS_BUDGET = 100 * MiB;

  it('a 1 GiB gzip bomb over HTTP: 413 quickly, RSS grows far less than the bomb', async () => {
    const bomb = gzipBomb(1024 * MiB);
    expect(bomb.length).toBeLessThan(2 * MiB);
    let res: HttpAnswer | undefined;
    const started = Date.now();
    const growth = await peakRssGrowth(async () => {
      res = await postProtobuf(r.http, bomb, { 'content-encoding': 'gzip' });
    });
    expect(res!.status).toBe(413);
    expect(statusMessage(res!)).toBe('request body decompresses to more than the limit of 20971520 bytes (max_request_body_size)');
    expect(Date.now() - started).toBeLessThan(3000);
    expect(growth).toBeLessThan(RSS_BUDGET);
  });

  it('a 1 GiB gzip bomb over gRPC: RESOURCE_EXHAUSTED, RSS bounded', async () => {
    const bomb = gzipBomb(1024 * MiB);
    let res: { code: number; details: string } | undefined;
    const growth = await peakRssGrowth(async () => {
      res = await sendPrecompressed(r.grpc, bomb);
    });
    expect(res!.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(res!.details).toBe('Received message that decompresses to a size larger than 20971520');
    expect(growth).toBeLessThan(RSS_BUDGET);
  });

  it('100k spans of 1k attributes streamed over HTTP: 413 after the limit, RSS bounded', async () => {
    // One ResourceSpans with one span of 1000 attributes, about 30 KB; a request is a sequence of
    // them (repeated field 1), generated as it is sent: about 3 GB that never exist at once.
    const oneResourceSpans = protobufRequest([
      span({ attributes: Array.from({ length: 1000 }, (_, i) => ({ key: `gen_ai.attribute.${i}`, value: { stringValue: `value-${i}` } })) }),
    ]);
    const total = 100_000;
    let sent = 0;
    const body = Readable.from(
      (function* () {
        for (; sent < total; sent++) yield oneResourceSpans;
      })(),
    );
    let res: HttpAnswer | undefined;
    const growth = await peakRssGrowth(async () => {
      res = await httpRequest(r.http, body, { headers: { 'content-type': 'application/x-protobuf' } });
    });
    body.destroy();
    expect(res!.status).toBe(413);
    expect(statusMessage(res!)).toBe('request body is larger than the limit of 20971520 bytes (max_request_body_size)');
    expect(sent * oneResourceSpans.length).toBeLessThan(200 * MiB); // it stopped early, not after 3 GB
    expect(growth).toBeLessThan(RSS_BUDGET);
    expect(r.sink.batches).toHaveLength(0);
  });
});

/**
 * gRPC clients compress what they send; to send a bomb, frame the compressed bytes ourselves:
 * a raw HTTP/2 stream with grpc-encoding: gzip and the compressed flag on the message.
 */
async function sendPrecompressed(endpoint: string, compressed: Buffer): Promise<{ code: number; details: string }> {
  const session = http2.connect(`http://${endpoint}`);
  try {
    return await new Promise((resolve, reject) => {
      const stream = session.request({
        ':method': 'POST',
        ':path': TRACE_EXPORT_PATH,
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-encoding': 'gzip',
      });
      const header = Buffer.alloc(5);
      header.writeUInt8(1, 0);
      header.writeUInt32BE(compressed.length, 1);
      stream.on('error', reject);
      let headers: Record<string, unknown> = {};
      stream.on('response', (h) => (headers = h));
      stream.on('trailers', (t) => resolve({ code: Number(t['grpc-status']), details: decodeURIComponent(String(t['grpc-message'] ?? '')) }));
      stream.on('close', () => {
        if (headers['grpc-status'] !== undefined) resolve({ code: Number(headers['grpc-status']), details: decodeURIComponent(String(headers['grpc-message'] ?? '')) });
      });
      stream.resume();
      stream.end(Buffer.concat([header, compressed]));
    });
  } finally {
    session.close();
  }
}
