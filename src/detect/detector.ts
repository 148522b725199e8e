// The detector contract (reference/codebase-models.md §4.6): one kind per file, synchronous and
// pure (no I/O, no timers; time from the context), told after each batch which spans joined a
// trace graph; it looks at them, and at the trace, and reports drafts. The detect processor owns
// what they share: labels from the policy, deduplication by (trace, kind, key), severity
// bookkeeping, delivery.
import type { z } from 'zod';
import type { SpanView } from '../agent/view.ts';
import type { AgentNode, SpanNode, TraceGraph } from '../tracegraph/trace.ts';
import type { Confidence, ChainHop, FindingKind, Severity } from './finding.ts';
import type { Labels, Policy } from './policy.ts';

/** A span of the trace with what the policy says of it, and hashes of its captured content. */
export interface LabeledSpan {
  span: SpanNode;
  labels: Labels;
  /** Shingle hashes of the tool arguments and result, when they were captured. */
  argShingles: Set<number> | undefined;
  resultShingles: Set<number> | undefined;
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
  /** A trace left the store: release anything kept for it. */
  forget?(traceId: string): void;
}

export interface DetectorDefinition<S extends z.ZodType = z.ZodType> {
  readonly kind: FindingKind;
  /** Its settings under detect.detectors.<kind>; defaults in the schema. */
  readonly config: S;
  create(cfg: z.output<S>, ctx: DetectorContext): Detector;
}

// ---------------------------------------------------------------- helpers detectors share

/** The agent invocations from the root to `node`, following delegations. */
export function agentChain(node: AgentNode): AgentNode[] {
  const chain: AgentNode[] = [];
  const seen = new Set<AgentNode>();
  for (let c: AgentNode | undefined = node; c && !seen.has(c); c = c.delegator) {
    seen.add(c);
    if (!c.transparent) chain.push(c);
  }
  return chain.reverse();
}

/** The hops of an agent chain, as findings show them. */
export function hopsOf(nodes: readonly AgentNode[], last?: { span: SpanNode; capability?: string }): ChainHop[] {
  const hops: ChainHop[] = nodes.map((n) => ({ role: n.role, spanId: n.id }));
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

/** How many distinct agents a flow from `a` to `b` crosses (0: one agent did both). */
export function agentsBetween(a: SpanNode, b: SpanNode): AgentNode[] {
  const chainA = a.agentNode ? agentChain(a.agentNode) : [];
  const chainB = b.agentNode ? agentChain(b.agentNode) : [];
  let common = 0;
  while (common < chainA.length && common < chainB.length && chainA[common] === chainB[common]) common++;
  // Up from a to the common ancestor, then down to b.
  return [...chainA.slice(Math.max(0, common - 1)).reverse(), ...chainB.slice(common)];
}

// Content overlap: word 5-grams hashed; overlap between a source's result and a sink's
// arguments is evidence that one carried the other.
const SHINGLE = 5;
const MAX_SHINGLES = 4096;

export function shingles(text: string | undefined): Set<number> | undefined {
  if (!text) return undefined;
  const words = text.toLowerCase().match(/[a-z0-9@._/-]{2,}/g);
  if (!words || words.length === 0) return undefined;
  const out = new Set<number>();
  const n = Math.min(SHINGLE, words.length);
  for (let i = 0; i + n <= words.length && out.size < MAX_SHINGLES; i++) out.add(hash32(words.slice(i, i + n).join(' ')));
  return out;
}

export function overlap(a: Set<number> | undefined, b: Set<number> | undefined): number {
  if (!a || !b || a.size === 0 || b.size === 0) return 0;
  let n = 0;
  const [small, big] = a.size < b.size ? [a, b] : [b, a];
  for (const h of small) if (big.has(h)) n++;
  return n / small.size;
}

function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
