// detect: runs every detector over the trace graphs as spans arrive (after tracegraph, before
// enrich), deduplicates findings by (trace, kind, key), and delivers each one: on the span that
// shows it (enrich writes the attributes and an event while the span is still held), as a
// finding span added to the same trace (service.name=agentsec, status ERROR, a child of the span
// that shows it, linked to every span of the chain), to the finding sinks, to GET /api/findings
// and to agentsec_findings_total{kind,severity}.
//
// With `baselines`, it also learns per-role baselines (src/baseline) and reports departures from
// them; volume findings, judged per window rather than per trace, leave as finding spans of
// their own batch. The policy file reloads live: on change and on SIGHUP (Service.reload); a
// broken new policy is refused with its error and the old one stays in force.
import { randomBytes } from 'node:crypto';
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { z } from 'zod';
import type { ConsumeContext, Host, Processor, ProcessorFactory, Settings, TracesConsumer } from '../component/types.ts';
import type { KeyValue, ResourceSpans, Span, TraceBatch } from '../otlp/types.ts';
import { SpanKind, StatusCode } from '../otlp/types.ts';
import { spanNodes, spanViews } from '../agent/annotations.ts';
import type { TraceGraph } from '../tracegraph/trace.ts';
import { DETECTORS } from '../detect/detectors/index.ts';
import { DETECTOR_STATE_BYTES, LabeledSpan, type AddedSpan, type Detector, type DetectorTrace, type FindingDraft } from '../detect/detector.ts';
import { findingId, OWASP, severityRank, type Finding, type FindingKind } from '../detect/finding.ts';
import { EMPTY_POLICY, loadPolicy, type Policy } from '../detect/policy.ts';
import { createSinks, SinksConfig, type FindingSink } from '../detect/sinks.ts';
import { ConfigError, errorMessage, isPermanent } from '../errors.ts';
import { ApiError } from '../admin/server.ts';
import { duration } from '../config/units.ts';
import { BaselinesConfig } from '../baseline/config.ts';
import { Baselines, type VolumeAnomaly } from '../baseline/baselines.ts';
import { createStore } from '../baseline/store.ts';
import { generatePolicy } from '../baseline/generate.ts';
import { baselineJson } from '../baseline/json.ts';
import { baselineDetector } from '../detect/detectors/baseline.ts';

/** Kinds with a detector of their own, configured under detectors.<kind> (the baseline kinds are configured under baselines). */
const DETECTOR_KINDS = [...DETECTORS.keys()] as [FindingKind, ...FindingKind[]];

export const DetectConfig = z.strictObject({
  /** The policy file (YAML); without one, every role is observed and nothing is labelled. */
  policy: z
    .string()
    .optional()
    .transform((p) => (p ? p : undefined)),
  /** Jaeger's UI base URL, e.g. http://localhost:16686: every finding then links to its trace. */
  jaeger_ui_url: z.string().url().optional(),
  /** Settings per detector kind; `false` turns one off. Every kind runs by default. */
  detectors: z.partialRecord(z.enum(DETECTOR_KINDS), z.union([z.literal(false), z.record(z.string(), z.unknown())])).default({}),
  /** Learn per-role baselines and report departures from them (off unless set; `{}` takes the defaults). */
  baselines: BaselinesConfig.optional(),
  /** How often the policy file is checked for changes (0: only on SIGHUP). */
  policy_check_interval: duration.prefault('2s'),
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
  readonly #findings = new Map<string, Finding>();
  readonly #sinks: FindingSink[];
  readonly #counter;
  readonly #errors;
  #policy: Policy;
  #baselines: Baselines | undefined;
  #syncTimer: NodeJS.Timeout | undefined;
  /** Findings made outside a batch (volume), whose finding spans wait for the next send. */
  #detached: Finding[] = [];
  /** The policy file's change listener while it is watched (removed alone: other pipelines may watch the same file). */
  #onPolicyChange: ((cur: Stats, prev: Stats) => void) | undefined;
  /** Roles already logged as ready. */
  readonly #readyRoles = new Set<string>();
  readonly #reloads;
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
    this.#reloads = set.metrics.counter('agentsec_policy_reloads_total', 'Policy file reloads, by result (ok, rejected).', ['result']);
  }

  /** Reads the policy file again; a broken one is refused (logged, counted) and the old one stays. */
  async reload(): Promise<void> {
    if (!this.#cfg.policy) return;
    try {
      this.#policy = loadPolicy(this.#cfg.policy);
      this.#reloads.inc(['ok']);
      this.#set.logger.info({ policy: this.#cfg.policy, roles: Object.keys(this.#policy.config.roles).length, capabilities: this.#policy.config.capabilities.length }, 'policy reloaded');
    } catch (err) {
      this.#reloads.inc(['rejected']);
      const issues = err instanceof ConfigError ? err.issues : [errorMessage(err)];
      this.#set.logger.error({ policy: this.#cfg.policy, issues }, 'new policy rejected; the previous one stays in force');
    }
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
    if (this.#cfg.policy && this.#cfg.policy_check_interval > 0) {
      const path = this.#cfg.policy;
      // Polls the file's stat: survives editors that replace the file and Kubernetes ConfigMap symlink swaps.
      this.#onPolicyChange = (cur, prev) => {
        if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino) void this.reload();
      };
      watchFile(path, { interval: this.#cfg.policy_check_interval, persistent: false }, this.#onPolicyChange);
    }
    if (this.#cfg.baselines) await this.#startBaselines(host, this.#cfg.baselines);
    this.#set.logger.info({ detectors: this.#detectors.map((d) => d.kind), policy: this.#cfg.policy ?? null, baselines: this.#baselines?.store.kind ?? null }, 'detection running');
  }

  async #startBaselines(host: Host, cfg: BaselinesConfig): Promise<void> {
    const store = await createStore(cfg, this.#set.dataDir);
    const syncErrors = this.#set.metrics.counter('agentsec_baseline_sync_errors_total', 'Failed writes or reads of the baseline store (the delta is kept and retried).', []);
    const engine = new Baselines(cfg, {
      store,
      onVolume: (a) => this.#volumeFinding(a),
      onSyncError: (err) => {
        syncErrors.inc([]);
        this.#set.logger.warn({ store: store.kind, err: errorMessage(err) }, 'baseline store sync failed; kept for the next sync');
      },
    });
    await engine.start();
    this.#baselines = engine;
    const roles = this.#set.metrics.gauge('agentsec_baseline_roles', 'Roles with a baseline, by learning state.', ['state']);
    roles.track(['learning'], () => engine.roles().filter((r) => !engine.isReady(r)).length);
    roles.track(['ready'], () => engine.roles().filter((r) => engine.isReady(r)).length);
    this.#detectors.push(baselineDetector(engine, { policy: () => this.#policy, now: () => this.now() }, { settleAfterMs: cfg.settle_after, maxPendingPerTrace: 10_000 }));
    this.#syncTimer = setInterval(() => void this.#tick(), cfg.sync_interval).unref();
    host.api.add({ method: 'GET', path: '/baselines', handler: () => ({ store: store.kind, roles: engine.roles().map((r) => engine.summary(r)) }) });
    host.api.add({
      method: 'GET',
      path: '/baselines/:role',
      handler: ({ params }) => {
        const profile = baselineJson(engine, params.role!);
        if (!profile) throw new ApiError(404, `no baseline for role ${params.role}`);
        return profile;
      },
    });
    host.api.add({
      method: 'GET',
      path: '/policy/generated',
      handler: ({ query }) => {
        if (query.role && !engine.summary(query.role)) throw new ApiError(404, `no baseline for role ${query.role}`);
        if (query.mode && query.mode !== 'enforce' && query.mode !== 'observe') throw new ApiError(400, 'mode must be enforce or observe');
        return generatePolicy(engine, this.#policy, { role: query.role, mode: query.mode as 'enforce' | 'observe' | undefined, minObservations: cfg.generate.min_observations, minConversations: cfg.generate.min_conversations });
      },
    });
    this.#set.logger.info({ store: store.kind, roles: engine.roles().length }, 'baselines loaded');
  }

  /** Syncs the baselines, then sends the finding spans of findings made outside a batch. */
  async #tick(): Promise<void> {
    const engine = this.#baselines;
    if (engine) {
      await engine.sync();
      // One line per role as it finishes learning: from now on it can alert.
      for (const role of engine.roles()) {
        if (this.#readyRoles.has(role) || !engine.isReady(role)) continue;
        this.#readyRoles.add(role);
        const r = engine.summary(role)!;
        this.#set.logger.info({ role, calls: r.calls, invocations: r.invocations, first_seen: r.first_seen }, 'baseline learnt: role now alerts on departures');
      }
    }
    await this.#sendDetached();
  }

  async #sendDetached(): Promise<void> {
    if (this.#detached.length === 0) return;
    const findings = this.#detached;
    this.#detached = [];
    const batch: TraceBatch = { resourceSpans: [], spanCount: 0 };
    appendFindingSpans(batch, findings, this.now());
    // No span of it has a graph summary: enrich passes them as they are.
    spanNodes.set(batch, []);
    try {
      await this.#next.consume(batch, { receiver: this.#set.id, transport: 'internal' });
    } catch (err) {
      if (isPermanent(err)) {
        this.#set.logger.warn({ findings: findings.length, err: errorMessage(err) }, 'finding spans refused permanently; the findings reached the sinks');
        return;
      }
      this.#detached = findings.concat(this.#detached); // retried on the next tick
    }
  }

  #volumeFinding(a: VolumeAnomaly): void {
    const ex = a.exemplar;
    const ratio = a.median > 0 ? Math.max(...a.values) / a.median : Infinity;
    const f = this.#deliver('baseline_volume', ex.traceId, {
      key: `${a.role}\u0000${a.feature}\u0000${a.from}`,
      severity: ratio >= 10 ? 'high' : 'medium',
      confidence: 'medium',
      summary: `${a.role}: ${a.feature.replaceAll('_', ' ')} ${a.values.join(', ')} over ${a.values.length} windows from ${new Date(a.from).toISOString()}, above its learnt ${a.threshold} (median ${a.median})`,
      spanIds: [ex.spanId],
      chain: [{ role: a.role, spanId: ex.spanId, capability: a.feature }],
      evidence: { role: a.role, feature: a.feature, values: a.values, median: a.median, threshold: a.threshold, history_windows: a.historyWindows, from: new Date(a.from).toISOString(), to: new Date(a.to).toISOString(), window_ms: this.#cfg.baselines!.window },
    });
    if (f) this.#detached.push(f);
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

  refusal(): Error | undefined {
    return this.#next.refusal?.();
  }

  consume(batch: TraceBatch, ctx: ConsumeContext): Promise<void> {
    const views = spanViews.get(batch);
    const nodes = spanNodes.get(batch);
    if (!views || !nodes) return Promise.reject(new Error(`${this.#set.id}: tracegraph must come before detect in the pipeline`));
    // The last reader of the views: let them go now rather than with the batch after enrich's
    // hold (young garbage instead of objects that survive into the old generation).
    spanViews.delete(batch);
    const byTrace = new Map<TraceGraph, AddedSpan[]>();
    for (let i = 0; i < nodes.length; i++) {
      const span = nodes[i];
      if (!span || span.judged) continue; // a resent span is judged once
      span.judged = true;
      const view = views[i]!;
      const labels = this.#policy.labels(span); // a SpanNode has every field a rule matches
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
        labeled = new LabeledSpan(span, labels, view);
        memo.labeled.push(labeled);
      }
      let list = byTrace.get(span.trace);
      if (!list) byTrace.set(span.trace, (list = []));
      list.push({ span, view, labels, labeled });
    }
    const made: Finding[] = [];
    for (const [graph, added] of byTrace) {
      graph.charge(added.length * DETECTOR_STATE_BYTES);
      graph.derive();
      const memo = this.#memos.get(graph)!;
      const trace: DetectorTrace = { graph, labeled: memo.labeled };
      for (const d of this.#detectors) {
        try {
          d.onSpans(trace, added, (draft) => {
            const f = this.#accept(graph, memo, draft.kind ?? d.kind, draft);
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
    // Known outside this trace's memo: its graph was evicted and built again since.
    const f = this.#deliver(kind, graph.traceId, { ...d, spanIds: d.spans.map((s) => s.id) });
    if (!f) return undefined;
    memo.findings.set(id, f);
    const shows = d.spans[0];
    if (shows) (shows.findings ??= []).push(f);
    return f;
  }

  /** A new finding: kept for the API, counted, delivered to every sink and logged (undefined when known already). */
  #deliver(kind: FindingKind, traceId: string, d: Omit<FindingDraft, 'spans'> & { spanIds: string[] }): Finding | undefined {
    const id = findingId(traceId, kind, d.key);
    if (this.#findings.has(id)) return undefined;
    const f: Finding = {
      id,
      time: new Date(this.now()).toISOString(),
      kind,
      severity: d.severity,
      confidence: d.confidence,
      traceId,
      spanIds: [...new Set(d.spanIds)],
      chain: d.chain,
      summary: d.summary,
      evidence: d.evidence,
      owasp: OWASP[kind],
      ...(this.#cfg.jaeger_ui_url ? { link: `${this.#cfg.jaeger_ui_url.replace(/\/$/, '')}/trace/${traceId}` } : {}),
    };
    if (this.#findings.size >= this.#cfg.max_findings) this.#findings.delete(this.#findings.keys().next().value!);
    this.#findings.set(id, f);
    this.#counter.inc([kind, f.severity]);
    for (const s of this.#sinks) s.deliver(f);
    this.#set.logger.info({ finding: id, kind, severity: f.severity, trace: traceId }, 'finding');
    return f;
  }

  async shutdown(signal?: AbortSignal): Promise<void> {
    if (this.#onPolicyChange) unwatchFile(this.#cfg.policy!, this.#onPolicyChange);
    this.#onPolicyChange = undefined;
    clearInterval(this.#syncTimer);
    this.#syncTimer = undefined;
    if (this.#baselines) {
      // What was learnt since the last sync is written before the store closes.
      const engine = this.#baselines;
      this.#baselines = undefined;
      await engine.close().catch((err: unknown) => this.#set.logger.error({ err: errorMessage(err) }, 'baseline store: last write failed'));
    }
    await this.#sendDetached();
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
