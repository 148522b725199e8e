// What the network finding sinks (webhook, Alertmanager, OTLP logs) share: deliver() snapshots
// the finding into the sink's own payload and queues it, synchronously, never waiting on the
// network; one worker per sink sends what is queued, in order, a batch at a time, with retries
// (exponential backoff with jitter, the server's Retry-After / RetryInfo as a floor), and every
// finding ends as delivered or as counted dropped with a reason:
//
//   agentsec_finding_sink_delivered_total{sink}
//   agentsec_finding_sink_dropped_total{sink,reason}   queue_full · permanent_error · retries_exhausted
//                                                      · rejected_by_downstream · unencodable · shutdown
//   agentsec_finding_sink_queue_size{sink}             waiting + being sent
//   agentsec_finding_sink_retries_total{sink}
//
// Not the exporter helper (createExporter): that one carries trace batches and answers the
// receiver; a finding sink has no caller to push back on, so it only queues, retries and drops.
import { untilDoneOrAborted } from '../../component/types.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { errorMessage, findRetryable, isPermanent } from '../../errors.ts';
import { Backoff, type RetrySettings } from '../../pipeline/exporter-helper.ts';
import type { CounterHandle, MetricsRegistry } from '../../telemetry/metrics.ts';
import type { Finding } from '../finding.ts';

/** Reported as the product version in OCSF metadata and the OTLP instrumentation scope. */
export const PRODUCT_VERSION = '0.1.0';
export const USER_AGENT = `agentsec-collector/${PRODUCT_VERSION}`;
/** Sinks read an answer for an error message or a partial success only: keep at most this much. */
export const MAX_ANSWER_BYTES = 64 * 1024;

/** How long close() drains when its caller gives no deadline. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 5000;

/** What a queued sink needs from the detect processor's Settings. */
export interface SinkContext {
  logger: Logger;
  metrics: MetricsRegistry;
}

/** What the sink's destination said about a batch it accepted. */
export interface SendResult {
  /** Findings of the batch the destination accepted but refused to keep (OTLP partial success). */
  rejected?: number;
  message?: string;
}

/**
 * One sink's wire: how a finding becomes a queued payload (at deliver time), how a batch of
 * payloads becomes one request (once per batch, reused on every retry), and how it is sent.
 */
export interface SinkTransport<P, R> {
  /** Opens what the sink needs (TLS files, connections); a throw fails the collector's start. */
  start?(): Promise<void>;
  /**
   * A snapshot of the finding: the detect processor upgrades a finding in place and delivers
   * the same object again, so nothing queued may refer to it. A throw drops it (unencodable).
   */
  encode(f: Finding): P;
  request(payloads: P[]): R;
  /**
   * Sends once. Throws RetryableError (retryAfterMs = the server's hint) for what may succeed
   * later, PermanentError for what never will; anything else counts as retryable. Gives up
   * when `signal` aborts (attempt timeout or the end of close()'s drain).
   */
  send(request: R, signal: AbortSignal): Promise<SendResult | void>;
  close?(): void;
}

export interface QueueSettings {
  /** The sink's label, e.g. webhook/0. */
  name: string;
  /** Findings waiting to be sent, at most (the batch being sent is not counted). */
  maxQueue: number;
  /** Findings per request. */
  maxBatch: number;
  retry: RetrySettings;
  /** Per attempt, in ms; 0 = no limit. */
  timeout: number;
}

const DROP_REASONS = ['queue_full', 'permanent_error', 'retries_exhausted', 'rejected_by_downstream', 'unencodable', 'shutdown'] as const;
type DropReason = (typeof DROP_REASONS)[number];

/** FIFO with a fixed capacity: pushing into a full ring evicts (and returns) the oldest. */
class Ring<T> {
  readonly #slots: (T | undefined)[];
  #head = 0;
  #size = 0;

  constructor(capacity: number) {
    this.#slots = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.#size;
  }

  push(item: T): T | undefined {
    const cap = this.#slots.length;
    let evicted: T | undefined;
    if (this.#size === cap) {
      evicted = this.#slots[this.#head];
      this.#slots[this.#head] = item;
      this.#head = (this.#head + 1) % cap;
      return evicted;
    }
    this.#slots[(this.#head + this.#size) % cap] = item;
    this.#size++;
    return undefined;
  }

  take(max: number): T[] {
    const n = Math.min(max, this.#size);
    const out: T[] = [];
    for (let i = 0; i < n; i++) {
      out.push(this.#slots[this.#head]!);
      this.#slots[this.#head] = undefined;
      this.#head = (this.#head + 1) % this.#slots.length;
    }
    this.#size -= n;
    return out;
  }

  clear(): number {
    const n = this.#size;
    this.take(n);
    return n;
  }
}

interface Entry<P> {
  id: string;
  payload: P;
}

/** A failure burst: from the first failed attempt to the next success. Logged once. */
interface Burst {
  dropped: number;
  retries: number;
}

export class QueuedSink<P, R> {
  readonly #s: QueueSettings;
  readonly #t: SinkTransport<P, R>;
  readonly #log: Logger;
  readonly #queue: Ring<Entry<P>>;
  readonly #delivered: CounterHandle;
  readonly #retries: CounterHandle;
  readonly #dropped: Record<DropReason, CounterHandle>;
  /** Aborted when close() gives up: cuts the attempt in flight and any backoff wait short. */
  readonly #stop = new AbortController();
  #inFlight = 0;
  #worker: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  #burst: Burst | undefined;
  #overflowWarned = false;
  #droppedAtShutdown = 0;

  constructor(ctx: SinkContext, settings: QueueSettings, transport: SinkTransport<P, R>) {
    this.#s = settings;
    this.#t = transport;
    this.#log = ctx.logger.child({ sink: settings.name });
    this.#queue = new Ring(settings.maxQueue);
    const m = ctx.metrics;
    const name = settings.name;
    this.#delivered = m.counter('agentsec_finding_sink_delivered_total', 'Findings a sink delivered to its destination.', ['sink']).labels(name);
    this.#retries = m.counter('agentsec_finding_sink_retries_total', 'Finding deliveries retried after a retryable failure (per request).', ['sink']).labels(name);
    const dropped = m.counter('agentsec_finding_sink_dropped_total', 'Findings a sink gave up on, by reason.', ['sink', 'reason']);
    // Every reason from the start, at 0, so that a rate() alert has a series to watch.
    this.#dropped = Object.fromEntries(DROP_REASONS.map((r) => [r, dropped.labels(name, r)])) as Record<DropReason, CounterHandle>;
    m.gauge('agentsec_finding_sink_queue_size', 'Findings in a sink: waiting, or being sent.', ['sink']).track([name], () => this.queued);
  }

  /** Waiting plus being sent. */
  get queued(): number {
    return this.#queue.size + this.#inFlight;
  }

  async start(): Promise<void> {
    await this.#t.start?.();
    if (this.#closed || this.#worker) return;
    this.#worker = this.#run();
  }

  deliver(f: Finding): void {
    if (this.#closed) {
      this.#drop(1, 'shutdown');
      return;
    }
    let payload: P;
    try {
      payload = this.#t.encode(f);
    } catch (err) {
      this.#drop(1, 'unencodable');
      this.#log.warn({ finding: f.id, error: errorMessage(err) }, 'cannot encode the finding for this sink: dropped');
      return;
    }
    const evicted = this.#queue.push({ id: f.id, payload });
    if (evicted) {
      // The destination is slower than findings arrive (or down): the oldest waiting finding
      // gives way. It is not lost to the security team: it is still on its spans (attributes,
      // event, finding span) and in GET /api/findings; only this sink misses it.
      this.#drop(1, 'queue_full');
      if (!this.#overflowWarned) {
        this.#overflowWarned = true;
        this.#log.warn({ max_queue: this.#s.maxQueue, finding: evicted.id }, 'finding sink queue full: dropping the oldest findings (they stay on the spans and in /api/findings)');
      }
    }
    this.#wake?.();
  }

  /** Drains until the queue is empty or `signal` aborts; what is left then is counted as dropped. */
  close(signal?: AbortSignal): Promise<void> {
    return (this.#closing ??= this.#close(signal ?? AbortSignal.timeout(DEFAULT_CLOSE_TIMEOUT_MS)));
  }

  async #close(signal: AbortSignal): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    await untilDoneOrAborted(signal, () => this.#stop.abort(), async () => {
      await this.#worker;
    });
    const left = this.#queue.clear();
    if (left > 0) this.#drop(left, 'shutdown');
    if (this.#droppedAtShutdown > 0) {
      this.#log.warn({ findings: this.#droppedAtShutdown, reason: 'shutdown' }, 'finding sink closed before its queue was delivered: dropped findings');
    }
    this.#t.close?.();
  }

  async #run(): Promise<void> {
    for (;;) {
      if (this.#stop.signal.aborted) return;
      if (this.#queue.size === 0) {
        this.#overflowWarned = false;
        if (this.#closed) return;
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = undefined;
        continue;
      }
      const batch = this.#queue.take(this.#s.maxBatch);
      this.#inFlight = batch.length;
      try {
        await this.#sendWithRetry(batch);
      } catch (err) {
        // #sendWithRetry accounts for every outcome; this is a bug guard, the worker must live on.
        this.#drop(batch.length, 'unencodable');
        this.#log.error({ findings: batch.length, error: errorMessage(err) }, 'finding sink failed unexpectedly: dropped the batch');
      } finally {
        this.#inFlight = 0;
      }
    }
  }

  async #sendWithRetry(batch: Entry<P>[]): Promise<void> {
    const request = this.#t.request(batch.map((e) => e.payload));
    const retry = this.#s.retry;
    const backoff = new Backoff(retry);
    const startedAt = performance.now();
    for (;;) {
      let result: SendResult | void;
      try {
        result = await this.#t.send(request, this.#attemptSignal());
      } catch (err) {
        if (this.#stop.signal.aborted) return this.#drop(batch.length, 'shutdown');
        if (isPermanent(err)) return this.#fail(batch, 'permanent_error', err);
        if (!retry.enabled) return this.#fail(batch, 'retries_exhausted', err);
        // The server's throttle hint is a floor, never a ceiling (the collector's retry_sender).
        const delay = Math.max(backoff.next(), findRetryable(err)?.retryAfterMs ?? 0);
        if (retry.max_elapsed_time > 0 && performance.now() - startedAt + delay > retry.max_elapsed_time) {
          return this.#fail(batch, 'retries_exhausted', err);
        }
        this.#retries.inc();
        this.#trouble(err, { findings: batch.length, retry_in_ms: Math.round(delay) }, 'finding delivery failed, will retry');
        this.#burst!.retries++;
        try {
          await sleep(delay, undefined, { signal: this.#stop.signal });
        } catch {
          return this.#drop(batch.length, 'shutdown');
        }
        continue;
      }
      this.#succeeded(batch, result);
      return;
    }
  }

  #attemptSignal(): AbortSignal {
    const t = this.#s.timeout;
    return t > 0 ? AbortSignal.any([AbortSignal.timeout(t), this.#stop.signal]) : this.#stop.signal;
  }

  #succeeded(batch: Entry<P>[], result: SendResult | void): void {
    const rejected = Math.min(Math.max(Math.trunc(result?.rejected ?? 0), 0), batch.length);
    this.#delivered.inc(batch.length - rejected);
    if (rejected > 0 || result?.message) {
      if (rejected > 0) this.#drop(rejected, 'rejected_by_downstream');
      this.#log.warn({ findings: batch.length, rejected, message: result?.message }, 'the destination refused part of the findings it accepted');
    }
    if (this.#burst) {
      this.#log.info({ dropped: this.#burst.dropped, retries: this.#burst.retries }, 'finding sink delivering again');
      this.#burst = undefined;
    }
  }

  #fail(batch: Entry<P>[], reason: DropReason, err: unknown): void {
    this.#drop(batch.length, reason);
    this.#trouble(err, { findings: batch.length, reason, first: batch[0]!.id }, 'finding delivery failed: dropped');
    this.#burst!.dropped += batch.length;
  }

  /** Warns once per failure burst; the rest of the burst goes to debug, its tally to the recovery line. */
  #trouble(err: unknown, fields: Record<string, unknown>, msg: string): void {
    const first = this.#burst === undefined;
    if (first) this.#burst = { dropped: 0, retries: 0 };
    const line = { ...fields, error: errorMessage(err) };
    if (first) this.#log.warn(line, `${msg} (further failures are logged at debug until a delivery succeeds)`);
    else this.#log.debug(line, msg);
  }

  #drop(n: number, reason: DropReason): void {
    this.#dropped[reason].inc(n);
    if (reason === 'shutdown') this.#droppedAtShutdown += n;
  }
}
