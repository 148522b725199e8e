// detect: runs every detector over the trace graphs as spans arrive (after tracegraph, before
// enrich), deduplicates findings by (trace, kind, key), and delivers each one: on the span that
// shows it (enrich writes the attributes and an event while the span is still held), as a
// finding span added to the same trace (service.name=agentsec, status ERROR, a child of the span
// that shows it, linked to every span of the chain), to the finding sinks, to GET /api/findings
// and to agentsec_findings_total{kind,severity}.
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { ConsumeContext, Host, Processor, ProcessorFactory, Settings, TracesConsumer } from '../component/types.ts';
import type { KeyValue, ResourceSpans, Span, TraceBatch } from '../otlp/types.ts';
import { SpanKind, StatusCode } from '../otlp/types.ts';
import { spanNodes, spanViews } from '../agent/annotations.ts';
import type { SpanNode, TraceGraph } from '../tracegraph/trace.ts';
import { DETECTORS } from '../detect/detectors/index.ts';
import type { AddedSpan, Detector, DetectorTrace, FindingDraft, LabeledSpan } from '../detect/detector.ts';
import { shingles } from '../detect/detector.ts';
import { FINDING_KINDS, findingId, OWASP, severityRank, type Finding, type FindingKind } from '../detect/finding.ts';
import { EMPTY_POLICY, loadPolicy, type Policy } from '../detect/policy.ts';
import { createSinks, SinksConfig, type FindingSink } from '../detect/sinks.ts';
import { ConfigError, errorMessage } from '../errors.ts';
import { ApiError } from '../admin/server.ts';

export const DetectConfig = z.strictObject({
  /** The policy file (YAML); without one, every role is observed and nothing is labelled. */
  policy: z
    .string()
    .optional()
    .transform((p) => (p ? p : undefined)),
  /** Jaeger's UI base URL, e.g. http://localhost:16686: every finding then links to its trace. */
  jaeger_ui_url: z.string().url().optional(),
  /** Settings per detector kind; `false` turns one off. Every kind runs by default. */
  detectors: z.partialRecord(z.enum(FINDING_KINDS), z.union([z.literal(false), z.record(z.string(), z.unknown())])).default({}),
  sinks: SinksConfig,
  /** Findings kept for the API (oldest forgotten first). */
  max_findings: z.number().int().positive().default(10_000),
}).superRefine((c, ctx) => {
  // The policy file is part of the config: `agentsec validate` reports its problems too.
  if (!c.policy) return;
  try {
    loadPolicy(c.policy);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const issue of err.issues) ctx.addIssue({ code: 'custom', path: ['policy'], message: issue });
  }
});
export type DetectConfig = z.output<typeof DetectConfig>;

interface TraceMemo {
  labeled: LabeledSpan[];
  findings: Map<string, Finding>;
}

const CONFIDENCE_RANK = { low: 0, medium: 1, high: 2 } as const;

const SEVERITY_FILTER = new Set(['low', 'medium', 'high', 'critical']);

export class Detect implements Processor {
  readonly mutatesData = true;
  readonly #next: TracesConsumer;
  readonly #set: Settings;
  readonly #cfg: DetectConfig;
  readonly #detectors: Detector[];
  readonly #memos = new WeakMap<TraceGraph, TraceMemo>();
  readonly #seen = new WeakSet<SpanNode>();
  readonly #findings = new Map<string, Finding>();
  readonly #sinks: FindingSink[];
  readonly #counter;
  readonly #errors;
  #policy: Policy;
  now: () => number = Date.now;

  constructor(set: Settings, cfg: DetectConfig, next: TracesConsumer, stdout?: { write(s: string): unknown }) {
    this.#set = set;
    this.#cfg = cfg;
    this.#next = next;
    this.#policy = cfg.policy ? loadPolicy(cfg.policy) : EMPTY_POLICY;
    const ctx = { policy: () => this.#policy, now: () => this.now() };
    this.#detectors = [];
    for (const [kind, def] of DETECTORS) {
      const settings = cfg.detectors[kind];
      if (settings === false) continue;
      const parsed = def.config.safeParse(settings ?? {});
      if (!parsed.success) throw new Error(`detectors::${kind}: ${parsed.error.issues.map((i) => `${i.path.join('::')} ${i.message}`).join('; ')}`);
      this.#detectors.push(def.create(parsed.data, ctx));
    }
    this.#sinks = createSinks(cfg.sinks, { stdout, logger: set.logger, metrics: set.metrics });
    this.#counter = set.metrics.counter('agentsec_findings_total', 'Findings, by kind and severity.', ['kind', 'severity']);
    this.#errors = set.metrics.counter('agentsec_detector_errors_total', 'Detector failures (the detector is skipped for that batch).', ['kind']);
  }

  get policy(): Policy {
    return this.#policy;
  }

  async start(host: Host): Promise<void> {
    for (const s of this.#sinks) await s.start();
    host.api.add({ method: 'GET', path: '/findings', handler: ({ query }) => this.list(query) });
    host.api.add({
      method: 'GET',
      path: '/findings/:id',
      handler: ({ params }) => {
        const f = this.#findings.get(params.id!);
        if (!f) throw new ApiError(404, `no finding ${params.id}`);
        return f;
      },
    });
    this.#set.logger.info({ detectors: this.#detectors.map((d) => d.kind), policy: this.#cfg.policy ?? null }, 'detection running');
  }

  list(q: Record<string, string | undefined>): { findings: Finding[] } {
    if (q.severity && !SEVERITY_FILTER.has(q.severity)) throw new ApiError(400, 'severity must be low, medium, high or critical');
    const since = q.since ? Date.parse(q.since) : undefined;
    if (q.since && Number.isNaN(since)) throw new ApiError(400, 'since must be an ISO 8601 time');
    const minRank = q.severity ? severityRank(q.severity as Finding['severity']) : 0;
    const out: Finding[] = [];
    for (const f of this.#findings.values()) {
      if (q.kind && f.kind !== q.kind) continue;
      if (severityRank(f.severity) < minRank) continue;
      if (q.trace && f.traceId !== q.trace.toLowerCase()) continue;
      if (q.role && !f.chain.some((h) => h.role === q.role)) continue;
      if (since !== undefined && Date.parse(f.time) < since) continue;
      out.push(f);
    }
    return { findings: out.reverse() };
  }

  consume(batch: TraceBatch, ctx: ConsumeContext): Promise<void> {
    const views = spanViews.get(batch);
    const nodes = spanNodes.get(batch);
    if (!views || !nodes) return Promise.reject(new Error(`${this.#set.id}: tracegraph must come before detect in the pipeline`));
    const byTrace = new Map<TraceGraph, AddedSpan[]>();
    for (let i = 0; i < nodes.length; i++) {
      const span = nodes[i];
      if (!span || this.#seen.has(span)) continue; // a resent span is judged once
      this.#seen.add(span);
      const view = views[i]!;
      const labels = this.#policy.labels({ tool: span.tool, host: span.host, method: span.method, path: span.path, db: span.db, mcpMethod: span.mcpMethod });
      let memo = this.#memos.get(span.trace);
      if (!memo) {
        this.#memos.set(span.trace, (memo = { labeled: [], findings: new Map() }));
        const graph = span.trace;
        graph.onEvict(() => {
          for (const d of this.#detectors) d.forget?.(graph);
        });
      }
      let labeled: LabeledSpan | undefined;
      if (labels.capabilities.length > 0) {
        // Only the side a flow reads: a sink's arguments, an untrusted or sensitive source's result.
        labeled = {
          span,
          labels,
          argShingles: labels.sink ? shingles(view.toolArgs) : undefined,
          resultShingles: labels.untrusted || labels.sensitive ? shingles(view.toolResult) : undefined,
        };
        memo.labeled.push(labeled);
      }
      let list = byTrace.get(span.trace);
      if (!list) byTrace.set(span.trace, (list = []));
      list.push({ span, view, labels, labeled });
    }
    const made: Finding[] = [];
    for (const [graph, added] of byTrace) {
      graph.derive();
      const memo = this.#memos.get(graph)!;
      const trace: DetectorTrace = { graph, labeled: memo.labeled };
      for (const d of this.#detectors) {
        try {
          d.onSpans(trace, added, (draft) => {
            const f = this.#accept(graph, memo, d.kind, draft);
            if (f) made.push(f);
          });
        } catch (err) {
          this.#errors.inc([d.kind]);
          this.#set.logger.error({ detector: d.kind, err: errorMessage(err) }, 'detector failed; skipped for this batch');
        }
      }
    }
    if (made.length > 0) appendFindingSpans(batch, made, this.now());
    return this.#next.consume(batch, ctx);
  }

  #accept(graph: TraceGraph, memo: TraceMemo, kind: FindingKind, d: FindingDraft): Finding | undefined {
    const id = findingId(graph.traceId, kind, d.key);
    const known = memo.findings.get(id);
    if (known) {
      // Later evidence may make a finding more severe or more certain: the same id is delivered
      // again with it (sinks key on the id); otherwise the first report stands.
      const worse = severityRank(d.severity) > severityRank(known.severity);
      const surer = CONFIDENCE_RANK[d.confidence] > CONFIDENCE_RANK[known.confidence];
      if (!worse && !surer) return undefined;
      if (worse) known.severity = d.severity;
      if (surer) known.confidence = d.confidence;
      known.summary = d.summary;
      known.evidence = d.evidence;
      known.chain = d.chain;
      known.spanIds = [...new Set([...known.spanIds, ...d.spans.map((s) => s.id)])];
      for (const s of this.#sinks) s.deliver(known);
      this.#set.logger.info({ finding: id, kind, severity: known.severity, confidence: known.confidence, trace: graph.traceId }, 'finding updated');
      return undefined;
    }
    const f: Finding = {
      id,
      time: new Date(this.now()).toISOString(),
      kind,
      severity: d.severity,
      confidence: d.confidence,
      traceId: graph.traceId,
      spanIds: [...new Set(d.spans.map((s) => s.id))],
      chain: d.chain,
      summary: d.summary,
      evidence: d.evidence,
      owasp: OWASP[kind],
      ...(this.#cfg.jaeger_ui_url ? { link: `${this.#cfg.jaeger_ui_url.replace(/\/$/, '')}/trace/${graph.traceId}` } : {}),
    };
    memo.findings.set(id, f);
    const shows = d.spans[0];
    if (shows) (shows.findings ??= []).push(f);
    if (this.#findings.size >= this.#cfg.max_findings) this.#findings.delete(this.#findings.keys().next().value!);
    this.#findings.set(id, f);
    this.#counter.inc([kind, f.severity]);
    for (const s of this.#sinks) s.deliver(f);
    this.#set.logger.info({ finding: id, kind, severity: f.severity, trace: graph.traceId }, 'finding');
    return f;
  }

  async shutdown(signal?: AbortSignal): Promise<void> {
    // The network sinks drain their queues side by side, each until the service's deadline.
    const closed = await Promise.allSettled(this.#sinks.map((s) => s.close(signal)));
    const failed = closed.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

/** One finding span per finding, in the same trace, under a resource service.name=agentsec. */
function appendFindingSpans(batch: TraceBatch, findings: readonly Finding[], now: number): void {
  const nanos = BigInt(Math.round(now)) * 1_000_000n;
  const time = Number(nanos) <= Number.MAX_SAFE_INTEGER ? Number(nanos) : nanos.toString();
  const spans: Span[] = findings.map((f) => {
    const attrs: KeyValue[] = [
      { key: 'agentsec.finding.id', value: { stringValue: f.id } },
      { key: 'agentsec.finding.kind', value: { stringValue: f.kind } },
      { key: 'agentsec.finding.severity', value: { stringValue: f.severity } },
      { key: 'agentsec.finding.confidence', value: { stringValue: f.confidence } },
      { key: 'agentsec.finding.owasp', value: { stringValue: f.owasp } },
      { key: 'agentsec.finding.summary', value: { stringValue: f.summary } },
      { key: 'agentsec.chain.path', value: { stringValue: f.chain.map((h) => h.role).join('>') } },
    ];
    const traceId = Buffer.from(f.traceId, 'hex');
    return {
      traceId,
      spanId: randomBytes(8),
      parentSpanId: Buffer.from(f.spanIds[0]!, 'hex'),
      name: `agentsec.finding ${f.kind}`,
      kind: SpanKind.INTERNAL,
      startTimeUnixNano: time as never,
      endTimeUnixNano: time as never,
      attributes: attrs,
      links: f.spanIds.map((id) => ({ traceId, spanId: Buffer.from(id, 'hex') })),
      status: { code: StatusCode.ERROR, message: f.summary },
    };
  });
  const rs: ResourceSpans = {
    resource: { attributes: [{ key: 'service.name', value: { stringValue: 'agentsec' } }] },
    scopeSpans: [{ scope: { name: 'agentsec.detect', version: '0.1.0' }, spans }],
  };
  batch.resourceSpans.push(rs);
  batch.spanCount += spans.length;
}

export const detectFactory: ProcessorFactory<typeof DetectConfig> = {
  kind: 'processor',
  type: 'detect',
  stability: 'development',
  after: ['tracegraph'],
  config: DetectConfig,
  create: (set, cfg, next) => new Detect(set, cfg, next),
};
