// Faults through the whole collector, over real sockets:
// - the downstream is down: the exporter queue fills, the receiver answers with a retryable
//   status, and once the downstream returns every accepted span arrives exactly once;
// - a drain: /readyz turns 503 as soon as it starts, and what cannot be delivered in time is
//   counted as dropped, never lost silently.
import { afterEach, describe, expect, it } from 'vitest';
import { encodeTraceProtobuf } from '../../src/otlp/encode.ts';
import { toHex } from '../../src/otlp/ids.ts';
import { FakeBackend } from '../helpers/fake-backend.ts';
import { metricValue, startCollector, type TestCollector } from '../helpers/collector.ts';
import { makeBatch, spansOf } from '../helpers/batch.ts';
import { postProtobuf } from '../receivers/otlp-helpers.ts';

let backend: FakeBackend | undefined;
let collector: TestCollector | undefined;
afterEach(async () => {
  await collector?.stop();
  await backend?.close();
  collector = backend = undefined;
});

function config(backendUrl: string, extra = ''): string {
  return `
receivers:
  otlp: { protocols: { http: { endpoint: "127.0.0.1:0" } } }
exporters:
  otlp:
    endpoint: "${backendUrl}"
    protocol: http/protobuf
    sending_queue: { queue_size: 1000, num_consumers: 2 }
    retry_on_failure: { initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 0 }
extensions:
  admin: { endpoint: "127.0.0.1:0" }
service:
  extensions: [admin]
  telemetry: { logs: { level: warn } }
  ${extra}
  pipelines:
    traces: { receivers: [otlp], exporters: [otlp] }
`;
}

describe('downstream down', () => {
  it('refuses with 503 once the queue is full, and delivers every accepted span exactly once when it returns', async () => {
    backend = await FakeBackend.start();
    collector = await startCollector(config(backend.httpUrl));
    await backend.down();

    const accepted = new Set<string>();
    const refused = new Set<string>();
    let retryAfter: string | undefined;
    // 100-span batches into a 1000-span queue: the 11th cannot fit.
    for (let i = 0; i < 15; i++) {
      const batch = makeBatch(100);
      const ids = spansOf(batch).map((s) => toHex(s.spanId));
      const res = await postProtobuf(collector.httpUrl.slice('http://'.length), Buffer.from(encodeTraceProtobuf(batch.resourceSpans)));
      if (res.status === 200) ids.forEach((id) => accepted.add(id));
      else {
        expect(res.status).toBe(503);
        retryAfter = String(res.headers['retry-after']);
        ids.forEach((id) => refused.add(id));
      }
    }
    expect(accepted.size).toBe(1000);
    expect(refused.size).toBe(500);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);

    await backend.up();
    await backend.waitForDelivered(accepted.size);
    await new Promise((r) => setTimeout(r, 300)); // anything extra would show up now
    const delivered = backend.delivered().map((s) => toHex(s.spanId));
    expect(delivered).toHaveLength(accepted.size); // exactly once: no duplicates
    expect(new Set(delivered)).toEqual(accepted);

    const metrics = await (await fetch(`${collector.adminUrl}/metrics`)).text();
    expect(metricValue(metrics, 'agentsec_receiver_accepted_spans_total', { receiver: 'otlp', transport: 'http' })).toBe(1000);
    // The full queue is known before the next requests are decoded: they are refused as requests.
    expect(metricValue(metrics, 'agentsec_receiver_refused_requests_total', { receiver: 'otlp', transport: 'http', reason: 'queue_full' })).toBe(5);
    expect(metricValue(metrics, 'agentsec_exporter_sent_spans_total', { exporter: 'otlp' })).toBe(1000);
    expect(metricValue(metrics, 'agentsec_exporter_queue_size', { exporter: 'otlp' })).toBe(0);
    expect(metricValue(metrics, 'agentsec_exporter_retries_total', { exporter: 'otlp' })).toBeGreaterThan(0);
  });
});

describe('drain', () => {
  it('turns /readyz to 503 when a drain starts and counts what could not be delivered in time', async () => {
    backend = await FakeBackend.start();
    collector = await startCollector(config(backend.httpUrl, 'shutdown_timeout: 1500ms'));
    expect((await fetch(`${collector.adminUrl}/readyz`)).status).toBe(200);
    await backend.down();
    const res = await postProtobuf(collector.httpUrl.slice('http://'.length), Buffer.from(encodeTraceProtobuf(makeBatch(20).resourceSpans)));
    expect(res.status).toBe(200);

    const drained = collector.service.shutdown();
    await new Promise((r) => setTimeout(r, 200));
    expect((await fetch(`${collector.adminUrl}/readyz`)).status).toBe(503);
    expect((await fetch(`${collector.adminUrl}/healthz`)).status).toBe(200);
    const metrics = await (await fetch(`${collector.adminUrl}/metrics`)).text();
    await drained;

    expect(metricValue(metrics, 'agentsec_exporter_queue_size', { exporter: 'otlp' })).toBe(20);
    expect(collector.service.metrics.counter('agentsec_exporter_dropped_spans_total', '', ['exporter', 'reason']).get('otlp', 'shutdown')).toBe(20);
    expect(collector.logs.some((l) => l.level === 40 && /shutdown/.test(String(l.msg)))).toBe(true);
  });
});
