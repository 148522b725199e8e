// Real clients: the official OTel JS exporters (gRPC, HTTP/protobuf, HTTP/JSON, with and without
// gzip) send the same SDK spans; every field must arrive as the SDK recorded it. Then a hand-built
// OTLP/JSON body shows every AnyValue type and the JSON quirks (hex ids, int64 as string or number,
// unknown fields).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import { encodeTraceJson } from '../../src/otlp/encode.ts';
import { postJson, startReceiver, type Running } from './otlp-helpers.ts';
import { plainSpans } from '../helpers/plain-spans.ts';
import { exportWith, expected, recordSpans } from '../helpers/sdk-spans.ts';

let r: Running;
let sdkSpans: ReadableSpan[];

beforeAll(async () => {
  r = await startReceiver();
  sdkSpans = await recordSpans();
});
afterAll(() => r.stop());

const exporters: [string, 'grpc' | 'http', (r: Running) => SpanExporter][] = [
  ['gRPC', 'grpc', (r) => new GrpcExporter({ url: `http://${r.grpc}` })],
  ['gRPC gzip', 'grpc', (r) => new GrpcExporter({ url: `http://${r.grpc}`, compression: CompressionAlgorithm.GZIP })],
  ['HTTP/protobuf', 'http', (r) => new ProtoExporter({ url: `http://${r.http}/v1/traces` })],
  ['HTTP/protobuf gzip', 'http', (r) => new ProtoExporter({ url: `http://${r.http}/v1/traces`, compression: CompressionAlgorithm.GZIP })],
  ['HTTP/JSON', 'http', (r) => new JsonExporter({ url: `http://${r.http}/v1/traces` })],
  ['HTTP/JSON gzip', 'http', (r) => new JsonExporter({ url: `http://${r.http}/v1/traces`, compression: CompressionAlgorithm.GZIP })],
];

describe('official OTel JS exporters', () => {
  it.each(exporters)('%s: every field arrives as the SDK recorded it', async (_name, transport, make) => {
    r.sink.reset();
    const exporter = make(r);
    try {
      await exportWith(exporter, sdkSpans);
    } finally {
      await exporter.shutdown();
    }
    expect(r.sink.contexts).toEqual([{ receiver: 'otlp', transport }]);
    expect(r.sink.spanCount()).toBe(sdkSpans.length);
    const byId = new Map(plainSpans(r.sink.batches).map((s) => [s.spanId, s]));
    for (const s of sdkSpans) expect(byId.get(s.spanContext().spanId)).toEqual(expected(s));

    // Spot checks that the comparison above is not vacuous.
    const tool = byId.get(sdkSpans.find((s) => s.name === 'execute_tool web_search')!.spanContext().spanId)!;
    expect(tool.kind).toBe(3);
    expect(tool.start).toBe('1700000000223456789');
    expect(tool.events[0]!.time).toBe('1700000000300000001');
    expect(tool.status).toEqual({ code: 2, message: 'tool failed: timeout' });
    const root = byId.get(sdkSpans.find((s) => s.name === 'invoke_agent research')!.spanContext().spanId)!;
    expect(root.parentSpanId).toBe('eee19b7ec3c1b174');
    expect(root.traceId).toBe('5b8efff798038103d269b633813fc60c');
    expect(root.attributes['int.max_safe']).toEqual({ int: '9007199254740991' });
    expect(root.attributes['int.negative']).toEqual({ int: '-9007199254740991' });
    expect(root.attributes['double.tiny']).toBe(5e-324);
    expect(root.resource['service.name']).toBe('research-agent');
    expect(root.scope).toEqual({ name: 'agent-framework', version: '1.4.2', attributes: { 'scope.team': 'agents', 'scope.build': { int: '7' } } });
  });

  it('spans received as protobuf re-encode to OTLP/JSON with their attribute types', async () => {
    r.sink.reset();
    const exporter = new GrpcExporter({ url: `http://${r.grpc}` });
    await exportWith(exporter, sdkSpans);
    await exporter.shutdown();
    const json = JSON.parse(encodeTraceJson(r.sink.batches[0]!.resourceSpans)) as unknown;
    const text = JSON.stringify(json);
    expect(text).toContain('{"key":"agent.retry","value":{"boolValue":true}}');
    expect(text).toContain('{"key":"gen_ai.usage.input_tokens","value":{"intValue":"1234"}}');
    expect(text).toContain('{"key":"gen_ai.request.temperature","value":{"doubleValue":0.7}}');
  });
});

describe('hand-built OTLP/JSON', () => {
  const body = {
    unknownTopLevel: { ignored: true },
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'planner' } }], droppedAttributesCount: 0, futureResourceField: 'x' },
        schemaUrl: 'https://opentelemetry.io/schemas/1.30.0',
        scopeSpans: [
          {
            scope: { name: 'hand', version: '0.1', attributes: [{ key: 'scope.kv', value: { kvlistValue: { values: [] } } }] },
            spans: [
              {
                traceId: '5B8EFFF798038103D269B633813FC60C',
                spanId: 'EEE19B7EC3C1B174',
                parentSpanId: 'eee19b7ec3c1b173',
                traceState: 'vendor=1',
                name: 'tool call',
                kind: 3,
                startTimeUnixNano: '1544712660000000000',
                endTimeUnixNano: '1544712661000000001',
                attributes: [
                  { key: 'string', value: { stringValue: 'hello' } },
                  { key: 'bool', value: { boolValue: true } },
                  { key: 'int.string', value: { intValue: '9223372036854775807' } },
                  { key: 'int.min', value: { intValue: '-9223372036854775808' } },
                  { key: 'int.number', value: { intValue: -42 } },
                  { key: 'double', value: { doubleValue: 2.5 } },
                  { key: 'double.integral', value: { doubleValue: 3 } },
                  { key: 'double.nan', value: { doubleValue: 'NaN' } },
                  { key: 'bytes', value: { bytesValue: '3q2+7w==' } },
                  {
                    key: 'array.nested',
                    value: { arrayValue: { values: [{ stringValue: 'a' }, { intValue: '1' }, { arrayValue: { values: [{ boolValue: false }, { doubleValue: 0.5 }] } }, {}] } },
                  },
                  {
                    key: 'kvlist',
                    value: {
                      kvlistValue: {
                        values: [
                          { key: 'inner', value: { kvlistValue: { values: [{ key: 'deep', value: { bytesValue: 'AAE=' } }] } } },
                          { key: 'list', value: { arrayValue: { values: [{ intValue: 7 }] } } },
                        ],
                      },
                    },
                  },
                  { key: 'empty' },
                  { key: 'future', value: { stringValue: 'x', futureValueField: 1 } },
                ],
                events: [{ timeUnixNano: '1544712660500000000', name: 'event', attributes: [{ key: 'e', value: { intValue: '3' } }], futureEventField: [] }],
                links: [{ traceId: '00000000000000000000000000000001', spanId: '0000000000000002', attributes: [{ key: 'l', value: { boolValue: false } }] }],
                status: { code: 2, message: 'failed' },
                futureSpanField: { nested: [1, 2, 3] },
              },
            ],
          },
        ],
      },
    ],
  };

  it('shows every AnyValue type and ignores unknown fields', async () => {
    r.sink.reset();
    const res = await postJson(r.http, body, { 'content-type': 'application/json; charset=utf-8' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(res.body.toString())).toEqual({});
    const [s] = plainSpans(r.sink.batches);
    expect(s).toEqual({
      resource: { 'service.name': 'planner' },
      scope: { name: 'hand', version: '0.1', attributes: { 'scope.kv': { kvlist: {} } } },
      scopeSchemaUrl: '',
      traceId: '5b8efff798038103d269b633813fc60c',
      spanId: 'eee19b7ec3c1b174',
      parentSpanId: 'eee19b7ec3c1b173',
      traceState: 'vendor=1',
      name: 'tool call',
      kind: 3,
      start: '1544712660000000000',
      end: '1544712661000000001',
      attributes: {
        string: 'hello',
        bool: true,
        'int.string': { int: '9223372036854775807' },
        'int.min': { int: '-9223372036854775808' },
        'int.number': { int: '-42' },
        double: 2.5,
        'double.integral': 3,
        'double.nan': NaN,
        bytes: { bytes: 'deadbeef' },
        'array.nested': ['a', { int: '1' }, [false, 0.5], null],
        kvlist: { kvlist: { inner: { kvlist: { deep: { bytes: '0001' } } }, list: [{ int: '7' }] } },
        empty: null,
        future: 'x',
      },
      events: [{ name: 'event', time: '1544712660500000000', attributes: { e: { int: '3' } } }],
      links: [{ traceId: '00000000000000000000000000000001', spanId: '0000000000000002', attributes: { l: false } }],
      status: { code: 2, message: 'failed' },
    });
    expect(r.sink.batches[0]!.resourceSpans[0]!.schemaUrl).toBe('https://opentelemetry.io/schemas/1.30.0');
  });
});
