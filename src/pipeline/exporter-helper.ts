// The exporterhelper (the collector's exporter/exporterhelper): every exporter is an encode
// and a send function wrapped in a bounded sending queue, a retry loop with exponential
// backoff, and a per-attempt timeout. It owns the accounting: every span it accepts ends as
// sent or as counted dropped with a reason, and every drop is logged once per batch.
//
// A batch is encoded once, in consume(), before it is queued: the queue holds the encoded
// payload (bytes), not the decoded batch, so the decoded objects become garbage as soon as
// the request is answered (node-performance.md: decoded data kept alive is what limits
// throughput, through GC), and every retry sends the same bytes.
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { untilDoneOrAborted, type Exporter, type Settings } from '../component/types.ts';
import { errorMessage, findRetryable, isPermanent, PermanentError, RetryableError } from '../errors.ts';
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
 * Sends one encoded payload once. Throws RetryableError (retryAfterMs = the server's hint) or
 * PermanentError; any other error counts as retryable. Must give up when `signal` aborts
 * (attempt timeout or shutdown). The same payload comes back on each retry: never mutate it.
 */
export type SendFn<P> = (payload: P, signal: AbortSignal) => Promise<PushResult | void>;

/** A send function for the batch itself (identity encoding): for exporters in the request path. */
export type PushFn = SendFn<TraceBatch>;

/** What a queued exporter supplies: how to encode a batch once, and how to send the encoding. */
export interface EncodingExporter<P> {
  /**
   * Runs in consume(), before the batch is queued, once per batch. The payload must not
   * reference the batch (its objects are meant to die with the request). A throw, or a
   * rejected promise, means the batch can never be sent: consume() refuses it as permanent.
   */
  encode(batch: TraceBatch): P | Promise<P>;
  send: SendFn<P>;
}

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

/** An encoded batch and the spans it carries. */
interface Entry<P> {
  payload: P;
  spanCount: number;
}

/**
 * FIFO of encoded batches bounded in spans. A batch holds its spans from reserve() until
 * done() (or release() when its encoding fails), so batches being encoded, sent or retried
 * count against the capacity too.
 */
class PayloadQueue<P> {
  readonly capacity: number;
  #items: (Entry<P> | undefined)[] = [];
  #head = 0;
  #heldSpans = 0;
  #closed = false;
  readonly #takers: ((entry: Entry<P> | undefined) => void)[] = [];

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get heldSpans(): number {
    return this.#heldSpans;
  }

  /**
   * Holds room for `spans` before the batch is encoded; false when full. A batch larger
   * than the whole queue fits only into an empty one.
   */
  reserve(spans: number): boolean {
    if (this.#heldSpans > 0 && this.#heldSpans + spans > this.capacity) return false;
    this.#heldSpans += spans;
    return true;
  }

  /** Gives back room reserved for a batch that will not be queued. */
  release(spans: number): void {
    this.#heldSpans -= spans;
  }

  /** Queues an encoded batch whose spans were reserved. */
  put(entry: Entry<P>): void {
    const taker = this.#takers.shift();
    if (taker) taker(entry);
    else this.#items.push(entry);
  }

  /** The next batch; undefined once the queue is closed and empty. */
  take(): Promise<Entry<P> | undefined> {
    if (this.#head < this.#items.length) return Promise.resolve(this.#shift());
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#takers.push(resolve));
  }

  /** The batch was sent or dropped: release its spans. */
  done(entry: Entry<P>): void {
    this.#heldSpans -= entry.spanCount;
  }

  close(): void {
    this.#closed = true;
    for (const taker of this.#takers.splice(0)) taker(undefined);
  }

  /** Removes and returns every batch still waiting. */
  drain(): Entry<P>[] {
    const rest = this.#items.slice(this.#head) as Entry<P>[];
    this.#items = [];
    this.#head = 0;
    for (const entry of rest) this.done(entry);
    return rest;
  }

  #shift(): Entry<P> {
    const entry = this.#items[this.#head]!;
    this.#items[this.#head++] = undefined;
    // Reclaim the consumed prefix without paying Array.shift's copy on every take.
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return entry;
  }
}

interface ExporterMetrics {
  sent: CounterHandle;
  sendFailed: CounterHandle;
  enqueueFailed: CounterHandle;
  retries: CounterHandle;
  dropped: Record<DropReason, CounterHandle>;
}

function exporterMetrics(set: Settings, queue: PayloadQueue<unknown> | undefined): ExporterMetrics {
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

const identity = <T>(value: T): T => value;

/**
 * `push` is either a send function for the batch itself (identity encoding: what the
 * in-request-path exporters use) or an encode + send pair, which a queued exporter should
 * use so that its queue holds bytes rather than decoded batches.
 */
export function createExporter<P>(set: Settings, opts: ExporterHelperOptions, push: PushFn | EncodingExporter<P>): Exporter {
  const fns = typeof push === 'function' ? { encode: identity<TraceBatch>, send: push } : push;
  return new HelperExporter(set, opts, fns as EncodingExporter<unknown>);
}

class HelperExporter<P> implements Exporter {
  readonly mutatesData = false;
  readonly #set: Settings;
  readonly #opts: ExporterHelperOptions;
  readonly #encode: EncodingExporter<P>['encode'];
  readonly #send: SendFn<P>;
  readonly #queue: PayloadQueue<P> | undefined;
  readonly #metrics: ExporterMetrics;
  /** Aborted when shutdown gives up: cuts in-flight attempts and backoff sleeps short. */
  readonly #stop = new AbortController();
  #state: 'created' | 'started' | 'stopping' = 'created';
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  readonly #consumers: Promise<void>[] = [];
  /** Sends awaited by consume() when the queue is disabled. */
  readonly #directSends = new Set<Promise<void>>();
  /** Asynchronous encodes of accepted batches not yet queued: shutdown waits for them. */
  readonly #encoding = new Set<Promise<unknown>>();
  #droppedAtShutdown = 0;

  constructor(set: Settings, opts: ExporterHelperOptions, fns: EncodingExporter<P>) {
    this.#set = set;
    this.#opts = opts;
    this.#encode = fns.encode;
    this.#send = fns.send;
    this.#queue = opts.sending_queue.enabled ? new PayloadQueue<P>(opts.sending_queue.queue_size) : undefined;
    this.#metrics = exporterMetrics(set, this.#queue as PayloadQueue<unknown> | undefined);
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

  refusal(): Error | undefined {
    if (this.#state !== 'started') return new RetryableError(this.#state === 'created' ? 'exporter is not started' : 'exporter is shutting down', { reason: this.#state === 'created' ? 'not_started' : 'shutting_down', retryAfterMs: DEFAULT_RETRY_AFTER_MS });
    const queue = this.#queue;
    if (queue && queue.heldSpans >= queue.capacity) {
      return new RetryableError(`sending queue is full (${queue.heldSpans} of ${queue.capacity} spans held); retry later`, { reason: 'queue_full', retryAfterMs: DEFAULT_RETRY_AFTER_MS });
    }
    return undefined;
  }

  async consume(batch: TraceBatch): Promise<void> {
    if (this.#state !== 'started') {
      const message = this.#state === 'created' ? 'exporter is not started' : 'exporter is shutting down';
      throw new RetryableError(message, { reason: this.#state === 'created' ? 'not_started' : 'shutting_down', retryAfterMs: DEFAULT_RETRY_AFTER_MS });
    }
    if (batch.spanCount === 0) return; // an empty envelope carries nothing to forward
    const queue = this.#queue;
    if (!queue) return this.#sendDirect(batch);
    const spanCount = batch.spanCount;
    // Room first, so that a batch about to be refused is not encoded for nothing.
    if (!queue.reserve(spanCount)) {
      this.#metrics.enqueueFailed.inc(spanCount);
      throw new RetryableError(
        `sending queue is full (${queue.heldSpans} of ${queue.capacity} spans held, batch of ${spanCount}); retry later`,
        { reason: 'queue_full', retryAfterMs: DEFAULT_RETRY_AFTER_MS },
      );
    }
    let payload: P | Promise<P>;
    try {
      payload = this.#encode(batch);
    } catch (err) {
      throw this.#refuseUnencodable(queue, spanCount, err);
    }
    if (!(payload instanceof Promise)) return queue.put({ payload, spanCount });
    const encoding = payload.then(
      (encoded) => queue.put({ payload: encoded, spanCount }),
      (err: unknown) => {
        throw this.#refuseUnencodable(queue, spanCount, err);
      },
    );
    this.#encoding.add(encoding);
    const forget = () => void this.#encoding.delete(encoding);
    encoding.then(forget, forget);
    return encoding;
  }

  /** A batch that cannot be encoded never will be: refused to the caller as permanent, not queued. */
  #refuseUnencodable(queue: PayloadQueue<P>, spanCount: number, err: unknown): Error {
    queue.release(spanCount);
    const refused = unencodable(err);
    this.#countFailure(spanCount, refused, true);
    return refused;
  }

  shutdown(signal: AbortSignal): Promise<void> {
    return (this.#stopping ??= this.#shutdown(signal));
  }

  async #shutdown(signal: AbortSignal): Promise<void> {
    this.#state = 'stopping';
    await untilDoneOrAborted(signal, () => this.#stop.abort(), async () => {
      await this.#starting?.catch(() => {}); // a failed start was reported to start's caller
      // Batches accepted while being encoded join the queue before it closes.
      await Promise.allSettled(this.#encoding);
      // Consumers keep sending, with retries, until the queue is empty or we give up.
      this.#queue?.close();
      await Promise.allSettled([...this.#consumers, ...this.#directSends]);
      for (const entry of this.#queue?.drain() ?? []) this.#countDropped(entry.spanCount, 'shutdown');
    });
    if (this.#droppedAtShutdown > 0) {
      this.#set.logger.warn({ spans: this.#droppedAtShutdown, reason: 'shutdown' }, 'shutdown gave up before the queue was sent: dropped spans');
    }
    await this.#opts.shutdown?.();
  }

  async #runConsumer(queue: PayloadQueue<P>): Promise<void> {
    // Once shutdown gives up, what is left in the queue is counted by #shutdown, unsent.
    while (!this.#stop.signal.aborted) {
      const entry = await queue.take();
      if (entry === undefined) return;
      await this.#export(entry).catch(() => {}); // #export has counted and logged the failure
      queue.done(entry);
    }
  }

  #sendDirect(batch: TraceBatch): Promise<void> {
    const send = this.#encodeAndExport(batch);
    const forget = () => void this.#directSends.delete(send);
    this.#directSends.add(send);
    send.then(forget, forget);
    return send;
  }

  async #encodeAndExport(batch: TraceBatch): Promise<void> {
    let payload: P;
    try {
      payload = await this.#encode(batch);
    } catch (err) {
      const refused = unencodable(err);
      this.#countFailure(batch.spanCount, refused);
      throw refused;
    }
    return this.#export({ payload, spanCount: batch.spanCount });
  }

  /** Sends with retries and accounts for the outcome; rethrows the final failure. */
  async #export(entry: Entry<P>): Promise<void> {
    let result: PushResult | void;
    try {
      result = await this.#sendWithRetry(entry);
    } catch (err) {
      this.#countFailure(entry.spanCount, err);
      throw err;
    }
    this.#countSent(entry.spanCount, result);
  }

  async #sendWithRetry(entry: Entry<P>): Promise<PushResult | void> {
    const retry = this.#opts.retry_on_failure;
    const backoff = new Backoff(retry);
    const startedAt = performance.now();
    for (;;) {
      try {
        return await this.#send(entry.payload, this.#attemptSignal());
      } catch (err) {
        if (!retry.enabled || isPermanent(err) || this.#stop.signal.aborted) throw err;
        // The server's throttle hint is a floor, never a ceiling (collector retry_sender).
        const delay = Math.max(backoff.next(), findRetryable(err)?.retryAfterMs ?? 0);
        if (retry.max_elapsed_time > 0 && performance.now() - startedAt + delay > retry.max_elapsed_time) throw err;
        this.#metrics.retries.inc();
        this.#set.logger.debug({ spans: entry.spanCount, delay_ms: Math.round(delay), error: errorMessage(err) }, 'export failed, will retry');
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

  #countSent(spanCount: number, result: PushResult | void): void {
    const rejected = Math.min(Math.max(Math.trunc(result?.rejectedSpans ?? 0), 0), spanCount);
    this.#metrics.sent.inc(spanCount - rejected);
    if (rejected > 0) this.#metrics.dropped.rejected_by_downstream.inc(rejected);
    // Partial success is final (OTLP: MUST NOT retry); with 0 rejected it is a warning.
    if (rejected > 0 || result?.message) {
      this.#set.logger.warn(
        { spans: spanCount, rejected_spans: rejected, reason: 'rejected_by_downstream', message: result?.message },
        'downstream rejected part of the batch',
      );
    }
  }

  /** `refused`: consume() rejects, so the caller refuses the batch to its client (not a drop). */
  #countFailure(spanCount: number, err: unknown, refused = !this.#queue): void {
    this.#metrics.sendFailed.inc(spanCount);
    const reason: DropReason = isPermanent(err) ? 'permanent_error' : this.#stop.signal.aborted ? 'shutdown' : 'retries_exhausted';
    if (refused) {
      this.#set.logger.warn({ spans: spanCount, reason, error: errorMessage(err) }, 'export failed; refusing the batch');
      return;
    }
    this.#countDropped(spanCount, reason);
    if (reason !== 'shutdown') {
      this.#set.logger.warn({ spans: spanCount, reason, error: errorMessage(err) }, 'export failed: dropped spans');
    }
  }

  /** Shutdown drops are summed and logged once by #shutdown. */
  #countDropped(spans: number, reason: DropReason): void {
    this.#metrics.dropped[reason].inc(spans);
    if (reason === 'shutdown') this.#droppedAtShutdown += spans;
  }
}

/** An encoding failure, as the permanent error consume() refuses with. */
function unencodable(err: unknown): Error {
  return err instanceof PermanentError ? err : new PermanentError(`cannot encode the batch: ${errorMessage(err)}`, { cause: err });
}
