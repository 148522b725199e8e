// OpenAI Agents JS (@openai/agents-core) through the OpenInference bridge, with the SDK's own
// ScriptedModel (no network, no key), exported by the official OTLP/protobuf exporter to a
// collector running normalize → tracegraph → enrich. Checks roles, tools, delegation edges,
// depth and path in GET /api/traces/{id}/graph and in the agentsec.* attributes that leave.
//
// The bridge's trace shape (observed, @openai/agents-core 0.20.0, bridge 0.2.15; all spans INTERNAL):
//   handoff:       <workflow> AGENT (root, no graph.node.id) → <workflow> CHAIN (task)
//                    ├─ Triage AGENT (graph.node.id=Triage) → turn CHAIN → response LLM, handoff to Billing TOOL
//                    │     (tool.name=handoff_to_Billing, input.value {"from_agent":"Triage"}, output.value {"to_agent":"Billing"})
//                    └─ Billing AGENT (graph.node.id=Billing, graph.node.parent_id=Triage)   ← a SIBLING of Triage
//                          → turn CHAIN → response LLM, lookup_invoice TOOL; turn CHAIN → response LLM
//   agent as tool: <workflow> AGENT → <workflow> CHAIN → Orchestrator AGENT → turn CHAIN → response LLM,
//                    ask_researcher TOOL → "Agent workflow" CHAIN (task) → Researcher AGENT → turn CHAIN
//                    → response LLM, http_get TOOL; …
import { afterAll, beforeAll, describe, expect, onTestFailed, test } from 'vitest';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { startAgentCollector, type AgentCollector, type TraceGraphJson } from '../../helpers/agent-collector.ts';
import type { PlainSpan } from '../../helpers/plain-spans.ts';
import {
  AGENT_AS_TOOL_WORKFLOW,
  HANDOFF_WORKFLOW,
  runAgentAsTool,
  runHandoff,
  setupAgentsTracing,
  type AgentsTracing,
} from './fixtures/openai-agents-app.ts';

/** Forwards to the OTLP exporter and counts what was handed to it. */
class CountingExporter implements SpanExporter {
  sent = 0;
  private readonly inner: SpanExporter;
  constructor(inner: SpanExporter) {
    this.inner = inner;
  }
  export(spans: ReadableSpan[], done: Parameters<SpanExporter['export']>[1]): void {
    this.sent += spans.length;
    this.inner.export(spans, done);
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

let agent: AgentCollector;
let exporter: CountingExporter;
let tracing: AgentsTracing;

beforeAll(async () => {
  agent = await startAgentCollector();
  exporter = new CountingExporter(new OTLPTraceExporter({ url: `${agent.httpUrl}/v1/traces` }));
  tracing = setupAgentsTracing(exporter);
  // Warm the export path (HTTP connection, receiver, pipeline). The SimpleSpanProcessor sends one
  // span per request, children first; a parent that reaches the collector later than enrich's
  // hold (100 ms here) leaves its children enriched with what was known then.
  tracing.provider.getTracer('warmup').startSpan('warmup').end();
  await tracing.flush();
  await agent.exported(exporter.sent);
});

afterAll(async () => {
  await tracing?.shutdown();
  await agent?.stop();
});

const OI_KIND = 'openinference.span.kind';
const SERVICE = 'helpdesk';
const int = (n: number) => ({ int: String(n) });

/** Runs a scenario, flushes, waits for the collector to export everything, returns this trace's spans. */
async function traceOf(run: () => Promise<unknown>, workflow: string): Promise<{ traceId: string; spans: PlainSpan[] }> {
  await run();
  await tracing.flush();
  const all = await agent.exported(exporter.sent);
  const roots = all.filter((s) => s.name === workflow && s.parentSpanId === '' && s.attributes[OI_KIND] === 'AGENT');
  expect(roots, `one root span named '${workflow}'`).toHaveLength(1);
  const traceId = roots[0]!.traceId;
  return { traceId, spans: all.filter((s) => s.traceId === traceId) };
}

/** The trace as a tree (name, OI kind, ids, identifying attributes) and the graph, for failure reports. */
function report(spans: PlainSpan[], graph: TraceGraphJson | undefined): string {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string, PlainSpan[]>();
  for (const s of spans) {
    const p = ids.has(s.parentSpanId) ? s.parentSpanId : '';
    children.set(p, [...(children.get(p) ?? []), s]);
  }
  const keys = [OI_KIND, 'graph.node.id', 'graph.node.parent_id', 'tool.name', 'agentsec.agent.role', 'agentsec.chain.depth', 'agentsec.chain.root', 'agentsec.chain.path'];
  const lines: string[] = [];
  const walk = (s: PlainSpan, d: number): void => {
    const a = Object.fromEntries(keys.filter((k) => k in s.attributes).map((k) => [k, s.attributes[k]]));
    if (String(s.attributes['tool.name'] ?? '').startsWith('handoff_to_')) Object.assign(a, { in: s.attributes['input.value'], out: s.attributes['output.value'] });
    lines.push(`${'  '.repeat(d)}${s.name} ${s.spanId}←${s.parentSpanId || '-'} ${JSON.stringify(a)}`);
    for (const c of (children.get(s.spanId) ?? []).sort((x, y) => (BigInt(x.start) < BigInt(y.start) ? -1 : 1))) walk(c, d + 1);
  };
  for (const r of children.get('') ?? []) walk(r, 0);
  return `trace:\n${lines.join('\n')}\ngraph: ${JSON.stringify(graph, null, 1)}`;
}

function one(spans: PlainSpan[], pred: (s: PlainSpan) => boolean, what: string): PlainSpan {
  const found = spans.filter(pred);
  expect(found, what).toHaveLength(1);
  return found[0]!;
}

/** The graph's nodes are these agents, plus at most the service-name fallback for the workflow spans. */
function expectAgents(graph: TraceGraphJson, roles: string[], workflow: string): void {
  expect(graph.nodes.map((n) => n.role).filter((r) => r !== SERVICE).sort()).toEqual(roles);
  expect(graph.nodes.map((n) => n.role), 'the workflow is not an agent').not.toContain(workflow);
  for (const n of graph.nodes.filter((x) => x.role === SERVICE)) {
    expect(n, 'the service fallback node').toMatchObject({ depth: 0, tools: [], path: SERVICE });
    expect(graph.edges.filter((e) => e.from === n.id || e.to === n.id), 'the service fallback node delegates nothing').toEqual([]);
  }
}

function agentsecOf(s: PlainSpan) {
  return {
    role: s.attributes['agentsec.agent.role'],
    depth: s.attributes['agentsec.chain.depth'],
    root: s.attributes['agentsec.chain.root'],
    path: s.attributes['agentsec.chain.path'],
  };
}

describe('OpenAI Agents JS via OpenInference', () => {
  test('handoff: Triage → Billing (sibling agent spans), Billing runs lookup_invoice at depth 1', async () => {
    let graph: TraceGraphJson | undefined;
    let spans: PlainSpan[] = [];
    onTestFailed(() => console.log(report(spans, graph)));

    const { traceId, spans: traced } = await traceOf(runHandoff, HANDOFF_WORKFLOW);
    spans = traced;
    // The shape the bridge produces (so that a change upstream is noticed here, not in the graph).
    const triageSpan = one(spans, (s) => s.name === 'Triage' && s.attributes[OI_KIND] === 'AGENT', 'Triage AGENT span');
    const billingSpan = one(spans, (s) => s.name === 'Billing' && s.attributes[OI_KIND] === 'AGENT', 'Billing AGENT span');
    const handoffSpan = one(spans, (s) => s.attributes['tool.name'] === 'handoff_to_Billing', 'handoff span');
    const lookupSpan = one(spans, (s) => s.attributes['tool.name'] === 'lookup_invoice', 'lookup_invoice TOOL span');
    expect(billingSpan.parentSpanId).toBe(triageSpan.parentSpanId); // siblings under the task span
    expect(billingSpan.attributes['graph.node.parent_id']).toBe('Triage');
    expect(JSON.parse(handoffSpan.attributes['input.value'] as string)).toEqual({ from_agent: 'Triage' });
    expect(JSON.parse(handoffSpan.attributes['output.value'] as string)).toEqual({ to_agent: 'Billing' });
    expect(spans.every((s) => s.kind === 1)).toBe(true); // INTERNAL, all of them
    expect(spans.every((s) => s.resource['service.name'] === 'helpdesk')).toBe(true);

    graph = await agent.graph(traceId);
    expect(graph.traceId).toBe(traceId);
    expect(graph.spanCount).toBe(spans.length);
    // Two agents. The workflow spans (root AGENT span without graph.node.id, task CHAIN span) are
    // not an agent of their own: at most they fall back to the service (DESIGN §3), which
    // delegates nothing and uses no tools.
    expectAgents(graph, ['Billing', 'Triage'], HANDOFF_WORKFLOW);
    const triage = graph.nodes.find((n) => n.role === 'Triage')!;
    const billing = graph.nodes.find((n) => n.role === 'Billing')!;
    expect(triage).toMatchObject({ id: triageSpan.spanId, depth: 0, root: 'Triage', path: 'Triage' });
    expect(billing).toMatchObject({ id: billingSpan.spanId, depth: 1, root: 'Triage', path: 'Triage>Billing' });
    expect(billing.depth).toBe(triage.depth + 1);
    expect(billing.path.endsWith('Triage>Billing')).toBe(true);
    expect(billing.tools).toContain('lookup_invoice');
    expect(triage.tools).not.toContain('lookup_invoice');
    expect(triage.workloads).toContain('helpdesk');
    expect(billing.workloads).toContain('helpdesk');

    // The delegation: Triage → Billing, from the handoff span or graph.node.parent_id, never the reverse.
    const toBilling = graph.edges.filter((e) => e.fromRole === 'Triage' && e.toRole === 'Billing');
    expect(toBilling.length).toBeGreaterThanOrEqual(1);
    for (const e of toBilling) {
      expect(['handoff', 'graph_parent']).toContain(e.via);
      expect(e).toMatchObject({ from: triage.id, to: billing.id });
      expect([handoffSpan.spanId, billingSpan.spanId]).toContain(e.spanId);
    }
    expect(graph.edges.filter((e) => !(e.fromRole === 'Triage' && e.toRole === 'Billing'))).toEqual([]);

    // What leaves the collector.
    expect(spans.find((s) => s.attributes['agentsec.agent.role'] === HANDOFF_WORKFLOW), 'no span has the workflow as its role').toBeUndefined();
    expect(agentsecOf(lookupSpan)).toEqual({ role: 'Billing', depth: int(triage.depth + 1), root: 'Triage', path: 'Triage>Billing' });
    expect(agentsecOf(billingSpan)).toEqual({ role: 'Billing', depth: int(1), root: 'Triage', path: 'Triage>Billing' });
    expect(agentsecOf(triageSpan)).toEqual({ role: 'Triage', depth: int(0), root: 'Triage', path: 'Triage' });
    // The handoff span is Triage's (it runs in Triage's turn), not Billing's.
    expect(agentsecOf(handoffSpan)).toEqual({ role: 'Triage', depth: int(0), root: 'Triage', path: 'Triage' });
    // LLM spans carry no agent key: they inherit the agent of the turn they run in.
    const llm = spans.filter((s) => s.attributes[OI_KIND] === 'LLM');
    expect(llm).toHaveLength(3);
    const byAgent = (agentSpan: PlainSpan) => llm.filter((s) => spans.find((t) => t.spanId === s.parentSpanId)?.parentSpanId === agentSpan.spanId);
    expect(byAgent(triageSpan).map((s) => s.attributes['agentsec.agent.role'])).toEqual(['Triage']);
    expect(byAgent(billingSpan).map((s) => [s.attributes['agentsec.agent.role'], s.attributes['agentsec.chain.depth']])).toEqual([
      ['Billing', int(1)],
      ['Billing', int(1)],
    ]);
    // The bridge's own attributes pass through untouched.
    expect(billingSpan.attributes['graph.node.id']).toBe('Billing');
    expect(lookupSpan.attributes['input.value']).toBe('{"invoice":"INV-1"}');
  });

  test('agent as tool: Orchestrator → ask_researcher → Researcher (parent/child), Researcher runs http_get at depth 1', async () => {
    let graph: TraceGraphJson | undefined;
    let spans: PlainSpan[] = [];
    onTestFailed(() => console.log(report(spans, graph)));

    const { traceId, spans: traced } = await traceOf(runAgentAsTool, AGENT_AS_TOOL_WORKFLOW);
    spans = traced;
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const orchestratorSpan = one(spans, (s) => s.name === 'Orchestrator' && s.attributes[OI_KIND] === 'AGENT', 'Orchestrator AGENT span');
    const researcherSpan = one(spans, (s) => s.name === 'Researcher' && s.attributes[OI_KIND] === 'AGENT', 'Researcher AGENT span');
    const askSpan = one(spans, (s) => s.attributes['tool.name'] === 'ask_researcher', 'ask_researcher TOOL span');
    const httpSpan = one(spans, (s) => s.attributes['tool.name'] === 'http_get', 'http_get TOOL span');
    // function(ask_researcher) → task → agent(Researcher) → turn → function(http_get)
    const task = byId.get(researcherSpan.parentSpanId)!;
    expect(task.attributes[OI_KIND]).toBe('CHAIN');
    expect(task.parentSpanId).toBe(askSpan.spanId);
    expect(byId.get(httpSpan.parentSpanId)!.parentSpanId).toBe(researcherSpan.spanId);
    expect(researcherSpan.attributes['graph.node.parent_id']).toBeUndefined(); // only parent/child shows it

    graph = await agent.graph(traceId);
    expect(graph.spanCount).toBe(spans.length);
    expectAgents(graph, ['Orchestrator', 'Researcher'], AGENT_AS_TOOL_WORKFLOW);
    const orchestrator = graph.nodes.find((n) => n.role === 'Orchestrator')!;
    const researcher = graph.nodes.find((n) => n.role === 'Researcher')!;
    expect(orchestrator).toMatchObject({ id: orchestratorSpan.spanId, depth: 0, root: 'Orchestrator', path: 'Orchestrator' });
    expect(researcher).toMatchObject({ id: researcherSpan.spanId, depth: 1, root: 'Orchestrator', path: 'Orchestrator>Researcher' });
    expect(researcher.depth).toBe(orchestrator.depth + 1);
    expect(researcher.path.endsWith('Orchestrator>Researcher')).toBe(true);
    expect(researcher.tools).toEqual(['http_get']);
    expect(orchestrator.tools).toContain('ask_researcher');
    expect(orchestrator.tools).not.toContain('http_get');
    expect(researcher.targets.some((t) => t.includes('api.example.com'))).toBe(true);

    const edges = graph.edges.filter((e) => e.fromRole === 'Orchestrator' && e.toRole === 'Researcher');
    expect(edges.map((e) => e.via)).toContain('parent_child');
    for (const e of edges) expect(e).toMatchObject({ from: orchestrator.id, to: researcher.id });
    const viaParent = edges.find((e) => e.via === 'parent_child')!;
    expect([askSpan.spanId, task.spanId, researcherSpan.spanId]).toContain(viaParent.spanId);
    expect(graph.edges.filter((e) => !(e.fromRole === 'Orchestrator' && e.toRole === 'Researcher'))).toEqual([]);

    expect(agentsecOf(httpSpan)).toEqual({ role: 'Researcher', depth: int(orchestrator.depth + 1), root: 'Orchestrator', path: 'Orchestrator>Researcher' });
    expect(agentsecOf(researcherSpan)).toEqual({ role: 'Researcher', depth: int(1), root: 'Orchestrator', path: 'Orchestrator>Researcher' });
    // The tool call that delegates is the caller's.
    expect(agentsecOf(askSpan)).toEqual({ role: 'Orchestrator', depth: int(0), root: 'Orchestrator', path: 'Orchestrator' });
    expect(agentsecOf(orchestratorSpan)).toEqual({ role: 'Orchestrator', depth: int(0), root: 'Orchestrator', path: 'Orchestrator' });
    // Every LLM span under Researcher is Researcher's, every other one Orchestrator's.
    const under = (s: PlainSpan, ancestor: PlainSpan): boolean => {
      for (let p = byId.get(s.parentSpanId); p; p = byId.get(p.parentSpanId)) if (p === ancestor) return true;
      return false;
    };
    const llm = spans.filter((s) => s.attributes[OI_KIND] === 'LLM');
    expect(llm).toHaveLength(4);
    for (const s of llm) {
      expect(s.attributes['agentsec.agent.role'], `role of LLM span ${s.spanId}`).toBe(under(s, researcherSpan) ? 'Researcher' : 'Orchestrator');
    }
    expect(httpSpan.attributes['input.value']).toBe('{"url":"https://api.example.com/data"}');
  });
});
