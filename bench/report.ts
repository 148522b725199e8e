// The bench's output: aligned text tables on stdout and the same figures as JSON.
import { writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { CodecReport } from './codec.ts';

/**
 * Writes a script's figures as JSON, with its settings (and the node version and core count), to
 * the path in `envVar`, else to a dated file in the OS temp dir, and prints where.
 */
export function writeFigures(script: string, envVar: string, settings: Record<string, unknown>, figures: Record<string, unknown>): void {
  const path = resolve(process.env[envVar] ?? join(tmpdir(), `agentsec-bench-${script}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`));
  const all = { date: new Date().toISOString(), settings: { ...settings, node: process.version, cores: cpus().length }, ...figures };
  writeFileSync(path, JSON.stringify(all, null, 2) + '\n');
  console.log(`\n${script} figures as JSON: ${path}`);
}

export interface ScenarioResult {
  transport: 'http' | 'grpc';
  sink: string;
  spansPerSecond: number;
  /** Collector CPU over the measured window, in % of one core (GC threads can take it past 100). */
  collectorCpuPercent: number;
  spansPerCore: number;
  peakRssMiB: number;
  refusals: number;
  /** The collector's reasons (queue_full, memory_limit, …), from its metrics. */
  refusedFor: string[];
  errors: number;
  firstError: string | undefined;
  /** Spans the downstream sink received per second over the window; only for the forwarding sink. */
  exportedSpansPerSecond: number | undefined;
  loadCpuPercent: number;
  /** CPU of the bench process, where the gRPC sink runs; only for the forwarding sink. */
  sinkCpuPercent: number | undefined;
  /** CPU used by other processes on the machine during the window: high means noisy figures. */
  otherCpuPercent: number;
  collectorExitCode: number | null;
}

/** A whole number with thousands separators; '—' when there is none (a crashed collector). */
export const count = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
/** A number to `digits` places; '—' when there is none. */
export const fixed = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '—');

/** Other processes' CPU (% of a core) above which a window's figures are called disturbed. */
export const NOISY_OTHER_CPU_PERCENT = 10;

/** Notes when other processes used much CPU during the windows measured (`during`: "a window", "the latency run" …). */
export function noteNoise(otherCpu: readonly number[], during: string): void {
  const busiest = Math.max(0, ...otherCpu);
  if (busiest > NOISY_OTHER_CPU_PERCENT) console.log(`note: other processes used up to ${busiest.toFixed(0)}% of a core during ${during}; those figures are disturbed`);
}

/** Left-aligns text columns and right-aligns numeric ones (those whose cells all start with a digit). */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const numeric = headers.map((_, c) => rows.length > 0 && rows.every((r) => /^[\d—-]/.test(r[c]!)));
  const line = (cells: string[]) => cells.map((cell, c) => (numeric[c] ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function scenarioTable(results: readonly ScenarioResult[]): string {
  return formatTable(
    ['transport', 'sink', 'acked spans/s', 'collector CPU%', 'spans/s per core', 'peak RSS MiB', 'refusals', 'errors', 'exported spans/s', 'load CPU%', 'sink CPU%', 'other CPU%'],
    results.map((r) => [
      r.transport,
      r.sink,
      count(r.spansPerSecond),
      fixed(r.collectorCpuPercent),
      count(r.spansPerCore),
      fixed(r.peakRssMiB),
      r.refusedFor.length > 0 ? `${count(r.refusals)} (${r.refusedFor.join(', ')})` : count(r.refusals),
      count(r.errors),
      r.exportedSpansPerSecond === undefined ? '—' : count(r.exportedSpansPerSecond),
      fixed(r.loadCpuPercent),
      r.sinkCpuPercent === undefined ? '—' : fixed(r.sinkCpuPercent),
      fixed(r.otherCpuPercent),
    ]),
  );
}

export function codecTable(codec: CodecReport): string {
  const table = formatTable(
    ['operation (one core, in-process)', 'implementation', 'spans/s'],
    codec.rows.map((r) => [r.operation, r.implementation, count(r.spansPerSecond)]),
  );
  return codec.staticCodeProblem ? `${table}\nstatic code not measured: ${codec.staticCodeProblem}` : table;
}

/** "static ÷ reflection: decode 0.98×, encode 1.03×", or undefined without static rows. */
export function staticVersusReflection(codec: CodecReport): string | undefined {
  const speed = (operation: string, implementation: string) =>
    codec.rows.find((r) => r.operation === operation && r.implementation.startsWith(implementation))?.spansPerSecond;
  const parts: string[] = [];
  for (const op of ['decode protobuf', 'encode protobuf']) {
    const reflection = speed(op, 'protobufjs reflection');
    const generated = speed(op, 'pbjs static code');
    if (reflection && generated) parts.push(`${op.split(' ')[0]} ${(generated / reflection).toFixed(2)}×`);
  }
  return parts.length > 0 ? `pbjs static code ÷ protobufjs reflection: ${parts.join(', ')}` : undefined;
}

export function pipelineRatios(results: readonly ScenarioResult[], codec: CodecReport): string {
  const ratios = results.map((r) => `${r.transport}/${r.sink} ${(r.spansPerCore / codec.decodeValidatedSpansPerSecond).toFixed(2)}`);
  return `pipeline spans/s per core ÷ decode-only (decodeTraceProtobuf, ${count(codec.decodeValidatedSpansPerSecond)} spans/s): ${ratios.join(' · ')}`;
}
