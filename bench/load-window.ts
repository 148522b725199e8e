// One measured load window: forks bench/load.ts against a target and samples CPU from /proc
// over exactly the window it reports (the collector, the load process, this process and the
// whole machine), so "other processes" can be told apart from the measured ones. "bench" is
// this process: where bench/run.ts's gRPC sink runs.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LoadMessage, LoadResult } from './load.ts';
import { CpuMeter, cpuSeconds, machineBusySeconds } from './proc-stats.ts';

const LOAD_SCRIPT = fileURLToPath(new URL('./load.ts', import.meta.url));
const LOAD_EXIT_TIMEOUT_MS = 10_000;

export interface LoadWindowOptions {
  transport: 'http' | 'grpc';
  target: string;
  poolFile: string;
  collectorPid: number;
  seconds: number;
  warmupSeconds: number;
  concurrency: number;
  /** Called as the measured window starts, e.g. to read the collector's counters. */
  onWindowStart?: () => void;
}

export interface LoadWindow {
  load: LoadResult;
  /** % of one core over the measured window. */
  cpu: { collector: number; load: number; bench: number; machine: number; other: number };
}

export async function runLoadWindow(o: LoadWindowOptions): Promise<LoadWindow> {
  const args = ['--transport', o.transport, '--target', o.target, '--pool', o.poolFile, '--seconds', String(o.seconds), '--warmup', String(o.warmupSeconds), '--concurrency', String(o.concurrency)];
  const child = fork(LOAD_SCRIPT, args, { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const meters = {
    collector: new CpuMeter(() => cpuSeconds(o.collectorPid)),
    load: new CpuMeter(() => cpuSeconds(child.pid!)),
    bench: new CpuMeter(() => cpuSeconds(process.pid)),
    machine: new CpuMeter(machineBusySeconds),
  };
  try {
    return await new Promise<LoadWindow>((resolve, reject) => {
      child.on('message', (message: LoadMessage) => {
        if (message.type === 'window-start') {
          for (const meter of Object.values(meters)) meter.start();
          o.onWindowStart?.();
          return;
        }
        const cpu = { collector: 0, load: 0, bench: 0, machine: 0, other: 0 };
        for (const key of Object.keys(meters) as (keyof typeof meters)[]) cpu[key] = meters[key].percentSinceStart();
        cpu.other = Math.max(0, cpu.machine - cpu.collector - cpu.load - cpu.bench);
        resolve({ load: message.result, cpu });
      });
      void exited.then((code) => reject(new Error(`the load process exited (code ${code}) before its measured window ended`)));
    });
  } finally {
    // It stops by itself once its in-flight requests are answered; a stuck one is killed.
    if ((await Promise.race([exited, sleep(LOAD_EXIT_TIMEOUT_MS, 'timeout' as const)])) === 'timeout') child.kill('SIGKILL');
  }
}
