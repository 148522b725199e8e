// Working on a request's bytes instead of its decoded objects: OTLP/JSON transcoded from
// protobuf must equal encodeTraceJson of the decoded request, byte for byte, whatever the
// layout; a batch held as bytes and spliced back must be the request it came from (less its
// rejected spans), with appended fields that the OpenTelemetry JS project's own protobuf code
// reads; and what a processor changed or added must not be lost to the bytes.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { decodeTraceProtobuf } from '../../src/otlp/decode.ts';
import { encodeSpanBody, encodeTraceJson, encodeTraceProtobuf } from '../../src/otlp/encode.ts';
import { jsonFromProtobuf } from '../../src/otlp/json-from-protobuf.ts';
import { batchJson, batchProtobuf, copyBatch, EncodedTraceBatch } from '../../src/otlp/encoded-batch.ts';
import { holdWire, spanEndTime, spliceRequest, spliceRequests } from '../../src/otlp/splice.ts';
import { AttributeWriter, FieldReader, varintSize, WIRE_LEN, writeVarint } from '../../src/otlp/wire.ts';
import { summarize } from '../../src/exporters/debug.ts';
import type { AnyValue, KeyValue, ResourceSpans, Span } from '../../src/otlp/types.ts';
import { buildRequestPool } from '../../bench/payload.ts';
import { recordSpans } from '../helpers/sdk-spans.ts';
import { plainSpans } from '../helpers/plain-spans.ts';

const require = createRequire(import.meta.url);
const otelRoot = require('otlp-transformer-protobufjs/build/src/generated/root.js') as {
  opentelemetry: { proto: { collector: { trace: { v1: { ExportTraceServiceRequest: { decode(b: Uint8Array): { resourceSpans: never[] } } } } } } };
};
const OtelRequest = otelRoot.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;

const id = (byte: number, n: number) => Buffer.alloc(n, byte);
const kv = (key: string, value: AnyValue): KeyValue => ({ key, value });

/** Every field and value type, strings needing every kind of JSON escape, 64-bit edges. */
function everything(): ResourceSpans[] {
  const span: Span = {
    traceId: id(1, 16),
    spanId: id(2, 8),
    parentSpanId: id(3, 8),
    traceState: 'vendor=a,other=b',
    flags: 0x301,
    name: 'execute_tool "quoted" \\ back\nslash',
    kind: 3,
    startTimeUnixNano: '1700000000123456789' as never,
    endTimeUnixNano: '18446744073709551615' as never,
    attributes: [
      kv('str', { stringValue: 'plain' }),
      kv('empty', { stringValue: '' }),
      kv('escapes', { stringValue: 'tab\there "q" \\ \u0001\u001f\u007f end' }),
      kv('unicode', { stringValue: 'naïve — 日本語 🚀 \u2028' }),
      kv('long', { stringValue: 'x'.repeat(300) + 'é' + '"'.repeat(3) }),
      kv('bool.t', { boolValue: true }),
      kv('bool.f', { boolValue: false }),
      kv('int.neg', { intValue: -9007199254740991 }),
      kv('int.min', { intValue: '-9223372036854775808' as never }),
      kv('int.max', { intValue: '9223372036854775807' as never }),
      kv('int.zero', { intValue: 0 }),
      kv('double', { doubleValue: -1234.5678 }),
      kv('double.tiny', { doubleValue: 5e-324 }),
      kv('double.nan', { doubleValue: NaN }),
      kv('double.inf', { doubleValue: -Infinity }),
      kv('bytes', { bytesValue: Buffer.from([0, 255, 1, 254]) }),
      kv('array', { arrayValue: { values: [{ stringValue: 'a' }, { intValue: 2 }, { arrayValue: { values: [] } }, {}] } }),
      kv('kvlist', { kvlistValue: { values: [kv('inner', { kvlistValue: { values: [kv('deep', { boolValue: true })] } }), { key: 'novalue' }] } }),
      { key: 'absent' },
    ],
    droppedAttributesCount: 4,
    events: [
      { timeUnixNano: 5, name: 'e1', attributes: [kv('k', { stringValue: 'v' })], droppedAttributesCount: 1 },
      { name: 'no time' },
    ],
    droppedEventsCount: 2,
    links: [{ traceId: id(4, 16), spanId: id(5, 8), traceState: 'x=y', flags: 1, attributes: [kv('l', { intValue: 1 })], droppedAttributesCount: 3 }],
    droppedLinksCount: 7,
    status: { code: 2, message: 'failed "badly"' },
  };
  const bare: Span = { traceId: id(6, 16), spanId: id(7, 8), name: '' };
  const okStatus: Span = { traceId: id(6, 16), spanId: id(8, 8), name: 'ok', status: { code: 1 } };
  return [
    {
      resource: { attributes: [kv('service.name', { stringValue: 'svc' })], droppedAttributesCount: 1 },
      scopeSpans: [
        { scope: { name: 'lib', version: '1.0', attributes: [kv('s', { stringValue: 't' })], droppedAttributesCount: 2 }, spans: [span, bare], schemaUrl: 'https://s/1' },
        { scope: {}, spans: [okStatus] },
      ],
      schemaUrl: 'https://r/1',
    },
    { scopeSpans: [{ spans: [] }] },
  ];
}

/** The same message with its top-level fields in reverse order: repeated fields then come apart. */
function reversed(bytes: Buffer, start: number, end: number): Buffer {
  const fields: Buffer[] = [];
  const r = new FieldReader(bytes, start, end);
  let at = start;
  while (r.next()) {
    fields.push(bytes.subarray(at, r.stop));
    at = r.stop;
  }
  return Buffer.concat(fields.reverse());
}

/** A length-delimited field: key, length, body. */
function message(field: number, body: Buffer): Buffer {
  const head = Buffer.alloc(1 + varintSize(body.length));
  head[0] = (field << 3) | WIRE_LEN;
  writeVarint(head, 1, body.length);
  return Buffer.concat([head, body]);
}

/** A request whose every span has its fields reversed (resource spans and scopes kept). */
function withReversedSpans(request: Buffer): Buffer {
  const walk = (start: number, end: number, depth: number): Buffer => {
    const out: Buffer[] = [];
    const r = new FieldReader(request, start, end);
    let at = start;
    while (r.next()) {
      const isChild = r.wire === WIRE_LEN && (depth === 0 ? r.field === 1 : r.field === 2);
      if (!isChild) out.push(request.subarray(at, r.stop));
      else if (depth < 2) out.push(message(r.field, walk(r.start, r.stop, depth + 1)));
      else out.push(message(r.field, reversed(request, r.start, r.stop)));
      at = r.stop;
    }
    return Buffer.concat(out);
  };
  return walk(0, request.length, 0);
}

function expectSameJson(request: Buffer): void {
  const decoded = decodeTraceProtobuf(request).batch.resourceSpans;
  expect(jsonFromProtobuf(request, '\n').toString('utf8')).toBe(encodeTraceJson(decoded) + '\n');
}

describe('OTLP/JSON from protobuf bytes', () => {
  it('is byte for byte encodeTraceJson of the decoded request: every field and value type', () => {
    const request = encodeTraceProtobuf(everything());
    expectSameJson(request);
    // Not vacuous: the escapes and 64-bit edges are in it.
    const text = jsonFromProtobuf(request).toString('utf8');
    expect(text).toContain('"tab\\there \\"q\\" \\\\ \\u0001\\u001f\u007f end"');
    expect(text).toContain('"intValue":"-9223372036854775808"');
    expect(text).toContain('"endTimeUnixNano":"18446744073709551615"');
    expect(text).toContain('"doubleValue":"NaN"');
    expect(JSON.parse(text).resourceSpans[0].scopeSpans[0].spans[0].attributes.length).toBe(19);
  });

  it('reads fields in any order, repeated fields apart, and an AnyValue sent with two members as the decoder does', () => {
    const request = withReversedSpans(encodeTraceProtobuf(everything()));
    expect(request.equals(encodeTraceProtobuf(everything()))).toBe(false);
    expectSameJson(request);
    // A string member and an int member in one AnyValue: the string is written, as encodeTraceJson does.
    const twoMembers = Buffer.concat([Buffer.from([0x18, 0x05]), message(1, Buffer.from('s'))]);
    const span = Buffer.concat([message(1, id(1, 16)), message(2, id(2, 8)), message(9, Buffer.concat([message(1, Buffer.from('k')), message(2, twoMembers)]))]);
    const patched = message(1, message(2, message(2, span)));
    expect(decodeTraceProtobuf(patched).batch.resourceSpans[0]!.scopeSpans[0]!.spans[0]!.attributes![0]!.value!.intValue).toBeTruthy();
    expectSameJson(patched);
  });

  it('writes invalid UTF-8 as the decoder reads it (replacement characters), still valid JSON', () => {
    const request = encodeTraceProtobuf([{ scopeSpans: [{ spans: [{ traceId: id(1, 16), spanId: id(2, 8), name: 'ab\u00e9cd' }] }] }]);
    const at = request.indexOf(Buffer.from('ab\u00e9cd'));
    request[at + 2] = 0xff; // 0xc3 0xa9 → 0xff 0xa9
    expectSameJson(request);
    expect(JSON.parse(jsonFromProtobuf(request).toString('utf8')).resourceSpans[0].scopeSpans[0].spans[0].name).toBe('ab\ufffd\ufffdcd');
  });

  it('writes into a buffer it is given (a view of it), or into a larger one of its own when that is too small', () => {
    const request = encodeTraceProtobuf(everything());
    const expected = jsonFromProtobuf(request, '\n');
    const roomy = Buffer.alloc(1 << 16);
    const inRoomy = jsonFromProtobuf(request, '\n', roomy);
    expect(inRoomy.equals(expected)).toBe(true);
    expect(inRoomy.buffer).toBe(roomy.buffer);
    const small = Buffer.alloc(16);
    const grown = jsonFromProtobuf(request, '\n', small);
    expect(grown.equals(expected)).toBe(true);
    expect(grown.buffer).not.toBe(small.buffer);
    // The module's own scratch is untouched by either: a later call without a buffer still agrees.
    expect(jsonFromProtobuf(request, '\n').equals(expected)).toBe(true);
  });

  it('agrees on what the OTel JS SDK sends and on the benchmark traffic', async () => {
    expectSameJson(Buffer.from(ProtobufTraceSerializer.serializeRequest(await recordSpans())!));
    for (const request of buildRequestPool(2).protobuf) expectSameJson(request);
  });
});

describe('a batch held as its bytes', () => {
  const request = () => encodeTraceProtobuf(everything());

  /** The request as encodeTraceJson writes it once decoded: equal for requests that differ only in field order. */
  const json = (bytes: Buffer) => encodeTraceJson(decodeTraceProtobuf(bytes).batch.resourceSpans);

  it('splices back into the request it came from, each span its bytes, and keeps no decoded span', () => {
    const bytes = request();
    const { batch } = decodeTraceProtobuf(bytes);
    const held = holdWire(batch, () => false)!;
    expect(held.decoded.size).toBe(0);
    const out = spliceRequest(held, []);
    expect(json(out)).toBe(json(bytes));
    // Parts written one after another are one request: a held batch and an encoded one.
    const two = spliceRequests([{ held, appended: [] }, bytes]);
    expect(decodeTraceProtobuf(two).batch.spanCount).toBe(2 * batch.spanCount);
    // The same bytes but for the resource's and scope's fields, which lead their spans now.
    expect(out.length).toBe(bytes.length);
    for (let i = 0; i < batch.spanCount; i++) expect(out.includes(bytes.subarray(batch.source!.spans[2 * i]!, batch.source!.spans[2 * i + 1]!))).toBe(true);
  });

  it('leaves out the spans the decoder rejected, wherever they were', () => {
    const rs = everything();
    rs[0]!.scopeSpans[0]!.spans.splice(1, 0, { traceId: id(0, 16), spanId: id(9, 8), name: 'rejected: zero trace id' });
    rs[0]!.scopeSpans[1]!.spans.unshift({ traceId: id(1, 16), spanId: id(9, 7), name: 'rejected: short span id' });
    const decoded = decodeTraceProtobuf(encodeTraceProtobuf(rs));
    expect(decoded.rejectedSpans).toBe(2);
    const out = spliceRequest(holdWire(decoded.batch, () => false)!, []);
    expect(json(out)).toBe(json(request()));
  });

  it("appends fields to a span's bytes that OTel JS's own protobuf code reads as part of the span", () => {
    const { batch } = decodeTraceProtobuf(request());
    const held = holdWire(batch, () => false)!;
    const appended = [encodeSpanBody({ attributes: [kv('agentsec.agent.role', { stringValue: 'research' })], events: [{ name: 'agentsec.finding', timeUnixNano: spanEndTime(held, 0) }] } as Span)];
    const spans = plainSpans([OtelRequest.decode(spliceRequest(held, appended)) as never]);
    expect(spans).toHaveLength(3);
    expect(spans[0]!.attributes['agentsec.agent.role']).toBe('research');
    expect(spans[0]!.attributes['str']).toBe('plain');
    expect(spans[0]!.events.map((e) => [e.name, e.time])).toEqual([['e1', '5'], ['no time', '0'], ['agentsec.finding', '18446744073709551615']]);
    expect(spans[1]!.attributes).toEqual({});
  });

  it('appends attributes written straight as bytes (AttributeWriter), strings of any script and ints', () => {
    const { batch } = decodeTraceProtobuf(request());
    const held = holdWire(batch, () => false)!;
    const w = new AttributeWriter();
    const role = w.string(Buffer.from('agentsec.agent.role'), 'récherche 研究').int(Buffer.from('agentsec.chain.depth'), 300).take();
    const long = w.string(Buffer.from('k'), 'x'.repeat(5000)).take();
    const spans = plainSpans([OtelRequest.decode(spliceRequest(held, [role, long, role])) as never]);
    expect(spans.map((s) => [s.attributes['agentsec.agent.role'], s.attributes['agentsec.chain.depth']])).toEqual([
      ['récherche 研究', { int: '300' }],
      [undefined, undefined],
      ['récherche 研究', { int: '300' }],
    ]);
    expect(spans[1]!.attributes['k']).toHaveLength(5000);
  });

  it('holds decoded, and writes as they are now, the spans a processor changed; whole batches whose resource changed', () => {
    const { batch } = decodeTraceProtobuf(request());
    const span = batch.resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
    span.attributes![0]!.value = { stringValue: 'fingerprint' }; // as normalize replaces a credential
    batch.source!.rewritten = new Set([span]);
    const held = holdWire(batch, () => false)!;
    expect([...held.decoded.keys()]).toEqual([0]);
    expect(plainSpans([OtelRequest.decode(spliceRequest(held, [])) as never])[0]!.attributes['str']).toBe('fingerprint');
    batch.source!.rewritten.add(batch.resourceSpans[0]!.resource!);
    expect(holdWire(batch, () => false)).toBeUndefined();
  });

  it('takes resource spans added after receipt (finding spans), and refuses a batch whose received part changed shape', () => {
    const { batch } = decodeTraceProtobuf(request());
    batch.resourceSpans.push({ resource: { attributes: [kv('service.name', { stringValue: 'agentsec' })] }, scopeSpans: [{ spans: [{ traceId: id(1, 16), spanId: id(10, 8), name: 'finding' }] }] });
    const spans = plainSpans([OtelRequest.decode(spliceRequest(holdWire(batch, () => false)!, [])) as never]);
    expect(spans.map((s) => s.name)).toEqual([everything()[0]!.scopeSpans[0]!.spans[0]!.name, '', 'ok', 'finding']);
    batch.resourceSpans[0]!.scopeSpans[1]!.spans.push({ traceId: id(1, 16), spanId: id(11, 8), name: 'added in place' });
    expect(holdWire(batch, () => false)).toBeUndefined();
    expect(holdWire({ resourceSpans: batch.resourceSpans, spanCount: 4 }, () => false)).toBeUndefined();
  });
});

describe('batches that travel encoded', () => {
  it('are read as bytes by the exporters, and decoded once when something reads their spans (which then are the batch)', () => {
    const bytes = encodeTraceProtobuf(everything());
    const batch = new EncodedTraceBatch(bytes, 3);
    expect(batchProtobuf(batch)).toBe(bytes);
    expect(batchJson(batch).toString('utf8')).toBe(encodeTraceJson(decodeTraceProtobuf(bytes).batch.resourceSpans));
    const copy = copyBatch(batch);
    expect(copy.protobuf).toBe(bytes);
    expect(summarize(batch)).toEqual(summarize(decodeTraceProtobuf(bytes).batch));
    expect(summarize(batch)).toEqual({ spans: 3, resource_spans: 2, traces: 2, services: ['svc'] });
    batch.resourceSpans[0]!.scopeSpans[0]!.spans[0]!.name = 'changed';
    expect(batch.protobuf).toBeUndefined();
    expect(decodeTraceProtobuf(batchProtobuf(batch)).batch.resourceSpans[0]!.scopeSpans[0]!.spans[0]!.name).toBe('changed');
    expect(copy.resourceSpans[0]!.scopeSpans[0]!.spans[0]!.name).not.toBe('changed');
  });
});
