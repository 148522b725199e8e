import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { PermanentError, RetryableError } from '../../src/errors.ts';
import type { TraceBatch } from '../../src/otlp/types.ts';
import {
  Backoff,
  createExporter,
  RetryConfig,
  SendingQueueConfig,
  type EncodingExporter,
  type ExporterHelperOptions,
  type PushFn,
  type RetrySettings,
} from '../../src/pipeline/exporter-helper.ts';
import { makeBatch } from '../helpers/batch.ts';
import { testHost, testSettings } from '../helpers/settings.ts';
import { until } from '../helpers/wait.ts';

const ID = 'test/exp';

function options(overrides: {
  queue?: Partial<ExporterHelperOptions['sending_queue']>;
  retry?: Partial<RetrySettings>;
  timeout?: number;
  shutdown?: () => Promise<void>;
} = {}): ExporterHelperOptions {
  return {
    sending_queue: { ...SendingQueueConfig.parse({}), ...overrides.queue },
    // Fast and jitter-free unless a test says otherwise.
    retry_on_failure: { ...RetryConfig.parse({}), initial_interval: 10, max_interval: 50, randomization_factor: 0, ...overrides.retry },
    timeout: overrides.timeout ?? 5000,
    ...(overrides.shutdown && { shutdown: overrides.shutdown }),
  };
}

async function started<P>(opts: ExporterHelperOptions, push: PushFn | EncodingExporter<P>) {
  const set = testSettings(ID);
  const exporter = createExporter(set, opts, push);
  await exporter.start(testHost(set));
  const counter = (name: string, ...labels: string[]) => set.metrics.counter(name, '', labels.length ? ['exporter', 'reason'] : ['exporter']).get(ID, ...labels);
  return {
    set,
    exporter,
    sent: () => counter('agentsec_exporter_sent_spans_total'),
    sendFailed: () => counter('agentsec_exporter_send_failed_spans_total'),
    retries: () => counter('agentsec_exporter_retries_total'),
    enqueueFailed: () => counter('agentsec_exporter_enqueue_failed_spans_total'),
    dropped: (reason: string) => counter('agentsec_exporter_dropped_spans_total', reason),
    queueSize: () => set.metrics.gauge('agentsec_exporter_queue_size', '', ['exporter']).get(ID),
    warnings: () => set.logs.filter((l) => l.level === 40),
  };
}

const CTX = { receiver: 'otlp', transport: 'http' } as const;

/** A push function whose calls wait until the test releases them. */
function gatedPush() {
  const calls: { batch: TraceBatch; signal: AbortSignal; release: () => void }[] = [];
  const push: PushFn = (batch, signal) =>
    new Promise<void>((resolve, reject) => {
      calls.push({ batch, signal, release: resolve });
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  return { calls, push };
}


describe('config', () => {
  it('fills every default from {}', () => {
    expect(SendingQueueConfig.parse(undefined)).toEqual({ enabled: true, num_consumers: 4, queue_size: 50_000 });
    expect(RetryConfig.parse({})).toEqual({
      enabled: true, initial_interval: 1000, max_interval: 30_000, max_elapsed_time: 300_000, multiplier: 1.5, randomization_factor: 0.5,
    });
    expect(RetryConfig.parse({ initial_interval: '250ms', max_elapsed_time: 0 }).initial_interval).toBe(250);
    expect(() => RetryConfig.parse({ multiplier: 0.5 })).toThrow();
    expect(() => SendingQueueConfig.parse({ queue_size: 10, sizer: 'items' })).toThrow(/sizer/);
  });
});

describe('Backoff', () => {
  const cfg: RetrySettings = { ...RetryConfig.parse({}), initial_interval: 1000, max_interval: 5000, multiplier: 2, randomization_factor: 0.5 };

  it('grows by the multiplier up to max_interval, jittered by ± randomization_factor', () => {
    const mid = new Backoff(cfg, () => 0.5);
    expect([1, 2, 3, 4, 5].map(() => mid.next())).toEqual([1000, 2000, 4000, 5000, 5000]);
    const low = new Backoff(cfg, () => 0);
    expect([low.next(), low.next()]).toEqual([500, 1000]);
    const high = new Backoff(cfg, () => 1);
    expect([high.next(), high.next()]).toEqual([1500, 3000]);
  });

  it('has no jitter with randomization_factor 0', () => {
    const b = new Backoff({ ...cfg, randomization_factor: 0 }, Math.random);
    expect([b.next(), b.next()]).toEqual([1000, 2000]);
  });
});

describe('sending queue', () => {
  it('acks on enqueue, before the push completes, and counts sent once pushed', async () => {
    const gate = gatedPush();
    const t = await started(options({ queue: { num_consumers: 1 } }), gate.push);
    await t.exporter.consume(makeBatch(3), CTX);
    expect(t.queueSize()).toBe(3);
    await until(() => gate.calls.length === 1);
    expect(t.sent()).toBe(0);
    gate.calls[0]!.release();
    await until(() => t.sent() === 3);
    expect(t.queueSize()).toBe(0);
    await t.exporter.shutdown(AbortSignal.timeout(1000));
  });

  it('refuses with queue_full once the spans held would pass queue_size; an oversized batch fits only an empty queue', async () => {
    const gate = gatedPush();
    const t = await started(options({ queue: { num_consumers: 1, queue_size: 10 } }), gate.push);
    await t.exporter.consume(makeBatch(6), CTX);
    await until(() => gate.calls.length === 1); // in flight, still holding its 6 spans
    expect(t.exporter.refusal?.()).toBeUndefined();
    await t.exporter.consume(makeBatch(4), CTX);
    expect(t.exporter.refusal?.()).toMatchObject({ reason: 'queue_full' }); // full: said before anything is encoded
    const refused = await t.exporter.consume(makeBatch(1), CTX).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RetryableError);
    expect(refused).toMatchObject({ reason: 'queue_full', retryAfterMs: 1000 });
    expect((refused as Error).message).toMatch(/sending queue is full/);
    expect(t.enqueueFailed()).toBe(1);
    await expect(t.exporter.consume(makeBatch(25), CTX)).rejects.toMatchObject({ reason: 'queue_full' });

    gate.calls[0]!.release();
    await until(() => gate.calls.length === 2);
    gate.calls[1]!.release();
    await until(() => t.queueSize() === 0);
    await t.exporter.consume(makeBatch(25), CTX); // larger than the queue, but the queue is empty
    await until(() => gate.calls.length === 3);
    gate.calls[2]!.release();
    await until(() => t.sent() === 35);
    expect(t.enqueueFailed()).toBe(26);
    await t.exporter.shutdown(AbortSignal.timeout(1000));
  });

  it('sends with num_consumers pushes in parallel', async () => {
    const gate = gatedPush();
    const t = await started(options({ queue: { num_consumers: 3 } }), gate.push);
    for (let i = 0; i < 5; i++) await t.exporter.consume(makeBatch(1), CTX);
    await until(() => gate.calls.length === 3);
    await new Promise((r) => setTimeout(r, 20));
    expect(gate.calls).toHaveLength(3);
    for (const c of gate.calls) c.release();
    await until(() => gate.calls.length === 5);
    for (const c of gate.calls.slice(3)) c.release();
    await until(() => t.sent() === 5);
    await t.exporter.shutdown(AbortSignal.timeout(1000));
  });

  it('ignores empty batches and refuses before start and after shutdown', async () => {
    const set = testSettings(ID);
    let pushes = 0;
    const exporter = createExporter(set, options(), async () => void pushes++);
    await expect(exporter.consume(makeBatch(1), CTX)).rejects.toMatchObject({ reason: 'not_started' });
    await exporter.start(testHost(set));
    await exporter.consume({ resourceSpans: [], spanCount: 0 }, CTX);
    await exporter.shutdown(AbortSignal.timeout(1000));
    await expect(exporter.consume(makeBatch(1), CTX)).rejects.toThrow(/exporter is shutting down/);
    expect(pushes).toBe(0);
  });
});

describe('retry', () => {
  it('waits at least the server hint, counts retries, and sends once it succeeds', async () => {
    const attempts: number[] = [];
    const push: PushFn = async () => {
      attempts.push(performance.now());
      if (attempts.length <= 2) throw new RetryableError('busy', { reason: 'downstream_unavailable', retryAfterMs: 150 });
    };
    const t = await started(options({ queue: { num_consumers: 1 } }), push);
    await t.exporter.consume(makeBatch(2), CTX);
    await until(() => t.sent() === 2);
    expect(attempts).toHaveLength(3);
    expect(attempts[1]! - attempts[0]!).toBeGreaterThanOrEqual(145); // backoff alone would be 10 ms
    expect(attempts[2]! - attempts[1]!).toBeGreaterThanOrEqual(145);
    expect(t.retries()).toBe(2);
    expect(t.sendFailed()).toBe(0);
    await t.exporter.shutdown(AbortSignal.timeout(1000));
  });

  it('treats errors of no known kind as retryable', async () => {
    let attempts = 0;
    const t = await started(options(), async () => {
      if (++attempts === 1) throw new Error('socket hang up');
    });
    await t.exporter.consume(makeBatch(1), CTX);
    await until(() => t.sent() === 1);
    expect(t.retries()).toBe(1);
    await t.exporter.shutdown(AbortSignal.timeout(1000));
  });

  it('drops a permanent error at once, counted and logged once with the message', async () => {
    let attempts = 0;
    const t = await started(options(), async () => {
      attempts++;
      throw new PermanentError('HTTP 400: span name too long');
    });
    await t.exporter.consume(makeBatch(4), CTX);
    await until(() => t.dropped('permanent_error') === 4);
    expect(attempts).toBe(1);
    expect(t.retries()).toBe(0);
    expect(t.sendFailed()).toBe(4);
    expect(t.warnings()).toEqual([expect.objectContaining({ spans: 4, reason: 'permanent_error', error: 'HTTP 400: span name too long' })]);
    await t.exporter.shutdown(AbortSignal.timeout(1000));
  });

  it('gives up when the next wait would pass max_elapsed_time: retries_exhausted', async () => {
    const attempts: number[] = [];
    const t = await started(options({ retry: { initial_interval: 40, multiplier: 1, max_elapsed_time: 150 } }), async () => {
      attempts.push(performance.now());
      throw new RetryableError('down', { reason: 'downstream_unavailable' });
    });
    await t.exporter.consume(makeBatch(3), CTX);
    await until(() => t.dropped('retries_exhausted') === 3);
    // Attempts at about 0, 40, 80, 120 ms; a fifth at 160 would pass 150 ms (fewer if timers run late).
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    expect(attempts.length).toBeLessThanOrEqual(4);
    expect(t.retries()).toBe(attempts.length - 1);
    expect(t.warnings()).toEqual([expect.objectContaining({ spans: 3, reason: 'retries_exhausted', error: 'down' })]);
    await t.exporter.shutdown(AbortSignal.timeout(1000));
  });

  it('does not retry when retry_on_failure is disabled', async () => {
    let attempts = 0;
    const t = await started(options({ retry: { enabled: false } }), async () => {
      attempts++;
      throw new RetryableError('down', { reason: 'downstream_unavailable' });
    });
    await t.exporter.consume(makeBatch(1), CTX);
    await until(() => t.dropped('retries_exhausted') === 1);
    expect(attempts).toBe(1);
  });

  it('aborts an attempt after timeout and retries it', async () => {
    const reasons: string[] = [];
    const t = await started(options({ timeout: 30 }), (_batch, signal) => {
      if (reasons.length > 0) return Promise.resolve();
      return new Promise((_resolve, reject) =>
        signal.addEventListener('abort', () => {
          reasons.push((signal.reason as Error).name);
          reject(signal.reason);
        }),
      );
    });
    await t.exporter.consume(makeBatch(1), CTX);
    await until(() => t.sent() === 1);
    expect(reasons).toEqual(['TimeoutError']);
    await t.exporter.shutdown(AbortSignal.timeout(1000));
  });
});

describe('partial success', () => {
  it('counts the rejected spans dropped{rejected_by_downstream}, the rest sent, without retrying', async () => {
    let attempts = 0;
    const t = await started(options(), async () => {
      attempts++;
      return { rejectedSpans: 2, message: 'attribute too long' };
    });
    await t.exporter.consume(makeBatch(5), CTX);
    await until(() => t.sent() === 3);
    expect(t.dropped('rejected_by_downstream')).toBe(2);
    expect(attempts).toBe(1);
    expect(t.warnings()).toEqual([expect.objectContaining({ spans: 5, rejected_spans: 2, message: 'attribute too long' })]);
    await t.exporter.shutdown(AbortSignal.timeout(1000));
  });
});

describe('queue disabled', () => {
  it('consume awaits the send with retries and rejects with the final failure, not counted as dropped', async () => {
    let attempts = 0;
    const t = await started(options({ queue: { enabled: false } }), async (batch) => {
      attempts++;
      if (batch.spanCount === 1 && attempts === 1) throw new RetryableError('busy', { reason: 'downstream_unavailable' });
      if (batch.spanCount === 2) throw new PermanentError('HTTP 400: bad');
    });
    await t.exporter.consume(makeBatch(1), CTX);
    expect(t.sent()).toBe(1);
    expect(t.retries()).toBe(1);
    await expect(t.exporter.consume(makeBatch(2), CTX)).rejects.toBeInstanceOf(PermanentError);
    expect(t.sendFailed()).toBe(2);
    expect(t.dropped('permanent_error')).toBe(0); // the caller refuses it to its client instead
    await t.exporter.shutdown(AbortSignal.timeout(1000));
  });

  it('shutdown waits for sends in progress', async () => {
    const gate = gatedPush();
    const t = await started(options({ queue: { enabled: false } }), gate.push);
    const consumed = t.exporter.consume(makeBatch(2), CTX);
    await until(() => gate.calls.length === 1);
    let stopped = false;
    const stopping = t.exporter.shutdown(AbortSignal.timeout(5000)).then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(stopped).toBe(false);
    gate.calls[0]!.release();
    await Promise.all([consumed, stopping]);
    expect(t.sent()).toBe(2);
  });
});

describe('shutdown', () => {
  it('drains the queue, with retries, before resolving', async () => {
    let attempts = 0;
    const t = await started(options({ queue: { num_consumers: 1 } }), async () => {
      await new Promise((r) => setTimeout(r, 10));
      if (++attempts === 2) throw new RetryableError('busy', { reason: 'downstream_unavailable' });
    });
    for (let i = 0; i < 5; i++) await t.exporter.consume(makeBatch(2), CTX);
    expect(t.queueSize()).toBe(10);
    await t.exporter.shutdown(AbortSignal.timeout(5000));
    expect(t.sent()).toBe(10);
    expect(t.retries()).toBe(1);
    expect(t.queueSize()).toBe(0);
  });

  it('when its signal aborts, cuts attempts and backoff sleeps short and counts the rest dropped{shutdown}, logged once', async () => {
    let shutdownCalls = 0;
    let attempts = 0;
    const opts = options({ queue: { num_consumers: 2 }, retry: { initial_interval: 60_000, max_interval: 60_000 }, shutdown: async () => void shutdownCalls++ });
    const gate = gatedPush();
    const t = await started(opts, (batch, signal) => {
      // First consumer: fails and sleeps in backoff. Second: hangs in flight.
      if (++attempts === 1) return Promise.reject(new RetryableError('down', { reason: 'downstream_unavailable' }));
      return gate.push(batch, signal);
    });
    for (let i = 0; i < 4; i++) await t.exporter.consume(makeBatch(3), CTX);
    await until(() => t.retries() === 1 && gate.calls.length === 1);

    const began = performance.now();
    const first = t.exporter.shutdown(AbortSignal.timeout(100));
    const second = t.exporter.shutdown(AbortSignal.timeout(100));
    expect(second).toBe(first);
    await first;
    expect(performance.now() - began).toBeLessThan(1000);
    expect(t.dropped('shutdown')).toBe(12);
    expect(t.sent()).toBe(0);
    expect(t.queueSize()).toBe(0);
    expect(shutdownCalls).toBe(1);
    const logged = t.warnings().filter((l) => l.reason === 'shutdown');
    expect(logged).toEqual([expect.objectContaining({ spans: 12 })]);
  });

  it('is safe without start, and idempotent', async () => {
    let shutdownCalls = 0;
    const exporter = createExporter(testSettings(ID), options({ shutdown: async () => void shutdownCalls++ }), async () => {});
    await exporter.shutdown(AbortSignal.timeout(1000));
    await exporter.shutdown(AbortSignal.timeout(1000));
    expect(shutdownCalls).toBe(1);
  });
});

/** An encoded payload as a transport would hold it: bytes, and nothing of the batch. */
interface Encoded {
  bytes: Buffer;
  spans: number;
}

/** An encode that counts its calls and whose payloads carry no reference to the batch. */
function countingEncode() {
  const encoded: Encoded[] = [];
  const encode = (batch: TraceBatch): Encoded => {
    const payload = { bytes: Buffer.from(JSON.stringify(batch.resourceSpans.length)), spans: batch.spanCount };
    encoded.push(payload);
    return payload;
  };
  return { encoded, encode };
}

/** A full garbage collection (V8's gc(), exposed at run time). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

describe('encode once', () => {
  it('encodes each batch once, in consume before it resolves, and every retry sends that same payload', async () => {
    const { encoded, encode } = countingEncode();
    const sent: Encoded[] = [];
    const t = await started(options({ queue: { num_consumers: 1 } }), {
      encode,
      send: async (payload: Encoded) => {
        sent.push(payload);
        if (sent.length <= 2) throw new RetryableError('busy', { reason: 'downstream_unavailable', retryAfterMs: 0 });
      },
    });
    await t.exporter.consume(makeBatch(3), CTX);
    expect(encoded).toHaveLength(1); // before any send finished
    await until(() => t.sent() === 3);
    expect(encoded).toHaveLength(1);
    expect(sent).toHaveLength(3);
    for (const payload of sent) expect(payload).toBe(encoded[0]);
    expect(t.retries()).toBe(2);
    await t.exporter.shutdown(AbortSignal.timeout(1000));
  });

  it('does not keep the decoded batch alive while its payload waits in the queue', async () => {
    const { encode } = countingEncode();
    const gate = gatedPush();
    const t = await started(options({ queue: { num_consumers: 1 } }), { encode, send: gate.push as never });
    const refs: WeakRef<TraceBatch>[] = [];
    const consume = async () => {
      for (let i = 0; i < 3; i++) {
        const batch = makeBatch(2);
        refs.push(new WeakRef(batch));
        await t.exporter.consume(batch, CTX);
      }
    };
    await consume();
    await until(() => gate.calls.length === 1); // one in flight, two waiting in the queue
    expect(t.queueSize()).toBe(6);
    await new Promise((r) => setTimeout(r, 0)); // WeakRef targets stay alive until the current job ends
    collectGarbage();
    expect(refs.map((r) => r.deref())).toEqual([undefined, undefined, undefined]);
    for (let i = 0; i < 3; i++) {
      await until(() => gate.calls.length === i + 1);
      gate.calls[i]!.release();
    }
    await until(() => t.sent() === 6);
    await t.exporter.shutdown(AbortSignal.timeout(1000));
  });

  it('refuses a full queue before encoding', async () => {
    const { encoded, encode } = countingEncode();
    const gate = gatedPush();
    const t = await started(options({ queue: { num_consumers: 1, queue_size: 4 } }), { encode, send: gate.push as never });
    await t.exporter.consume(makeBatch(4), CTX);
    await expect(t.exporter.consume(makeBatch(1), CTX)).rejects.toMatchObject({ reason: 'queue_full' });
    expect(encoded).toHaveLength(1);
    await until(() => gate.calls.length === 1);
    gate.calls[0]!.release();
    await until(() => t.sent() === 4);
    await t.exporter.shutdown(AbortSignal.timeout(1000));
  });

  it.each([
    ['throws', () => { throw new Error('interior hyphen'); }],
    ['rejects', () => Promise.reject(new Error('interior hyphen'))],
  ] as const)('refuses a batch whose encode %s as permanent: not queued, not sent, its room given back', async (_how, failing) => {
    let sends = 0;
    let fail = true;
    const t = await started(options({ queue: { num_consumers: 1, queue_size: 5 } }), {
      encode: (batch: TraceBatch) => (fail ? failing() : { bytes: Buffer.alloc(1), spans: batch.spanCount }),
      send: async () => void sends++,
    });
    const refused = await t.exporter.consume(makeBatch(5), CTX).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(PermanentError);
    expect((refused as Error).message).toBe('cannot encode the batch: interior hyphen');
    expect(t.queueSize()).toBe(0);
    expect(t.sendFailed()).toBe(5);
    expect(t.dropped('permanent_error')).toBe(0); // refused to the caller, not accepted and dropped
    expect(t.warnings()).toEqual([expect.objectContaining({ spans: 5, reason: 'permanent_error', error: 'cannot encode the batch: interior hyphen' })]);
    fail = false;
    await t.exporter.consume(makeBatch(5), CTX); // the room was given back
    await until(() => t.sent() === 5);
    expect(sends).toBe(1);
    await t.exporter.shutdown(AbortSignal.timeout(1000));
  });

  it('an asynchronous encode holds its room while it runs, and shutdown queues and sends it before closing', async () => {
    let finishEncode!: () => void;
    const sent: Encoded[] = [];
    const t = await started(options({ queue: { num_consumers: 1, queue_size: 4 } }), {
      encode: (batch: TraceBatch) =>
        new Promise<Encoded>((resolve) => (finishEncode = () => resolve({ bytes: Buffer.alloc(1), spans: batch.spanCount }))),
      send: async (payload: Encoded) => void sent.push(payload),
    });
    let accepted = false;
    const consumed = t.exporter.consume(makeBatch(4), CTX).then(() => (accepted = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(accepted).toBe(false); // consume waits for the encoding
    expect(t.queueSize()).toBe(4);
    await expect(t.exporter.consume(makeBatch(1), CTX)).rejects.toMatchObject({ reason: 'queue_full' });
    let stopped = false;
    const stopping = t.exporter.shutdown(AbortSignal.timeout(5000)).then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(stopped).toBe(false);
    finishEncode();
    await Promise.all([consumed, stopping]);
    expect(sent).toHaveLength(1);
    expect(t.sent()).toBe(4);
    expect(t.dropped('shutdown')).toBe(0);
  });

  it('with the queue disabled, encodes and sends in consume; an encode failure rejects, counted but not dropped', async () => {
    const { encoded, encode } = countingEncode();
    const sent: Encoded[] = [];
    let fail = false;
    const t = await started(options({ queue: { enabled: false } }), {
      encode: (batch: TraceBatch) => {
        if (fail) throw new Error('bad value');
        return encode(batch);
      },
      send: async (payload: Encoded) => void sent.push(payload),
    });
    await t.exporter.consume(makeBatch(2), CTX);
    expect(sent).toEqual([encoded[0]]);
    expect(t.sent()).toBe(2);
    fail = true;
    await expect(t.exporter.consume(makeBatch(3), CTX)).rejects.toThrow('cannot encode the batch: bad value');
    expect(t.sendFailed()).toBe(3);
    expect(t.dropped('permanent_error')).toBe(0);
    expect(sent).toHaveLength(1);
    await t.exporter.shutdown(AbortSignal.timeout(1000));
  });
});
