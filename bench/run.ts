// npm run bench: the ingest benchmark. Builds one realistic agent payload, measures the
// codecs in-process, then for each sink × transport starts a fresh collector child process
// (so peak RSS is per scenario), drives it from a separate load process and measures the
// collector's CPU and memory from /proc over the load's measured window.
//   BENCH_SECONDS (10)      measured seconds per scenario, after a 2 s warm-up
//   BENCH_CONCURRENCY (8)   requests in flight
//   BENCH_ONLY              run only scenarios whose "transport/sink" contains this text
//   BENCH_CPU_PROF          a directory: run the collectors with --cpu-prof into it
//   BENCH_NODE_FLAGS        node flags for the collectors, e.g. "--max-semi-space-size=64"
//                           (default: those of package.json's "start" script)
//   BENCH_RESULTS           where to write the JSON figures (default: a file in the OS temp dir)
//   BENCH_OTLP_COMPRESSION, BENCH_OTLP_NUM_CONSUMERS   the otlp exporter's compression (gzip) and
//                           sending_queue.num_consumers (4) in the "bare" scenario (bench/forward-exporter-only.yaml)
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { decodeTraceProtobuf } from '../src/otlp/decode.ts';
import { runCodecBench } from './codec.ts';
import { startCollector, stopMeasured } from './collector-process.ts';
import { runLoadWindow, type LoadWindow } from './load-window.ts';
import { buildRequestPool, SPANS_PER_REQUEST, writePoolFile } from './payload.ts';
import { CpuMeter, cpuSeconds, machineBusySeconds } from './proc-stats.ts';
import { codecTable, noteNoise, pipelineRatios, scenarioTable, staticVersusReflection, writeFigures, type ScenarioResult } from './report.ts';
import { startGrpcSink, type GrpcSink } from './sink.ts';
import { envNumber, collectorNodeFlags } from './env.ts';
import { refusalReasons, scrapeMetrics } from './prom.ts';
import { runMain } from './main.ts';

const SECONDS = envNumber('BENCH_SECONDS', 10);
const CONCURRENCY = envNumber('BENCH_CONCURRENCY', 8);
const WARMUP_SECONDS = 2;
const POOL_SIZE = 64;
const CODEC_SECONDS = 1;
/** Other processes' CPU in a window above which the figures are flagged as disturbed. */

interface Sink {
  name: string;
  /** One of the embedded defaults, so the bench measures the pipeline users get (or a bench variant of one). */
  config: string;
  env(dataDir: string, grpcSink: GrpcSink): Record<string, string>;
  /** The bench's gRPC sink receives this sink's spans. */
  forwardsToGrpcSink: boolean;
}

const SINKS: Sink[] = [
  { name: 'file+debug', config: 'config/agentsec.yaml', env: (dataDir) => ({ AGENTSEC_DATA_DIR: dataDir }), forwardsToGrpcSink: false },
  {
    name: 'otlp+debug→grpc sink',
    config: 'config/agentsec-forward.yaml',
    env: (dataDir, grpcSink) => ({ AGENTSEC_DATA_DIR: dataDir, AGENTSEC_OTLP_ENDPOINT: `http://${grpcSink.address}` }),
    forwardsToGrpcSink: true,
  },
  {
    // The same forwarding without the agent processors: the exporter path alone.
    name: 'bare otlp+debug→grpc sink',
    config: 'bench/forward-exporter-only.yaml',
    env: (dataDir, grpcSink) => ({ AGENTSEC_DATA_DIR: dataDir, AGENTSEC_OTLP_ENDPOINT: `http://${grpcSink.address}` }),
    forwardsToGrpcSink: true,
  },
];
const TRANSPORTS = ['http', 'grpc'] as const;



async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'agentsec-bench-'));
  const grpcSink = await startGrpcSink();
  try {
    const pool = buildRequestPool(POOL_SIZE);
    const poolFile = join(tmp, 'requests.bin');
    writePoolFile(poolFile, pool.protobuf);
    const payload = describePayload(pool.protobuf, pool.json);
    console.log(
      `payload: ${SPANS_PER_REQUEST} spans/request, ${payload.attributesPerSpan.toFixed(1)} attributes/span, ${payload.percentWithEvent.toFixed(0)}% with an event, ` +
        `${payload.protobufBytesPerSpan.toFixed(0)} B/span protobuf, ${payload.jsonBytesPerSpan.toFixed(0)} B/span JSON; ${POOL_SIZE} requests with distinct ids`,
    );
    console.log(
      `node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), load average ${loadavg()[0]!.toFixed(2)}; ` +
        `${SECONDS} s per scenario after ${WARMUP_SECONDS} s warm-up, ${CONCURRENCY} requests in flight; collector node flags: ${collectorNodeFlags().join(' ') || 'none'}\n`,
    );

    const { value: codec, otherCpuPercent: codecOtherCpu } = withOtherCpu(() => runCodecBench(pool.protobuf, pool.json, tmp, CODEC_SECONDS));

    const results: ScenarioResult[] = [];
    for (const sink of SINKS) {
      for (const transport of TRANSPORTS) {
        if (process.env.BENCH_ONLY && !`${transport}/${sink.name}`.includes(process.env.BENCH_ONLY)) continue;
        process.stderr.write(`running ${transport} → ${sink.name} …\n`);
        results.push(await runScenario(sink, transport, grpcSink, poolFile, tmp));
      }
    }

    console.log(scenarioTable(results));
    noteNoise(results.map((r) => r.otherCpuPercent), 'a measured window');
    console.log('\n' + codecTable(codec));
    const staticLine = staticVersusReflection(codec);
    if (staticLine) console.log(staticLine);
    noteNoise([codecOtherCpu], 'the codec runs');
    console.log('\n' + pipelineRatios(results, codec));

    const settings = { seconds: SECONDS, warmupSeconds: WARMUP_SECONDS, concurrency: CONCURRENCY, poolSize: POOL_SIZE, collectorNodeFlags: collectorNodeFlags() };
    writeFigures('ingest', 'BENCH_RESULTS', settings, { payload, scenarios: results, codec: { ...codec, otherCpuPercent: codecOtherCpu } });
  } finally {
    await grpcSink.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function runScenario(sink: Sink, transport: 'http' | 'grpc', grpcSink: GrpcSink, poolFile: string, tmp: string): Promise<ScenarioResult> {
  const id = `${transport}-${sink.config.replace(/\W+/g, '_')}`;
  const profileDir = process.env.BENCH_CPU_PROF;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const collector = await startCollector({
    config: sink.config,
    env: { ...sink.env(join(tmp, `data-${id}`), grpcSink), AGENTSEC_LOG_LEVEL: 'warn' },
    logPath: join(tmp, `collector-${id}.log`),
    nodeFlags: [
      ...collectorNodeFlags(),
      ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${resolve(profileDir)}`, `--cpu-prof-name=collector-${id}.cpuprofile`] : []),
    ],
  });
  let window: LoadWindow;
  let sinkSpans = 0;
  let refusedFor: string[] = [];
  try {
    let sinkSpansAtStart = 0;
    window = await runLoadWindow({
      transport,
      target: collector.endpoints[transport],
      poolFile,
      collectorPid: collector.pid,
      seconds: SECONDS,
      warmupSeconds: WARMUP_SECONDS,
      concurrency: CONCURRENCY,
      onWindowStart: () => void (sinkSpansAtStart = grpcSink.spans()),
    });
    sinkSpans = grpcSink.spans() - sinkSpansAtStart;
    if (window.load.refusals > 0) refusedFor = refusalReasons(await scrapeMetrics(collector.adminUrl));
  } catch (err) {
    await collector.stop();
    throw err;
  }
  const { peakRssBytes: peakRss, exitCode } = await stopMeasured(collector, id);
  const { load, cpu } = window;
  if (load.errors > 0) console.warn(`warning: ${load.errors} failed requests in ${transport} → ${sink.name}, first: ${load.firstError}`);

  const spansPerSecond = load.ackedSpans / load.seconds;
  return {
    transport,
    sink: sink.name,
    spansPerSecond,
    collectorCpuPercent: cpu.collector,
    spansPerCore: spansPerSecond / (cpu.collector / 100),
    peakRssMiB: peakRss / 1024 / 1024,
    refusals: load.refusals,
    refusedFor,
    errors: load.errors,
    firstError: load.firstError,
    exportedSpansPerSecond: sink.forwardsToGrpcSink ? sinkSpans / load.seconds : undefined,
    loadCpuPercent: cpu.load,
    sinkCpuPercent: sink.forwardsToGrpcSink ? cpu.bench : undefined,
    otherCpuPercent: cpu.other,
    collectorExitCode: exitCode,
  };
}

/** Runs `fn` in this process, noting how much CPU other processes used meanwhile (% of a core). */
function withOtherCpu<T>(fn: () => T): { value: T; otherCpuPercent: number } {
  const self = new CpuMeter(() => cpuSeconds(process.pid));
  const machine = new CpuMeter(machineBusySeconds);
  self.start();
  machine.start();
  const value = fn();
  return { value, otherCpuPercent: Math.max(0, machine.percentSinceStart() - self.percentSinceStart()) };
}

function describePayload(protobuf: readonly Buffer[], json: readonly Buffer[]) {
  const spans = decodeTraceProtobuf(protobuf[0]!).batch.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans));
  return {
    spansPerRequest: spans.length,
    attributesPerSpan: spans.reduce((n, s) => n + (s.attributes?.length ?? 0), 0) / spans.length,
    percentWithEvent: (100 * spans.filter((s) => (s.events?.length ?? 0) > 0).length) / spans.length,
    protobufBytesPerSpan: protobuf[0]!.length / spans.length,
    jsonBytesPerSpan: json[0]!.length / spans.length,
  };
}

runMain('bench', main);
