import { describe, expect, it } from 'vitest';
import { MemoryLimiter, MemoryLimiterConfig, memoryLimits } from '../../src/processors/memory-limiter.ts';
import { RetryableError } from '../../src/errors.ts';
import { statusOf } from '../../src/otlp/status.ts';
import { TracesSink } from '../helpers/sink.ts';
import { testSettings } from '../helpers/settings.ts';

const MiB = 1024 * 1024;
const batch = { resourceSpans: [], spanCount: 1 };
const ctx = { receiver: 'otlp', transport: 'http' as const };

describe('memory_limiter', () => {
  it('computes soft and hard limits from MiB or percentages', () => {
    expect(memoryLimits(MemoryLimiterConfig.parse({ limit_mib: 1000 }))).toEqual({ hardBytes: 1000 * MiB, softBytes: 800 * MiB });
    expect(memoryLimits(MemoryLimiterConfig.parse({ limit_mib: 1000, spike_limit_mib: 100 }))).toEqual({ hardBytes: 1000 * MiB, softBytes: 900 * MiB });
    expect(memoryLimits(MemoryLimiterConfig.parse({ limit_percentage: 80, spike_limit_percentage: 20 }), 1000 * MiB)).toEqual({
      hardBytes: 800 * MiB,
      softBytes: 600 * MiB,
    });
  });

  it('rejects configs without a limit or with a spike above it', () => {
    expect(MemoryLimiterConfig.safeParse({}).success).toBe(false);
    expect(MemoryLimiterConfig.safeParse({ limit_mib: 100, spike_limit_mib: 100 }).error?.issues[0]?.path).toEqual(['spike_limit_mib']);
  });

  it('refuses with a retryable status above the soft limit and accepts again below it', async () => {
    let used = 100 * MiB;
    const sink = new TracesSink();
    const set = testSettings('memory_limiter');
    const limiter = new MemoryLimiter(set, MemoryLimiterConfig.parse({ limit_mib: 1000, check_interval: '1h' }), sink, () => used);
    await limiter.start();
    await limiter.consume(batch, ctx);
    expect(sink.batches).toHaveLength(1);

    used = 850 * MiB;
    limiter.check();
    const err = await limiter.consume(batch, ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryableError);
    expect(statusOf(err)).toMatchObject({ httpStatus: 503, grpcCode: 14, reason: 'memory_limit' });
    expect(sink.batches).toHaveLength(1);
    expect(set.metrics.gauge('agentsec_memory_limiter_refusing', '', ['processor']).get('memory_limiter')).toBe(1);
    expect(set.logs.some((l) => String(l.msg).includes('refusing data'))).toBe(true);
    // Asked before any work: the same refusal; and what follows it is asked too while it accepts.
    expect(limiter.refusal()).toMatchObject({ reason: 'memory_limit' });

    used = 500 * MiB;
    limiter.check();
    expect(limiter.refusal()).toBeUndefined();
    sink.refuseWith = new RetryableError('exporters behind', { reason: 'export_behind' });
    expect(limiter.refusal()).toBe(sink.refuseWith);
    sink.refuseWith = undefined;
    await limiter.consume(batch, ctx);
    expect(sink.batches).toHaveLength(2);
    await limiter.shutdown();
    await limiter.shutdown();
  });
});
