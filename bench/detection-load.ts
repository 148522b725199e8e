// The load process of bench/detection.ts (and of baselines.ts and sidecar.ts), run as its own process (its CPU is not the
// collector's). It sends the benign template (bench/detection-payload.ts) over OTLP/HTTP again
// and again, each pass with fresh trace and span ids (XOR masks at the ids' offsets, parent links
// kept), so the collector never sees a span twice however long the run; a pool for a whole run
// would be ~1 GB at ~1.1 KB per span. Two ways to send:
//   --mode max    as bench/load.ts: --concurrency requests in flight, each sent when the last
//                 answered; warm-up, then a measured window reported over IPC with load.ts's
//                 messages (window-start, window-end with a LoadResult).
//   --mode paced  open loop at --rate spans/s (a request due every SPANS_PER_REQUEST / rate s,
//                 whatever the answers; at most --concurrency outstanding, a due request is
//                 skipped and counted when they are), from { type: 'started' } until the parent
//                 sends { type: 'stop' }; then { type: 'paced-result' }.
//   node bench/detection-load.ts --target HOST:PORT --pool FILE --offsets FILE --mode max|paced
//        [--seconds 10] [--warmup 2] [--concurrency 8] [--rate SPANS_PER_S]
// bench/load.ts cannot be used as is: it sends its pool round and round with the same ids.
import { randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { IdOffsets } from './detection-payload.ts';
import type { LoadMessage, LoadResult } from './load.ts';
import { readPoolFile, SPANS_PER_REQUEST } from './payload.ts';

/** How long a worker waits after a refusal (503) before sending again, as in load.ts. */
const REFUSAL_BACKOFF_MS = 50;

export interface PacedResult {
  seconds: number;
  ackedSpans: number;
  refusals: number;
  errors: number;
  firstError: string | undefined;
  /** Due requests not sent because --concurrency were outstanding. */
  skippedRequests: number;
}

export type DetectionLoadMessage = LoadMessage | { type: 'started' } | { type: 'paced-result'; result: PacedResult };

type Outcome = 'acked' | 'refused' | string;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string' },
      pool: { type: 'string' },
      offsets: { type: 'string' },
      mode: { type: 'string' },
      seconds: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      concurrency: { type: 'string', default: '8' },
      rate: { type: 'string' },
    },
  });
  const mode = values.mode;
  if (!values.target || !values.pool || !values.offsets || (mode !== 'max' && mode !== 'paced') || (mode === 'paced' && !(Number(values.rate) > 0))) {
    throw new Error('usage: detection-load.ts --target HOST:PORT --pool FILE --offsets FILE --mode max|paced [--seconds N] [--warmup N] [--concurrency N] [--rate SPANS_PER_S]');
  }
  const pool = readPoolFile(values.pool);
  const offsets = JSON.parse(readFileSync(values.offsets, 'utf8')) as IdOffsets[];
  if (offsets.length !== pool.length) throw new Error(`${values.offsets} has ids for ${offsets.length} requests, the pool ${pool.length}`);
  const concurrency = Number(values.concurrency);
  const at = values.target.lastIndexOf(':');
  const host = values.target.slice(0, at);
  const port = Number(values.target.slice(at + 1));
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });

  // Pass 0 sends the template as is; every later pass with masks of its own.
  const traceMask = new Uint8Array(16);
  const spanMask = new Uint8Array(8);
  let next = 0;
  const nextRequest = (): Buffer => {
    const i = next++ % pool.length;
    if (next <= pool.length) return pool[i]!;
    if (i === 0) {
      randomFillSync(traceMask);
      randomFillSync(spanMask);
    }
    const out = Buffer.from(pool[i]!);
    const o = offsets[i]!;
    for (const p of o.traceIds) for (let k = 0; k < 16; k++) out[p + k]! ^= traceMask[k]!;
    for (const p of o.spanIds) for (let k = 0; k < 8; k++) out[p + k]! ^= spanMask[k]!;
    return out;
  };

  const send = (body: Buffer) =>
    new Promise<Outcome>((resolve) => {
      const req = http.request(
        { agent, host, port, path: '/v1/traces', method: 'POST', headers: { 'content-type': 'application/x-protobuf', 'content-length': body.length } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode === 200 ? 'acked' : res.statusCode === 503 ? 'refused' : `HTTP ${res.statusCode}`));
        },
      );
      req.on('error', (err) => resolve(err.message));
      req.end(body);
    });

  const report = (m: DetectionLoadMessage) => process.send?.(m);
  if (mode === 'max') await maxLoad(send, nextRequest, concurrency, Number(values.warmup), Number(values.seconds), report);
  else await pacedLoad(send, nextRequest, concurrency, Number(values.rate), Number(values.seconds), report);
  agent.destroy();
  process.disconnect?.();
}

/** As bench/load.ts: `concurrency` workers, a measured window after the warm-up. */
async function maxLoad(send: (b: Buffer) => Promise<Outcome>, nextRequest: () => Buffer, concurrency: number, warmup: number, seconds: number, report: (m: DetectionLoadMessage) => void): Promise<void> {
  const result: LoadResult = { seconds: 0, ackedSpans: 0, refusals: 0, errors: 0, firstError: undefined };
  let measuring = false;
  let stopped = false;
  const worker = async () => {
    while (!stopped) {
      const outcome = await send(nextRequest());
      if (outcome === 'acked') {
        if (measuring) result.ackedSpans += SPANS_PER_REQUEST;
        continue;
      }
      if (measuring && outcome === 'refused') result.refusals++;
      if (measuring && outcome !== 'refused') {
        result.errors++;
        result.firstError ??= outcome;
      }
      await sleep(REFUSAL_BACKOFF_MS);
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  await sleep(warmup * 1000);
  measuring = true;
  const windowStart = performance.now();
  report({ type: 'window-start' });
  await sleep(seconds * 1000);
  measuring = false;
  result.seconds = (performance.now() - windowStart) / 1000;
  report({ type: 'window-end', result });
  stopped = true;
  await Promise.all(workers);
}

/** Open loop at `rate` spans/s until the parent says stop (or `seconds` pass, a safety net). */
async function pacedLoad(send: (b: Buffer) => Promise<Outcome>, nextRequest: () => Buffer, concurrency: number, rate: number, seconds: number, report: (m: DetectionLoadMessage) => void): Promise<void> {
  const result: PacedResult = { seconds: 0, ackedSpans: 0, refusals: 0, errors: 0, firstError: undefined, skippedRequests: 0 };
  let stopped = false;
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'stop') stopped = true;
  });
  let inFlight = 0;
  const outstanding = new Set<Promise<void>>();
  const intervalMs = (1000 * SPANS_PER_REQUEST) / rate;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  report({ type: 'started' });
  let due = 0;
  while (!stopped && performance.now() < deadline) {
    const now = performance.now() - start;
    while (due * intervalMs <= now) {
      due++;
      if (inFlight >= concurrency) {
        result.skippedRequests++;
        continue;
      }
      inFlight++;
      const p: Promise<void> = send(nextRequest()).then((outcome) => {
        inFlight--;
        outstanding.delete(p);
        if (outcome === 'acked') result.ackedSpans += SPANS_PER_REQUEST;
        else if (outcome === 'refused') result.refusals++;
        else {
          result.errors++;
          result.firstError ??= outcome;
        }
      });
      outstanding.add(p);
    }
    await sleep(Math.max(1, Math.min(5, due * intervalMs - (performance.now() - start))));
  }
  await Promise.all(outstanding);
  result.seconds = (performance.now() - start) / 1000;
  report({ type: 'paced-result', result });
}

main().catch((err: unknown) => {
  process.stderr.write(`detection-load: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
