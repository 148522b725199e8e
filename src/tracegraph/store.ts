// All trace graphs of one tracegraph processor, bounded three ways (idle TTL, number of
// traces, estimated bytes); every eviction is counted by reason, never silent. The Map is
// kept in order of last touch (delete + set), so the idlest trace is always first and one
// sweep timer evicts from the head (the servicegraph store's Expire pattern).
import { TraceGraph, type SpanNode } from './trace.ts';

/** A trace graph's own objects (maps, strings) before any span, measured in the bench. */
export const TRACE_OVERHEAD_BYTES = 900;

export type EvictionReason = 'idle' | 'max_traces' | 'max_bytes';

export interface TraceStoreLimits {
  idleTtlMs: number;
  maxTraces: number;
  maxBytes: number;
}

export class TraceStore {
  readonly #traces = new Map<string, TraceGraph>();
  readonly #limits: TraceStoreLimits;
  readonly #onEvict: (trace: TraceGraph, reason: EvictionReason) => void;
  #bytes = 0;
  #spans = 0;
  /** One lookup shared by every trace (a closure per trace would cost memory per trace). */
  readonly #graphOptions = {
    lookup: (traceId: string, spanId: string) => this.#traces.get(traceId)?.spans.get(spanId),
    charged: (bytes: number) => void (this.#bytes += bytes),
  };

  constructor(limits: TraceStoreLimits, onEvict: (trace: TraceGraph, reason: EvictionReason) => void) {
    this.#limits = limits;
    this.#onEvict = onEvict;
  }

  get size(): number {
    return this.#traces.size;
  }
  get bytes(): number {
    return this.#bytes;
  }
  get spanCount(): number {
    return this.#spans;
  }

  get(traceId: string): TraceGraph | undefined {
    return this.#traces.get(traceId);
  }

  /** The trace, created when new, moved to the end of the idle order. */
  touch(traceId: string, now: number): TraceGraph {
    let t = this.#traces.get(traceId);
    if (t) this.#traces.delete(traceId);
    else {
      t = new TraceGraph(traceId, this.#graphOptions);
      t.bytes = TRACE_OVERHEAD_BYTES;
      this.#bytes += TRACE_OVERHEAD_BYTES;
    }
    this.#traces.set(traceId, t);
    t.touch(now);
    return t;
  }

  /** Adds a span to its trace and keeps the totals; returns false for a duplicate. */
  add(trace: TraceGraph, span: SpanNode): boolean {
    const before = trace.bytes;
    if (!trace.add(span)) return false;
    this.#bytes += trace.bytes - before;
    this.#spans++;
    return true;
  }

  /** Evicts idle traces, then the idlest ones while over a count or byte limit. */
  sweep(now: number): void {
    for (const t of this.#traces.values()) {
      if (t.lastSeen + this.#limits.idleTtlMs > now) break;
      this.#evict(t, 'idle');
    }
    this.enforceLimits();
  }

  enforceLimits(): void {
    while (this.#traces.size > this.#limits.maxTraces) this.#evict(this.#traces.values().next().value!, 'max_traces');
    while (this.#bytes > this.#limits.maxBytes && this.#traces.size > 1) this.#evict(this.#traces.values().next().value!, 'max_bytes');
  }

  values(): IterableIterator<TraceGraph> {
    return this.#traces.values();
  }

  /** Evicts everything (shutdown), so that what was learnt is folded where it belongs. */
  clear(): void {
    for (const t of [...this.#traces.values()]) this.#evict(t, 'idle');
  }

  #evict(t: TraceGraph, reason: EvictionReason): void {
    this.#traces.delete(t.traceId);
    this.#bytes -= t.bytes;
    this.#spans -= t.spans.size;
    this.#onEvict(t, reason);
    t.evicted();
  }
}
