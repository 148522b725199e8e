import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { AnyFactory, ConsumeContext, Exporter, Processor, Receiver, TracesConsumer } from '../../src/component/types.ts';
import { Registry } from '../../src/component/registry.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { resolveConfig } from '../../src/config/schema.ts';
import { buildGraph, shutdownAll, shutdownOrder, startAll, startOrder, StartError } from '../../src/pipeline/build.ts';
import { fanout } from '../../src/pipeline/fanout.ts';
import { PermanentError, RetryableError } from '../../src/errors.ts';
import { MetricsRegistry } from '../../src/telemetry/metrics.ts';
import type { TraceBatch } from '../../src/otlp/types.ts';
import { testHost, testSettings } from '../helpers/settings.ts';

// Recording components: each logs its lifecycle calls into one shared journal.
function recordingRegistry(journal: string[], failStart?: string) {
  const Cfg = z.strictObject({ mutates: z.boolean().default(false) });
  const life = (id: string) => ({
    async start() {
      if (id === failStart) throw new Error('boom');
      journal.push(`start ${id}`);
    },
    async shutdown() {
      journal.push(`stop ${id}`);
    },
  });
  const factories: AnyFactory[] = [
    { kind: 'receiver', type: 'rec', stability: 'development', config: Cfg, create: (set, _cfg, next): Receiver => ({ ...life(set.id), endpoints: () => ({}), next } as Receiver) },
    {
      kind: 'processor', type: 'proc', stability: 'development', config: Cfg,
      create: (set, cfg, next): Processor => ({
        ...life(set.id),
        mutatesData: (cfg as { mutates: boolean }).mutates,
        consume: (b: TraceBatch, ctx: ConsumeContext) => (journal.push(`consume ${set.id}`), next.consume(b, ctx)),
      }),
    },
    {
      kind: 'exporter', type: 'exp', stability: 'development', config: Cfg,
      create: (set): Exporter => ({ ...life(set.id), mutatesData: false, consume: async () => void journal.push(`export ${set.id}`) }),
    },
  ];
  return new Registry(factories);
}

const YAML = `
receivers: { rec: {} }
processors: { proc/a: {}, proc/b: {} }
exporters: { exp/1: {}, exp/2: {} }
service:
  pipelines:
    traces: { receivers: [rec], processors: [proc/a, proc/b], exporters: [exp/1, exp/2] }
`;

describe('pipeline graph', () => {
  it('starts exporters first and receivers last, stops in reverse, and wires processors in order', async () => {
    const journal: string[] = [];
    const registry = recordingRegistry(journal);
    const set = testSettings('graph');
    const graph = buildGraph(resolveConfig(parseConfigText(YAML, 't', {}), registry), { registry, logger: set.logger, metrics: new MetricsRegistry() });
    await startAll(startOrder(graph), testHost(set), AbortSignal.timeout(1000));
    expect(journal).toEqual(['start exp/1', 'start exp/2', 'start proc/b', 'start proc/a', 'start rec']);

    journal.length = 0;
    const next = (graph.receivers[0]!.component as unknown as { next: TracesConsumer }).next;
    await next.consume({ resourceSpans: [], spanCount: 0 }, { receiver: 'rec', transport: 'http' });
    expect(journal).toEqual(['consume proc/a', 'consume proc/b', 'export exp/1', 'export exp/2']);

    journal.length = 0;
    await shutdownAll(shutdownOrder(graph), AbortSignal.timeout(1000), set.logger);
    expect(journal).toEqual(['stop rec', 'stop proc/a', 'stop proc/b', 'stop exp/1', 'stop exp/2']);
  });

  it('on a start failure, stops what started and names the component', async () => {
    const journal: string[] = [];
    const registry = recordingRegistry(journal, 'proc/a');
    const set = testSettings('graph');
    const graph = buildGraph(resolveConfig(parseConfigText(YAML, 't', {}), registry), { registry, logger: set.logger, metrics: new MetricsRegistry() });
    const err = await startAll(startOrder(graph), testHost(set), AbortSignal.timeout(1000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartError);
    expect((err as Error).message).toBe('processors::proc/a (pipeline traces): failed to start: boom');
    expect(journal).toEqual(['start exp/1', 'start exp/2', 'start proc/b', 'stop proc/b', 'stop exp/2', 'stop exp/1']);
  });
});

describe('fanout', () => {
  const batch = (): TraceBatch => ({ resourceSpans: [{ scopeSpans: [{ spans: [] }] }], spanCount: 0 });
  const ctx = { receiver: 'r', transport: 'http' as const };

  it('gives mutating consumers their own copy when the batch is shared', async () => {
    const seen: TraceBatch[] = [];
    const consumer = (mutatesData: boolean): TracesConsumer => ({ mutatesData, consume: async (b) => void seen.push(b) });
    const original = batch();
    await fanout([consumer(false), consumer(true)]).consume(original, ctx);
    expect(seen[0]).toBe(original);
    expect(seen[1]).not.toBe(original);
    expect(seen[1]).toEqual(original);
  });

  it('is retryable if any consumer failed retryably, permanent only if all failures are', async () => {
    const ok: TracesConsumer = { mutatesData: false, consume: async () => undefined };
    const retry: TracesConsumer = { mutatesData: false, consume: async () => Promise.reject(new RetryableError('full', { reason: 'queue_full' })) };
    const perm: TracesConsumer = { mutatesData: false, consume: async () => Promise.reject(new PermanentError('bad')) };
    await expect(fanout([ok, perm, retry]).consume(batch(), ctx)).rejects.toBeInstanceOf(RetryableError);
    await expect(fanout([ok, perm]).consume(batch(), ctx)).rejects.toBeInstanceOf(PermanentError);
    await expect(fanout([ok, ok]).consume(batch(), ctx)).resolves.toBeUndefined();
  });

  it('would refuse only when every consumer would: one that takes the batch still gets it', () => {
    const ok: TracesConsumer = { mutatesData: false, consume: async () => undefined, refusal: () => undefined };
    const full = new RetryableError('full', { reason: 'queue_full' });
    const behind = new RetryableError('behind', { reason: 'export_behind' });
    const refusing = (err: Error): TracesConsumer => ({ mutatesData: false, consume: async () => undefined, refusal: () => err });
    expect(fanout([ok, refusing(full)]).refusal?.()).toBeUndefined();
    expect(fanout([refusing(full), refusing(behind)]).refusal?.()).toBe(full);
    expect(fanout([ok, ok]).refusal?.()).toBeUndefined();
  });
});
