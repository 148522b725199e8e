// What baselines cost the full pipeline (issue 5): config/agentsec.yaml as shipped (memory_limiter →
// normalize → tracegraph → detect → enrich, hold 500ms → file + debug) with
// AGENTSEC_POLICY=config/policies/demo.yaml, in three rows: detect.baselines off, `storage: sqlite`
// (a file in the data dir) and `storage: redis` (a redis-server on loopback, started by
// test/helpers/redis.ts's startRedis, or AGENTSEC_TEST_REDIS_URL). Everything else is bench/detection.ts's
// throughput round: a fresh collector child per round, driven over HTTP/protobuf by
// bench/detection-load.ts (its own process, requests in flight) with the demo's normal multi-agent
// traffic (bench/detection-payload.ts, fresh ids each pass), CPU from /proc. The rows alternate
// (off, sqlite, redis, off, …) so that drift of the machine spreads over all of them.
//
// The figure: exported spans/s per core of collector CPU (the target is ≥ 50,000), and the
// change against `off`. The load replays the template's timestamps, so the roles stay in their
// learning period: what is measured is learning (every call observed, a sync every 5 s), which
// is the engine's steady work; novelty and volume findings are not (there are none to make).
//
// Then (2.) what one sync costs once a week of baselines is stored, per store and number of roles.
//
//   node bench/baselines.ts                       about 2 minutes
//   BENCH_BASELINES_SECONDS (10), BENCH_BASELINES_WARMUP (2), BENCH_BASELINES_ROUNDS (2), BENCH_CONCURRENCY (8)
//   BENCH_BASELINES_PROFILE=0  no profiled round (by default one more round per store runs under
//                        --cpu-prof, for the share of the collector's CPU inside baselines code)
//   BENCH_CPU_PROF=DIR   keep those profiles there and print their top functions
//   BENCH_BASELINES_STATE_ROLES (50,200)  roles in part 2
//   BENCH_NODE_FLAGS     node flags for the collectors (default: those of package.json's "start" script)
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { startCollector, stopMeasured, type CollectorProcess } from './collector-process.ts';
import { maxLoadWindow } from './detection-window.ts';
import { buildBenignTemplate, idOffsets } from './detection-payload.ts';
import { writePoolFile } from './payload.ts';
import { byLabel, metricValues, sentSpans, sum } from './prom.ts';
import { count, fixed, formatTable, noteNoise } from './report.ts';
import { collectorNodeFlags, envNumber } from './env.ts';
import { startRedis, redisUnavailable, type TestRedis } from '../test/helpers/redis.ts';
import { Baselines } from '../src/baseline/baselines.ts';
import { BaselinesConfig } from '../src/baseline/config.ts';
import { emptyData, itemKey, windowKey, type BaselineData } from '../src/baseline/profile.ts';
import type { BaselineStore } from '../src/baseline/store.ts';
import { SqliteStore } from '../src/baseline/store-sqlite.ts';
import { RedisStore } from '../src/baseline/store-redis.ts';
import { runMain } from './main.ts';

const SECONDS = envNumber('BENCH_BASELINES_SECONDS', 10);
const WARMUP_SECONDS = envNumber('BENCH_BASELINES_WARMUP', 2);
const ROUNDS = envNumber('BENCH_BASELINES_ROUNDS', 2);
const CONCURRENCY = envNumber('BENCH_CONCURRENCY', 8);
const TEMPLATE_TASKS = 300;
const POLICY = 'config/policies/demo.yaml';
const PER_CORE_TARGET = 50_000;
/** Baselines adding more than this to the cost per span deserve a profile. */
const COST_BUDGET_PERCENT = 10;
const REPO_DIR = fileURLToPath(new URL('..', import.meta.url));
const PROFILE_TOP_SCRIPT = fileURLToPath(new URL('./profile-top.ts', import.meta.url));
/** Frames that are baselines code (the engine, its stores, the detector feeding it). */
const BASELINE_CODE = /\/src\/baseline\/|\/src\/detect\/detectors\/baseline\.ts/;
/** BENCH_BASELINES_PROFILE=0: no profiled rounds. */
const PROFILE = process.env.BENCH_BASELINES_PROFILE !== '0';


type RowId = 'off' | 'sqlite' | 'redis';

interface RoundResult {
  row: RowId;
  round: number;
  ackedPerSecond: number;
  exportedPerSecond: number;
  collectorCpuPercent: number;
  exportedPerCore: number;
  redisCpuPercent: number;
  peakRssMiB: number;
  baselineRoles: number;
  syncErrors: number;
  findings: Record<string, number>;
  refusals: number;
  errors: number;
  storeBytes: number;
  otherCpuPercent: number;
  exitCode: number | null;
  profile?: string;
}

/** config/agentsec.yaml with detect.baselines set (or not), written to `path`. */
function writeConfig(path: string, baselines: Record<string, unknown> | undefined): string {
  const doc = parseYaml(readFileSync(join(REPO_DIR, 'config/agentsec.yaml'), 'utf8')) as { processors: { detect: Record<string, unknown> } };
  // The shipped config has baselines on: the "off" row takes them out.
  if (baselines) doc.processors.detect.baselines = baselines;
  else delete doc.processors.detect.baselines;
  writeFileSync(path, stringifyYaml(doc));
  return path;
}

interface Env {
  tmp: string;
  pool: string;
  offsets: string;
  configs: Record<RowId, (round: number) => string>;
  redis: { url: string; pid: number; client: Redis } | undefined;
  profileDir: string;
}

async function round(env: Env, row: RowId, n: number, profiled = false): Promise<RoundResult> {
  const id = `${row}-${n}${profiled ? '-profiled' : ''}`;
  const dataDir = join(env.tmp, `data-${id}`);
  const profileName = `collector-baselines-${id}-${process.pid}.cpuprofile`;
  const collector: CollectorProcess = await startCollector({
    config: env.configs[row](n),
    env: { AGENTSEC_DATA_DIR: dataDir, AGENTSEC_POLICY: POLICY, AGENTSEC_LOG_LEVEL: 'warn' },
    logPath: join(env.tmp, `collector-${id}.log`),
    nodeFlags: [...collectorNodeFlags(), ...(profiled ? ['--cpu-prof', `--cpu-prof-dir=${env.profileDir}`, `--cpu-prof-name=${profileName}`] : [])],
  });
  const window = await maxLoadWindow(collector, { pool: env.pool, offsets: env.offsets, seconds: SECONDS, warmupSeconds: WARMUP_SECONDS, concurrency: CONCURRENCY, pids: env.redis ? { redis: env.redis.pid } : {} });
  const stopped = await stopMeasured(collector, id);
  const peakRssMiB = stopped.peakRssBytes / 1024 / 1024;
  const exitCode = stopped.exitCode;
  const { load, cpu, before, after } = window;
  if (load.errors > 0) console.warn(`warning: ${load.errors} failed requests in ${id}, first: ${load.firstError}`);
  const findings: Record<string, number> = {};
  const fb = byLabel(before, 'agentsec_findings_total', 'kind');
  for (const [kind, v] of byLabel(after, 'agentsec_findings_total', 'kind')) if (v - (fb.get(kind) ?? 0) > 0) findings[kind] = v - (fb.get(kind) ?? 0);
  const exported = (sentSpans(after, 'file') - sentSpans(before, 'file')) / load.seconds;
  let storeBytes = NaN;
  if (row === 'sqlite') {
    storeBytes = 0;
    for (const f of ['baselines.db', 'baselines.db-wal']) if (existsSync(join(dataDir, f))) storeBytes += statSync(join(dataDir, f)).size;
  } else if (row === 'redis' && env.redis) {
    storeBytes = Number(/used_memory:(\d+)/.exec(await env.redis.client.info('memory'))?.[1] ?? NaN);
  }
  return {
    row,
    round: n,
    ackedPerSecond: load.ackedSpans / load.seconds,
    exportedPerSecond: exported,
    collectorCpuPercent: cpu.collector!,
    exportedPerCore: exported / (cpu.collector! / 100),
    redisCpuPercent: cpu.redis ?? NaN,
    peakRssMiB,
    baselineRoles: sum(metricValues(after, 'agentsec_baseline_roles')),
    syncErrors: sum(metricValues(after, 'agentsec_baseline_sync_errors_total')),
    findings,
    refusals: load.refusals,
    errors: load.errors,
    storeBytes,
    otherCpuPercent: cpu.other!,
    exitCode,
    ...(profiled ? { profile: join(env.profileDir, profileName) } : {}),
  };
}

/**
 * Share of a .cpuprofile's sampled time with a baselines frame anywhere on the stack (inclusive),
 * in baselines frames themselves (self), and the baselines functions by inclusive share.
 */
function baselineShare(file: string): { inclusive: number; self: number; top: [string, number][] } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as { nodes: { id: number; callFrame: { url: string; functionName: string; lineNumber: number }; children?: number[] }[]; samples: number[]; timeDeltas: number[] };
  const parent = new Map<number, number>();
  const frame = new Map<number, { url: string; functionName: string; lineNumber: number }>();
  for (const node of p.nodes) {
    frame.set(node.id, node.callFrame);
    for (const c of node.children ?? []) parent.set(c, node.id);
  }
  const name = (f: { url: string; functionName: string; lineNumber: number }) => `${f.functionName || '(anonymous)'} ${f.url.slice(f.url.indexOf('/src/') + 1)}:${f.lineNumber + 1}`;
  let total = 0, inclusive = 0, self = 0;
  const byFunction = new Map<string, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    total += dt;
    const names = new Set<string>();
    for (let id: number | undefined = p.samples[i]; id !== undefined; id = parent.get(id)) {
      const f = frame.get(id)!;
      if (BASELINE_CODE.test(f.url)) names.add(name(f));
    }
    if (names.size > 0) inclusive += dt;
    if (BASELINE_CODE.test(frame.get(p.samples[i]!)?.url ?? '')) self += dt;
    for (const n of names) byFunction.set(n, (byFunction.get(n) ?? 0) + dt);
  }
  const top = [...byFunction].sort((a, b) => b[1] - a[1]).map(([n, t]): [string, number] => [n, (100 * t) / total]);
  return { inclusive: (100 * inclusive) / total, self: (100 * self) / total, top };
}

// ---------------------------------------------------------------------------------- 2. sync cost

/** A week of baselines for `roles` roles: 7 days of 5-minute windows each, ITEMS_PER_ROLE items each. */
const ITEMS_PER_ROLE = 60;
function weekOfState(roles: number, now: number, window: number): BaselineData {
  const d = emptyData();
  const last = Math.floor(now / window);
  for (let r = 0; r < roles; r++) {
    const role = `role-${r}`;
    d.roles.set(role, { first: now - 7 * 86_400_000, last: now, calls: 1_000_000, invocations: 100_000 });
    for (let i = 0; i < ITEMS_PER_ROLE; i++) {
      d.items.set(itemKey(role, i % 3 === 0 ? 'tool' : 'endpoint', i % 3 === 0 ? `tool_${i}` : `svc-${i}.corp.internal GET /v1/things/{id}/part${i}`), { count: 500, first: now - 7 * 86_400_000, last: now, convs: ['0a1b2c3d', '4e5f6a7b', '8c9d0e1f'] });
    }
    for (let k = 1; k <= 7 * 288; k++) d.windows.set(windowKey(role, last - k), { calls: 200 + (k % 17), invocations: 20, errors: 2, tokens: 30_000, delegations: 5, depthSum: 20, depthMax: 1 });
  }
  return d;
}

interface SyncCost {
  store: string;
  roles: number;
  startMs: number;
  median: number;
  p95: number;
  max: number;
  /** This process's CPU per sync (ms), median. */
  cpuMs: number;
}

/**
 * What one sync costs once a week of baselines is stored: an engine opened on the store (the
 * default config), then SYNCS syncs 5 s of span time apart (2 minutes, a window closing and judged
 * among them), each after 1,000 calls spread over the roles. A sync writes the delta; with redis
 * (shared) it also reads the merged state back.
 */
const SYNCS = 24;
async function syncCost(name: string, roles: number, mk: () => BaselineStore): Promise<SyncCost> {
  const cfg = BaselinesConfig.parse({ storage: 'memory' });
  // 30 s before a window boundary: the window before it closes (boundary + lateness) after 18 syncs.
  const now = Math.floor(Date.now() / cfg.window) * cfg.window + cfg.window - 30_000;
  const seed = mk();
  await seed.open();
  await seed.flush(weekOfState(roles, now, cfg.window));
  await seed.close();
  const engine = new Baselines(cfg, { store: mk() });
  let t = performance.now();
  await engine.start();
  const startMs = performance.now() - t;
  const wall: number[] = [];
  const cpu: number[] = [];
  let clock = now;
  for (let s = 0; s < SYNCS; s++) {
    for (let c = 0; c < 1000; c++) {
      engine.observeCall(`role-${c % roles}`, clock + c, { tool: `tool_${(c % 20) * 3}`, counts: true, error: false, tokens: 100 }, { traceId: 't', spanId: 's', conversation: `c${c % 50}` }, []);
    }
    clock += 5_000;
    const c0 = process.cpuUsage();
    t = performance.now();
    await engine.sync();
    wall.push(performance.now() - t);
    const c1 = process.cpuUsage(c0);
    cpu.push((c1.user + c1.system) / 1000);
  }
  await engine.close();
  const q = (v: number[], p: number) => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(p * v.length))]!;
  return { store: name, roles, startMs, median: q(wall, 0.5), p95: q(wall, 0.95), max: q(wall, 1), cpuMs: q(cpu, 0.5) };
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'agentsec-bench-baselines-'));
  const profileDir = process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : join(tmp, 'profiles');
  mkdirSync(profileDir, { recursive: true });
  const started = performance.now();
  let redis: TestRedis | undefined;
  let client: Redis | undefined;
  try {
    console.log(
      `\nbaselines (full pipeline, every detector, the demo policy): node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), load average ${loadavg()[0]!.toFixed(2)}; ` +
        `collector node flags: ${collectorNodeFlags().join(' ') || 'none'}`,
    );
    process.stderr.write(`baselines: building ${TEMPLATE_TASKS} demo tasks …\n`);
    const template = buildBenignTemplate(TEMPLATE_TASKS);
    const pool = join(tmp, 'benign.bin');
    const offsets = join(tmp, 'benign-ids.json');
    writePoolFile(pool, template.requests.map((r) => r.bytes));
    writeFileSync(offsets, JSON.stringify(idOffsets(template.requests)));

    const rows: RowId[] = ['off', 'sqlite'];
    const noRedis = redisUnavailable();
    let redisInfo: Env['redis'];
    if (noRedis) console.log(`redis row skipped: ${noRedis}`);
    else {
      redis = await startRedis();
      client = new Redis(redis.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
      const pid = Number(/process_id:(\d+)/.exec(await client.info('server'))?.[1]);
      redisInfo = { url: redis.url, pid, client };
      rows.push('redis');
    }
    const env: Env = {
      tmp,
      pool,
      offsets,
      redis: redisInfo,
      profileDir,
      configs: {
        off: () => writeConfig(join(tmp, 'off.yaml'), undefined),
        sqlite: () => writeConfig(join(tmp, 'sqlite.yaml'), { storage: 'sqlite' }),
        // A fresh key prefix per round: each round starts from an empty store, as the sqlite rows do.
        redis: (n) => writeConfig(join(tmp, `redis-${n}.yaml`), { storage: 'redis', redis: { url: redis!.url, key_prefix: `agentsec-bench:{r${n}}:` } }),
      },
    };
    const results: RoundResult[] = [];
    for (let n = 1; n <= ROUNDS; n++) {
      for (const row of rows) {
        process.stderr.write(`baselines: ${row}, round ${n} …\n`);
        results.push(await round(env, row, n));
      }
    }

    const mean = (row: RowId, f: (r: RoundResult) => number) => {
      const rs = results.filter((r) => r.row === row);
      return rs.reduce((a, r) => a + f(r), 0) / rs.length;
    };
    const offPerCore = mean('off', (r) => r.exportedPerCore);
    console.log(
      `\nthroughput: config/agentsec.yaml with AGENTSEC_POLICY=${POLICY}; detect.baselines off, { storage: sqlite }, { storage: redis, url: ${redis?.url ?? '—'} } (defaults otherwise: sync every 5 s); ` +
        `a fresh collector and data dir per round, rows alternating; HTTP/protobuf from bench/detection-load.ts, ${CONCURRENCY} requests in flight, ${SECONDS} s after ${WARMUP_SECONDS} s warm-up; ` +
        `payload: the demo's normal tasks (${count(template.spans)} spans in ${template.requests.length} requests, sent round and round with fresh ids)`,
    );
    console.log(
      formatTable(
        ['baselines', 'round', 'acked spans/s', 'exported spans/s', 'collector CPU%', 'exported/s per core', 'vs off', 'redis CPU%', 'peak RSS MiB', 'store', 'roles', 'sync errors', 'findings in window', 'refusals', 'errors', 'other CPU%'],
        results.map((r) => [
          r.row,
          String(r.round),
          count(r.ackedPerSecond),
          count(r.exportedPerSecond),
          fixed(r.collectorCpuPercent),
          count(r.exportedPerCore),
          r.row === 'off' ? '—' : `${fixed((100 * (r.exportedPerCore - offPerCore)) / offPerCore, 1)}%`,
          fixed(r.redisCpuPercent),
          fixed(r.peakRssMiB),
          Number.isFinite(r.storeBytes) ? `${fixed(r.storeBytes / 1024 / 1024, 1)} MiB` : '—',
          String(r.baselineRoles),
          String(r.syncErrors),
          Object.keys(r.findings).length === 0 ? '0' : Object.entries(r.findings).map(([k, v]) => `${v} ${k}`).join(', '),
          count(r.refusals),
          count(r.errors),
          fixed(r.otherCpuPercent),
        ]),
      ),
    );
    const summary = rows.map((row) => {
      const perCore = mean(row, (r) => r.exportedPerCore);
      const cost = row === 'off' ? 0 : (100 * (offPerCore / perCore - 1));
      return [
        row,
        count(mean(row, (r) => r.exportedPerSecond)),
        count(perCore),
        row === 'off' ? '—' : `${fixed((100 * (perCore - offPerCore)) / offPerCore, 1)}%`,
        row === 'off' ? '—' : `${fixed(cost, 1)}%`,
        row === 'redis' ? fixed(mean(row, (r) => r.redisCpuPercent)) : '—',
        perCore >= PER_CORE_TARGET ? 'met' : 'NOT met',
      ];
    });
    console.log(`\nmean over ${ROUNDS} rounds`);
    console.log(formatTable(['baselines', 'exported spans/s', 'exported/s per core', 'per core vs off', 'CPU per span vs off', 'redis CPU%', `≥ ${count(PER_CORE_TARGET)}/core`], summary));
    console.log(
      `per core: exported spans/s ÷ the collector's CPU (all its threads, /proc) over the window; redis-server's own CPU is apart (redis CPU%). ` +
        `CPU per span vs off: how much more collector CPU each span costs with baselines (over ${COST_BUDGET_PERCENT}%: see the profiled round below).`,
    );
    noteNoise(results.map((r) => r.otherCpuPercent), 'the windows');

    if (PROFILE) {
      // One more round per store under the profiler (not in the figures above: the profiler costs
      // throughput): the share of the collector's CPU spent in baselines code does not depend on
      // how loaded the machine is, where the throughput delta does.
      const rowsOut: string[][] = [];
      const tops: string[] = [];
      for (const row of rows.filter((r) => r !== 'off')) {
        process.stderr.write(`baselines: ${row}, profiled round …\n`);
        const r = await round(env, row, ROUNDS + 1, true);
        if (!r.profile || !existsSync(r.profile)) continue;
        const share = baselineShare(r.profile);
        rowsOut.push([row, fixed(share.inclusive, 1) + '%', fixed(share.self, 1) + '%', ...share.top.slice(0, 5).map(([name, pct]) => `${fixed(pct, 1)}% ${name}`)]);
        if (process.env.BENCH_CPU_PROF) tops.push(`\n${r.row} (${r.profile}):\n${execFileSync(process.execPath, [PROFILE_TOP_SCRIPT, r.profile, '20'], { cwd: REPO_DIR, encoding: 'utf8' }).trimEnd()}`);
      }
      console.log(`\nCPU profile, one more round per store (--cpu-prof): the share of the collector's sampled time inside baselines code (src/baseline/, src/detect/detectors/baseline.ts), with what it calls (inclusive) and in its own frames (self); the top functions by inclusive time`);
      console.log(formatTable(['baselines', 'inclusive', 'self', 'top 1', 'top 2', 'top 3', 'top 4', 'top 5'], rowsOut));
      for (const t of tops) console.log(t);
    }
    const stateRoles = (process.env.BENCH_BASELINES_STATE_ROLES ?? '50,200').split(',').map(Number).filter((n) => n > 0);
    const costs: SyncCost[] = [];
    for (const n of stateRoles) {
      process.stderr.write(`baselines: sync cost with a week of state, ${n} roles …\n`);
      costs.push(await syncCost('sqlite', n, () => new SqliteStore(join(tmp, `state-${n}.db`))));
      if (redis) {
        const prefix = `agentsec-bench:{state${n}}:`;
        const url = redis.url;
        costs.push(await syncCost('redis', n, () => new RedisStore({ url, key_prefix: prefix, connect_timeout: 5_000 })));
      }
    }
    console.log(
      `\n2. sync cost once a week of baselines is stored (${ITEMS_PER_ROLE} items and 7 × 288 windows per role), the default config: the engine opened on the store, ` +
        `then ${SYNCS} syncs 5 s of span time apart (a window closing and judged among them), each after 1,000 calls; in this process, on its event loop`,
    );
    console.log(
      formatTable(
        ['store', 'roles', 'open (load) ms', 'sync median ms', 'sync p95 ms', 'sync max ms', 'CPU per sync ms', 'share of a core at one sync / 5 s'],
        costs.map((c) => [c.store, String(c.roles), fixed(c.startMs), fixed(c.median, 1), fixed(c.p95, 1), fixed(c.max, 1), fixed(c.cpuMs, 1), `${fixed((100 * c.cpuMs) / 5000, 1)}%`]),
      ),
    );
    console.log(`\nbaselines bench: ${fixed((performance.now() - started) / 1000)} s`);
  } finally {
    client?.disconnect();
    await redis?.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

runMain('baselines bench', main);
