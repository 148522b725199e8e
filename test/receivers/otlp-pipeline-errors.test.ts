// Errors from the pipeline reach the client as OTLP says: retryable ones as 503/UNAVAILABLE with
// Retry-After and RetryInfo, permanent ones per statusOf; and the receiver counts what it
// accepted, refused and failed to read.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { BadInputError, PermanentError, RetryableError, TooLargeError } from '../../src/errors.ts';
import { RETRY_INFO_TYPE_URL, RpcStatus } from '../../src/otlp/proto.ts';
import { retryDelayFromRpcStatus, statusOf } from '../../src/otlp/status.ts';
import { grpcClient, grpcExport, httpRequest, postJson, postProtobuf, protobufRequest, span, startReceiver, type Running } from './otlp-helpers.ts';

let r: Running;
let client: grpc.Client;

beforeAll(async () => {
  r = await startReceiver({}, 'otlp/agents');
  client = grpcClient(r.grpc);
});
afterAll(async () => {
  client.close();
  await r.stop();
});
afterEach(() => {
  r.sink.failWith = undefined;
  r.sink.reset();
});

/** The type URLs in a google.rpc.Status's details, read off the wire by hand (not with our own types). */
function detailTypeUrls(status: Uint8Array): string[] {
  const urls: string[] = [];
  const reader = protobuf.Reader.create(status);
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag >>> 3 !== 3) {
      reader.skipType(tag & 7);
      continue;
    }
    const any = protobuf.Reader.create(reader.bytes());
    while (any.pos < any.len) {
      const anyTag = any.uint32();
      if (anyTag >>> 3 === 1) urls.push(any.string());
      else any.skipType(anyTag & 7);
    }
  }
  return urls;
}

const queueFull = (): RetryableError => new RetryableError('queue full', { reason: 'queue_full', retryAfterMs: 2000 });

describe('a retryable refusal', () => {
  it('HTTP/protobuf: 503, Retry-After: 2 and a Status with RetryInfo', async () => {
    r.sink.failWith = queueFull();
    const res = await postProtobuf(r.http, protobufRequest([span()]));
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('2');
    expect(res.headers['content-type']).toBe('application/x-protobuf');
    expect(RpcStatus.toObject(RpcStatus.decode(res.body))).toMatchObject({ code: grpc.status.UNAVAILABLE, message: 'queue full' });
    expect(retryDelayFromRpcStatus(res.body)).toBe(2000);
    expect(detailTypeUrls(res.body)).toEqual([RETRY_INFO_TYPE_URL]);
  });

  it('HTTP/JSON: 503, Retry-After: 2 and a JSON Status with RetryInfo', async () => {
    r.sink.failWith = queueFull();
    const res = await postJson(r.http, { resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: '0102030405060708090a0b0c0d0e0f10', spanId: '0102030405060708' }] }] }] });
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('2');
    expect(JSON.parse(res.body.toString())).toEqual({ code: 14, message: 'queue full', details: [{ '@type': RETRY_INFO_TYPE_URL, retryDelay: '2s' }] });
  });

  it('Retry-After rounds up to whole seconds', async () => {
    r.sink.failWith = new RetryableError('memory limit', { reason: 'memory_limit', retryAfterMs: 1500 });
    const res = await postProtobuf(r.http, protobufRequest([span()]));
    expect(res.headers['retry-after']).toBe('2');
    expect(retryDelayFromRpcStatus(res.body)).toBe(1500);
  });

  it('gRPC: UNAVAILABLE with RetryInfo of 2 s in grpc-status-details-bin', async () => {
    r.sink.failWith = queueFull();
    const res = await grpcExport(client, protobufRequest([span()]));
    expect(res.code).toBe(grpc.status.UNAVAILABLE);
    expect(res.details).toBe('queue full');
    const [details] = res.metadata!.get('grpc-status-details-bin') as Buffer[];
    expect(retryDelayFromRpcStatus(details!)).toBe(2000);
    expect(detailTypeUrls(details!)).toEqual([RETRY_INFO_TYPE_URL]);
  });
});

describe('a pipeline that says it would refuse', () => {
  const behind = (): RetryableError => new RetryableError('exporters behind', { reason: 'export_behind', retryAfterMs: 1000 });
  const refusedRequests = (transport: string): number => r.set.metrics.counter('agentsec_receiver_refused_requests_total', '', []).get('otlp/agents', transport, 'export_behind');

  it('is refused before the request is decoded (even a body that would not decode), on both transports, and counted', async () => {
    const [http0, grpc0] = [refusedRequests('http'), refusedRequests('grpc')];
    r.sink.refuseWith = behind();
    const res = await postProtobuf(r.http, Buffer.from('not protobuf at all'));
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(RpcStatus.toObject(RpcStatus.decode(res.body))).toMatchObject({ code: grpc.status.UNAVAILABLE, message: 'exporters behind' });
    const g = await grpcExport(client, protobufRequest([span()]));
    expect(g.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.sink.spanCount()).toBe(0);
    expect([refusedRequests('http') - http0, refusedRequests('grpc') - grpc0]).toEqual([1, 1]);
    // Once it would take data again, the same request goes through.
    r.sink.refuseWith = undefined;
    expect((await grpcExport(client, protobufRequest([span()]))).code).toBe(grpc.status.OK);
    expect(r.sink.spanCount()).toBe(1);
  });
});

describe('each pipeline error maps as statusOf says', () => {
  const cases: [string, () => unknown, number, number][] = [
    ['BadInputError', () => new BadInputError('span has no name'), 400, grpc.status.INVALID_ARGUMENT],
    ['PermanentError', () => new PermanentError('exporter rejected the data'), 500, grpc.status.INTERNAL],
    ['TooLargeError', () => new TooLargeError('batch too large for the exporter'), 413, grpc.status.RESOURCE_EXHAUSTED],
    ['an untyped Error (retryable)', () => new Error('bug in a processor'), 503, grpc.status.UNAVAILABLE],
  ];

  it.each(cases)('%s', async (_name, make, httpStatus, grpcCode) => {
    const err = make();
    expect(statusOf(err)).toMatchObject({ httpStatus, grpcCode });
    r.sink.failWith = err;
    const res = await postProtobuf(r.http, protobufRequest([span()]));
    expect(res.status).toBe(httpStatus);
    expect(res.headers['retry-after']).toBe(httpStatus === 503 ? '1' : undefined);
    expect(RpcStatus.toObject(RpcStatus.decode(res.body))).toMatchObject({ code: grpcCode, message: (err as Error).message });
    const g = await grpcExport(client, protobufRequest([span()]));
    expect(g.code).toBe(grpcCode);
    expect(g.details).toBe((err as Error).message);
  });

  it('logs an untyped error at warn, a typed refusal at debug, never attribute values', async () => {
    const secret = 'sk-live-attribute-value';
    const body = protobufRequest([span({ attributes: [{ key: 'http.request.header.authorization', value: { stringValue: secret } }] })]);
    r.set.logs.length = 0;
    r.sink.failWith = new Error('bug in a processor');
    await postProtobuf(r.http, body);
    r.sink.failWith = queueFull();
    await grpcExport(client, body);
    const refusals = r.set.logs.filter((l) => l.msg === 'pipeline refused spans');
    expect(refusals.map((l) => [l.level, l.reason, l.transport])).toEqual([
      [40, 'internal', 'http'],
      [20, 'queue_full', 'grpc'],
    ]);
    // Invalid spans are logged as counts only.
    r.sink.failWith = undefined;
    await postJson(r.http, { resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: 'zz', attributes: [{ key: 'k', value: { intValue: secret } }] }] }] }] });
    expect(JSON.stringify(r.set.logs)).not.toContain(secret);
  });
});

describe('metrics', () => {
  const get = (name: string, ...labels: string[]): number => r.set.metrics.counter(name, '', []).get(...labels);
  const accepted = (transport: string): number => get('agentsec_receiver_accepted_spans_total', 'otlp/agents', transport);
  const refused = (reason: string): number => get('agentsec_receiver_refused_spans_total', 'otlp/agents', reason);
  const failed = (transport: string, reason: string): number => get('agentsec_receiver_failed_requests_total', 'otlp/agents', transport, reason);

  it('counts accepted spans per transport', async () => {
    const [http0, grpc0] = [accepted('http'), accepted('grpc')];
    await postProtobuf(r.http, protobufRequest([span(), span(), span()]));
    await grpcExport(client, protobufRequest([span(), span()]));
    expect(accepted('http') - http0).toBe(3);
    expect(accepted('grpc') - grpc0).toBe(2);
  });

  it('counts refused spans by reason: the pipeline refusal, or bad_input for invalid spans', async () => {
    const [queue0, bad0, accepted0] = [refused('queue_full'), refused('bad_input'), accepted('http')];
    r.sink.failWith = queueFull();
    await postProtobuf(r.http, protobufRequest([span(), span(), span(), span()]));
    expect(refused('queue_full') - queue0).toBe(4);
    expect(accepted('http')).toBe(accepted0);

    r.sink.failWith = undefined;
    await postProtobuf(r.http, protobufRequest([span(), span({ spanId: Buffer.alloc(3) }), span({ traceId: Buffer.alloc(2) })]));
    expect(refused('bad_input') - bad0).toBe(2);
    expect(accepted('http') - accepted0).toBe(1);
  });

  it('counts requests that could not be read, by transport and reason', async () => {
    const before = [failed('http', 'bad_input'), failed('http', 'unsupported_media_type'), failed('http', 'too_large'), failed('grpc', 'bad_input')];
    await postProtobuf(r.http, Buffer.from('garbage'));
    await httpRequest(r.http, 'x', { headers: { 'content-type': 'text/plain' } });
    await postProtobuf(r.http, Buffer.from('x'), { 'content-encoding': 'br' });
    await httpRequest(r.http, undefined, { headers: { 'content-type': 'application/x-protobuf', 'content-length': String(64 * 1024 * 1024) } });
    await grpcExport(client, Buffer.from('garbage'));
    const after = [failed('http', 'bad_input'), failed('http', 'unsupported_media_type'), failed('http', 'too_large'), failed('grpc', 'bad_input')];
    expect(after.map((n, i) => n - before[i]!)).toEqual([1, 2, 1, 1]);
    expect(r.set.metrics.render()).toContain('agentsec_receiver_failed_requests_total{receiver="otlp/agents",transport="grpc",reason="bad_input"}');
  });
});
