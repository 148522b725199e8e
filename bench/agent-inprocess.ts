// The in-process half of the agent-pipeline bench, run by bench/agent-pipeline.ts as a child
// process (a fresh heap per case, and --expose-gc for the memory figures). It sends one
// result over IPC (or prints it as JSON when run by hand).
//
//   node bench/agent-inprocess.ts throughput --trace-spans N [--seconds 2] [--profile FILE]
//     normalize → tracegraph → enrich (hold 0, inline) → a no-op consumer, built as
//     test/processors/enrich.test.ts does, with the shipped defaults otherwise. Requests are
//     decoded once up front; between passes over them only what the processors change is put
//     back (credential values, the attribute arrays enrich replaces) and every trace id gets a
//     new prefix, so each pass is new traffic to the graph. Only the consume() calls are timed.
//   node --expose-gc bench/agent-inprocess.ts memory --trace-spans 1000 --spans 200000 [--breakdown]
//     the heap the graph store keeps per span summary, after forced GCs, next to the store's
//     own estimate (TraceStore.bytes), and a breakdown by measured variants.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { GCProfiler, getHeapStatistics } from 'node:v8';
import { pino } from 'pino';
import type { Settings, TracesConsumer } from '../src/component/types.ts';
import { Normalize, NormalizeConfig } from '../src/processors/normalize.ts';
import { TraceGraphConfig, TraceGraphProcessor } from '../src/processors/tracegraph.ts';
import { Enrich, EnrichConfig } from '../src/processors/enrich.ts';
import { spanNodes, spanViews } from '../src/agent/annotations.ts';
import { normalizeSpan, SpanView } from '../src/agent/view.ts';
import { SpanNode } from '../src/tracegraph/trace.ts';
import { toHex } from '../src/otlp/ids.ts';
import { decodeTraceProtobuf } from '../src/otlp/decode.ts';
import type { KeyValue, Span, TraceBatch } from '../src/otlp/types.ts';
import { MetricsRegistry } from '../src/telemetry/metrics.ts';
import { agentRequest, agentRequests, encodeRequest } from './agent-payload.ts';
import { CpuMeter, cpuSeconds, machineBusySeconds } from './proc-stats.ts';

/** Spans decoded up front and replayed: whole traces, 512-span batches (the last one shorter). */
export const POOL_SPANS = 20_000;
const WARMUP_SECONDS = 0.5;
const HMAC_KEY = 'bench-hmac-key-'.padEnd(32, 'x');
const CTX = { receiver: 'otlp', transport: 'grpc' as const };

export interface ThroughputResult {
  mode: 'throughput';
  traceSpans: number;
  batches: number;
  seconds: number;
  spans: number;
  spansPerSecond: number;
  /** This process's CPU over the window, % of one core (GC helper threads can add to it). */
  cpuPercent: number;
  /** Spans per CPU-second of the whole process. */
  spansPerCpuSecond: number;
  /** Main-thread GC pauses (v8.GCProfiler cost) ÷ measured time. */
  gcPercent: number;
  gcCounts: Record<string, number>;
  gcMillis: Record<string, number>;
  /** Other processes' CPU during the window, % of one core. */
  otherCpuPercent: number;
  storeTraces: number;
  storeSpans: number;
  storeEstimateMiB: number;
  heapUsedMiB: number;
  credentialsPercent: number;
  profile: string | undefined;
}

export interface MemoryResult {
  mode: 'memory';
  traceSpans: number;
  spansHeld: number;
  traces: number;
  agentNodes: number;
  heapBytesPerSpan: number;
  storeEstimateBytesPerSpan: number;
  /** Measured variants: bytes per span each part of a summary takes (see breakdown()). */
  breakdown: { part: string; bytesPerSpan: number }[];
}

interface Prepared {
  batch: TraceBatch;
  spans: Span[];
  /** Each span's attribute and event arrays as decoded (enrich replaces them, normalize one value). */
  attributes: KeyValue[][];
  events: Span['events'][];
  credentials: { kv: KeyValue; value: KeyValue['value'] }[];
}

function settings(id: string, dataDir: string): Settings {
  return { id, logger: pino({ level: 'silent' }), metrics: new MetricsRegistry(), dataDir };
}

/** normalize → tracegraph → enrich (hold 0) → no-op, as the tests wire them. */
function pipeline(dataDir: string) {
  const sink: TracesConsumer = { mutatesData: false, consume: () => Promise.resolve() };
  const enrich = new Enrich(settings('enrich', dataDir), EnrichConfig.parse({ hold: 0 }), sink);
  const tracegraph = new TraceGraphProcessor(settings('tracegraph', dataDir), TraceGraphConfig.parse({}), enrich);
  const normalize = new Normalize(settings('normalize', dataDir), NormalizeConfig.parse({ hmac_key: HMAC_KEY }), tracegraph);
  return { normalize, tracegraph };
}

function prepare(traceSpans: number): Prepared[] {
  const out: Prepared[] = [];
  for (const spans of agentRequests([traceSpans], POOL_SPANS, 'short')) {
    const batch = decodeTraceProtobuf(encodeRequest(agentRequest(spans))).batch;
    const decoded = batch.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans));
    const credentials: Prepared['credentials'] = [];
    for (const s of decoded) for (const kv of s.attributes ?? []) if (kv.key === 'http.request.header.authorization') credentials.push({ kv, value: kv.value });
    out.push({ batch, spans: decoded, attributes: decoded.map((s) => s.attributes ?? []), events: decoded.map((s) => s.events), credentials });
  }
  return out;
}

/** Puts back what the processors changed and moves every trace to a new id (in place, allocating nothing). */
function reset(pool: Prepared[], pass: number): void {
  for (const p of pool) {
    for (let i = 0; i < p.spans.length; i++) {
      const s = p.spans[i]!;
      s.attributes = p.attributes[i]!;
      s.events = p.events[i];
      const t = s.traceId;
      t[0] = pass >>> 24;
      t[1] = (pass >>> 16) & 0xff;
      t[2] = (pass >>> 8) & 0xff;
      t[3] = pass & 0xff;
    }
    for (const c of p.credentials) c.kv.value = c.value;
  }
}

async function runPass(pool: Prepared[], normalize: Normalize): Promise<number> {
  const t0 = performance.now();
  for (const p of pool) await normalize.consume(p.batch, CTX);
  return (performance.now() - t0) / 1000;
}

async function throughput(traceSpans: number, seconds: number, profilePath: string | undefined): Promise<ThroughputResult> {
  const dataDir = mkdtempSync(join(tmpdir(), 'agentsec-bench-inproc-'));
  try {
    const pool = prepare(traceSpans);
    const poolSpans = pool.reduce((n, p) => n + p.spans.length, 0);
    const credentialsPercent = (100 * pool.reduce((n, p) => n + p.credentials.length, 0)) / poolSpans;
    const { normalize, tracegraph } = pipeline(dataDir);
    let pass = 1;
    for (let warm = 0; warm < WARMUP_SECONDS; ) {
      reset(pool, pass++);
      warm += await runPass(pool, normalize);
    }

    let session: Session | undefined;
    if (profilePath) {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    }
    const self = new CpuMeter(() => cpuSeconds(process.pid));
    const machine = new CpuMeter(machineBusySeconds);
    const cpu0 = process.cpuUsage();
    const gc = new GCProfiler();
    self.start();
    machine.start();
    const wall0 = performance.now();
    gc.start();
    let busy = 0;
    let spans = 0;
    while (busy < seconds) {
      reset(pool, pass++);
      busy += await runPass(pool, normalize);
      spans += poolSpans;
    }
    const gcStats = gc.stop();
    const wall = (performance.now() - wall0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const otherCpuPercent = Math.max(0, machine.percentSinceStart() - self.percentSinceStart());
    if (session) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(profilePath!, JSON.stringify(profile));
      session.disconnect();
    }

    const gcCounts: Record<string, number> = {};
    const gcMillis: Record<string, number> = {};
    let gcMicros = 0;
    for (const s of gcStats?.statistics ?? []) {
      gcCounts[s.gcType] = (gcCounts[s.gcType] ?? 0) + 1;
      gcMillis[s.gcType] = (gcMillis[s.gcType] ?? 0) + s.cost / 1000;
      gcMicros += s.cost;
    }
    const cpuSecondsUsed = (cpu.user + cpu.system) / 1e6;
    return {
      mode: 'throughput',
      traceSpans,
      batches: pool.length,
      seconds: busy,
      spans,
      spansPerSecond: spans / busy,
      cpuPercent: (100 * cpuSecondsUsed) / wall,
      spansPerCpuSecond: spans / cpuSecondsUsed,
      // GC inside the timed consume() calls; the untimed resets allocate nothing.
      gcPercent: (100 * gcMicros) / 1e6 / busy,
      gcCounts,
      gcMillis,
      otherCpuPercent,
      storeTraces: tracegraph.store.size,
      storeSpans: tracegraph.store.spanCount,
      storeEstimateMiB: tracegraph.store.bytes / 1024 / 1024,
      heapUsedMiB: getHeapStatistics().used_heap_size / 1024 / 1024,
      credentialsPercent,
      profile: profilePath,
    };
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function forceGc(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('the memory mode needs node --expose-gc');
  for (let i = 0; i < 3; i++) gc();
}

function heapUsed(): number {
  forceGc();
  return process.memoryUsage().heapUsed;
}

async function memory(traceSpans: number, totalSpans: number, withBreakdown: boolean): Promise<MemoryResult> {
  const dataDir = mkdtempSync(join(tmpdir(), 'agentsec-bench-mem-'));
  try {
    const pool = prepare(traceSpans);
    const poolSpans = pool.reduce((n, p) => n + p.spans.length, 0);
    const { normalize, tracegraph } = pipeline(dataDir);
    const before = heapUsed();
    for (let pass = 1, fed = 0; fed < totalSpans; pass++, fed += poolSpans) {
      reset(pool, pass);
      await runPass(pool, normalize);
    }
    // Drop what is alive only because the decoded pool is (views, node lists, enriched attributes).
    reset(pool, 0);
    for (const p of pool) {
      spanViews.delete(p.batch);
      spanNodes.delete(p.batch);
    }
    const after = heapUsed();
    const store = tracegraph.store;
    let agentNodes = 0;
    for (const t of store.values()) agentNodes += t.nodes.size;
    const result: MemoryResult = {
      mode: 'memory',
      traceSpans,
      spansHeld: store.spanCount,
      traces: store.size,
      agentNodes,
      heapBytesPerSpan: (after - before) / store.spanCount,
      storeEstimateBytesPerSpan: store.bytes / store.spanCount,
      breakdown: [],
    };
    if (withBreakdown) result.breakdown = breakdown(pool);
    return result;
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * What each part of a span summary costs, measured by building N of just that part and
 * holding them in a preallocated array (whose 8 B/slot is subtracted): the SpanNode object
 * with its boxed start/end numbers (all strings shared), its hex id strings as toHex builds
 * them (and the same ids as flat strings, for comparison), and a Map entry in trace.spans.
 */
function breakdown(pool: Prepared[]): { part: string; bytesPerSpan: number }[] {
  const N = 50_000;
  const spans = pool.flatMap((p) => p.spans);
  const view = normalizeSpan(spans[0]!, { pool: { intern: (s: string) => s } as never, credentialAttributes: new Set(), credentials: undefined as never });
  const workload = { key: '', service: '', pod: '', namespace: '', serviceAccount: '', spiffeId: '' };
  const measure = (make: (i: number) => unknown): number => {
    const hold: unknown[] = new Array(N).fill(0);
    const before = heapUsed();
    for (let i = 0; i < N; i++) hold[i] = make(i);
    const bytes = (heapUsed() - before) / N;
    hold.length = 0;
    return bytes;
  };
  const traceStub = {} as never;
  const ids = spans.map((s) => s.spanId);
  const startMs = Date.now() + 0.123;
  const parts = [
    { part: 'SpanNode object + boxed start/end (strings shared)', bytesPerSpan: measure((i) => new SpanNode(traceStub, 'id', 'parent', view, workload, startMs + i, startMs + i + 1, undefined)) },
    { part: 'span id string as toHex builds it (×2 per span: id, parentId)', bytesPerSpan: measure((i) => toHex(ids[i % ids.length]!.map((b, j) => (j === 0 ? i & 0xff : j === 1 ? (i >> 8) & 0xff : j === 2 ? i >> 16 : b)))) },
    { part: 'span id string, flat (Buffer.toString("hex"))', bytesPerSpan: measure((i) => Buffer.from(ids[i % ids.length]!.map((b, j) => (j === 0 ? i & 0xff : j === 1 ? (i >> 8) & 0xff : j === 2 ? i >> 16 : b))).toString('hex')) },
    { part: 'SpanView (normalize output, per batch only)', bytesPerSpan: measure(() => new SpanView()) },
  ];
  // A Map entry: one Map of N keys (shared key strings are not counted).
  const keys = Array.from({ length: N }, (_, i) => `k${i}`);
  const before = heapUsed();
  const m = new Map<string, number>();
  for (let i = 0; i < N; i++) m.set(keys[i]!, i);
  parts.push({ part: 'Map entry (trace.spans), at its current fill', bytesPerSpan: (heapUsed() - before) / N });
  m.clear();
  return parts;
}

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { 'trace-spans': { type: 'string' }, seconds: { type: 'string', default: '2' }, spans: { type: 'string', default: '200000' }, profile: { type: 'string' }, breakdown: { type: 'boolean', default: false } },
  });
  const traceSpans = Number(values['trace-spans']);
  if (!(traceSpans > 0)) throw new Error('--trace-spans N is required');
  const result = positionals[0] === 'memory' ? await memory(traceSpans, Number(values.spans), values.breakdown) : await throughput(traceSpans, Number(values.seconds), values.profile);
  if (process.send) process.send(result);
  else console.log(JSON.stringify(result, null, 2));
}

main().then(
  () => process.disconnect?.(),
  (err: unknown) => {
    process.stderr.write(`agent-inprocess: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
