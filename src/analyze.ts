// agentsec analyze: the collector's agent processors run offline over OTLP/JSON files (one
// ExportTraceServiceRequest per file, or one per line; `-` reads stdin), e.g. traces exported
// from Jaeger (api/v3) or Tempo. Enriched spans go to --out-spans as OTLP/JSON lines; findings
// go to stdout as NDJSON; progress and the summary go to stderr.
//
// Offline the whole input is known, so the answer should not depend on its order: a first pass
// builds every trace graph (summaries only, so memory stays bounded), a second pass enriches and
// writes. The second pass's spans are duplicates to the graph store, which hands back the
// summaries the first pass resolved. stdin is kept in a temporary file for the second pass.
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import type { Exporter, Host, Processor, Settings, TracesConsumer } from './component/types.ts';
import { components } from './components.ts';
import type { ResolvedConfig } from './config/schema.ts';
import { decodeTraceJson, jsonSyntaxMessage } from './otlp/decode.ts';
import type { TraceBatch } from './otlp/types.ts';
import { createFileExporter, FileExporterConfig } from './exporters/file.ts';
import { EnrichConfig } from './processors/enrich.ts';
import { typeOf } from './component/registry.ts';
import { BadInputError, ConfigError, errorMessage } from './errors.ts';
import { formatIssues } from './config/issues.ts';
import { createLogger } from './telemetry/logger.ts';
import { MetricsRegistry } from './telemetry/metrics.ts';
import { TraceGraphProcessor } from './processors/tracegraph.ts';
import { Detect, DetectConfig } from './processors/detect.ts';

export interface AnalyzeOptions {
  files: string[];
  /** A config whose first traces pipeline gives the processors (default: normalize, tracegraph, enrich). */
  config?: ResolvedConfig;
  outSpans?: string;
  /** A policy file for detection (overrides the config's). */
  policy?: string;
  stdin?: Readable;
  /** Where findings go, as native NDJSON; stdout by default. */
  stdout?: { write(s: string): unknown };
  stderr?: Writable & { isTTY?: boolean };
  /** Where the HMAC key lives when the config does not give one. */
  dataDir?: string;
}

export interface AnalyzeSummary {
  requests: number;
  spans: number;
  rejectedSpans: number;
  traces: number;
  agents: number;
  findings: number;
}

/** Processors that make sense offline; memory_limiter and the like are skipped. */
const OFFLINE = new Set(['normalize', 'tracegraph', 'detect', 'enrich']);
const DEFAULT_PROCESSORS: [string, unknown][] = [['normalize', {}], ['tracegraph', {}], ['detect', {}], ['enrich', {}]];

export async function analyze(opts: AnalyzeOptions): Promise<AnalyzeSummary> {
  const stderr = opts.stderr ?? process.stderr;
  const registry = components();
  const logger = createLogger('warn', { write: (s: string) => void stderr.write(s) });
  const metrics = new MetricsRegistry();
  const dataDir = opts.dataDir ?? opts.config?.service.data_dir ?? 'data';
  const settings = (id: string): Settings => ({ id, logger: logger.child({ component: id }), metrics, dataDir });
  const host: Host = { logger, metrics, isReady: () => true, api: { add: () => undefined, list: () => [] } };

  const sink: Exporter = opts.outSpans
    ? createFileExporter(settings('file'), FileExporterConfig.parse({ path: opts.outSpans, rotation: { max_megabytes: 0 } }))
    : { mutatesData: false, consume: async () => undefined, start: async () => undefined, shutdown: async () => undefined };

  const chosen = processorsOf(opts.config);
  const processors: Processor[] = [];
  // Pass 1 sends into nothing; pass 2 into the sink.
  let pass = 1;
  const output: TracesConsumer = { mutatesData: false, consume: (b, ctx) => (pass === 1 ? Promise.resolve() : sink.consume(b, ctx)) };
  let next: TracesConsumer = output;
  let graph: TraceGraphProcessor | undefined;
  let detect: Detect | undefined;
  for (const [id, cfg] of [...chosen].reverse()) {
    const factory = registry.get('processor', typeOf(id))!;
    let p: Processor;
    if (typeOf(id) === 'detect') {
      // Findings go to stdout, as native NDJSON, whatever sinks the config names.
      const parsed = DetectConfig.safeParse({ ...(cfg as object), ...(opts.policy ? { policy: opts.policy } : {}), sinks: { ndjson: [{ path: '-', format: 'native' }] } });
      if (!parsed.success) throw new ConfigError(formatIssues([], parsed.error));
      const c = parsed.data;
      p = detect = new Detect(settings(id), c, next, opts.stdout ?? process.stdout);
    } else {
      // Offline there is nothing to wait for: enrich runs inline.
      const parsed = typeOf(id) === 'enrich' ? { ...(cfg as object), ...EnrichConfig.parse({ hold: 0 }) } : factory.config.parse(cfg ?? {});
      p = factory.create(settings(id), parsed, next);
    }
    if (p instanceof TraceGraphProcessor) graph = p;
    processors.unshift(p);
    next = p;
  }
  await sink.start(host);
  for (const p of [...processors].reverse()) await p.start(host);

  const spool = opts.files.includes('-') ? mkdtempSync(join(tmpdir(), 'agentsec-analyze-')) : undefined;
  const stdinCopy = spool ? join(spool, 'stdin.jsonl') : undefined;
  const progress = new Progress(stderr, opts.files);
  const summary: AnalyzeSummary = { requests: 0, spans: 0, rejectedSpans: 0, traces: 0, agents: 0, findings: 0 };
  try {
    for (pass = 1; pass <= 2; pass++) {
      for (const file of opts.files) {
        const source = file === '-' ? (pass === 1 ? 'stdin' : stdinCopy!) : file;
        const copy = file === '-' && pass === 1 ? createWriteStream(stdinCopy!) : undefined;
        const input = source === 'stdin' ? (opts.stdin ?? process.stdin) : createReadStream(source);
        for await (const doc of documents(file, input, copy, (n) => pass === 1 && progress.advance(n))) {
          const decoded = decodeTraceJson(unwrap(doc.text, `${file}:${doc.line}`));
          if (pass === 1) {
            summary.requests++;
            summary.rejectedSpans += decoded.rejectedSpans;
            summary.spans += decoded.batch.spanCount;
            for (const e of decoded.errors) stderr.write(`agentsec analyze: ${file}:${doc.line}: rejected ${e}\n`);
          }
          if (decoded.batch.spanCount === 0) continue;
          await next.consume(decoded.batch as TraceBatch, { receiver: 'analyze', transport: 'file' });
        }
        if (copy) {
          copy.end();
          await once(copy, 'close');
        }
      }
      if (pass === 1) progress.done();
    }
  } finally {
    summary.findings = detect?.list({}).findings.length ?? 0;
    if (graph) {
      summary.traces = graph.store.size;
      summary.agents = new Set([...graph.store.values()].flatMap((t) => [...t.nodes.values()].filter((n) => !n.transparent).map((n) => n.role))).size;
    }
    const signal = AbortSignal.timeout(30_000);
    for (const p of processors) await p.shutdown(signal);
    await sink.shutdown(signal);
    if (spool) rmSync(spool, { recursive: true, force: true });
  }
  return summary;
}

function processorsOf(config: ResolvedConfig | undefined): [string, unknown][] {
  if (!config) return DEFAULT_PROCESSORS;
  const [first] = Object.entries(config.service.pipelines).filter(([name]) => name === 'traces' || name.startsWith('traces/'));
  const ids = (first?.[1].processors ?? []).filter((id) => OFFLINE.has(typeOf(id)));
  return ids.length > 0 ? ids.map((id) => [id, config.components.processor.get(id)]) : DEFAULT_PROCESSORS;
}

/** Accepts an ExportTraceServiceRequest, Jaeger's api/v3 answer ({result:{resourceSpans}}) or Tempo's ({batches}). */
function unwrap(text: string, where: string): string {
  if (text.includes('"resourceSpans"') && !text.includes('"result"')) return text;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new BadInputError(`${where}: not valid JSON: ${jsonSyntaxMessage(err)}`);
  }
  const o = doc as { resourceSpans?: unknown; result?: { resourceSpans?: unknown }; batches?: unknown; data?: unknown };
  if (o.result?.resourceSpans) return JSON.stringify({ resourceSpans: o.result.resourceSpans });
  if (o.batches) return JSON.stringify({ resourceSpans: o.batches });
  if (o.resourceSpans) return text;
  if (o.data) throw new BadInputError(`${where}: this looks like Jaeger's UI JSON, not OTLP; export with Jaeger's /api/v3/traces/{id} instead`);
  throw new BadInputError(`${where}: no resourceSpans found (expected an OTLP/JSON ExportTraceServiceRequest)`);
}

/** OTLP/JSON documents of a file: one per line (JSON Lines), or the whole file when it is one document. */
async function* documents(file: string, input: Readable, copy: Writable | undefined, onBytes: (n: number) => void): AsyncGenerator<{ text: string; line: number }> {
  const lines = createInterface({ input, crlfDelay: Infinity });
  let buffered: string[] | undefined;
  let n = 0;
  try {
    for await (const line of lines) {
      n++;
      onBytes(Buffer.byteLength(line) + 1);
      if (copy && !copy.write(line + '\n')) await once(copy, 'drain');
      if (buffered) {
        buffered.push(line);
        continue;
      }
      const t = line.trim();
      if (t === '') continue;
      if (n === 1 && !isCompleteJson(t)) {
        buffered = [line]; // a pretty-printed single document
        continue;
      }
      yield { text: t, line: n };
    }
  } catch (err) {
    throw new BadInputError(`cannot read ${file}: ${errorMessage(err)}`);
  }
  if (buffered) yield { text: buffered.join('\n'), line: 1 };
}

function isCompleteJson(s: string): boolean {
  if (!s.startsWith('{') || !s.endsWith('}')) return false;
  try {
    JSON.parse(s);
    return true;
  } catch {
    return false;
  }
}

/** A one-line progress bar on stderr, only when it is a terminal. */
class Progress {
  readonly #out: Writable & { isTTY?: boolean };
  readonly #total: number;
  #seen = 0;
  #last = 0;
  constructor(out: Writable & { isTTY?: boolean }, files: string[]) {
    this.#out = out;
    this.#total = files.reduce((sum, f) => sum + (f === '-' ? 0 : safeSize(f)), 0);
  }
  advance(bytes: number): void {
    this.#seen += bytes;
    if (!this.#out.isTTY || Date.now() - this.#last < 100) return;
    this.#last = Date.now();
    const mib = (b: number) => (b / 1048576).toFixed(1);
    if (this.#total > 0) {
      const frac = Math.min(1, this.#seen / this.#total);
      const width = 30;
      const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
      this.#out.write(`\r[${bar}] ${(frac * 100).toFixed(0)}% ${mib(this.#seen)}/${mib(this.#total)} MiB`);
    } else this.#out.write(`\r${mib(this.#seen)} MiB read`);
  }
  done(): void {
    if (this.#out.isTTY && this.#last > 0) this.#out.write('\n');
  }
}

function safeSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}
