// One measured window of bench/detection-load.ts at full speed against a collector child: the
// load forked in its own process, CPU read from /proc for each named process and for the whole
// machine over exactly the window the load reports, and the collector's /metrics scraped as the
// window starts and ends. Shared by bench/detection.ts and bench/baselines.ts; pacedLoad is the
// same load at a fixed rate, for bench/detection.ts's latency run and bench/sidecar.ts.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { CollectorProcess } from './collector-process.ts';
import type { DetectionLoadMessage, PacedResult } from './detection-load.ts';
import type { LoadResult } from './load.ts';
import { CpuMeter, cpuSeconds, machineBusySeconds } from './proc-stats.ts';
import { scrapeMetrics } from './prom.ts';

const LOAD_SCRIPT = fileURLToPath(new URL('./detection-load.ts', import.meta.url));

function forkLoad(args: string[]): { child: ChildProcess; exited: Promise<number | null> } {
  const child = fork(LOAD_SCRIPT, args, { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return { child, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

export interface PacedLoadOptions {
  target: string;
  pool: string;
  offsets: string;
  /** Spans per second requested. */
  rate: number;
  /** How long it may run at most (it runs until stop()). */
  seconds: number;
  /** Outstanding requests allowed before a due one is skipped (and counted). */
  concurrency: number;
}

export interface PacedLoad {
  child: ChildProcess;
  /** Resolves once the load is sending; rejects if it exits before. */
  started: Promise<void>;
  /** Asks it to stop, and resolves with what it did once it reports. */
  stop(): Promise<PacedResult>;
}

/** Starts bench/detection-load.ts in paced mode against an OTLP/HTTP endpoint. */
export function pacedLoad(o: PacedLoadOptions): PacedLoad {
  const { child, exited } = forkLoad([
    '--mode', 'paced', '--target', o.target, '--pool', o.pool, '--offsets', o.offsets,
    '--rate', String(Math.round(o.rate)), '--seconds', String(o.seconds), '--concurrency', String(o.concurrency),
  ]);
  const result = new Promise<PacedResult>((resolve, reject) => {
    child.on('message', (m: DetectionLoadMessage) => m.type === 'paced-result' && resolve(m.result));
    void exited.then((code) => reject(new Error(`the paced load exited (code ${code}) without a result`)));
  });
  result.catch(() => undefined); // seen by stop(), or not wanted after a failure
  const started = new Promise<void>((resolve, reject) => {
    child.on('message', (m: DetectionLoadMessage) => m.type === 'started' && resolve());
    void exited.then((code) => reject(new Error(`the paced load exited (code ${code}) before it started`)));
  });
  return {
    child,
    started,
    async stop() {
      child.send({ type: 'stop' });
      const done = await result;
      await exited;
      return done;
    },
  };
}

export type CpuShares = Record<string, number> & { machine: number; other: number };

/** % of one core used by each process since start(), and by the rest of the machine. */
export function cpuMeters(pids: Record<string, number>) {
  const meters = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, new CpuMeter(() => cpuSeconds(pid))]));
  const machine = new CpuMeter(machineBusySeconds);
  return {
    start() {
      for (const m of Object.values(meters)) m.start();
      machine.start();
    },
    read(): CpuShares {
      const out: Record<string, number> = {};
      for (const [k, m] of Object.entries(meters)) out[k] = m.percentSinceStart();
      const all = machine.percentSinceStart();
      return { ...out, machine: all, other: Math.max(0, all - Object.values(out).reduce((a, b) => a + b, 0)) };
    },
  };
}

export interface MaxWindow {
  load: LoadResult;
  /** collector, load, bench and the extra processes, each in % of one core; machine and other. */
  cpu: CpuShares;
  /** /metrics text at the window's start and end. */
  before: string;
  after: string;
}

export interface MaxWindowOptions {
  pool: string;
  offsets: string;
  seconds: number;
  warmupSeconds: number;
  concurrency: number;
  /** More processes whose CPU counts apart (e.g. redis-server). */
  pids?: Record<string, number>;
}

/** Runs the load at full speed against the collector's OTLP/HTTP endpoint; stops the collector if it fails. */
export async function maxLoadWindow(collector: CollectorProcess, o: MaxWindowOptions): Promise<MaxWindow> {
  try {
    const { child, exited } = forkLoad([
      '--mode', 'max', '--target', collector.endpoints.http, '--pool', o.pool, '--offsets', o.offsets,
      '--seconds', String(o.seconds), '--warmup', String(o.warmupSeconds), '--concurrency', String(o.concurrency),
    ]);
    const meters = cpuMeters({ collector: collector.pid, load: child.pid!, bench: process.pid, ...o.pids });
    let before: Promise<string> = Promise.resolve('');
    let ended = false;
    const window = await new Promise<MaxWindow>((resolve, reject) => {
      child.on('message', (m: DetectionLoadMessage) => {
        if (m.type === 'window-start') {
          meters.start();
          before = scrapeMetrics(collector.adminUrl);
        } else if (m.type === 'window-end') {
          ended = true;
          const cpu = meters.read();
          // The load process may exit before these answer: the window is over, that is fine.
          void Promise.all([before, scrapeMetrics(collector.adminUrl)]).then(([b, a]) => resolve({ load: m.result as LoadResult, cpu, before: b, after: a }), reject);
        }
      });
      void exited.then((code) => {
        if (!ended) reject(new Error(`the load process exited (code ${code}) before its measured window ended`));
      });
    });
    await exited;
    return window;
  } catch (err) {
    await collector.stop();
    throw err;
  }
}
