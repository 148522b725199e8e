// What capability_escalation and data_exfiltration share (DESIGN §5; reference/detection.md §5–7,
// §11): pairs of labelled spans (a source whose result may carry something, a sink that may act
// on it), judged once they can be judged, the same whatever order the spans arrive in.
//
// A pair (source, sink) is a flow when the sink started after the source ended and both hang in
// the same span tree (canFlow), and, where the source's result and the sink's arguments were both
// captured, when their word shingles overlap. Captured on both sides with no overlap is no flow:
// the sink's arguments do not derive from the source (the hard negative). Captured on one side
// only, the flow is temporal and causal but unconfirmed: low confidence.
//
// Incremental: each new span may be a source (checked against the sinks seen so far) or a sink
// (checked against the sources seen so far). A pair whose spans are in the right order but not
// yet connected (a parent still missing, the usual case as spans arrive children first), or
// whose agents are not known yet (inherited from an ancestor that has not arrived), waits and is
// judged again after every later batch of the trace. Order in time is fixed at arrival, so a pair
// in the wrong order is dropped at once. Everything is kept per trace graph (a WeakMap: it goes
// with the graph) and bounded.
import { z } from 'zod';
import type { AgentNode, SpanNode, TraceGraph } from '../../tracegraph/trace.ts';
import type { AddedSpan, DetectorTrace, LabeledSpan } from '../detector.ts';
import { agentsBetween, canFlow, overlap } from '../detector.ts';
import type { ChainHop, Confidence, Severity } from '../finding.ts';
import { severityRank } from '../finding.ts';

/** Settings both flow detectors take (defaults beside each). */
export const FLOW_SETTINGS = {
  /** Share of shingles the sink's arguments and the source's result have in common (of the smaller set) that confirms a flow: confidence high. */
  overlap_threshold: z.number().gt(0).max(1).default(0.2),
  /** Below this (and at 0) a captured pair counts as no overlap: no finding. Between it and the threshold: confidence medium. */
  min_overlap: z.number().gt(0).max(1).default(0.05),
  /** Clock skew tolerated between the source's end and the sink's start (ms). */
  slack_ms: z.number().nonnegative().default(1),
  /** Sources and sinks remembered per trace (the oldest forgotten first). */
  max_sources: z.number().int().positive().default(512),
  max_sinks: z.number().int().positive().default(512),
  /** Pairs waiting for their spans to connect, per trace (the oldest forgotten first). */
  max_pending: z.number().int().positive().default(4096),
};
const FlowSettings = z.strictObject(FLOW_SETTINGS);
export type FlowSettings = z.output<typeof FlowSettings>;

/** A judged flow from `source` to `sink`. */
export interface Flow {
  source: LabeledSpan;
  sink: LabeledSpan;
  confidence: Confidence;
  /** Overlap ratio, when both sides were captured. */
  overlap: number | undefined;
  captured: { sourceResult: boolean; sinkArgs: boolean };
  /** The agent invocations the flow passes through, from the source's up to the common ancestor and down to the sink's. */
  agents: AgentNode[];
  /** It passed from one agent invocation to another. */
  crossesAgents: boolean;
}

export interface FlowRoles {
  isSource(l: LabeledSpan): boolean;
  isSink(l: LabeledSpan): boolean;
}

interface FlowState {
  sources: LabeledSpan[];
  sinks: LabeledSpan[];
  pending: [LabeledSpan, LabeledSpan][];
}

export class FlowTracker {
  readonly #cfg: FlowSettings;
  readonly #roles: FlowRoles;
  readonly #states = new WeakMap<TraceGraph, FlowState>();

  constructor(cfg: FlowSettings, roles: FlowRoles) {
    this.#cfg = cfg;
    this.#roles = roles;
  }

  /** Judges the pairs the new spans make, and the waiting pairs they may have completed. */
  track(trace: DetectorTrace, added: readonly AddedSpan[], onFlow: (flow: Flow) => void): void {
    let state = this.#states.get(trace.graph);
    const newcomers = added.filter((a) => a.labeled && (this.#roles.isSource(a.labeled) || this.#roles.isSink(a.labeled)));
    if (!state) {
      if (newcomers.length === 0) return;
      this.#states.set(trace.graph, (state = { sources: [], sinks: [], pending: [] }));
    }
    // Waiting pairs first, when this batch may have brought a span that connects them: only a
    // span that adopts children (they arrived before it) joins fragments or names their agent.
    if (state.pending.length > 0 && added.some((a) => a.span.children !== undefined && a.span.children.length > 0)) {
      const waiting = state.pending;
      state.pending = [];
      for (const [source, sink] of waiting) this.#consider(state, source, sink, onFlow);
    }
    for (const { labeled: l } of newcomers) {
      if (!l) continue;
      if (this.#roles.isSource(l)) {
        for (const sink of state.sinks) this.#consider(state, l, sink, onFlow);
        push(state.sources, l, this.#cfg.max_sources);
      }
      if (this.#roles.isSink(l)) {
        for (const source of state.sources) this.#consider(state, source, l, onFlow);
        push(state.sinks, l, this.#cfg.max_sinks);
      }
    }
  }

  #consider(state: FlowState, source: LabeledSpan, sink: LabeledSpan, onFlow: (flow: Flow) => void): void {
    if (source === sink) return;
    // Wrong order in time: never a flow, whatever arrives later.
    if (sink.span.start + this.#cfg.slack_ms < source.span.end) return;
    if (!canFlow(source.span, sink.span, this.#cfg.slack_ms) || !identityKnown(source.span) || !identityKnown(sink.span)) {
      push(state.pending, [source, sink], this.#cfg.max_pending);
      return;
    }
    const flow = judge(source, sink, this.#cfg);
    if (flow) onFlow(flow);
  }
}

/** Its agent is known: named on the span or inherited, or nothing above it is still missing. */
function identityKnown(s: SpanNode): boolean {
  return s.named || !s.awaitsAncestor();
}

function push<T>(list: T[], item: T, max: number): void {
  list.push(item);
  if (list.length > max) list.splice(0, list.length - max);
}

/** The flow from `source` to `sink` (already known to be connected), or undefined when captured content shows none. */
function judge(source: LabeledSpan, sink: LabeledSpan, cfg: FlowSettings): Flow | undefined {
  const sourceResult = (source.resultShingles?.length ?? 0) > 0;
  const sinkArgs = (sink.argShingles?.length ?? 0) > 0;
  let confidence: Confidence = 'low';
  let ratio: number | undefined;
  if (sourceResult && sinkArgs) {
    ratio = overlap(source.resultShingles, sink.argShingles);
    if (ratio >= cfg.overlap_threshold) confidence = 'high';
    else if (ratio > 0 && ratio >= cfg.min_overlap) confidence = 'medium';
    else return undefined;
  }
  const agents = agentsBetween(source.span, sink.span);
  return { source, sink, confidence, overlap: ratio, captured: { sourceResult, sinkArgs }, agents, crossesAgents: agents.length > 1 };
}

/** Severity before what each kind adds: confirmed by content high, otherwise medium. */
export function baseSeverity(flow: Flow): Severity {
  return flow.confidence === 'high' ? 'high' : 'medium';
}

/**
 * A flow judged by order and cause alone (content not captured: it is opt-in in the GenAI
 * conventions, so common) is at most medium, so that deployments without content capture do not
 * page anyone on a normal day; the evidence says what was not captured.
 */
export function capSeverity(flow: Flow, severity: Severity): Severity {
  return flow.confidence === 'low' && severityRank(severity) > severityRank('medium') ? 'medium' : severity;
}

/**
 * The dedup key of a flow finding: with content on both sides, one per (source, sink); judged by
 * order alone, one per sink (every earlier source would otherwise make its own finding).
 */
export function flowKey(flow: Flow, ...more: string[]): string {
  const base = flow.confidence === 'low' ? flow.sink.span.id : `${flow.source.span.id}>${flow.sink.span.id}`;
  return [base, ...more].join('>');
}

/** The capabilities a span matched, as a hop shows them. */
export function capabilityOf(l: LabeledSpan): string {
  return l.labels.capabilities.join(',');
}

/** The agent invocations strictly between the source's and the sink's. */
function middle(flow: Flow): AgentNode[] {
  const ends = new Set([flow.source.span.agentNode, flow.sink.span.agentNode]);
  return flow.agents.filter((n) => !ends.has(n));
}

/** Source hop, the agents the content passed through, sink hop. */
export function flowChain(flow: Flow): ChainHop[] {
  const { source, sink } = flow;
  return [
    { role: source.span.agent, spanId: source.span.id, capability: capabilityOf(source) },
    ...middle(flow).map((n) => ({ role: n.role, spanId: n.id })),
    { role: sink.span.agent, spanId: sink.span.id, capability: capabilityOf(sink) },
  ];
}

/** The sink (which shows the finding), the source, and where each agent in between starts. */
export function flowSpans(flow: Flow): SpanNode[] {
  return [flow.sink.span, flow.source.span, ...middle(flow).map((n) => n.start)];
}

/** Roles in order, as a path. */
export function flowPath(flow: Flow): string {
  return flowChain(flow).map((h) => h.role).join('>');
}

/** What both kinds show of a flow: tools, agents, capabilities, overlap; never content. */
export function flowEvidence(flow: Flow, cfg: FlowSettings): Record<string, unknown> {
  const end = (l: LabeledSpan) => ({ span: l.span.id, tool: l.span.tool || undefined, agent: l.span.agent, capabilities: l.labels.capabilities });
  return {
    source: end(flow.source),
    sink: { ...end(flow.sink), sink: flow.sink.labels.sink },
    path: flowPath(flow),
    agents_crossed: Math.max(0, flow.agents.length - 1),
    content: {
      source_result_captured: flow.captured.sourceResult,
      sink_args_captured: flow.captured.sinkArgs,
      overlap: flow.overlap === undefined ? null : Math.round(flow.overlap * 1000) / 1000,
      overlap_threshold: cfg.overlap_threshold,
    },
  };
}

/** How the evidence reads in a summary. */
export function contentNote(flow: Flow): string {
  if (flow.overlap !== undefined) return `${Math.round(flow.overlap * 100)}% of the content shingles match`;
  return !flow.captured.sourceResult ? 'the source result was not captured: order and causality only' : 'the sink arguments were not captured: order and causality only';
}
