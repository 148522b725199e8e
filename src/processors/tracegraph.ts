// tracegraph: keeps a compact summary of every span and the delegation graph of every trace
// (src/tracegraph), updated incrementally as spans arrive in any order, across batches and
// services. Bounded by idle TTL, trace count and bytes; evictions are counted. Publishes
// GET /api/traces/{traceId}/graph and GET /api/inventory on the admin server.
import { z } from 'zod';
import type { ConsumeContext, Host, Processor, ProcessorFactory, Settings, TracesConsumer } from '../component/types.ts';
import type { Int64, TraceBatch } from '../otlp/types.ts';
import { Long } from '../otlp/proto.ts';
import { toHex } from '../otlp/ids.ts';
import { byteSize, duration } from '../config/units.ts';
import { spanNodes, spanViews } from '../agent/annotations.ts';
import { StringPool } from '../agent/values.ts';
import { workloadOf } from '../agent/view.ts';
import { SpanNode, type LinkRef, type TraceGraph } from '../tracegraph/trace.ts';
import { TraceStore, type EvictionReason } from '../tracegraph/store.ts';
import { Inventory } from '../tracegraph/inventory.ts';
import { graphJson } from '../tracegraph/json.ts';
import { PermanentError } from '../errors.ts';
import { ApiError } from '../admin/server.ts';

export const TraceGraphConfig = z.strictObject({
  /** A trace is forgotten this long after its last span (late spans then start a new graph). */
  idle_ttl: duration.prefault('5m'),
  max_traces: z.number().int().positive().default(50_000),
  /** Estimated memory of all summaries; the idlest traces go first when it is exceeded. */
  max_bytes: byteSize.prefault('1GiB'),
  sweep_interval: duration.prefault('1s'),
});
export type TraceGraphConfig = z.output<typeof TraceGraphConfig>;

export function nanosToMillis(v: Int64 | null | undefined): number {
  if (v == null) return 0;
  return typeof v === 'number' ? v / 1e6 : Long.fromValue(v).toNumber() / 1e6;
}

export class TraceGraphProcessor implements Processor {
  readonly mutatesData = false;
  readonly store: TraceStore;
  readonly inventory = new Inventory();
  readonly #next: TracesConsumer;
  readonly #set: Settings;
  readonly #cfg: TraceGraphConfig;
  readonly #pool = new StringPool();
  readonly #duplicates;
  #timer: NodeJS.Timeout | undefined;
  /** Where time comes from; tests replace it. */
  now: () => number = Date.now;

  constructor(set: Settings, cfg: TraceGraphConfig, next: TracesConsumer) {
    this.#set = set;
    this.#cfg = cfg;
    this.#next = next;
    const evicted = set.metrics.counter('agentsec_tracegraph_evicted_traces_total', 'Traces dropped from the graph store, by reason.', ['processor', 'reason']);
    const byReason: Record<EvictionReason, { inc(n?: number): void }> = {
      idle: evicted.labels(set.id, 'idle'),
      max_traces: evicted.labels(set.id, 'max_traces'),
      max_bytes: evicted.labels(set.id, 'max_bytes'),
    };
    this.store = new TraceStore({ idleTtlMs: cfg.idle_ttl, maxTraces: cfg.max_traces, maxBytes: cfg.max_bytes }, (trace, reason) => {
      byReason[reason].inc();
      this.inventory.fold(trace);
    });
    this.#duplicates = set.metrics.counter('agentsec_tracegraph_duplicate_spans_total', 'Spans received again (client retries); kept once.', ['processor']).labels(set.id);
    set.metrics.gauge('agentsec_tracegraph_traces', 'Traces held in the graph store.', ['processor']).track([set.id], () => this.store.size);
    set.metrics.gauge('agentsec_tracegraph_spans', 'Span summaries held in the graph store.', ['processor']).track([set.id], () => this.store.spanCount);
    set.metrics.gauge('agentsec_tracegraph_bytes', 'Estimated bytes of the graph store.', ['processor']).track([set.id], () => this.store.bytes);
  }

  async start(host: Host): Promise<void> {
    host.api.add({ method: 'GET', path: '/traces/:traceId/graph', handler: ({ params }) => this.graph(params.traceId!) });
    host.api.add({ method: 'GET', path: '/inventory', handler: () => this.inventory.snapshot(this.store.values()) });
    this.#timer ??= setInterval(() => this.store.sweep(this.now()), this.#cfg.sweep_interval).unref();
  }

  graph(traceId: string) {
    const id = traceId.toLowerCase();
    if (!/^[0-9a-f]{32}$/.test(id)) throw new ApiError(400, 'traceId must be 32 hex digits');
    const trace = this.store.get(id);
    if (!trace) throw new ApiError(404, `trace ${id} is not in the graph store (unknown, or evicted after ${this.#cfg.idle_ttl} ms idle)`);
    return graphJson(trace);
  }

  refusal(): Error | undefined {
    return this.#next.refusal?.();
  }

  consume(batch: TraceBatch, ctx: ConsumeContext): Promise<void> {
    const views = spanViews.get(batch);
    if (!views) return Promise.reject(new PermanentError(`${this.#set.id}: the normalize processor must come before tracegraph in the pipeline`));
    const nodes: SpanNode[] = new Array(views.length);
    const now = this.now();
    let i = 0;
    let trace: TraceGraph | undefined;
    for (const rs of batch.resourceSpans) {
      const workload = workloadOf(rs.resource, this.#pool);
      for (const ss of rs.scopeSpans) {
        for (const span of ss.spans) {
          const traceId = toHex(span.traceId);
          if (trace?.traceId !== traceId) trace = this.store.touch(traceId, now);
          const view = views[i]!;
          const credential = view.credential;
          if (credential?.claims) this.inventory.rememberClaims(credential.fingerprint, credential.claims);
          const node = new SpanNode(trace, toHex(span.spanId), toHex(span.parentSpanId), view, workload,
            nanosToMillis(span.startTimeUnixNano), nanosToMillis(span.endTimeUnixNano), linksOf(span.links));
          if (this.store.add(trace, node)) nodes[i] = node;
          else {
            this.#duplicates.inc();
            nodes[i] = trace.spans.get(node.id)!;
          }
          i++;
        }
      }
    }
    this.store.enforceLimits();
    spanNodes.set(batch, nodes);
    return this.#next.consume(batch, ctx);
  }

  async shutdown(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

function linksOf(links: { traceId: Uint8Array; spanId: Uint8Array }[] | null | undefined): LinkRef[] | undefined {
  if (!links || links.length === 0) return undefined;
  return links.map((l) => ({ traceId: toHex(l.traceId), spanId: toHex(l.spanId) }));
}

export const traceGraphFactory: ProcessorFactory<typeof TraceGraphConfig> = {
  kind: 'processor',
  type: 'tracegraph',
  stability: 'alpha',
  after: ['normalize'],
  config: TraceGraphConfig,
  create: (set, cfg, next) => new TraceGraphProcessor(set, cfg, next),
};
