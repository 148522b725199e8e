// npm run bench (the second of its six scripts): the agent-semantics processors (normalize → tracegraph →
// enrich) on agent-shaped traces (bench/agent-payload.ts), three ways:
//   1. in-process throughput on one core for traces of 10, 1,000 and 10,000 spans, with the
//      GC share (bench/agent-inprocess.ts, a fresh child process per case, each case twice);
//   2. heap per span summary held by the graph store, after forced GCs, next to the store's
//      own estimate (TraceStore.bytes), with a breakdown by measured variants;
//   3. end to end through the real collector with the shipped config/agentsec.yaml, over
//      HTTP/protobuf and gRPC, driven by bench/load.ts from its own process (each twice); then
//      the same config with `enrich: { hold: 0s }`, which measures what the hold costs.
//   BENCH_AGENT_SECONDS (2)   measured seconds per in-process case
//   BENCH_E2E_SECONDS (4)     measured seconds per end-to-end run, after BENCH_E2E_WARMUP (2)
//   BENCH_CONCURRENCY (8)     requests in flight
//   BENCH_CPU_PROF            a directory: also profile the in-process 1,000-span case there
//                             and print its top self-time functions
//   BENCH_RESULTS_AGENT       where to write the JSON figures (default: a file in the OS temp dir)
import { execFileSync, fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configVariant, startCollector, stopMeasured } from './collector-process.ts';
import { buildAgentPool } from './agent-payload.ts';
import type { MemoryResult, ThroughputResult } from './agent-inprocess.ts';
import { runLoadWindow, type LoadWindow } from './load-window.ts';
import { SPANS_PER_REQUEST, writePoolFile } from './payload.ts';
import { count, fixed, formatTable, noteNoise, writeFigures } from './report.ts';
import { collectorNodeFlags, envNumber } from './env.ts';
import { metricValues, refusalReasons, scrapeMetrics, sentSpans, sum } from './prom.ts';
import { runMain } from './main.ts';

const IN_PROCESS_SECONDS = envNumber('BENCH_AGENT_SECONDS', 2);
const E2E_SECONDS = envNumber('BENCH_E2E_SECONDS', 4);
const E2E_WARMUP_SECONDS = envNumber('BENCH_E2E_WARMUP', 2);
const CONCURRENCY = envNumber('BENCH_CONCURRENCY', 8);
const ROUNDS = 2;
const TRACE_SIZES = [10, 1_000, 10_000];
const MEMORY_CASES = [
  { traceSpans: 1_000, spans: 200_000 },
  { traceSpans: 10, spans: 200_000 },
];
/** The end-to-end payload: traces of 10, 100 and 1,000 spans in turn. */
const E2E_TRACE_SIZES = [10, 100, 1_000];
/** Distinct requests for the end-to-end runs: ids repeat (duplicates, less graph work) after these. */
const E2E_POOL_REQUESTS = 1_000;
const MEMORY_TARGET_BYTES = 512;
const PER_CORE_TARGET = 50_000;
const CONFIG = 'config/agentsec.yaml';
const INPROC_SCRIPT = fileURLToPath(new URL('./agent-inprocess.ts', import.meta.url));
const PROFILE_TOP_SCRIPT = fileURLToPath(new URL('./profile-top.ts', import.meta.url));
const REPO_DIR = fileURLToPath(new URL('..', import.meta.url));



/** The shipped config, and the same with no enrich hold (spans enriched and sent as they arrive). */
const E2E_HOLDS = ['500ms (shipped)', '0s'] as const;
type E2eHold = (typeof E2E_HOLDS)[number];

interface E2eResult {
  transport: 'http' | 'grpc';
  hold: E2eHold;
  round: number;
  /** Acknowledged to the load: includes what enrich accepted into its hold and has not sent on. */
  spansPerSecond: number;
  /** What the file exporter wrote over the same window: the rate the pipeline sustains. */
  exportedSpansPerSecond: number;
  collectorCpuPercent: number;
  spansPerCore: number;
  exportedPerCore: number;
  /** Spans in enrich's hold at the end of the window (max_held_spans 200,000, then hold_full). */
  heldSpans: number;
  peakRssMiB: number;
  refusals: number;
  refusedFor: string[];
  errors: number;
  firstError: string | undefined;
  /** Spans tracegraph saw again (pool ids repeating): should be 0, or the graph did less work. */
  duplicateSpans: number;
  graphSpansHeld: number;
  loadCpuPercent: number;
  otherCpuPercent: number;
  collectorExitCode: number | null;
}

/** Runs bench/agent-inprocess.ts in a fresh process and returns what it reports. */
function inProcess<T>(args: string[], nodeFlags: string[] = []): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const child = fork(INPROC_SCRIPT, args, { execArgv: nodeFlags, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: T | undefined;
    child.on('message', (m) => (result = m as T));
    child.once('exit', (code) => (result !== undefined ? resolve(result) : reject(new Error(`agent-inprocess.ts ${args.join(' ')} exited with ${code} and no result`))));
  });
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'agentsec-bench-agent-'));
  try {
    console.log(
      `\nagent pipeline (normalize → tracegraph → enrich): node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), load average ${loadavg()[0]!.toFixed(2)}\n` +
        'payload: agent traces (orchestrator → sub-agents → tools; gen_ai.agent.name on agent spans only, tool spans inherit identity), ' +
        `${SPANS_PER_REQUEST}-span batches in SDK export order (children before parents, a trace spread over consecutive batches), ~1% spans with an authorization header\n`,
    );

    // 1. In-process throughput: each case in a fresh process, rounds interleaved.
    process.stderr.write(`in-process: traces of ${TRACE_SIZES.join(', ')} spans, ${IN_PROCESS_SECONDS} s each, ${ROUNDS} rounds …\n`);
    const throughput: (ThroughputResult & { round: number })[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      for (const traceSpans of TRACE_SIZES) {
        const r = await inProcess<ThroughputResult>(['throughput', '--trace-spans', String(traceSpans), '--seconds', String(IN_PROCESS_SECONDS)]);
        throughput.push({ ...r, round });
      }
    }
    throughput.sort((a, b) => a.traceSpans - b.traceSpans || a.round - b.round);
    console.log(`1. normalize + tracegraph + enrich (hold 0) in-process, one thread, shipped defaults; requests decoded once up front (codec not measured); ≥ ${IN_PROCESS_SECONDS} s per case`);
    console.log(
      formatTable(
        ['trace spans', 'round', 'spans/s', 'process CPU%', 'spans per CPU-s', 'GC % of time', 'GCs (scavenge / mark-compact)', 'GC ms', 'graph spans held', 'other CPU%'],
        throughput.map((r) => [
          count(r.traceSpans),
          String(r.round),
          count(r.spansPerSecond),
          fixed(r.cpuPercent),
          count(r.spansPerCpuSecond),
          fixed(r.gcPercent, 1),
          `${r.gcCounts.Scavenge ?? 0} / ${(r.gcCounts.MarkSweepCompact ?? 0) + (r.gcCounts.IncrementalMarking ?? 0)}`,
          count(Object.values(r.gcMillis).reduce((a, b) => a + b, 0)),
          count(r.storeSpans),
          fixed(r.otherCpuPercent),
        ]),
      ),
    );
    console.log(
      'spans/s: over the timed consume() calls; process CPU% > 100 is GC helper threads, < 100 means the process did not get a whole core; ' +
        'GC %: main-thread GC pauses (v8.GCProfiler) ÷ timed seconds',
    );
    noteNoise(throughput.map((r) => r.otherCpuPercent), 'the in-process cases');

    // 2. Memory per span summary.
    process.stderr.write('memory per span summary …\n');
    const memory: MemoryResult[] = [];
    for (const c of MEMORY_CASES) {
      memory.push(await inProcess<MemoryResult>(['memory', '--trace-spans', String(c.traceSpans), '--spans', String(c.spans), ...(memory.length === 0 ? ['--breakdown'] : [])], ['--expose-gc']));
    }
    console.log(`\n2. graph store memory: heapUsed after − before (forced GCs) ÷ span summaries held; target ≤ ${MEMORY_TARGET_BYTES} B/span`);
    console.log(
      formatTable(
        ['trace spans', 'spans held', 'traces', 'agent nodes', 'heap B/span', 'store estimate B/span', 'heap ÷ estimate', 'target'],
        memory.map((m) => [
          count(m.traceSpans),
          count(m.spansHeld),
          count(m.traces),
          count(m.agentNodes),
          fixed(m.heapBytesPerSpan),
          fixed(m.storeEstimateBytesPerSpan),
          fixed(m.heapBytesPerSpan / m.storeEstimateBytesPerSpan, 2),
          m.heapBytesPerSpan <= MEMORY_TARGET_BYTES ? 'met' : `OVER by ${fixed(m.heapBytesPerSpan - MEMORY_TARGET_BYTES)} B`,
        ]),
      ),
    );
    const parts = memory.find((m) => m.breakdown.length > 0)?.breakdown ?? [];
    if (parts.length > 0) {
      console.log('what the parts cost (each built 50,000 times alone, heap after − before ÷ count):');
      console.log(formatTable(['part', 'B each'], parts.map((p) => [p.part, fixed(p.bytesPerSpan)])));
    }

    // 3. End to end through the collector with the shipped config.
    process.stderr.write(`end to end: ${CONFIG}, building ${E2E_POOL_REQUESTS} distinct requests …\n`);
    const pool = buildAgentPool(E2E_TRACE_SIZES, E2E_POOL_REQUESTS);
    const poolFile = join(tmp, 'agent-requests.bin');
    writePoolFile(poolFile, pool.requests);
    const noHoldConfig = configVariant(CONFIG, 'enrich', '{ hold: 0s }', tmp, 'agentsec-no-hold.yaml');
    const e2e: E2eResult[] = [];
    for (const hold of E2E_HOLDS) {
      for (let round = 1; round <= ROUNDS; round++) {
        for (const transport of ['http', 'grpc'] as const) {
          process.stderr.write(`end to end: enrich hold ${hold}, ${transport}, round ${round} …\n`);
          e2e.push(await runE2e(transport, hold, round, hold === '0s' ? noHoldConfig : CONFIG, poolFile, tmp));
        }
      }
    }
    console.log(
      `\n3. end to end, ${CONFIG} (memory_limiter, normalize, tracegraph, detect with no policy and SQLite baselines, enrich, file, debug) in its own process, ` +
        `with enrich's shipped 500 ms hold and with none (hold: 0s); ` +
        `load from bench/load.ts, ${CONCURRENCY} requests in flight, ${E2E_SECONDS} s after ${E2E_WARMUP_SECONDS} s warm-up; ` +
        `collector node flags: ${collectorNodeFlags().join(' ') || 'none'}`,
    );
    console.log(
      `   payload: traces of ${E2E_TRACE_SIZES.join(', ')} spans in turn, ${pool.requests.length} distinct requests (${count(pool.requests.length * SPANS_PER_REQUEST)} spans), ` +
        `${fixed(pool.template.bytesPerSpan)} B/span protobuf, ${fixed(pool.template.credentialsPercent, 1)}% spans with a credential`,
    );
    console.log(
      formatTable(
        ['enrich hold', 'transport', 'round', 'acked spans/s', 'exported spans/s', 'collector CPU%', 'acked/s per core', 'exported/s per core', 'peak RSS MiB', 'held at end', 'refusals', 'errors', 'duplicate spans', 'graph spans held', 'load CPU%', 'other CPU%', `≥ ${count(PER_CORE_TARGET)}/core`],
        e2e.map((r) => [
          r.hold,
          r.transport,
          String(r.round),
          count(r.spansPerSecond),
          count(r.exportedSpansPerSecond),
          fixed(r.collectorCpuPercent),
          count(r.spansPerCore),
          count(r.exportedPerCore),
          fixed(r.peakRssMiB),
          count(r.heldSpans),
          r.refusedFor.length > 0 ? `${count(r.refusals)} (${r.refusedFor.join(', ')})` : count(r.refusals),
          count(r.errors),
          count(r.duplicateSpans),
          count(r.graphSpansHeld),
          fixed(r.loadCpuPercent),
          fixed(r.otherCpuPercent),
          r.exportedPerCore >= PER_CORE_TARGET ? 'met' : 'NOT met',
        ]),
      ),
    );
    console.log(
      'acked: answered 200/OK to the load, which enrich does as a batch enters its hold; exported: written by the file exporter in the same window. ' +
        'While the hold fills, acked runs ahead of what the pipeline sustains, so the target is checked on exported/s per core. ' +
        'Without a hold, a span whose parent arrives later leaves without the role it would inherit (fewer attributes to write); with one, the decoded spans it keeps outlive the young generation, and the garbage collector pays for them.',
    );
    if (e2e.some((r) => r.duplicateSpans > 0)) console.log(`note: the load wrapped around its ${pool.requests.length} distinct requests; spans seen twice cost the graph less, so those figures flatter it`);
    noteNoise(e2e.map((r) => r.otherCpuPercent), 'the end-to-end windows');

    let profile: { file: string; top: string } | undefined;
    if (process.env.BENCH_CPU_PROF) {
      const dir = resolve(process.env.BENCH_CPU_PROF);
      mkdirSync(dir, { recursive: true });
      const file = join(dir, 'agent-inprocess-1000.cpuprofile');
      process.stderr.write('profiling the in-process 1,000-span case …\n');
      await inProcess<ThroughputResult>(['throughput', '--trace-spans', '1000', '--seconds', String(IN_PROCESS_SECONDS), '--profile', file]);
      const top = execFileSync(process.execPath, [PROFILE_TOP_SCRIPT, file, '20'], { cwd: REPO_DIR, encoding: 'utf8' });
      console.log(`\nCPU profile of the in-process 1,000-span case (${file}):\n${top.trimEnd()}`);
      profile = { file, top };
    }

    const settings = { inProcessSeconds: IN_PROCESS_SECONDS, e2eSeconds: E2E_SECONDS, e2eWarmupSeconds: E2E_WARMUP_SECONDS, concurrency: CONCURRENCY, rounds: ROUNDS, collectorNodeFlags: collectorNodeFlags() };
    writeFigures('agent', 'BENCH_RESULTS_AGENT', settings, { inProcess: throughput, memory, e2e: { payload: pool.template, runs: e2e }, profile });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}


async function runE2e(transport: 'http' | 'grpc', hold: E2eHold, round: number, config: string, poolFile: string, tmp: string): Promise<E2eResult> {
  const id = `agent-${transport}-${hold === '0s' ? 'nohold' : 'hold'}-${round}`;
  const collector = await startCollector({
    config,
    env: { AGENTSEC_DATA_DIR: join(tmp, `data-${id}`), AGENTSEC_LOG_LEVEL: 'warn' },
    logPath: join(tmp, `collector-${id}.log`),
    nodeFlags: collectorNodeFlags(),
  });
  const scrape = () => scrapeMetrics(collector.adminUrl);
  let window: LoadWindow;
  let metrics = '';
  let metricsAtStart: Promise<string> | undefined;
  try {
    window = await runLoadWindow({
      transport,
      target: collector.endpoints[transport],
      poolFile,
      collectorPid: collector.pid,
      seconds: E2E_SECONDS,
      warmupSeconds: E2E_WARMUP_SECONDS,
      concurrency: CONCURRENCY,
      onWindowStart: () => void (metricsAtStart = scrape()),
    });
    metrics = await scrape();
  } catch (err) {
    await collector.stop();
    throw err;
  }
  const { peakRssBytes: peakRss, exitCode } = await stopMeasured(collector, id);
  const { load, cpu } = window;
  if (load.errors > 0) console.warn(`warning: ${load.errors} failed requests over ${transport}, first: ${load.firstError}`);
  const spansPerSecond = load.ackedSpans / load.seconds;
  const exportedSpansPerSecond = (sentSpans(metrics, 'file') - sentSpans(await (metricsAtStart ?? Promise.resolve('')), 'file')) / load.seconds;
  return {
    transport,
    hold,
    round,
    spansPerSecond,
    exportedSpansPerSecond,
    collectorCpuPercent: cpu.collector,
    spansPerCore: spansPerSecond / (cpu.collector / 100),
    exportedPerCore: exportedSpansPerSecond / (cpu.collector / 100),
    heldSpans: sum(metricValues(metrics, 'agentsec_enrich_held_spans')),
    peakRssMiB: peakRss / 1024 / 1024,
    refusals: load.refusals,
    refusedFor: refusalReasons(metrics),
    errors: load.errors,
    firstError: load.firstError,
    duplicateSpans: sum(metricValues(metrics, 'agentsec_tracegraph_duplicate_spans_total')),
    graphSpansHeld: sum(metricValues(metrics, 'agentsec_tracegraph_spans')),
    loadCpuPercent: cpu.load,
    otherCpuPercent: cpu.other,
    collectorExitCode: exitCode,
  };
}

runMain('agent bench', main);
