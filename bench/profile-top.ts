// Top functions by self time in a V8 .cpuprofile, e.g. one written by
// `BENCH_CPU_PROF=/tmp/prof BENCH_ONLY=grpc/file npm run bench`:
//   node bench/profile-top.ts /tmp/prof/collector-grpc-config_agentsec_yaml.cpuprofile [top=25]
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/profile-top.ts FILE.cpuprofile [top]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;

const nameOf = new Map<number, string>();
for (const { id, callFrame: f } of profile.nodes) {
  const where = f.url ? ` ${relative(process.cwd(), f.url.replace(/^file:\/\//, ''))}:${f.lineNumber + 1}` : '';
  nameOf.set(id, `${f.functionName || '(anonymous)'}${where}`);
}

// timeDeltas[i] is the time between sample i-1 and sample i: it is charged to sample i.
const selfMicros = new Map<string, number>();
let totalMicros = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const name = nameOf.get(profile.samples[i]!)!;
  const delta = profile.timeDeltas[i] ?? 0;
  selfMicros.set(name, (selfMicros.get(name) ?? 0) + delta);
  totalMicros += delta;
}

const top = [...selfMicros].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 25));
console.log(`${(totalMicros / 1e6).toFixed(1)} s sampled; self time:`);
for (const [name, micros] of top) {
  console.log(`${((100 * micros) / totalMicros).toFixed(1).padStart(5)}%  ${(micros / 1000).toFixed(0).padStart(6)} ms  ${name}`);
}
