// CPU time and peak memory of another process, read from /proc (Linux), so the figures
// cover every thread of the measured process (GC helpers, libuv pool) and nothing else.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let clockTicks: number | undefined;

/** Kernel clock ticks per second (`getconf CLK_TCK`), the unit of utime and stime. */
function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    const out = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    clockTicks = Number.isFinite(out) && out > 0 ? out : 100;
  }
  return clockTicks;
}

/** User + system CPU seconds used so far by `pid` (all its threads). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces; fields after it start past the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the name: state is field 3, so utime (14) and stime (15) are at offsets 11 and 12.
  return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond();
}

/** Peak resident set size of `pid` so far (VmHWM), in bytes. */
export function peakRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** CPU seconds the whole machine has spent busy (all cores, any process), from /proc/stat. */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  // cpu  user nice system idle iowait irq softirq steal …: everything but idle and iowait is busy.
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) / clockTicksPerSecond();
}

/** CPU use between two samples of a CPU-seconds counter, in % of one core (may exceed 100). */
export class CpuMeter {
  readonly #cpuSeconds: () => number;
  #cpu0 = 0;
  #wall0 = 0;

  /** `cpuSeconds`: e.g. () => cpuSeconds(pid), or machineBusySeconds. */
  constructor(cpuSeconds: () => number) {
    this.#cpuSeconds = cpuSeconds;
  }

  start(): void {
    this.#cpu0 = this.#cpuSeconds();
    this.#wall0 = performance.now();
  }

  percentSinceStart(): number {
    const wallSeconds = (performance.now() - this.#wall0) / 1000;
    return ((this.#cpuSeconds() - this.#cpu0) / wallSeconds) * 100;
  }
}
