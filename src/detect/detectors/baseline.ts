// baseline_new_tool, baseline_new_endpoint, baseline_new_delegation (ASI10 rogue agents,
// capability creep; ASI03 unusual delegation chains): what a role does for the first time after
// its learning period. This detector feeds the baseline engine (src/baseline) with what the
// graph says once it is final, and reports the novelties the engine finds; baseline_volume is
// judged by the engine per window and reported by the detect processor.
//
// Observed, as for policy_violation, once final (every ancestor arrived, or the agent is named
// after settle_after of the trace's time): each call (tool, model, MCP, endpoint) under the role
// that made it; each agent invocation with its depth; each delegation between two final
// invocations. A role that is only the service-name fallback of a fragment is not learnt from.
// New MCP servers and methods are new endpoints; new models are learnt, not reported.
import type { Baselines, Call, Novelty, ObservationRef } from '../../baseline/baselines.ts';
import { endpointKey } from '../../baseline/endpoint.ts';
import { itemKey } from '../../baseline/profile.ts';
import type { SpanNode, TraceGraph } from '../../tracegraph/trace.ts';
import type { Detector, DetectorContext, FindingDraft, Waiting } from '../detector.ts';
import { advanceClock, agentChain, delegatingAgent, hopsOf, isModelCall, mayCall, NodeClock, settle, structureMayHaveChanged, TraceStates, reachesHost, toolCalled } from '../detector.ts';
import type { FindingKind, Severity } from '../finding.ts';
import type { SinkLabel } from '../policy.ts';

interface Pending extends Waiting {
  error: boolean;
  tokens: number;
  conversation: string;
  sink: SinkLabel | undefined;
}

interface BaselineState {
  clock: number;
  nodes: NodeClock;
  pending: Pending[];
  invocations: Set<string>;
  delegations: Set<string>;
  conversation: string;
  unsettled: boolean;
}

const KIND_OF: Record<Novelty['dimension'], FindingKind | undefined> = {
  tool: 'baseline_new_tool',
  endpoint: 'baseline_new_endpoint',
  mcp: 'baseline_new_endpoint',
  delegation: 'baseline_new_delegation',
  model: undefined,
};

export interface BaselineDetectorOptions {
  settleAfterMs: number;
  maxPendingPerTrace: number;
}

export function baselineDetector(engine: Baselines, ctx: DetectorContext, opts: BaselineDetectorOptions): Detector {
  const states = new TraceStates<BaselineState>();
  const novelties: Novelty[] = [];

  const draft = (n: Novelty, shows: SpanNode, sink: SinkLabel | undefined): FindingDraft | undefined => {
    const kind = KIND_OF[n.dimension];
    if (!kind) return undefined;
    const chain = shows.agentNode && !shows.agentNode.transparent ? agentChain(shows.agentNode) : [];
    const host = n.dimension === 'endpoint' || n.dimension === 'mcp' ? (n.value.split(' ')[0] ?? '') : '';
    // Novelty alone is intent-agnostic (detection.md §9): low, unless the new thing is a sink or leaves the internal domains.
    const severity: Severity = kind === 'baseline_new_delegation' || sink || (host && host !== '-' && !ctx.policy().isInternal(host)) ? 'medium' : 'low';
    const summary = n.dimension === 'delegation' ? `${n.role} delegated to ${n.value} for the first time`
      : n.dimension === 'tool' ? `${n.role} called tool ${n.value} for the first time`
        : `${n.role} reached ${n.dimension === 'mcp' ? 'MCP ' : ''}${n.value} for the first time`;
    const role = engine.summary(n.role);
    return {
      kind,
      key: itemKey(n.role, n.dimension, n.value),
      severity,
      confidence: 'medium',
      summary: `${summary} since its baseline was learnt`,
      spans: [shows, ...chain.map((c) => c.start)],
      chain: hopsOf(chain, n.dimension === 'delegation' ? undefined : { span: shows, capability: n.value }),
      evidence: {
        role: n.role, dimension: n.dimension, value: n.value, learnt_values: n.known,
        ...(sink ? { sink } : {}),
        ...(role ? { role_first_seen: role.first_seen, role_calls: role.calls, role_invocations: role.invocations } : {}),
      },
    };
  };

  const ref = (span: SpanNode, conversation: string): ObservationRef => ({ traceId: span.trace.traceId, spanId: span.id, conversation: conversation || span.trace.traceId });

  const observeCall = (span: SpanNode, p: Pending, conversation: string, report: (d: FindingDraft) => void) => {
    const tool = toolCalled(span);
    const model = isModelCall(span);
    const mcp = span.mcpMethod ? `${span.host || '-'} ${span.mcpMethod}` : '';
    const endpoint = !mcp && !model && reachesHost(span) ? endpointKey(span.host, span.method, span.path) : '';
    const call: Call = { tool, endpoint, mcp, model: model ? span.model : '', counts: tool !== '' || model || mcp !== '', error: p.error, tokens: p.tokens };
    if (!call.counts && !endpoint) return;
    novelties.length = 0;
    engine.observeCall(span.agent, span.start, call, ref(span, conversation), novelties);
    // A new tool that reaches a new endpoint is one finding, the endpoint in its evidence.
    const newTool = novelties.find((n) => n.dimension === 'tool');
    for (const n of novelties) {
      if (newTool && n !== newTool && n.dimension !== 'model') continue;
      const d = draft(n, span, n.dimension === 'tool' ? p.sink : undefined);
      if (!d) continue;
      if (n === newTool) {
        const also = novelties.filter((x) => x !== newTool && x.dimension !== 'model').map((x) => `${x.dimension}: ${x.value}`);
        if (also.length > 0) d.evidence.also_new = also;
      }
      report(d);
    }
  };

  const observeNodes = (graph: TraceGraph, st: BaselineState, report: (d: FindingDraft) => void) => {
    st.unsettled = false;
    for (const node of graph.nodes.values()) {
      if (node.transparent) continue;
      const fin = st.nodes.finality(node, st.clock, opts.settleAfterMs);
      if (fin === undefined) {
        st.unsettled = true;
        continue;
      }
      if (fin === 'provisional') continue;
      if (!st.invocations.has(node.id)) {
        st.invocations.add(node.id);
        engine.observeInvocation(node.role, node.start.start, node.depth, ref(node.start, st.conversation));
      }
      if (st.delegations.has(node.id)) continue;
      const from = delegatingAgent(node);
      if (!from) continue;
      const fromFin = st.nodes.finality(from, st.clock, opts.settleAfterMs);
      if (fromFin === undefined) {
        st.unsettled = true;
        continue;
      }
      if (fromFin === 'provisional') continue;
      st.delegations.add(node.id);
      novelties.length = 0;
      engine.observeDelegation(from.role, node.role, node.start.start, ref(node.start, st.conversation), novelties);
      for (const n of novelties) {
        const d = draft(n, node.start, undefined);
        if (d) report(d);
      }
    }
  };

  return {
    kind: 'baseline_new_tool',
    onSpans(trace, added, report) {
      const graph = trace.graph;
      const st = states.of(graph, () => ({ clock: 0, nodes: new NodeClock(), pending: [], invocations: new Set(), delegations: new Set(), conversation: '', unsettled: false }));
      st.clock = advanceClock(st.clock, added);
      for (const { span, view, labels } of added) {
        if (view.conversation && !st.conversation) st.conversation = view.conversation;
        if (mayCall(span) && st.pending.length < opts.maxPendingPerTrace) {
          st.pending.push({ id: span.id, seen: st.clock, error: view.error, tokens: view.tokens, conversation: view.conversation, sink: labels.sink });
        }
      }
      // Invocations first: a call's window then counts the invocation it belongs to.
      if (st.unsettled || structureMayHaveChanged(added)) observeNodes(graph, st, report);
      if (st.pending.length > 0) {
        const settled = settle(graph, st.pending, st.clock, opts.settleAfterMs);
        st.pending = settled.still;
        const ready = settled.ready.filter((r) => r.fin !== 'provisional' && r.span.agentNode && !r.span.agentNode.transparent);
        ready.sort((a, b) => a.span.start - b.span.start);
        for (const r of ready) observeCall(r.span, r.w, r.w.conversation || st.conversation, report);
      }
    },
    forget(graph) {
      states.forget(graph);
    },
  };
}
