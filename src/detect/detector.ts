// The detector contract (reference/codebase-models.md §4.6): one kind per file, synchronous and
// pure (no I/O, no timers; time from the context), told after each batch which spans joined a
// trace graph; it looks at them, and at the trace, and reports drafts. The detect processor owns
// what they share: labels from the policy, deduplication by (trace, kind, key), severity
// bookkeeping, delivery.
import type { z } from 'zod';
import type { SpanView } from '../agent/view.ts';
import { SpanKind } from '../otlp/types.ts';
import { agentChain, type AgentNode, type SpanNode, type TraceGraph } from '../tracegraph/trace.ts';
import type { Confidence, ChainHop, FindingKind, Severity } from './finding.ts';
import type { Labels, Policy } from './policy.ts';

/**
 * Heap the detectors keep beside a trace for each span they judged (waiting entries, groups,
 * pairs, keys), apart from content hashes, which LabeledSpan charges itself. Measured on the
 * detection bench's traffic (heap snapshots at two points of one run, every detector and
 * baselines on) and charged to the trace (TraceGraph.charge), so that tracegraph's byte budget
 * covers it. An estimate: spans of traces with little to detect keep less.
 */
export const DETECTOR_STATE_BYTES = 750;
/** A LabeledSpan object, and a shingle set's typed array and buffer, before their contents. */
const LABELED_BYTES = 80;
const SHINGLES_OVERHEAD_BYTES = 140;

/**
 * A span of the trace with what the policy says of it, and hashes of its captured content: of
 * the side a flow reads (a sink's arguments, an untrusted or sensitive source's result). Hashed
 * at once: the content itself (prompts, tool results, possibly secrets) is never kept beyond
 * its batch. What it holds is charged to its trace.
 */
export class LabeledSpan {
  readonly span: SpanNode;
  readonly labels: Labels;
  /** Shingle hashes of the tool arguments, when captured and the span is a sink. */
  readonly argShingles: Shingles | undefined;
  /** Shingle hashes of the tool result, when captured and the span is a source. */
  readonly resultShingles: Shingles | undefined;

  constructor(span: SpanNode, labels: Labels, view: { toolArgs: string | undefined; toolResult: string | undefined }) {
    this.span = span;
    this.labels = labels;
    this.argShingles = labels.sink ? shingles(view.toolArgs) : undefined;
    this.resultShingles = labels.untrusted || labels.sensitive ? shingles(view.toolResult) : undefined;
    span.trace.charge(LABELED_BYTES + setBytes(this.argShingles) + setBytes(this.resultShingles));
  }
}

function setBytes(set: Shingles | undefined): number {
  return set ? SHINGLES_OVERHEAD_BYTES + set.byteLength : 0;
}

export interface DetectorTrace {
  graph: TraceGraph;
  /** Every span of the trace that the policy labels (capabilities), in arrival order. */
  labeled: readonly LabeledSpan[];
}

export interface AddedSpan {
  span: SpanNode;
  view: SpanView;
  labels: Labels;
  labeled: LabeledSpan | undefined;
}

export interface FindingDraft {
  /** The kind, when the detector reports more than one (else the detector's). */
  kind?: FindingKind;
  /** Deduplication key within (trace, kind): the same key is one finding. */
  key: string;
  severity: Severity;
  confidence: Confidence;
  summary: string;
  /** The span that shows the finding first, then every span involved. */
  spans: SpanNode[];
  chain: ChainHop[];
  evidence: Record<string, unknown>;
}

export interface DetectorContext {
  /** The policy in force now (it reloads live). */
  policy(): Policy;
  now(): number;
}

export interface Detector {
  readonly kind: FindingKind;
  /** After new spans joined `trace` (its graph derived). Report each finding as often as it is seen: drafts are deduplicated. */
  onSpans(trace: DetectorTrace, added: readonly AddedSpan[], report: (draft: FindingDraft) => void): void;
  /** The trace left the graph store: release anything kept for it (see TraceStates). */
  forget?(trace: TraceGraph): void;
}

export interface DetectorDefinition<S extends z.ZodType = z.ZodType> {
  readonly kind: FindingKind;
  /** Its settings under detect.detectors.<kind>; defaults in the schema. */
  readonly config: S;
  create(cfg: z.output<S>, ctx: DetectorContext): Detector;
}

// ---------------------------------------------------------------- helpers detectors share

export { agentChain };

/** The agent invocation that delegated to `node`: its nearest delegator that is an agent (agentChain's next-to-last), without building the chain. */
export function delegatingAgent(node: AgentNode): AgentNode | undefined {
  let c = node.delegator;
  for (let guard = 0; c && c !== node && guard < 10_000; guard++, c = c.delegator) if (!c.transparent) return c;
  return undefined;
}

/** The hops of an agent chain, as findings show them. */
/** Hops a finding lists at most: a longer chain keeps its first and last halves of this. */
const MAX_FINDING_HOPS = 32;

/** `items` whole when short, else its first and last `max / 2` (a finding's chain stays small however deep the trace). */
export function ends<T>(items: readonly T[], max = MAX_FINDING_HOPS): T[] {
  return items.length <= max ? [...items] : [...items.slice(0, max / 2), ...items.slice(-max / 2)];
}

export function hopsOf(nodes: readonly AgentNode[], last?: { span: SpanNode; capability?: string }): ChainHop[] {
  const hops: ChainHop[] = ends(nodes).map((n) => ({ role: n.role, spanId: n.id }));
  if (last) hops.push({ role: last.span.agent, spanId: last.span.id, ...(last.capability ? { capability: last.capability } : {}) });
  return hops;
}

/** The root of the span tree `s` is in (its subtree's top while a parent is missing). */
export function treeRoot(s: SpanNode): SpanNode {
  let top = s;
  for (let guard = 0; top.parent && guard < 100_000; guard++) top = top.parent;
  return top;
}

/**
 * Information can flow from `from` to `to`: `to` starts after `from` ended (its result was there
 * to use) and both hang in the same span tree (up to a common ancestor and down again, or down
 * directly). Two fragments still waiting for a missing parent are not connected yet.
 */
export function canFlow(from: SpanNode, to: SpanNode, slackMs = 1): boolean {
  if (from === to || from.trace !== to.trace) return false;
  if (to.start + slackMs < from.end) return false;
  return treeRoot(from) === treeRoot(to);
}

/** The agent invocations a flow from `a` to `b` passes through: up from a's agent to the nearest common one, then down to b's (one element when one agent did both). */
export function agentsBetween(a: SpanNode, b: SpanNode): AgentNode[] {
  const chainA = a.agentNode ? agentChain(a.agentNode) : [];
  const chainB = b.agentNode ? agentChain(b.agentNode) : [];
  let common = 0;
  while (common < chainA.length && common < chainB.length && chainA[common] === chainB[common]) common++;
  // Up from a to the common ancestor, then down to b.
  return [...chainA.slice(Math.max(0, common - 1)).reverse(), ...chainB.slice(common)];
}

/** A model call itself (not the HTTP request under it). */
export function isModelCall(s: SpanNode): boolean {
  return s.operation === 'chat' || s.operation === 'embeddings' || (s.model !== '' && s.tool === '' && s.operation !== 'invoke_agent');
}

/** The tool a span calls ('' for none; a handoff names its target agent, not a tool). */
export function toolCalled(s: SpanNode): string {
  return s.tool && s.operation !== 'handoff' ? s.tool : '';
}

/** A call a role makes (tool, model or MCP call), as call counts and rate ceilings count them. */
export function isCall(s: SpanNode): boolean {
  return toolCalled(s) !== '' || isModelCall(s) || s.mcpMethod !== '';
}

/** A span that may be a call or reach a destination: worth waiting for until its role is final. */
export function mayCall(s: SpanNode): boolean {
  return s.tool !== '' || s.host !== '' || s.model !== '' || s.mcpMethod !== '';
}

/** A model call, or a span under one (the provider's HTTP request): the deployment's model endpoint, not the role's own destination. */
export function underModelCall(s: SpanNode): boolean {
  let p: SpanNode | undefined = s;
  for (let guard = 0; p && p.agentNode === s.agentNode && guard < 64; guard++, p = p.parent) {
    if (isModelCall(p)) return true;
  }
  return false;
}

/**
 * The span names a destination the role reached: it has a host, is not the receiving side of a
 * call (a SERVER or CONSUMER span's address is the role's own), and is no model call's request.
 */
export function reachesHost(s: SpanNode): boolean {
  return s.host !== '' && s.kind !== SpanKind.SERVER && s.kind !== SpanKind.CONSUMER && !underModelCall(s);
}

// Content overlap: word 5-grams, hashed; overlap between a source's result and a sink's
// arguments is evidence that one carried the other. Computed once per labelled span, on the side
// its labels use (LabeledSpan), without allocating per shingle, and kept as a sorted array
// (4 bytes a shingle).
const SHINGLE = 5;
const MAX_SHINGLES = 4096;
const MAX_TEXT = 16 * 1024;
const MAX_WORDS = MAX_SHINGLES + SHINGLE - 1;
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

export type Shingles = Uint32Array;

/** Word hashes of the text being shingled (reused: shingling is synchronous). */
const wordScratch = new Uint32Array(MAX_WORDS);

/**
 * Words are maximal runs of [a-z0-9@._/-] (case-folded ASCII) of two characters or more, each
 * hashed (FNV-1a) as it is scanned: no lower-cased copy, no match objects, no substrings.
 */
export function shingles(text: string | undefined): Shingles | undefined {
  if (!text) return undefined;
  const len = text.length > MAX_TEXT ? MAX_TEXT : text.length;
  const words = wordScratch;
  let nw = 0;
  let h = FNV_OFFSET;
  let wl = 0;
  for (let i = 0; i <= len; i++) {
    let c = i < len ? text.charCodeAt(i) : 0;
    if (c >= 65 && c <= 90) c += 32;
    if ((c >= 97 && c <= 122) || (c >= 45 && c <= 57) || c === 64 || c === 95) {
      // a-z; 45–57 are '-', '.', '/' and the digits; '@'; '_'
      h = Math.imul(h ^ c, FNV_PRIME);
      wl++;
    } else {
      if (wl >= 2) {
        words[nw++] = h >>> 0;
        if (nw === MAX_WORDS) break;
      }
      h = FNV_OFFSET;
      wl = 0;
    }
  }
  if (nw === 0) return undefined;
  const n = Math.min(SHINGLE, nw);
  const count = Math.min(MAX_SHINGLES, nw - n + 1);
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    let x = FNV_OFFSET;
    for (let j = 0; j < n; j++) x = Math.imul(x ^ words[i + j]!, FNV_PRIME);
    out[i] = x >>> 0;
  }
  out.sort();
  // Deduplicate in place.
  let k = 0;
  for (let i = 0; i < out.length; i++) if (i === 0 || out[i] !== out[i - 1]) out[k++] = out[i]!;
  return out.subarray(0, k);
}

/** Shared shingles over the smaller set's size (0 when either side is missing or empty). */
export function overlap(a: Shingles | undefined, b: Shingles | undefined): number {
  if (!a || !b || a.length === 0 || b.length === 0) return 0;
  let i = 0, j = 0, n = 0;
  while (i < a.length && j < b.length) {
    if (a[i]! === b[j]!) (n++, i++, j++);
    else if (a[i]! < b[j]!) i++;
    else j++;
  }
  return n / Math.min(a.length, b.length);
}


// ---------------------------------------------------------------- per-trace state

/**
 * Per-trace detector state, kept beside its trace graph: a WeakMap, so it can never outlive or
 * hold on to the graph, and released as soon as the store evicts the trace (detect calls forget).
 */
export class TraceStates<S> {
  readonly #byGraph = new WeakMap<TraceGraph, S>();

  get(graph: TraceGraph): S | undefined {
    return this.#byGraph.get(graph);
  }

  of(graph: TraceGraph, make: () => S): S {
    let s = this.#byGraph.get(graph);
    if (s === undefined) this.#byGraph.set(graph, (s = make()));
    return s;
  }

  forget(graph: TraceGraph): void {
    this.#byGraph.delete(graph);
  }
}

// ---------------------------------------------------------------- settling: when what the graph says is final

/**
 * How final what the graph says of a span is, once it has waited `waited` ms of the trace's
 * time (the latest span end seen) since it arrived:
 * - 'complete': every ancestor has arrived; its role and its chain are final;
 * - 'named': it names its agent (or inherits a name), so its role is certain (a named identity
 *   never changes as more spans arrive), but ancestors are missing after `settleAfterMs`: its
 *   chain is what is known;
 * - 'provisional': neither, after `settleAfterMs`: its role is the service-name fallback;
 * - undefined: wait (an ancestor may still come and change its role or its chain).
 * Spans are exported child-first (each when it ends), so waiting is the normal case: the AI SDK's
 * execute_tool spans, for instance, name no agent, and inherit one when invoke_agent arrives.
 */
export type Finality = 'complete' | 'named' | 'provisional';

export function finality(span: SpanNode, waited: number, settleAfterMs: number): Finality | undefined {
  if (!span.awaitsAncestor()) return 'complete';
  if (waited < settleAfterMs) return undefined;
  return span.named ? 'named' : 'provisional';
}

/**
 * A waiter's note of when it last found a span awaiting an ancestor: the graph (by serial, so
 * that no reference is kept) and its adoptions then. Until the graph adopts children again, the
 * span cannot have stopped awaiting (TraceGraph.adoptions), so it is not walked up again.
 */
interface AwaitNote {
  awaitedAt?: number;
  awaitedIn?: number;
}

/** The note still holds: nothing in `graph` can have ended the wait, nor has time. */
function stillAwaiting(note: AwaitNote, graph: TraceGraph, waited: number, settleAfterMs: number): boolean {
  return note.awaitedIn === graph.serial && note.awaitedAt === graph.adoptions && waited < settleAfterMs;
}

/** `finality`, skipping the walk up while `note` still holds. */
function notedFinality(note: AwaitNote, span: SpanNode, waited: number, settleAfterMs: number): Finality | undefined {
  const graph = span.trace;
  if (stillAwaiting(note, graph, waited, settleAfterMs)) return undefined;
  const fin = finality(span, waited, settleAfterMs);
  if (fin === undefined) {
    note.awaitedAt = graph.adoptions;
    note.awaitedIn = graph.serial;
  }
  return fin;
}

/** A span a detector waits to judge until what the graph says of it is final. */
export interface Waiting extends AwaitNote {
  id: string;
  /** The trace's clock when it arrived. */
  seen: number;
}

/**
 * Splits what waits into the spans whose finality is known now (in waiting order) and those that
 * still wait. A span no longer in the graph (evicted and made again) is dropped. A span found
 * awaiting an ancestor is not walked up again until the graph has adopted children since
 * (children-first traces keep most of their spans waiting for many batches) or its wait is over:
 * even its lookup is skipped then.
 */
export function settle<W extends Waiting>(graph: TraceGraph, waiting: readonly W[], clock: number, settleAfterMs: number): { still: W[]; ready: { span: SpanNode; w: W; fin: Finality }[] } {
  const still: W[] = [];
  const ready: { span: SpanNode; w: W; fin: Finality }[] = [];
  for (const w of waiting) {
    const waited = clock - w.seen;
    if (stillAwaiting(w, graph, waited, settleAfterMs)) {
      still.push(w);
      continue;
    }
    const span = graph.spans.get(w.id);
    if (!span) continue;
    const fin = notedFinality(w, span, waited, settleAfterMs);
    if (fin === undefined) still.push(w);
    else ready.push({ span, w, fin });
  }
  return { still, ready };
}

/** When each agent node was first looked at (the trace's clock then), for `finality` of nodes. */
export class NodeClock {
  readonly #seen = new Map<string, AwaitNote & { seen: number }>();
  readonly #max: number;
  constructor(max = 10_000) {
    this.#max = max;
  }
  get size(): number {
    return this.#seen.size;
  }
  #entry(node: AgentNode, clock: number): AwaitNote & { seen: number } {
    let entry = this.#seen.get(node.id);
    if (entry === undefined) {
      entry = { seen: clock, awaitedAt: undefined, awaitedIn: undefined };
      if (this.#seen.size < this.#max) this.#seen.set(node.id, entry);
    }
    return entry;
  }
  /** When `node` was first looked at; now (`clock`) if never before. */
  see(node: AgentNode, clock: number): number {
    return this.#entry(node, clock).seen;
  }
  /** The finality of `node`'s role (transparent nodes are no agents: undefined forever); walks up only as `settle` does. */
  finality(node: AgentNode, clock: number, settleAfterMs: number): Finality | undefined {
    if (node.transparent) return undefined;
    // A node reached through a span link lives in another trace's graph: the note names its graph.
    const entry = this.#entry(node, clock);
    return notedFinality(entry, node.start, clock - entry.seen, settleAfterMs);
  }
}

/**
 * The batch may have changed who delegates to whom (a node started, a parent arrived and
 * stitched its waiting children, an explicit delegation record, an unnamed node became active):
 * node-level detectors then look at every agent node of the trace again. When it did not (a
 * leaf span joining a known agent, the usual case parent-first), they skip the trace.
 */
export function structureMayHaveChanged(added: readonly AddedSpan[]): boolean {
  for (const { span } of added) {
    const node = span.agentNode;
    if (!node || node.start === span || span.children || span.transferTo || span.links || span.graphNodeId || span.graphNodeParentId) return true;
    if (span.active && node.anonymous) return true;
  }
  return false;
}

/** Latest end among the spans, joined with the trace's clock so far. */
export function advanceClock(clock: number, added: readonly AddedSpan[]): number {
  for (const { span } of added) if (span.end > clock) clock = span.end;
  return clock;
}
