// memory_limiter: refuses data with a retryable error while memory in use is above the
// soft limit (hard − spike), so clients back off before the process runs out of memory
// (the collector's memorylimiterprocessor). Put it first in the processor list.
// "In use" is V8 heap plus external memory (request buffers): what our data occupies,
// and unlike RSS it falls as soon as garbage is collected.
import { totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { z } from 'zod';
import type { ConsumeContext, Processor, ProcessorFactory, Settings, TracesConsumer } from '../component/types.ts';
import { RetryableError } from '../errors.ts';
import type { TraceBatch } from '../otlp/types.ts';
import { duration } from '../config/units.ts';

const MiB = 1024 * 1024;

export const MemoryLimiterConfig = z
  .strictObject({
    check_interval: duration.prefault('1s'),
    /** Hard limit in MiB; or limit_percentage of the container's memory limit. */
    limit_mib: z.number().int().positive().optional(),
    /** Headroom below the hard limit where refusing starts; default 20% of the limit. */
    spike_limit_mib: z.number().int().nonnegative().optional(),
    limit_percentage: z.number().int().min(1).max(100).optional(),
    spike_limit_percentage: z.number().int().min(0).max(100).optional(),
  })
  .superRefine((c, ctx) => {
    if (c.limit_mib === undefined && c.limit_percentage === undefined) {
      ctx.addIssue({ code: 'custom', message: 'set limit_mib or limit_percentage' });
    }
    if (c.limit_mib !== undefined && c.limit_percentage !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'set either limit_mib or limit_percentage, not both' });
    }
    if (c.limit_mib !== undefined && c.spike_limit_mib !== undefined && c.spike_limit_mib >= c.limit_mib) {
      ctx.addIssue({ code: 'custom', path: ['spike_limit_mib'], message: `must be less than limit_mib (${c.limit_mib})` });
    }
  });

export type MemoryLimiterConfig = z.output<typeof MemoryLimiterConfig>;

export interface MemoryLimits {
  hardBytes: number;
  softBytes: number;
}

/**
 * The memory this process can use: the container's limit (cgroup) when there is one, else the
 * machine's, and never more than V8's heap limit (which stops the process long before a large
 * machine's memory is used).
 */
export function memoryAvailable(): number {
  const constrained = process.constrainedMemory();
  const total = totalmem();
  const machine = constrained > 0 && constrained < total ? constrained : total;
  return Math.min(machine, getHeapStatistics().heap_size_limit);
}

/** Resolves percentages against memoryAvailable(). */
export function memoryLimits(c: MemoryLimiterConfig, available = memoryAvailable()): MemoryLimits {
  const hard = c.limit_mib !== undefined ? c.limit_mib * MiB : Math.floor((available * c.limit_percentage!) / 100);
  const spike =
    c.spike_limit_mib !== undefined ? c.spike_limit_mib * MiB
    : c.spike_limit_percentage !== undefined ? Math.floor((available * c.spike_limit_percentage) / 100)
    : Math.floor(hard * 0.2);
  return { hardBytes: hard, softBytes: Math.max(0, hard - spike) };
}

export function memoryInUse(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

export class MemoryLimiter implements Processor {
  readonly mutatesData = false;
  readonly #next: TracesConsumer;
  readonly #set: Settings;
  readonly #limits: MemoryLimits;
  readonly #interval: number;
  readonly #measure: () => number;
  #timer: NodeJS.Timeout | undefined;
  #refusing = false;

  constructor(set: Settings, cfg: MemoryLimiterConfig, next: TracesConsumer, measure: () => number = memoryInUse) {
    this.#set = set;
    this.#next = next;
    this.#limits = memoryLimits(cfg);
    this.#interval = cfg.check_interval;
    this.#measure = measure;
    set.metrics.gauge('agentsec_memory_limiter_refusing', '1 while the memory limiter refuses data.', ['processor']).track([set.id], () => (this.#refusing ? 1 : 0));
    set.metrics.gauge('agentsec_memory_limiter_soft_limit_bytes', 'Memory in use above which data is refused.', ['processor']).set([set.id], this.#limits.softBytes);
  }

  async start(): Promise<void> {
    this.check();
    this.#timer ??= setInterval(() => this.check(), this.#interval).unref();
  }

  /** Reads memory in use and updates the refusing state; logs only on transitions. */
  check(): void {
    const used = this.#measure();
    const refusing = used > this.#limits.softBytes;
    if (refusing !== this.#refusing) {
      this.#refusing = refusing;
      const fields = { used_mib: Math.round(used / MiB), soft_limit_mib: Math.round(this.#limits.softBytes / MiB), hard_limit_mib: Math.round(this.#limits.hardBytes / MiB) };
      if (refusing) this.#set.logger.warn(fields, 'memory usage above the soft limit: refusing data until it falls');
      else this.#set.logger.info(fields, 'memory usage back below the soft limit: accepting data');
    }
    // Above the hard limit, ask V8 to collect now when the process allows it (--expose-gc).
    if (used > this.#limits.hardBytes) (globalThis as { gc?: () => void }).gc?.();
  }

  refusal(): Error | undefined {
    if (this.#refusing) return new RetryableError('data refused due to high memory usage', { reason: 'memory_limit', retryAfterMs: this.#interval });
    return this.#next.refusal?.();
  }

  consume(batch: TraceBatch, ctx: ConsumeContext): Promise<void> {
    if (this.#refusing) {
      return Promise.reject(new RetryableError('data refused due to high memory usage', { reason: 'memory_limit', retryAfterMs: this.#interval }));
    }
    return this.#next.consume(batch, ctx);
  }

  async shutdown(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

export const memoryLimiterFactory: ProcessorFactory<typeof MemoryLimiterConfig> = {
  kind: 'processor',
  type: 'memory_limiter',
  stability: 'beta',
  config: MemoryLimiterConfig,
  create: (set, cfg, next) => new MemoryLimiter(set, cfg, next),
};
