// npm run bench:sidecar (also the fourth of npm run bench's six scripts): what the sidecar costs next to
// the gateway, under the same offered load. Each config runs as a collector child process
// (bench/collector-process.ts) forwarding over OTLP/gRPC to the bench's gRPC sink
// (bench/sink.ts); the load is bench/detection-load.ts in paced mode: the demo's normal
// multi-agent traffic (bench/detection-payload.ts, credentials on most spans, fresh ids every
// pass) sent open loop at BENCH_SIDECAR_RATE spans/s, so every config gets the same requests
// at the same rate. Over a measured window after a warm-up: the collector's CPU from /proc and
// the spans the sink received; CPU ms per 1,000 spans = collector CPU ms ÷ (exported spans ÷ 1,000)
// (equivalently, CPU cores per 1,000 spans/s × 1,000).
//   sidecar   config/agentsec-sidecar.yaml: memory_limiter → normalize (credentials fingerprinted) → otlp,
//             with the NODE_OPTIONS of config/k8s/agent-with-sidecar.yaml; again with npm start's flags;
//             again without gzip (AGENTSEC_GATEWAY_COMPRESSION=none)
//   gateway   config/agentsec-forward.yaml (the default full analysis when forwarding): memory_limiter →
//             normalize → tracegraph → detect (every detector, no policy) → enrich → otlp + debug, npm start's flags
//   gateway behind sidecars   the same with normalize { trust_forwarded_claims: true } and the key,
//             offered what the sidecars forward of the same traffic (each request through normalize
//             mode: redact, in the bench, and encoded again): fingerprints and agentsec.credential.* claims
//   BENCH_SIDECAR_RATE (4000)      offered spans/s
//   BENCH_SIDECAR_SECONDS (10)     measured seconds per config, after BENCH_SIDECAR_WARMUP (3)
//   BENCH_NODE_FLAGS               node flags for the npm-start rows (default: those of package.json's "start")
//   BENCH_CPU_PROF                 a directory: profile each collector (--cpu-prof) and print its top functions
//   BENCH_RESULTS_SIDECAR          where to write the JSON figures (default: a file in the OS temp dir)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAllDocuments } from 'yaml';
import { configVariant, startCollector, stopMeasured } from './collector-process.ts';
import { cpuMeters, pacedLoad } from './detection-window.ts';
import { buildBenignTemplate, encodeRequest, idOffsets } from './detection-payload.ts';
import { CredentialReader, DEFAULT_CREDENTIAL_ATTRIBUTES } from '../src/agent/credentials.ts';
import { StringPool } from '../src/agent/values.ts';
import { redactSpan } from '../src/agent/view.ts';
import { decodeTraceProtobuf } from '../src/otlp/decode.ts';
import type { Span } from '../src/otlp/types.ts';
import { collectorNodeFlags, envNumber } from './env.ts';
import { writePoolFile } from './payload.ts';
import { fixed, formatTable, noteNoise, writeFigures } from './report.ts';
import { startGrpcSink, type GrpcSink } from './sink.ts';
import { runMain } from './main.ts';

const RATE = envNumber('BENCH_SIDECAR_RATE', 4000);
const SECONDS = envNumber('BENCH_SIDECAR_SECONDS', 10);
const WARMUP_SECONDS = envNumber('BENCH_SIDECAR_WARMUP', 3);
/** Normal tasks in the template the load sends round and round (~205 spans each). */
const TEMPLATE_TASKS = 100;
/** Outstanding requests the paced load allows before it skips a due one (counted). */
const MAX_OUTSTANDING = 32;
const HMAC_KEY = 'bench-sidecar-hmac-key-0123456789abcdef';
const PROFILE_TOP_SCRIPT = fileURLToPath(new URL('./profile-top.ts', import.meta.url));
const REPO_DIR = fileURLToPath(new URL('..', import.meta.url));

/** NODE_OPTIONS of the sidecar container in the Kubernetes manifest: the sidecar as deployed. */
function sidecarNodeOptions(): string {
  for (const doc of parseAllDocuments(readFileSync(join(REPO_DIR, 'config/k8s/agent-with-sidecar.yaml'), 'utf8'))) {
    const m = doc.toJS() as { spec?: { template?: { spec?: { initContainers?: { name: string; env?: { name: string; value?: string }[] }[] } } } } | null;
    const env = m?.spec?.template?.spec?.initContainers?.find((c) => c.name === 'agentsec')?.env;
    const v = env?.find((e) => e.name === 'NODE_OPTIONS')?.value;
    if (v) return v;
  }
  throw new Error('config/k8s/agent-with-sidecar.yaml: no NODE_OPTIONS on the agentsec sidecar');
}

interface Mode {
  name: string;
  config: string;
  /** What it is offered: the agents' traffic (default), or what sidecars forward of it. */
  offered?: 'forwarded';
  env(sink: GrpcSink): Record<string, string>;
  nodeFlags: string[];
  /** How the node flags are given, for the table. */
  flags: string;
}

interface Result {
  mode: string;
  config: string;
  flags: string;
  offeredSpansPerSecond: number;
  exportedSpansPerSecond: number;
  collectorCpuPercent: number;
  cpuMsPer1kSpans: number;
  peakRssMiB: number;
  refusals: number;
  skippedRequests: number;
  errors: number;
  loadCpuPercent: number;
  otherCpuPercent: number;
  collectorExitCode: number | null;
}

type PoolFiles = { pool: string; offsets: string };

/** What the sidecars forward of the template's requests: each through normalize's credential pass (mode: redact), encoded again. */
function forwardedRequests(requests: readonly { bytes: Buffer }[]): { bytes: Buffer; spans: Span[] }[] {
  const opts = { pool: new StringPool(), credentialAttributes: new Set(DEFAULT_CREDENTIAL_ATTRIBUTES), credentials: new CredentialReader(Buffer.from(HMAC_KEY, 'utf8')) };
  return requests.map((r) => {
    const { resourceSpans } = decodeTraceProtobuf(r.bytes).batch;
    const spans = resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans));
    for (const span of spans) redactSpan(span, opts);
    return { bytes: encodeRequest(resourceSpans), spans };
  });
}

function writePool(requests: readonly { bytes: Buffer; spans: Span[] }[], tmp: string, name: string): PoolFiles {
  const files = { pool: join(tmp, `${name}.bin`), offsets: join(tmp, `${name}-ids.json`) };
  writePoolFile(files.pool, requests.map((r) => r.bytes));
  writeFileSync(files.offsets, JSON.stringify(idOffsets(requests)));
  return files;
}

async function measure(mode: Mode, sink: GrpcSink, files: PoolFiles, tmp: string): Promise<Result> {
  const id = mode.name.replace(/\W+/g, '-');
  const profileDir = process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : undefined;
  const collector = await startCollector({
    config: mode.config,
    env: { ...mode.env(sink), AGENTSEC_DATA_DIR: join(tmp, `data-${id}`), AGENTSEC_LOG_LEVEL: 'warn' },
    logPath: join(tmp, `collector-${id}.log`),
    nodeFlags: [...mode.nodeFlags, ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=collector-sidecar-bench-${id}.cpuprofile`] : [])],
  });
  const load = pacedLoad({ target: collector.endpoints.http, pool: files.pool, offsets: files.offsets, rate: RATE, seconds: WARMUP_SECONDS + SECONDS + 60, concurrency: MAX_OUTSTANDING });
  try {
    await load.started;
    await sleep(WARMUP_SECONDS * 1000);
    const meters = cpuMeters({ collector: collector.pid, load: load.child.pid!, bench: process.pid });
    meters.start();
    const spans0 = sink.spans();
    const t0 = performance.now();
    await sleep(SECONDS * 1000);
    const cpu = meters.read();
    const window = (performance.now() - t0) / 1000;
    const exported = sink.spans() - spans0;
    const paced = await load.stop();
    const { peakRssBytes, exitCode } = await stopMeasured(collector, mode.name);
    if (profileDir) {
      const profile = join(profileDir, `collector-sidecar-bench-${id}.cpuprofile`);
      console.log(`\nCPU profile of the ${mode.name} collector (${profile}):\n${execFileSync(process.execPath, [PROFILE_TOP_SCRIPT, profile, '15'], { cwd: REPO_DIR, encoding: 'utf8' }).trimEnd()}`);
    }
    const cpuMs = (cpu.collector / 100) * window * 1000;
    return {
      mode: mode.name,
      config: mode.config,
      flags: mode.flags,
      offeredSpansPerSecond: RATE,
      exportedSpansPerSecond: exported / window,
      collectorCpuPercent: cpu.collector,
      cpuMsPer1kSpans: cpuMs / (exported / 1000),
      peakRssMiB: peakRssBytes / 1024 / 1024,
      refusals: paced.refusals,
      skippedRequests: paced.skippedRequests,
      errors: paced.errors,
      loadCpuPercent: cpu.load,
      otherCpuPercent: cpu.other,
      collectorExitCode: exitCode,
    };
  } catch (err) {
    load.child.kill('SIGKILL');
    await collector.stop();
    throw err;
  }
}

/** config/agentsec-forward.yaml as a gateway behind sidecars configures normalize: their key, their claims trusted. */
function trustingGateway(tmp: string): string {
  return configVariant('config/agentsec-forward.yaml', 'normalize', `{ hmac_key: "${HMAC_KEY}", trust_forwarded_claims: true }`, tmp, 'agentsec-gateway-trusting.yaml');
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'agentsec-bench-sidecar-'));
  const sink = await startGrpcSink();
  try {
    const npmStart = collectorNodeFlags();
    const sidecarOptions = sidecarNodeOptions();
    const sidecarEnv = (s: GrpcSink) => ({ AGENTSEC_GATEWAY_ENDPOINT: `http://${s.address}`, AGENTSEC_HMAC_KEY: HMAC_KEY });
    const modes: Mode[] = [
      { name: 'sidecar', config: 'config/agentsec-sidecar.yaml', env: (s) => ({ ...sidecarEnv(s), NODE_OPTIONS: sidecarOptions }), nodeFlags: [], flags: `NODE_OPTIONS=${sidecarOptions} (as deployed)` },
      { name: 'sidecar, npm start flags', config: 'config/agentsec-sidecar.yaml', env: sidecarEnv, nodeFlags: npmStart, flags: npmStart.join(' ') || 'none' },
      {
        name: 'sidecar, compression none',
        config: 'config/agentsec-sidecar.yaml',
        env: (s) => ({ ...sidecarEnv(s), NODE_OPTIONS: sidecarOptions, AGENTSEC_GATEWAY_COMPRESSION: 'none' }),
        nodeFlags: [],
        flags: `NODE_OPTIONS=${sidecarOptions}`,
      },
      { name: 'gateway', config: 'config/agentsec-forward.yaml', env: (s) => ({ AGENTSEC_OTLP_ENDPOINT: `http://${s.address}` }), nodeFlags: npmStart, flags: npmStart.join(' ') || 'none' },
      { name: 'gateway behind sidecars', config: trustingGateway(tmp), offered: 'forwarded', env: (s) => ({ AGENTSEC_OTLP_ENDPOINT: `http://${s.address}` }), nodeFlags: npmStart, flags: npmStart.join(' ') || 'none' },
    ];
    process.stderr.write(`sidecar: building ${TEMPLATE_TASKS} demo tasks …\n`);
    const template = buildBenignTemplate(TEMPLATE_TASKS);
    const files = writePool(template.requests, tmp, 'benign');
    const forwarded = writePool(forwardedRequests(template.requests), tmp, 'forwarded');
    console.log(
      `\nsidecar vs gateway: node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), load average ${loadavg()[0]!.toFixed(2)}; ` +
        `the demo's normal traffic (${Math.round(template.bytesPerSpan)} B/span, ${Math.round(template.withCredentialPercent)}% of spans with a credential) offered at ${RATE.toLocaleString('en-US')} spans/s, ` +
        `${SECONDS} s measured after ${WARMUP_SECONDS} s; both forward OTLP/gRPC (gzip) to a sink`,
    );
    const results: Result[] = [];
    for (const mode of modes) {
      process.stderr.write(`sidecar: ${mode.name} …\n`);
      results.push(await measure(mode, sink, mode.offered === 'forwarded' ? forwarded : files, tmp));
    }
    console.log(
      formatTable(
        ['mode', 'node flags', 'exported spans/s', 'collector CPU %', 'CPU ms per 1k spans', 'cores per 1k spans/s', 'peak RSS MiB', 'refused', 'skipped', 'other CPU %'],
        results.map((r) => [r.mode, r.flags, fixed(r.exportedSpansPerSecond), fixed(r.collectorCpuPercent, 1), fixed(r.cpuMsPer1kSpans, 1), fixed(r.cpuMsPer1kSpans / 1000, 4), fixed(r.peakRssMiB), String(r.refusals), String(r.skippedRequests), fixed(r.otherCpuPercent)]),
      ),
    );
    const sidecar = results[0]!;
    const gateway = results.find((r) => r.mode === 'gateway')!;
    console.log(`the gateway costs ${(gateway.cpuMsPer1kSpans / sidecar.cpuMsPer1kSpans).toFixed(1)}× the sidecar's CPU per span (sidecar as deployed); CPU from /proc over the window, all the collector's threads`);
    noteNoise(results.map((r) => r.otherCpuPercent), 'a window');
    if (results.some((r) => r.exportedSpansPerSecond < RATE * 0.9)) console.log('note: a config exported less than 90% of the offered rate: it could not keep up, and its figure is not at the offered load');
    writeFigures('sidecar', 'BENCH_RESULTS_SIDECAR', { rate: RATE, seconds: SECONDS, warmupSeconds: WARMUP_SECONDS, templateTasks: TEMPLATE_TASKS }, { results });
  } finally {
    await sink.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

runMain('sidecar bench', main);
