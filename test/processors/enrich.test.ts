// enrich's hold: batches wait briefly so parents and children meet, leave on time even when a
// parent never comes, refuse (retryably) when the hold is full or the next component refuses,
// and flush on shutdown.
import { describe, expect, it, vi } from 'vitest';
import { Normalize, NormalizeConfig } from '../../src/processors/normalize.ts';
import { TraceGraphConfig, TraceGraphProcessor } from '../../src/processors/tracegraph.ts';
import { Enrich, EnrichConfig } from '../../src/processors/enrich.ts';
import { decodeTraceJson } from '../../src/otlp/decode.ts';
import { RetryableError } from '../../src/errors.ts';
import type { TraceBatch } from '../../src/otlp/types.ts';
import { plainSpans } from '../helpers/plain-spans.ts';
import { TracesSink } from '../helpers/sink.ts';
import { testSettings } from '../helpers/settings.ts';

const ctx = { receiver: 'otlp', transport: 'http' as const };
const TRACE = '0af7651916cd43dd8448eb211c80319c';

function batch(spans: { id: string; parent?: string; agent?: string; tool?: string }[]): TraceBatch {
  return decodeTraceJson(
    JSON.stringify({
      resourceSpans: [{
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'svc' } }] },
        scopeSpans: [{
          spans: spans.map((s) => ({
            traceId: TRACE, spanId: s.id.padStart(16, '0'), parentSpanId: s.parent?.padStart(16, '0'), name: 'x', startTimeUnixNano: '1000000', endTimeUnixNano: '2000000',
            attributes: [
              ...(s.agent ? [{ key: 'gen_ai.agent.name', value: { stringValue: s.agent } }] : []),
              ...(s.tool ? [{ key: 'gen_ai.tool.name', value: { stringValue: s.tool } }] : []),
            ],
          })),
        }],
      }],
    }),
  ).batch;
}

function pipeline(enrichCfg: Record<string, unknown>) {
  const set = testSettings('enrich');
  const sink = new TracesSink();
  const enrich = new Enrich(set, EnrichConfig.parse(enrichCfg), sink);
  const graph = new TraceGraphProcessor(set, TraceGraphConfig.parse({}), enrich);
  const normalize = new Normalize(set, NormalizeConfig.parse({ hmac_key: 'x'.repeat(32) }), graph);
  let now = 0;
  enrich.now = () => now;
  return { set, sink, enrich, normalize, advance: (ms: number) => (now += ms) };
}

const attrs = (sink: TracesSink) => new Map(plainSpans(sink.batches).map((s) => [s.spanId.replace(/^0+/, ''), s.attributes]));
const tick = () => new Promise((r) => setTimeout(r, 60));

describe('enrich', () => {
  it('holds a batch so a parent arriving later still shapes its children, then releases in order', async () => {
    const p = pipeline({ hold: '200ms' });
    await p.enrich.start();
    await p.normalize.consume(batch([{ id: '3', parent: '2', tool: 'web_search' }]), ctx); // child first
    await p.normalize.consume(batch([{ id: '1', agent: 'lead' }, { id: '2', parent: '1', agent: 'helper' }]), ctx);
    await tick();
    expect(p.sink.batches).toHaveLength(0);
    p.advance(250);
    // Both were due: they leave (on the next timer tick) as one export, in arrival order.
    await vi.waitFor(() => expect(p.sink.batches).toHaveLength(1), { timeout: 5000 });
    expect(plainSpans(p.sink.batches).map((s) => s.spanId.replace(/^0+/, ''))).toEqual(['3', '1', '2']);
    expect(attrs(p.sink).get('3')).toMatchObject({ 'agentsec.agent.role': 'helper', 'agentsec.chain.depth': { int: '1' }, 'agentsec.chain.path': 'lead>helper' });
    await p.enrich.shutdown(AbortSignal.timeout(1000));
  });

  it('lets a span whose parent never comes leave on time, enriched with what is known', async () => {
    const p = pipeline({ hold: '100ms' });
    await p.enrich.start();
    await p.normalize.consume(batch([{ id: '9', parent: '8', agent: 'orphan', tool: 'read' }]), ctx);
    p.advance(150);
    await vi.waitFor(() => expect(attrs(p.sink).get('9')).toMatchObject({ 'agentsec.agent.role': 'orphan', 'agentsec.chain.depth': { int: '0' } }), { timeout: 5000 });
    await p.enrich.shutdown(AbortSignal.timeout(1000));
  });

  it('refuses retryably when the hold is full, and keeps batches the next component refuses', async () => {
    const p = pipeline({ hold: '100ms', max_held_spans: 2 });
    await p.enrich.start();
    await p.normalize.consume(batch([{ id: '1', agent: 'a' }, { id: '2', parent: '1' }]), ctx);
    const refused = await p.normalize.consume(batch([{ id: '3', parent: '1' }]), ctx).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RetryableError);
    expect((refused as RetryableError).reason).toBe('hold_full');

    p.sink.failWith = new RetryableError('exporter queue full', { reason: 'queue_full' });
    p.advance(150);
    await tick();
    expect(p.sink.batches).toHaveLength(0);
    expect(p.set.metrics.gauge('agentsec_enrich_held_spans', '', ['processor']).get('enrich')).toBe(2);
    p.sink.failWith = undefined;
    await vi.waitFor(() => expect(p.sink.spanCount()).toBe(2), { timeout: 5000 });
    await p.enrich.shutdown(AbortSignal.timeout(1000));
  });

  it('with a hold, says it would take data while the next component refuses for a moment (the hold absorbs it)', async () => {
    const p = pipeline({ hold: '100ms' });
    await p.enrich.start();
    p.sink.refuseWith = new RetryableError('queue full', { reason: 'queue_full' });
    expect(p.normalize.refusal()).toBeUndefined();
    await p.normalize.consume(batch([{ id: '1', agent: 'a' }]), ctx);
    // Without a hold, enrich passes on what follows it.
    const direct = pipeline({ hold: 0 });
    direct.sink.refuseWith = p.sink.refuseWith;
    expect(direct.normalize.refusal()).toMatchObject({ reason: 'queue_full' });
    p.sink.refuseWith = undefined;
    await p.enrich.shutdown(AbortSignal.timeout(1000));
    expect(p.sink.spanCount()).toBe(1);
  });

  it('refuses retryably when held spans are overdue (the exporters behind), before the hold is full', async () => {
    const p = pipeline({ hold: '100ms', max_overdue: '200ms' });
    await p.enrich.start();
    p.sink.failWith = new RetryableError('exporter queue full', { reason: 'queue_full' });
    await p.normalize.consume(batch([{ id: '1', agent: 'a' }]), ctx);
    p.advance(250); // due 150 ms ago: still accepted
    await p.normalize.consume(batch([{ id: '2', parent: '1' }]), ctx);
    p.advance(100); // the first is 250 ms overdue
    const refused = await p.normalize.consume(batch([{ id: '3', parent: '1' }]), ctx).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RetryableError);
    expect((refused as RetryableError).reason).toBe('export_behind');
    expect((refused as RetryableError).message).toMatch(/250 ms late/);
    // The pipeline says so before any work is done (receivers ask it before decoding a request).
    expect(p.normalize.refusal()).toMatchObject({ reason: 'export_behind' });
    // Once the exporters take them, new data is accepted again.
    p.sink.failWith = undefined;
    await vi.waitFor(() => expect(p.sink.spanCount()).toBe(2), { timeout: 5000 });
    expect(p.normalize.refusal()).toBeUndefined();
    await p.normalize.consume(batch([{ id: '4', parent: '1' }]), ctx);
    await p.enrich.shutdown(AbortSignal.timeout(1000));
    expect(p.sink.spanCount()).toBe(3);
  });

  it('when a released group fails for good or unexpectedly, sends each batch alone and drops only the one that fails again', async () => {
    const p = pipeline({ hold: '100ms' });
    // The next component chokes on one span (as an encoder would on a value it cannot write).
    const consume = p.sink.consume.bind(p.sink);
    p.sink.consume = async (b, c) => {
      if (plainSpans([b]).some((s) => s.spanId.endsWith('3'))) throw new RangeError('Maximum call stack size exceeded');
      return consume(b, c);
    };
    await p.enrich.start();
    await p.normalize.consume(batch([{ id: '1', agent: 'a' }, { id: '2', parent: '1' }]), ctx);
    await p.normalize.consume(batch([{ id: '3', parent: '1' }]), ctx);
    await p.normalize.consume(batch([{ id: '4', parent: '1' }]), ctx);
    p.advance(150);
    await vi.waitFor(() => expect(p.sink.spanCount()).toBe(3), { timeout: 5000 });
    expect(plainSpans(p.sink.batches).map((s) => s.spanId.replace(/^0+/, ''))).toEqual(['1', '2', '4']);
    const dropped = p.set.metrics.counter('agentsec_processor_dropped_spans_total', '', ['processor', 'reason']);
    expect(dropped.get('enrich', 'unexpected_error')).toBe(1);
    // Nothing stays held behind it: what comes next leaves too.
    await p.normalize.consume(batch([{ id: '5', parent: '1' }]), ctx);
    p.advance(150);
    await vi.waitFor(() => expect(p.sink.spanCount()).toBe(4), { timeout: 5000 });
    await p.enrich.shutdown(AbortSignal.timeout(1000));
  });

  it('flushes everything held on shutdown, without waiting for the hold', async () => {
    const p = pipeline({ hold: '1h' });
    await p.enrich.start();
    await p.normalize.consume(batch([{ id: '1', agent: 'a' }]), ctx);
    await p.enrich.shutdown(AbortSignal.timeout(1000));
    expect(p.sink.spanCount()).toBe(1);
    await expect(p.normalize.consume(batch([{ id: '2', agent: 'a' }]), ctx)).rejects.toBeInstanceOf(RetryableError);
  });

  it('with hold 0 enriches and forwards in the request path', async () => {
    const p = pipeline({ hold: 0 });
    await p.normalize.consume(batch([{ id: '1', agent: 'solo' }]), ctx);
    expect(attrs(p.sink).get('1')).toMatchObject({ 'agentsec.agent.role': 'solo', 'agentsec.chain.root': 'solo' });
  });
});
