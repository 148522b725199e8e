// The exporterhelper (the collector's exporter/exporterhelper): every exporter is a push
// function wrapped in a bounded sending queue, a retry loop with exponential backoff, and a
// per-attempt timeout. It owns the accounting: every span it accepts ends as sent or as
// counted dropped with a reason, and every drop is logged once per batch.
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Exporter, Settings } from '../component/types.ts';
import { errorMessage, findRetryable, isPermanent, RetryableError } from '../errors.ts';
import type { TraceBatch } from '../otlp/types.ts';
import { DEFAULT_RETRY_AFTER_MS } from '../otlp/status.ts';
import type { CounterHandle } from '../telemetry/metrics.ts';
import { duration } from '../config/units.ts';

export const SendingQueueConfig = z
  .strictObject({
    enabled: z.boolean().default(true),
    num_consumers: z.number().int().min(1).default(4),
    /** In spans, not requests: it bounds memory whatever the batch sizes. */
    queue_size: z.number().int().min(1).default(50_000),
  })
  .prefault({});

// `duration` is a transform, so its defaults go through prefault (parsed) rather than
// default (which zod 4 returns as the output unparsed).
export const RetryConfig = z
  .strictObject({
    enabled: z.boolean().default(true),
    initial_interval: duration.prefault('1s'),
    max_interval: duration.prefault('30s'),
    /** 0 = retry forever. */
    max_elapsed_time: duration.prefault('300s'),
    multiplier: z.number().min(1).default(1.5),
    randomization_factor: z.number().min(0).max(1).default(0.5),
  })
  .prefault({});

export type SendingQueueSettings = z.output<typeof SendingQueueConfig>;
export type RetrySettings = z.output<typeof RetryConfig>;

/**
 * For exporters whose push is quick and local (file, debug): no queue and no retry, so the
 * push runs in the request path and a failure goes straight back to the client as retryable.
 */
export const IN_REQUEST_PATH: Pick<ExporterHelperOptions, 'sending_queue' | 'retry_on_failure' | 'timeout'> = {
  sending_queue: { enabled: false, num_consumers: 1, queue_size: 1 },
  retry_on_failure: { enabled: false, initial_interval: 0, max_interval: 0, max_elapsed_time: 0, multiplier: 1, randomization_factor: 0 },
  timeout: 30_000,
};

/** Partial success reported by the downstream: these spans were refused, the rest accepted. */
export interface PushResult {
  rejectedSpans?: number;
  message?: string;
}

/**
 * Sends one batch once. Throws RetryableError (retryAfterMs = the server's hint) or
 * PermanentError; any other error counts as retryable. Must give up when `signal` aborts
 * (attempt timeout or shutdown). The same batch object comes back on each retry, so a
 * transport may cache its encoding per batch.
 */
export type PushFn = (batch: TraceBatch, signal: AbortSignal) => Promise<PushResult | void>;

export interface ExporterHelperOptions {
  sending_queue: SendingQueueSettings;
  retry_on_failure: RetrySettings;
  /** Per attempt, in ms; 0 = no limit. */
  timeout: number;
  /** Runs before the first push (open connections, read TLS files). */
  start?: () => Promise<void>;
  /** Runs after the queue is drained or given up on; must be safe without start. */
  shutdown?: () => Promise<void>;
}

const DROP_REASONS = ['permanent_error', 'retries_exhausted', 'shutdown', 'rejected_by_downstream'] as const;
type DropReason = (typeof DROP_REASONS)[number];

/** Exponential backoff with jitter (cenkalti/backoff, as configretry uses it). */
export class Backoff {
  readonly #cfg: RetrySettings;
  readonly #random: () => number;
  #interval: number;

  constructor(cfg: RetrySettings, random: () => number = Math.random) {
    this.#cfg = cfg;
    this.#random = random;
    this.#interval = cfg.initial_interval;
  }

  /** The wait before the next attempt, in ms: the interval ± randomization_factor of it. */
  next(): number {
    const interval = this.#interval;
    this.#interval = Math.min(interval * this.#cfg.multiplier, this.#cfg.max_interval);
    const delta = this.#cfg.randomization_factor * interval;
    return interval - delta + this.#random() * 2 * delta;
  }
}

/**
 * FIFO of batches bounded in spans. A batch holds its spans from offer() until done(), so
 * batches being sent or retried count against the capacity too.
 */
class BatchQueue {
  readonly capacity: number;
  #items: (TraceBatch | undefined)[] = [];
  #head = 0;
  #heldSpans = 0;
  #closed = false;
  readonly #takers: ((batch: TraceBatch | undefined) => void)[] = [];

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get heldSpans(): number {
    return this.#heldSpans;
  }

  /** False when full. A batch larger than the whole queue fits only into an empty one. */
  offer(batch: TraceBatch): boolean {
    if (this.#heldSpans > 0 && this.#heldSpans + batch.spanCount > this.capacity) return false;
    this.#heldSpans += batch.spanCount;
    const taker = this.#takers.shift();
    if (taker) taker(batch);
    else this.#items.push(batch);
    return true;
  }

  /** The next batch; undefined once the queue is closed and empty. */
  take(): Promise<TraceBatch | undefined> {
    if (this.#head < this.#items.length) return Promise.resolve(this.#shift());
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#takers.push(resolve));
  }

  /** The batch was sent or dropped: release its spans. */
  done(batch: TraceBatch): void {
    this.#heldSpans -= batch.spanCount;
  }

  close(): void {
    this.#closed = true;
    for (const taker of this.#takers.splice(0)) taker(undefined);
  }

  /** Removes and returns every batch still waiting. */
  drain(): TraceBatch[] {
    const rest = this.#items.slice(this.#head) as TraceBatch[];
    this.#items = [];
    this.#head = 0;
    for (const batch of rest) this.done(batch);
    return rest;
  }

  #shift(): TraceBatch {
    const batch = this.#items[this.#head]!;
    this.#items[this.#head++] = undefined;
    // Reclaim the consumed prefix without paying Array.shift's copy on every take.
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return batch;
  }
}

interface ExporterMetrics {
  sent: CounterHandle;
  sendFailed: CounterHandle;
  enqueueFailed: CounterHandle;
  retries: CounterHandle;
  dropped: Record<DropReason, CounterHandle>;
}

function exporterMetrics(set: Settings, queue: BatchQueue | undefined): ExporterMetrics {
  const m = set.metrics;
  const id = set.id;
  const dropped = m.counter('agentsec_exporter_dropped_spans_total', 'Spans the exporter gave up on, by reason.', ['exporter', 'reason']);
  if (queue) {
    m.gauge('agentsec_exporter_queue_size', 'Spans in the sending queue, waiting or being sent.', ['exporter']).track([id], () => queue.heldSpans);
    m.gauge('agentsec_exporter_queue_capacity', 'Capacity of the sending queue, in spans.', ['exporter']).set([id], queue.capacity);
  }
  return {
    sent: m.counter('agentsec_exporter_sent_spans_total', 'Spans accepted by the destination.', ['exporter']).labels(id),
    sendFailed: m.counter('agentsec_exporter_send_failed_spans_total', 'Spans whose export finally failed.', ['exporter']).labels(id),
    enqueueFailed: m
      .counter('agentsec_exporter_enqueue_failed_spans_total', 'Spans refused because the sending queue was full.', ['exporter'])
      .labels(id),
    retries: m.counter('agentsec_exporter_retries_total', 'Export attempts retried after a retryable failure.', ['exporter']).labels(id),
    dropped: Object.fromEntries(DROP_REASONS.map((r) => [r, dropped.labels(id, r)])) as Record<DropReason, CounterHandle>,
  };
}

export function createExporter(set: Settings, opts: ExporterHelperOptions, push: PushFn): Exporter {
  return new HelperExporter(set, opts, push);
}

class HelperExporter implements Exporter {
  readonly mutatesData = false;
  readonly #set: Settings;
  readonly #opts: ExporterHelperOptions;
  readonly #push: PushFn;
  readonly #queue: BatchQueue | undefined;
  readonly #metrics: ExporterMetrics;
  /** Aborted when shutdown gives up: cuts in-flight attempts and backoff sleeps short. */
  readonly #stop = new AbortController();
  #state: 'created' | 'started' | 'stopping' = 'created';
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  readonly #consumers: Promise<void>[] = [];
  /** Sends awaited by consume() when the queue is disabled. */
  readonly #directSends = new Set<Promise<void>>();
  #droppedAtShutdown = 0;

  constructor(set: Settings, opts: ExporterHelperOptions, push: PushFn) {
    this.#set = set;
    this.#opts = opts;
    this.#push = push;
    this.#queue = opts.sending_queue.enabled ? new BatchQueue(opts.sending_queue.queue_size) : undefined;
    this.#metrics = exporterMetrics(set, this.#queue);
  }

  start(): Promise<void> {
    return (this.#starting ??= this.#start());
  }

  async #start(): Promise<void> {
    await this.#opts.start?.();
    if (this.#state !== 'created') return; // shut down while starting
    this.#state = 'started';
    const queue = this.#queue;
    if (queue) for (let i = 0; i < this.#opts.sending_queue.num_consumers; i++) this.#consumers.push(this.#runConsumer(queue));
  }

  async consume(batch: TraceBatch): Promise<void> {
    if (this.#state !== 'started') {
      const message = this.#state === 'created' ? 'exporter is not started' : 'exporter is shutting down';
      throw new RetryableError(message, { reason: this.#state === 'created' ? 'not_started' : 'shutting_down', retryAfterMs: DEFAULT_RETRY_AFTER_MS });
    }
    if (batch.spanCount === 0) return; // an empty envelope carries nothing to forward
    if (!this.#queue) return this.#sendDirect(batch);
    if (!this.#queue.offer(batch)) {
      this.#metrics.enqueueFailed.inc(batch.spanCount);
      throw new RetryableError(
        `sending queue is full (${this.#queue.heldSpans} of ${this.#queue.capacity} spans held, batch of ${batch.spanCount}); retry later`,
        { reason: 'queue_full', retryAfterMs: DEFAULT_RETRY_AFTER_MS },
      );
    }
  }

  shutdown(signal: AbortSignal): Promise<void> {
    return (this.#stopping ??= this.#shutdown(signal));
  }

  async #shutdown(signal: AbortSignal): Promise<void> {
    this.#state = 'stopping';
    const giveUp = () => this.#stop.abort();
    signal.addEventListener('abort', giveUp, { once: true });
    if (signal.aborted) giveUp();
    try {
      await this.#starting?.catch(() => {}); // a failed start was reported to start's caller
      // Consumers keep sending, with retries, until the queue is empty or we give up.
      this.#queue?.close();
      await Promise.allSettled([...this.#consumers, ...this.#directSends]);
      for (const batch of this.#queue?.drain() ?? []) this.#countDropped(batch.spanCount, 'shutdown');
    } finally {
      signal.removeEventListener('abort', giveUp);
    }
    if (this.#droppedAtShutdown > 0) {
      this.#set.logger.warn({ spans: this.#droppedAtShutdown, reason: 'shutdown' }, 'shutdown gave up before the queue was sent: dropped spans');
    }
    await this.#opts.shutdown?.();
  }

  async #runConsumer(queue: BatchQueue): Promise<void> {
    // Once shutdown gives up, what is left in the queue is counted by #shutdown, unsent.
    while (!this.#stop.signal.aborted) {
      const batch = await queue.take();
      if (batch === undefined) return;
      await this.#export(batch).catch(() => {}); // #export has counted and logged the failure
      queue.done(batch);
    }
  }

  #sendDirect(batch: TraceBatch): Promise<void> {
    const send = this.#export(batch);
    const forget = () => void this.#directSends.delete(send);
    this.#directSends.add(send);
    send.then(forget, forget);
    return send;
  }

  /** Sends with retries and accounts for the outcome; rethrows the final failure. */
  async #export(batch: TraceBatch): Promise<void> {
    let result: PushResult | void;
    try {
      result = await this.#sendWithRetry(batch);
    } catch (err) {
      this.#countFailure(batch, err);
      throw err;
    }
    this.#countSent(batch, result);
  }

  async #sendWithRetry(batch: TraceBatch): Promise<PushResult | void> {
    const retry = this.#opts.retry_on_failure;
    const backoff = new Backoff(retry);
    const startedAt = performance.now();
    for (;;) {
      try {
        return await this.#push(batch, this.#attemptSignal());
      } catch (err) {
        if (!retry.enabled || isPermanent(err) || this.#stop.signal.aborted) throw err;
        // The server's throttle hint is a floor, never a ceiling (collector retry_sender).
        const delay = Math.max(backoff.next(), findRetryable(err)?.retryAfterMs ?? 0);
        if (retry.max_elapsed_time > 0 && performance.now() - startedAt + delay > retry.max_elapsed_time) throw err;
        this.#metrics.retries.inc();
        this.#set.logger.debug({ spans: batch.spanCount, delay_ms: Math.round(delay), error: errorMessage(err) }, 'export failed, will retry');
        try {
          await sleep(delay, undefined, { signal: this.#stop.signal });
        } catch {
          throw err; // shutdown gave up during the wait: report the failure that made us wait
        }
      }
    }
  }

  #attemptSignal(): AbortSignal {
    const timeout = this.#opts.timeout;
    return timeout > 0 ? AbortSignal.any([AbortSignal.timeout(timeout), this.#stop.signal]) : this.#stop.signal;
  }

  #countSent(batch: TraceBatch, result: PushResult | void): void {
    const rejected = Math.min(Math.max(Math.trunc(result?.rejectedSpans ?? 0), 0), batch.spanCount);
    this.#metrics.sent.inc(batch.spanCount - rejected);
    if (rejected > 0) this.#metrics.dropped.rejected_by_downstream.inc(rejected);
    // Partial success is final (OTLP: MUST NOT retry); with 0 rejected it is a warning.
    if (rejected > 0 || result?.message) {
      this.#set.logger.warn(
        { spans: batch.spanCount, rejected_spans: rejected, reason: 'rejected_by_downstream', message: result?.message },
        'downstream rejected part of the batch',
      );
    }
  }

  #countFailure(batch: TraceBatch, err: unknown): void {
    this.#metrics.sendFailed.inc(batch.spanCount);
    const reason: DropReason = isPermanent(err) ? 'permanent_error' : this.#stop.signal.aborted ? 'shutdown' : 'retries_exhausted';
    if (!this.#queue) {
      // Not dropped: consume() rejects, so the caller refuses the batch to its client.
      this.#set.logger.warn({ spans: batch.spanCount, reason, error: errorMessage(err) }, 'export failed; refusing the batch');
      return;
    }
    this.#countDropped(batch.spanCount, reason);
    if (reason !== 'shutdown') {
      this.#set.logger.warn({ spans: batch.spanCount, reason, error: errorMessage(err) }, 'export failed: dropped spans');
    }
  }

  /** Shutdown drops are summed and logged once by #shutdown. */
  #countDropped(spans: number, reason: DropReason): void {
    this.#metrics.dropped[reason].inc(spans);
    if (reason === 'shutdown') this.#droppedAtShutdown += spans;
  }
}
