// The delegation graph from hand-built spans of each dialect's shape: the same graph whatever
// the arrival order, handoffs between siblings, graph.node.parent_id, remote invoke_agent,
// span links across traces, inheritance and the service-name fallback.
import { describe, expect, it } from 'vitest';
import { normalizeSpan, workloadOf } from '../../src/agent/view.ts';
import { StringPool } from '../../src/agent/values.ts';
import { CredentialReader } from '../../src/agent/credentials.ts';
import { SpanNode } from '../../src/tracegraph/trace.ts';
import { TraceStore } from '../../src/tracegraph/store.ts';
import { graphJson } from '../../src/tracegraph/json.ts';
import type { KeyValue, Span } from '../../src/otlp/types.ts';

const pool = new StringPool();
const opts = { pool, credentialAttributes: new Set(['agentsec.credential']), credentials: new CredentialReader(Buffer.alloc(32, 7)) };
const TRACE = 'aa'.repeat(16);

interface S {
  id: string;
  parent?: string;
  name?: string;
  kind?: number;
  t: number;
  attrs?: Record<string, string>;
  service?: string;
  links?: { traceId: string; spanId: string }[];
  trace?: string;
}

function otlp(s: S): Span {
  const attributes: KeyValue[] = Object.entries(s.attrs ?? {}).map(([key, v]) => ({ key, value: { stringValue: v } }));
  return {
    traceId: Buffer.from(s.trace ?? TRACE, 'hex'),
    spanId: Buffer.from(s.id.padStart(16, '0'), 'hex'),
    parentSpanId: s.parent ? Buffer.from(s.parent.padStart(16, '0'), 'hex') : Buffer.alloc(0),
    name: s.name ?? 'span',
    kind: s.kind ?? 1,
    startTimeUnixNano: s.t * 1e6,
    endTimeUnixNano: s.t * 1e6 + 1e6,
    attributes,
    links: (s.links ?? []).map((l) => ({ traceId: Buffer.from(l.traceId, 'hex'), spanId: Buffer.from(l.spanId.padStart(16, '0'), 'hex') })),
  };
}

function build(spans: S[], store = new TraceStore({ idleTtlMs: 60_000, maxTraces: 100, maxBytes: 1e9 }, () => undefined)) {
  for (const s of spans) {
    const span = otlp(s);
    const traceId = Buffer.from(span.traceId).toString('hex');
    const trace = store.touch(traceId, 0);
    const workload = workloadOf({ attributes: [{ key: 'service.name', value: { stringValue: s.service ?? 'app' } }] }, pool);
    store.add(trace, new SpanNode(trace, s.id.padStart(16, '0'), s.parent ? s.parent.padStart(16, '0') : '', normalizeSpan(span, opts), workload, s.t, s.t + 1, s.links?.map((l) => ({ traceId: l.traceId, spanId: l.spanId.padStart(16, '0') }))));
  }
  return store;
}

function summary(store: TraceStore, traceId = TRACE) {
  const g = graphJson(store.get(traceId)!);
  return {
    nodes: g.nodes.map((n) => `${n.role}@${n.depth} ${n.path} [${n.tools.join(',')}]`).sort(),
    edges: g.edges.map((e) => `${e.fromRole}->${e.toRole} ${e.via}`).sort(),
  };
}

// AI SDK v6 shape: the agent only on the generateText spans; tool spans inherit it.
const aiSdk: S[] = [
  { id: '1', name: 'ai.generateText', t: 1, attrs: { 'ai.telemetry.functionId': 'orchestrator' } },
  { id: '2', parent: '1', name: 'ai.toolCall', t: 2, attrs: { 'ai.toolCall.name': 'delegate_research', 'ai.toolCall.args': '{"q":"x"}' } },
  { id: '3', parent: '2', name: 'ai.generateText', t: 3, attrs: { 'ai.telemetry.functionId': 'research' } },
  { id: '4', parent: '3', name: 'ai.toolCall', t: 4, attrs: { 'ai.toolCall.name': 'web_search' } },
  { id: '5', parent: '3', name: 'ai.toolCall', t: 5, attrs: { 'ai.toolCall.name': 'fetch_url', 'ai.toolCall.args': '{"url":"https://api.example.com/data?id=7"}' } },
];

describe('trace graph', () => {
  it('stitches agents, inherits identity down the tree and derives depth and path', () => {
    expect(summary(build(aiSdk))).toEqual({
      nodes: ['orchestrator@0 orchestrator [delegate_research]', 'research@1 orchestrator>research [fetch_url,web_search]'],
      edges: ['orchestrator->research parent_child'],
    });
    const g = graphJson(build(aiSdk).get(TRACE)!);
    expect(g.nodes.find((n) => n.role === 'research')!.targets).toEqual(['api.example.com']);
  });

  it('never loops on spans that name themselves or each other as parents: the span that would close the loop stays a root', () => {
    const store = build([
      { id: 'a', parent: 'b', t: 0, attrs: { 'gen_ai.agent.name': 'alpha' } },
      { id: 'b', parent: 'a', t: 1, attrs: { 'gen_ai.agent.name': 'beta' } },
      { id: 'c', parent: 'c', t: 2, attrs: { 'gen_ai.tool.name': 'x' } },
    ]);
    const trace = store.get(TRACE)!;
    const [a, b, c] = ['a', 'b', 'c'].map((id) => trace.spans.get(id.padStart(16, '0'))!);
    expect(b!.parent).toBe(a);
    expect(a!.parent).toBeUndefined();
    expect(c!.parent).toBeUndefined();
    expect(summary(store).nodes.length).toBeGreaterThan(0);
  });

  it('gives the same graph for every arrival order, children first included', () => {
    const expected = summary(build(aiSdk));
    for (const order of [[4, 3, 2, 1, 0], [2, 0, 4, 1, 3], [3, 4, 0, 2, 1]]) {
      expect(summary(build(order.map((i) => aiSdk[i]!)))).toEqual(expected);
    }
  });

  it('links a handoff to its sibling target (OpenAI Agents through OpenInference)', () => {
    const store = build([
      { id: '1', name: 'Agent workflow', t: 1, attrs: { 'openinference.span.kind': 'AGENT', 'llm.system': 'openai' } },
      { id: '2', parent: '1', name: 'Triage', t: 2, attrs: { 'openinference.span.kind': 'AGENT', 'graph.node.id': 'Triage' } },
      { id: '3', parent: '2', name: 'handoff to Billing', t: 3, attrs: { 'openinference.span.kind': 'TOOL', 'tool.name': 'handoff_to_Billing', 'input.value': '{"from_agent":"Triage"}', 'output.value': '{"to_agent":"Billing"}' } },
      { id: '4', parent: '1', name: 'Billing', t: 4, attrs: { 'openinference.span.kind': 'AGENT', 'graph.node.id': 'Billing', 'graph.node.parent_id': 'Triage' } },
      { id: '5', parent: '4', name: 'lookup_invoice', t: 5, attrs: { 'openinference.span.kind': 'TOOL', 'tool.name': 'lookup_invoice' } },
    ]);
    const s = summary(store);
    // The workflow root names no agent and does no GenAI work: it is no agent at all.
    expect(s.nodes).toEqual(['Billing@1 Triage>Billing [lookup_invoice]', 'Triage@0 Triage []']);
    expect(s.edges).toEqual(expect.arrayContaining(['Triage->Billing graph_parent']));
    // Without graph.node.parent_id, the handoff span alone makes the edge.
    const handoffOnly = build([
      { id: '2', name: 'Triage', parent: '1', t: 2, attrs: { 'gen_ai.agent.name': 'Triage' } },
      { id: '3', parent: '2', name: 'execute_tool transfer_to_billing', t: 3, attrs: { 'gen_ai.tool.name': 'transfer_to_billing' } },
      { id: '4', parent: '1', name: 'Billing', t: 4, attrs: { 'gen_ai.agent.name': 'Billing' } },
      { id: '1', name: 'task', t: 1 },
    ]);
    expect(summary(handoffOnly).edges).toEqual(expect.arrayContaining(['Triage->Billing handoff']));
    expect(summary(handoffOnly).nodes).toContain('Billing@1 Triage>Billing []');
  });

  it('makes a remote invoke_agent CLIENT span an edge to the agent it calls, across services', () => {
    const store = build([
      { id: '1', name: 'invoke_agent planner', t: 1, service: 'agent-a', attrs: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'planner' } },
      { id: '2', parent: '1', name: 'invoke_agent executor', kind: 3, t: 2, service: 'agent-a', attrs: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'executor' } },
      { id: '3', parent: '2', name: 'POST /run', kind: 2, t: 3, service: 'agent-b' },
      { id: '4', parent: '3', name: 'execute_tool run_query', t: 4, service: 'agent-b', attrs: { 'gen_ai.tool.name': 'run_query' } },
    ]);
    expect(summary(store)).toEqual({
      nodes: ['executor@1 planner>executor [run_query]', 'planner@0 planner []'],
      edges: ['planner->executor remote'],
    });
    expect(graphJson(store.get(TRACE)!).nodes.find((n) => n.role === 'executor')!.workloads).toEqual(['agent-b']);
  });

  it('falls back to the service name, and follows span links across traces', () => {
    const other = 'bb'.repeat(16);
    const store = build([
      { id: '1', name: 'POST /ingest', kind: 2, t: 1, service: 'gateway' },
      { id: '2', parent: '1', name: 'enqueue', t: 2, service: 'gateway', attrs: { 'gen_ai.agent.name': 'intake' } },
      { id: '9', name: 'consume', kind: 5, t: 3, service: 'worker', trace: other, links: [{ traceId: TRACE, spanId: '2' }], attrs: { 'gen_ai.agent.name': 'worker' } },
    ]);
    // The gateway's server span names no agent and does no GenAI work: it is no agent, and no hop.
    expect(summary(store).nodes).toEqual(['intake@0 intake []']);
    expect(summary(store, other)).toEqual({ nodes: ['worker@1 intake>worker []'], edges: ['intake->worker link'] });
  });

  it('makes a service that names no agent but calls models an agent under its service name', () => {
    const store = build([
      { id: '1', name: 'POST /chat', kind: 2, t: 1, service: 'support-bot' },
      { id: '2', parent: '1', name: 'chat gpt-4o', kind: 3, t: 2, service: 'support-bot', attrs: { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'gpt-4o' } },
      { id: '3', parent: '1', name: 'execute_tool lookup', t: 3, service: 'support-bot', attrs: { 'gen_ai.tool.name': 'lookup' } },
    ]);
    expect(summary(store)).toEqual({ nodes: ['support-bot@0 support-bot [lookup]'], edges: [] });
  });

  it('keeps one summary per span id when a client resends', () => {
    const store = build([...aiSdk, ...aiSdk]);
    expect(store.spanCount).toBe(aiSdk.length);
  });
});
