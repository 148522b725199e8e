// enrich: writes what the trace graph knows onto each span as it leaves (DESIGN §4):
// agentsec.agent.role, agentsec.chain.depth, agentsec.chain.root, agentsec.chain.path and
// agentsec.credential.fingerprint. Each batch is held for `hold` so that a parent and its
// children usually arrive (and are stitched) before either leaves; a span whose parent comes
// later still leaves on time, enriched with what is known then (nothing, when it names no agent
// and its parent is still to come).
//
// Held batches are acknowledged to the client when they enter the hold: waiting `hold` per
// request would cap every client that exports one batch at a time. The hold is bounded in
// spans; past it, and while the next component refuses, new data is refused with a retryable
// status, so back-pressure still reaches clients and nothing accepted is dropped silently.
//
// A batch that came as protobuf is held as its request bytes, not decoded (see otlp/splice.ts),
// and leaves as bytes with the attributes appended to its spans: exporters send or transcode
// them (EncodedTraceBatch). Decoded spans held for the hold's length outlive the young
// generation and cost more in garbage collection than the whole rest of the pipeline.
import { z } from 'zod';
import type { ConsumeContext, Processor, ProcessorFactory, Settings, TracesConsumer } from '../component/types.ts';
import type { Int64, KeyValue, Span, SpanEvent, TraceBatch } from '../otlp/types.ts';
import { encodeSpanBody, encodeTraceProtobuf } from '../otlp/encode.ts';
import { EncodedTraceBatch } from '../otlp/encoded-batch.ts';
import { holdWire, spanEndTime, spliceRequests, type HeldWire, type RequestPart } from '../otlp/splice.ts';
import { severityRank, type Finding } from '../detect/finding.ts';
import { duration } from '../config/units.ts';
import { errorMessage, findRetryable, isPermanent, RetryableError } from '../errors.ts';
import { spanNodes } from '../agent/annotations.ts';
import type { AgentNode, SpanNode, TraceGraph } from '../tracegraph/trace.ts';
import { AttributeWriter } from '../otlp/wire.ts';

export const EnrichConfig = z.strictObject({
  /** How long a batch waits for related spans before it leaves; 0 enriches and forwards at once. */
  hold: duration.prefault('500ms'),
  /** Spans held at most (held as the bytes they came in, about 0.7 KB each; decoded, about 3 KB, when they came as JSON); beyond, data is refused (retryable) until the hold drains. */
  max_held_spans: z.number().int().positive().default(100_000),
  /**
   * How long the oldest held batch may stay past its hold (the exporters falling behind) before
   * new data is refused (retryable): the backlog, and the memory and GC it costs, stay bounded
   * instead of growing until the hold is full. 0 turns the check off.
   */
  max_overdue: duration.prefault('1s'),
});
export type EnrichConfig = z.output<typeof EnrichConfig>;

export const ATTR = {
  role: 'agentsec.agent.role',
  depth: 'agentsec.chain.depth',
  root: 'agentsec.chain.root',
  path: 'agentsec.chain.path',
  fingerprint: 'agentsec.credential.fingerprint',
  findingKind: 'agentsec.finding.kind',
  findingKinds: 'agentsec.finding.kinds',
  findingSeverity: 'agentsec.finding.severity',
} as const;

interface Held {
  /** The batch as bytes (its decoded objects let go), or, without a source, decoded. */
  wire: HeldWire | undefined;
  batch: TraceBatch | undefined;
  spanCount: number;
  nodes: SpanNode[];
  ctx: ConsumeContext;
  due: number;
  /** Enriched once (a batch the next component refused waits so, and is not enriched twice); written out when sent. */
  enriched: RequestPart | undefined;
}

/** Due batches sent on together, at most (one export instead of many small ones). */
const MAX_SPANS_PER_RELEASE = 8192;

/** Writes the agentsec.* attributes onto every span of the batch from its graph summary. */
export function enrichBatch(batch: TraceBatch, nodes: readonly SpanNode[]): void {
  const derived = new Set<TraceGraph>();
  let i = 0;
  for (const rs of batch.resourceSpans) {
    for (const ss of rs.scopeSpans) {
      for (const span of ss.spans) {
        const s = nodes[i++];
        const added = additions(s, derived);
        if (added) enrichSpan(span, s!, added);
      }
    }
  }
}

/**
 * The held batch enriched, to write out as ExportTraceServiceRequest bytes: the attributes (and
 * finding events) to append to each span's bytes, written onto the spans held decoded; a batch
 * held decoded as a whole is encoded.
 */
function enrichedRequest(h: Pick<Held, 'wire' | 'batch' | 'spanCount' | 'nodes'>): RequestPart {
  const wire = h.wire;
  if (!wire) {
    enrichBatch(h.batch!, h.nodes);
    return encodeTraceProtobuf(h.batch!.resourceSpans);
  }
  const derived = new Set<TraceGraph>();
  const appended: (Uint8Array | undefined)[] = new Array(h.spanCount);
  // An agent node's role attributes are the same on each of its spans: written once per release.
  const roleBytes = new Map<AgentNode, Buffer>();
  for (let i = 0; i < h.spanCount; i++) {
    const s = h.nodes[i];
    const span = wire.decoded.get(i);
    // Spans held decoded, and the few with findings or a credential (normalize changed those,
    // so they are held decoded already, or they came from a sidecar): enriched as objects.
    if (span || s?.findings || s?.credential) {
      const added = additions(s, derived);
      if (!added) continue;
      if (span) enrichSpan(span, s!, added);
      else appended[i] = encodeSpanBody({ attributes: added, events: s!.findings ? findingEvents(s!.findings, spanEndTime(wire, i)) : null } as Span);
      continue;
    }
    const n = s?.agentNode;
    if (!s || !n) continue;
    derive(s, derived);
    if (!showsRole(s, n)) continue;
    let role = n.role === s.agent ? roleBytes.get(n) : undefined;
    if (!role) {
      role = writeRole(s.agent, n).take();
      if (n.role === s.agent) roleBytes.set(n, role);
    }
    appended[i] = role;
  }
  return { held: wire, appended };
}

const ROLE_KEYS = { role: Buffer.from(ATTR.role), depth: Buffer.from(ATTR.depth), root: Buffer.from(ATTR.root), path: Buffer.from(ATTR.path) };
const writer = new AttributeWriter();

/** Role, depth, root and path, as span attribute bytes (take() them). */
function writeRole(role: string, n: AgentNode): AttributeWriter {
  return writer.string(ROLE_KEYS.role, role).int(ROLE_KEYS.depth, n.depth).string(ROLE_KEYS.root, n.root).string(ROLE_KEYS.path, n.path);
}

/** Derives a trace's chains once per release, before its first span is enriched. */
function derive(s: SpanNode, derived: Set<TraceGraph>): void {
  if (derived.has(s.trace)) return;
  s.trace.derive();
  derived.add(s.trace);
}

/**
 * Whether a span shows its agent's role, depth, root and path. A span of no agent (an HTTP
 * server, a workflow wrapper) does not; nor does one that names no agent while its parent is
 * still to come: its role is unknown, not guessed.
 */
function showsRole(s: SpanNode, n: AgentNode): boolean {
  return !n.transparent && (s.named || !s.awaitsAncestor());
}

/**
 * What a span gets from its graph summary (undefined: nothing): its role, chain and credential
 * fingerprint, and the attributes of its findings.
 */
function additions(s: SpanNode | undefined, derived: Set<TraceGraph>): KeyValue[] | undefined {
  const n = s?.agentNode;
  if (!s || !n) return undefined;
  derive(s, derived);
  const added: KeyValue[] = [];
  if (showsRole(s, n)) {
    added.push(
      { key: ATTR.role, value: { stringValue: s.agent } },
      { key: ATTR.depth, value: { intValue: n.depth } },
      { key: ATTR.root, value: { stringValue: n.root } },
      { key: ATTR.path, value: { stringValue: n.path } },
    );
  }
  if (s.credential) added.push({ key: ATTR.fingerprint, value: { stringValue: s.credential } });
  if (s.findings) addFindingAttributes(s.findings, added);
  return added.length > 0 ? added : undefined;
}

/** Writes the additions onto a decoded span. A span that passed another agentsec (a sidecar) may have these keys already: ours win. */
function enrichSpan(span: Span, s: SpanNode, added: KeyValue[]): void {
  if (s.findings) span.events = (span.events ?? []).concat(findingEvents(s.findings, span.endTimeUnixNano ?? span.startTimeUnixNano ?? 0));
  const own = span.attributes ?? [];
  span.attributes = hasOurKeys(own) ? own.filter((kv) => !(kv.key in REPLACED)).concat(added) : own.concat(added);
}

/** The batch as bytes, spans that already carry our keys (from a sidecar) held decoded, or undefined (see holdWire). */
function heldWire(batch: TraceBatch): HeldWire | undefined {
  return holdWire(batch, (span) => span.attributes != null && hasOurKeys(span.attributes));
}

const REPLACED: Record<string, true> = Object.fromEntries(Object.values(ATTR).map((k) => [k, true]));

function hasOurKeys(attrs: readonly KeyValue[]): boolean {
  return attrs.some((kv) => kv.key.startsWith('agentsec.') && kv.key in REPLACED);
}

/**
 * The findings a span shows (DESIGN §4): the most severe kind as a plain string (Jaeger compares
 * array tags as JSON strings, so an exact tag search needs a string), all kinds, the highest
 * severity; and (findingEvents) an agentsec.finding event per finding.
 */
function addFindingAttributes(findings: readonly Finding[], added: KeyValue[]): void {
  const worst = findings.reduce((a, b) => (severityRank(b.severity) > severityRank(a.severity) ? b : a));
  const kinds = [...new Set(findings.map((f) => f.kind))];
  added.push(
    { key: ATTR.findingKind, value: { stringValue: worst.kind } },
    { key: ATTR.findingKinds, value: { arrayValue: { values: kinds.map((k) => ({ stringValue: k })) } } },
    { key: ATTR.findingSeverity, value: { stringValue: worst.severity } },
  );
}

function findingEvents(findings: readonly Finding[], at: Int64): SpanEvent[] {
  return findings.map((f) => ({
    timeUnixNano: at,
    name: 'agentsec.finding',
    attributes: [
      { key: 'agentsec.finding.id', value: { stringValue: f.id } },
      { key: 'agentsec.finding.kind', value: { stringValue: f.kind } },
      { key: 'agentsec.finding.severity', value: { stringValue: f.severity } },
      { key: 'agentsec.finding.owasp', value: { stringValue: f.owasp } },
      { key: 'agentsec.finding.summary', value: { stringValue: f.summary } },
    ],
  }));
}

export class Enrich implements Processor {
  readonly mutatesData = true;
  readonly #next: TracesConsumer;
  readonly #set: Settings;
  readonly #cfg: EnrichConfig;
  readonly #held: Held[] = [];
  #heldSpans = 0;
  #timer: NodeJS.Timeout | undefined;
  #releasing: Promise<void> | undefined;
  #closed = false;
  readonly #dropped;
  now: () => number = Date.now;

  constructor(set: Settings, cfg: EnrichConfig, next: TracesConsumer) {
    this.#set = set;
    this.#cfg = cfg;
    this.#next = next;
    set.metrics.gauge('agentsec_enrich_held_spans', 'Spans waiting in the enrich hold.', ['processor']).track([set.id], () => this.#heldSpans);
    this.#dropped = set.metrics.counter('agentsec_processor_dropped_spans_total', 'Accepted spans a processor gave up on, by reason.', ['processor', 'reason']);
  }

  async start(): Promise<void> {
    if (this.#cfg.hold > 0) this.#timer ??= setInterval(() => void this.#release(false), Math.max(10, Math.min(100, this.#cfg.hold / 4))).unref();
  }

  consume(batch: TraceBatch, ctx: ConsumeContext): Promise<void> {
    const nodes = spanNodes.get(batch);
    if (!nodes) return Promise.reject(new Error(`${this.#set.id}: the tracegraph processor must come before enrich in the pipeline`));
    if (this.#cfg.hold === 0) {
      // Sent on as bytes too where it has them: its spans are written once, not encoded again.
      const wire = heldWire(batch);
      if (!wire) {
        enrichBatch(batch, nodes);
        return this.#next.consume(batch, ctx);
      }
      return this.#next.consume(new EncodedTraceBatch(spliceRequests([enrichedRequest({ wire, batch: undefined, spanCount: batch.spanCount, nodes })]), batch.spanCount), ctx);
    }
    // Under load, incoming requests would keep the timer's releases waiting: push out what is due first.
    if (this.#held.length > 0 && this.#held[0]!.due <= this.now()) void this.#release(false);
    const refused = this.#refusal(batch.spanCount);
    if (refused) return Promise.reject(refused);
    // Held as its bytes where it has them: the decoded spans are let go now, young.
    const wire = heldWire(batch);
    this.#held.push({ wire, batch: wire ? undefined : batch, spanCount: batch.spanCount, nodes, ctx, due: this.now() + this.#cfg.hold, enriched: undefined });
    this.#heldSpans += batch.spanCount;
    return Promise.resolve();
  }

  /**
   * With a hold, only enrich's own reasons: it takes a batch whatever the exporters say, and
   * keeps it until they take it (a moment's full queue is what the hold absorbs; exporters that
   * stay behind show as `export_behind`). Without one, it passes on what follows it.
   */
  refusal(): Error | undefined {
    return this.#cfg.hold > 0 ? this.#refusal(1) : this.#next.refusal?.();
  }

  /** Why `spans` more would be refused now: shutting down, the hold full, or the exporters behind. */
  #refusal(spans: number): RetryableError | undefined {
    if (this.#cfg.hold === 0) return undefined;
    if (this.#closed) return new RetryableError('enrich is shutting down', { reason: 'shutting_down' });
    if (this.#held.length === 0) return undefined;
    if (this.#heldSpans + spans > this.#cfg.max_held_spans) {
      return new RetryableError(`enrich hold is full (${this.#heldSpans} spans held)`, { reason: 'hold_full', retryAfterMs: Math.max(1000, this.#cfg.hold) });
    }
    const overdue = this.now() - this.#held[0]!.due;
    if (this.#cfg.max_overdue > 0 && overdue > this.#cfg.max_overdue) {
      return new RetryableError(`enrich is sending held spans ${Math.round(overdue)} ms late (exporters behind)`, { reason: 'export_behind', retryAfterMs: Math.max(1000, this.#cfg.hold) });
    }
    return undefined;
  }

  /** Sends on every batch whose hold is over (all of them when flushing), in arrival order; one run at a time. */
  #release(flush: boolean): Promise<void> {
    if (this.#releasing) return this.#releasing;
    const run = this.#sendDue(flush).finally(() => {
      // Cleared in a later microtask, after the assignment below, even when nothing was due.
      this.#releasing = undefined;
    });
    this.#releasing = run;
    return run;
  }

  /**
   * Sends what is due as few exports as possible: consecutive due batches from the same receiver
   * and transport are merged (up to MAX_SPANS_PER_RELEASE spans), so the exporters see one batch
   * instead of many small ones. A retryable refusal keeps them all held, in order, for the next tick.
   */
  async #sendDue(flush: boolean): Promise<void> {
    const now = this.now();
    while (this.#held.length > 0 && (flush || this.#held[0]!.due <= now)) {
      const first = this.#held[0]!;
      let n = 0;
      let spans = 0;
      while (n < this.#held.length) {
        const h = this.#held[n]!;
        if (!flush && h.due > now) break;
        if (n > 0 && (h.ctx.receiver !== first.ctx.receiver || h.ctx.transport !== first.ctx.transport || spans + h.spanCount > MAX_SPANS_PER_RELEASE)) break;
        if (h.enriched === undefined) {
          try {
            h.enriched = enrichedRequest(h);
          } catch (err) {
            // A batch that cannot be enriched now never will be: dropped, counted and logged,
            // rather than holding up everything behind it.
            this.#held.splice(n, 1);
            this.#heldSpans -= h.spanCount;
            this.#drop(h, err);
            continue;
          }
        }
        spans += h.spanCount;
        n++;
      }
      if (n === 0) continue;
      // Written out as one request, in one buffer.
      const out = new EncodedTraceBatch(spliceRequests(this.#held.slice(0, n).map((h) => h.enriched!)), spans);
      try {
        await this.#next.consume(out, first.ctx);
      } catch (err) {
        if (findRetryable(err)) return; // downstream is full: keep them held and try on the next tick
        // Refused for good, or failed unexpectedly (which retrying would only repeat, holding up
        // everything behind it): one batch may be the cause, so each is sent on alone and only
        // what fails again is dropped.
        if (n > 1) {
          if (!(await this.#sendEachAlone(n))) return;
          continue;
        }
        this.#drop(first, err);
      }
      this.#held.splice(0, n);
      this.#heldSpans -= spans;
    }
  }

  /** Sends the first `n` held batches one by one; false when a retryable refusal stopped it (the rest stay held). */
  async #sendEachAlone(n: number): Promise<boolean> {
    for (let i = 0; i < n; i++) {
      const h = this.#held[0]!;
      try {
        await this.#next.consume(sent(h), h.ctx);
      } catch (err) {
        if (findRetryable(err)) return false;
        this.#drop(h, err);
      }
      this.#held.shift();
      this.#heldSpans -= h.spanCount;
    }
    return true;
  }

  #drop(h: Held, err: unknown): void {
    const spans = h.spanCount;
    const reason = isPermanent(err) ? 'permanent_error' : 'unexpected_error';
    this.#dropped.inc([this.#set.id, reason], spans);
    this.#set.logger[isPermanent(err) ? 'warn' : 'error']({ spans, reason, err: errorMessage(err) }, 'dropped spans the next component could not take');
  }

  async shutdown(signal: AbortSignal): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    while (this.#held.length > 0 && !signal.aborted) {
      await this.#release(true);
      if (this.#held.length > 0) await new Promise((r) => setTimeout(r, 100));
    }
    if (this.#held.length > 0) {
      this.#dropped.inc([this.#set.id, 'shutdown'], this.#heldSpans);
      this.#set.logger.warn({ spans: this.#heldSpans }, 'shutdown deadline passed: dropped spans still held');
      this.#held.length = 0;
      this.#heldSpans = 0;
    }
  }
}

/** A held batch as it is sent on: enriched, encoded. */
function sent(h: Held): EncodedTraceBatch {
  return new EncodedTraceBatch(spliceRequests([h.enriched!]), h.spanCount);
}

export const enrichFactory: ProcessorFactory<typeof EnrichConfig> = {
  kind: 'processor',
  type: 'enrich',
  stability: 'alpha',
  after: ['tracegraph'],
  config: EnrichConfig,
  create: (set, cfg, next) => new Enrich(set, cfg, next),
};
