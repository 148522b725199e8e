// Codec speed on one core, in this process: how fast the collector's decoders and encoders
// handle the benchmark payload when nothing else runs, the ceiling a pipeline is compared to.
// The exporters' protobuf encoder (encodeTraceProtobuf) is hand-written; protobufjs's encode
// is measured beside it for reference.
// Also settles "protobufjs reflection vs generated static code" (src/otlp/proto.ts uses
// reflection) by generating static code with pbjs (protobufjs-cli) at bench time.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ExportTraceServiceRequest, PROTO_DIR } from '../src/otlp/proto.ts';
import { decodeTraceJson, decodeTraceProtobuf } from '../src/otlp/decode.ts';
import { encodeTraceJson, encodeTraceProtobuf } from '../src/otlp/encode.ts';
import type { ResourceSpans } from '../src/otlp/types.ts';
import { SPANS_PER_REQUEST } from './payload.ts';

export interface CodecRow {
  operation: string;
  implementation: string;
  spansPerSecond: number;
}

export interface CodecReport {
  rows: CodecRow[];
  /** decodeTraceProtobuf, what the receiver runs per request: the pipeline's ceiling. */
  decodeValidatedSpansPerSecond: number;
  /** Why there are no static-code rows, when there are none. */
  staticCodeProblem: string | undefined;
}

interface MessageCodec {
  decode(bytes: Uint8Array): unknown;
  encode(message: unknown): { finish(): Uint8Array };
}

/** Decoded requests kept alive as encoder input (a collector holds a few batches at once too). */
const ENCODE_INPUTS = 16;
const WARMUP_MS = 250;
/** Each operation is measured this many times, interleaved, and the best kept: less noise. */
const ROUNDS = 2;

export function runCodecBench(pool: readonly Buffer[], jsonPool: readonly Buffer[], tmpDir: string, seconds: number): CodecReport {
  const decoded: ResourceSpans[][] = pool.slice(0, ENCODE_INPUTS).map((b) => decodeTraceProtobuf(b).batch.resourceSpans);
  const at = <T>(list: readonly T[], i: number) => list[i % list.length]!;
  const operations: { operation: string; implementation: string; run: (i: number) => unknown }[] = [
    { operation: 'decode protobuf', implementation: 'protobufjs reflection', run: (i) => ExportTraceServiceRequest.decode(at(pool, i)) },
    { operation: 'decode protobuf + validate', implementation: 'decodeTraceProtobuf', run: (i) => decodeTraceProtobuf(at(pool, i)) },
    { operation: 'decode JSON + validate', implementation: 'decodeTraceJson', run: (i) => decodeTraceJson(at(jsonPool, i)) },
    { operation: 'encode protobuf', implementation: 'protobufjs reflection', run: (i) => ExportTraceServiceRequest.encode({ resourceSpans: at(decoded, i) }).finish() },
    { operation: 'encode protobuf', implementation: 'hand-written two-pass (encodeTraceProtobuf)', run: (i) => encodeTraceProtobuf(at(decoded, i)) },
    { operation: 'encode JSON', implementation: 'encodeTraceJson', run: (i) => encodeTraceJson(at(decoded, i)) },
  ];

  let staticCodeProblem: string | undefined;
  try {
    const Static = generateStaticCodec(tmpDir);
    checkSameEncoding(Static, decoded[0]!);
    // Each right after its reflection counterpart, so the table reads as a comparison.
    operations.splice(1, 0, { operation: 'decode protobuf', implementation: 'pbjs static code', run: (i) => Static.decode(at(pool, i)) });
    operations.splice(5, 0, { operation: 'encode protobuf', implementation: 'pbjs static code', run: (i) => Static.encode({ resourceSpans: at(decoded, i) }).finish() });
  } catch (err) {
    staticCodeProblem = (err as Error).message;
  }

  const best = new Map<string, number>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const op of operations) {
      const key = `${op.operation}|${op.implementation}`;
      best.set(key, Math.max(best.get(key) ?? 0, spansPerSecond(op.run, seconds)));
    }
  }
  const rows = operations.map((op) => ({ operation: op.operation, implementation: op.implementation, spansPerSecond: best.get(`${op.operation}|${op.implementation}`)! }));
  const decodeValidated = rows.find((r) => r.implementation === 'decodeTraceProtobuf')!.spansPerSecond;
  return { rows, decodeValidatedSpansPerSecond: decodeValidated, staticCodeProblem };
}

/** Runs `op` over the pool for `seconds` after a warm-up that lets V8 optimize it. */
function spansPerSecond(op: (i: number) => unknown, seconds: number): number {
  let i = 0;
  for (const warmEnd = performance.now() + WARMUP_MS; performance.now() < warmEnd; ) op(i++);
  const start = performance.now();
  const end = start + seconds * 1000;
  let requests = 0;
  while (performance.now() < end) {
    op(i++);
    requests++;
  }
  return (requests * SPANS_PER_REQUEST) / ((performance.now() - start) / 1000);
}

/**
 * Generates `pbjs -t static-module` code for the trace service protos into tmpDir and loads it.
 * The generated module requires the same protobufjs/minimal instance as src/otlp/proto.ts,
 * so it shares its Long setup (fixed64 timestamps as Long, as with reflection).
 */
function generateStaticCodec(tmpDir: string): MessageCodec {
  const require = createRequire(import.meta.url);
  let pbjs: string;
  try {
    pbjs = join(dirname(require.resolve('protobufjs-cli/package.json')), 'bin', 'pbjs');
  } catch {
    throw new Error('protobufjs-cli is not installed (npm install --save-dev protobufjs-cli@1), so pbjs cannot generate static code');
  }
  const out = join(tmpDir, 'otlp-static.cjs');
  // Only encode/decode matter here: skip verify/convert/etc. (they do not change those functions).
  const args = ['-t', 'static-module', '-w', 'commonjs', '--dependency', require.resolve('protobufjs/minimal'), '-p', PROTO_DIR];
  args.push('--no-verify', '--no-convert', '--no-delimited', '--no-typeurl', '--no-service', '--no-comments', '-o', out);
  try {
    execFileSync(process.execPath, [pbjs, ...args, 'opentelemetry/proto/collector/trace/v1/trace_service.proto'], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim();
    throw new Error(`pbjs failed: ${stderr || (err as Error).message}`);
  }
  const root = require(out) as { opentelemetry: { proto: { collector: { trace: { v1: { ExportTraceServiceRequest: MessageCodec } } } } } };
  return root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
}

/** The two codecs must produce the same bytes, or their speeds are not comparable. */
function checkSameEncoding(Static: MessageCodec, resourceSpans: ResourceSpans[]): void {
  const reflection = Buffer.from(ExportTraceServiceRequest.encode({ resourceSpans }).finish());
  const generated = Buffer.from(Static.encode({ resourceSpans }).finish());
  if (!reflection.equals(generated)) throw new Error('pbjs static code encodes the payload differently from reflection; not compared');
}
