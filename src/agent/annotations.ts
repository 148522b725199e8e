// What one processor learnt about a batch, for the processors after it in the same pipeline:
// side tables keyed by the batch object, so the batch keeps its OTLP shape (and fan-out never
// copies them) and they are collected with it. Entries follow the batch's span order
// (resource → scope → span).
import type { TraceBatch } from '../otlp/types.ts';
import type { SpanView } from './view.ts';
import type { SpanNode } from '../tracegraph/trace.ts';

/** Set by normalize: the canonical view of each span. */
export const spanViews = new WeakMap<TraceBatch, SpanView[]>();
/** Set by tracegraph: each span's summary in its trace graph. */
export const spanNodes = new WeakMap<TraceBatch, SpanNode[]>();
