// Settings every benchmark script reads from the environment.
import { readFileSync } from 'node:fs';

export function envNumber(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!(value > 0)) throw new Error(`${name} must be a positive number`);
  return value;
}

/** The node flags the collector runs with: BENCH_NODE_FLAGS, else those of `npm start`. */
export function collectorNodeFlags(): string[] {
  const fromEnv = process.env.BENCH_NODE_FLAGS;
  if (fromEnv !== undefined) return fromEnv.split(/\s+/).filter(Boolean);
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts?: { start?: string } };
  const [command, ...args] = pkg.scripts?.start?.split(/\s+/) ?? [];
  if (command !== 'node') return [];
  const script = args.findIndex((arg) => !arg.startsWith('-'));
  return script < 0 ? args : args.slice(0, script);
}
