// The delegation graph of one trace as JSON (GET /api/traces/{traceId}/graph).
import type { TraceGraph } from './trace.ts';

export function graphJson(trace: TraceGraph) {
  trace.derive();
  const agg = new Map<string, { spans: number; tools: Set<string>; targets: Set<string>; credentials: Set<string>; workloads: Set<string>; instances: Set<string> }>();
  for (const s of trace.spans.values()) {
    const n = s.agentNode;
    if (!n) continue;
    let a = agg.get(n.id);
    if (!a) agg.set(n.id, (a = { spans: 0, tools: new Set(), targets: new Set(), credentials: new Set(), workloads: new Set(), instances: new Set() }));
    a.spans++;
    if (s.tool && s.operation !== 'handoff') a.tools.add(s.tool);
    if (s.host) a.targets.add(s.host);
    for (const t of s.argTargets ?? []) a.targets.add(t);
    if (s.credential) a.credentials.add(s.credential);
    if (s.workload.service) a.workloads.add(s.workload.service);
    if (s.ownAgent) a.instances.add(s.agentId || s.ownAgent);
  }
  const nodes = [...trace.nodes.values()].filter((n) => !n.transparent).sort((x, y) => x.start.start - y.start.start || x.depth - y.depth);
  const sorted = (s: Set<string> | undefined) => [...(s ?? [])].sort();
  return {
    traceId: trace.traceId,
    spanCount: trace.spans.size,
    pendingParents: trace.pending.size,
    /** Spans of no agent (HTTP servers, workflow wrappers with no GenAI activity). */
    unattributedSpans: [...trace.spans.values()].filter((s) => s.agentNode?.transparent).length,
    nodes: nodes.map((n) => {
      const a = agg.get(n.id);
      return {
        id: n.id,
        role: n.role,
        instance: sorted(a?.instances)[0] ?? n.role,
        workloads: sorted(a?.workloads),
        depth: n.depth,
        root: n.root,
        path: n.path,
        spanCount: a?.spans ?? 0,
        tools: sorted(a?.tools),
        targets: sorted(a?.targets),
        credentials: sorted(a?.credentials),
        startTime: new Date(n.start.start).toISOString(),
      };
    }),
    edges: nodes
      .filter((n) => n.delegator)
      .map((n) => ({
        from: n.delegator!.id,
        ...(n.delegator!.start.trace !== trace ? { fromTraceId: n.delegator!.start.trace.traceId } : {}),
        to: n.id,
        fromRole: n.delegator!.role,
        toRole: n.role,
        via: n.via,
        spanId: n.viaSpan,
      })),
  };
}
