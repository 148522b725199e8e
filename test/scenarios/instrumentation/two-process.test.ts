// Two real processes, two services, one trace: agent A (service `agent-a`, role `planner`) has a
// tool that calls agent B (service `agent-b`, role `executor`) over HTTP with W3C trace context;
// B's agent calls its own tool `run_query`. Both export to the same collector (OTLP/HTTP protobuf).
// The collector must stitch one graph across the services: planner → executor, with B's spans at
// depth 1. Both agents use AI SDK v7 + @ai-sdk/otel with mock models (fixtures/ai-sdk-agent-*.ts).
//
// Span shape across the two processes:
//   [agent-a] invoke_agent planner ─ step 1 ─ execute_tool ask_executor ─ POST (CLIENT, url.full=http://127.0.0.1:port/run)
//   [agent-b]   └─ POST /run (SERVER, parent = A's CLIENT span via traceparent)
//                  └─ invoke_agent executor ─ step 1 ─ chat gpt-executor, execute_tool run_query
//                                           └ step 2 ─ chat gpt-executor
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgentCollector, type AgentCollector, type TraceGraphJson } from '../../helpers/agent-collector.ts';
import type { PlainSpan } from '../../helpers/plain-spans.ts';
import { describeSpans } from './fixtures/ai-sdk-tracing.ts';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

interface Child {
  proc: ChildProcess;
  stderr: () => string;
}

function start(script: string, env: Record<string, string>): Child {
  let stderr = '';
  const proc = fork(fixture(script), [], {
    execArgv: [],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  proc.stdout!.on('data', (d: Buffer) => (stderr += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return { proc, stderr: () => stderr };
}

/** The first IPC message that has `key`, or a rejection naming the process's output when it exits or times out. */
function message<T>(child: Child, key: string, timeoutMs = 15_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: unknown) => {
      if (m && typeof m === 'object' && key in m) {
        cleanup();
        resolve((m as Record<string, T>)[key]);
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`child exited (${code}) before sending '${key}':\n${child.stderr()}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no '${key}' from child after ${timeoutMs} ms:\n${child.stderr()}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.proc.off('message', onMessage);
      child.proc.off('exit', onExit);
    };
    child.proc.on('message', onMessage);
    child.proc.on('exit', onExit);
  });
}

describe('two processes: planner (agent-a) calls executor (agent-b) over HTTP with W3C trace context', () => {
  let agents: AgentCollector;
  const children: Child[] = [];
  let run: { traceId: string; spanCount: number; answer: string };
  let spans: PlainSpan[] = [];
  let graph: TraceGraphJson;
  let shape = '';

  beforeAll(async () => {
    // A's spans (the parents of B's) come from another process, after B's: a hold that a busy machine cannot outlast.
    agents = await startAgentCollector({ hold: '2s' });
    const b = start('ai-sdk-agent-b.ts', { COLLECTOR_URL: agents.httpUrl });
    children.push(b);
    const port = await message<number>(b, 'ready');

    const a = start('ai-sdk-agent-a.ts', { COLLECTOR_URL: agents.httpUrl, EXECUTOR_URL: `http://127.0.0.1:${port}` });
    children.push(a);
    run = await message(a, 'done');

    b.proc.send('stop');
    const bSpans = await message<number>(b, 'stopped');

    spans = (await agents.exported(run.spanCount + bSpans)).filter((s) => s.traceId === run.traceId);
    expect(spans).toHaveLength(run.spanCount + bSpans);
    shape = describeSpans(spans);
    graph = await agents.graph(run.traceId);
  });

  afterAll(async () => {
    for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill();
    await agents?.stop();
  });

  const service = (s: PlainSpan) => s.resource['service.name'];
  const one = (pred: (s: PlainSpan) => boolean, what: string) => {
    const found = spans.filter(pred);
    expect(found, `${what} in\n${shape}`).toHaveLength(1);
    return found[0];
  };
  const agentSpan = (name: string) => one((s) => s.attributes['gen_ai.operation.name'] === 'invoke_agent' && s.attributes['gen_ai.agent.name'] === name, `invoke_agent ${name}`);
  const toolSpan = (name: string) => one((s) => s.attributes['gen_ai.tool.name'] === name, `execute_tool ${name}`);

  it('records one trace across both services, joined by the propagated context', () => {
    expect(run.answer).toBe('There are 42 orders.');
    expect(new Set(spans.map(service))).toEqual(new Set(['agent-a', 'agent-b']));
    const client = one((s) => s.kind === 3 && service(s) === 'agent-a' && s.name === 'POST', 'HTTP CLIENT span');
    const server = one((s) => s.kind === 2 && service(s) === 'agent-b', 'HTTP SERVER span');
    expect(client.parentSpanId).toBe(toolSpan('ask_executor').spanId);
    expect(server.parentSpanId).toBe(client.spanId);
    expect(agentSpan('executor').parentSpanId).toBe(server.spanId);
    expect(agentSpan('planner').parentSpanId).toBe('');
  });

  it('stitches one graph with the edge planner → executor across services', () => {
    expect(graph.traceId).toBe(run.traceId);
    expect(graph.spanCount).toBe(spans.length);
    expect(graph.nodes.map((n) => n.role).sort(), JSON.stringify(graph, null, 1)).toEqual(['executor', 'planner']);

    const planner = graph.nodes.find((n) => n.role === 'planner')!;
    expect(planner).toMatchObject({ id: agentSpan('planner').spanId, depth: 0, root: 'planner', path: 'planner' });
    expect(planner.workloads).toContain('agent-a');
    expect(planner.tools).toContain('ask_executor');
    expect(planner.tools).not.toContain('run_query');

    const executor = graph.nodes.find((n) => n.role === 'executor')!;
    expect(executor).toMatchObject({ id: agentSpan('executor').spanId, depth: 1, root: 'planner', path: 'planner>executor' });
    expect(executor.workloads).toContain('agent-b');
    expect(executor.workloads).not.toContain('agent-a');
    expect(executor.tools).toEqual(['run_query']);

    expect(graph.edges, JSON.stringify(graph.edges)).toHaveLength(1);
    const [edge] = graph.edges;
    expect(edge).toMatchObject({ from: planner.id, to: executor.id, fromRole: 'planner', toRole: 'executor' });
    // A parent/child edge across the process boundary (no invoke_agent CLIENT span here, so not necessarily 'remote').
    expect(['parent_child', 'remote']).toContain(edge.via);
  });

  it("enriches B's run_query tool span with depth 1 and the cross-service path", () => {
    const runQuery = toolSpan('run_query');
    expect(service(runQuery)).toBe('agent-b');
    expect(runQuery.attributes).toMatchObject({
      'agentsec.agent.role': 'executor',
      'agentsec.chain.depth': { int: '1' },
      'agentsec.chain.path': 'planner>executor',
      'agentsec.chain.root': 'planner',
    });
    expect(toolSpan('ask_executor').attributes).toMatchObject({
      'agentsec.agent.role': 'planner',
      'agentsec.chain.depth': { int: '0' },
      'agentsec.chain.path': 'planner',
      'agentsec.chain.root': 'planner',
    });
  });

  it("enriches every span of the executor's invocation as the executor, at depth 1", () => {
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const executorRoot = agentSpan('executor').spanId;
    const underExecutor = (s: PlainSpan) => {
      for (let p: PlainSpan | undefined = s; p; p = byId.get(p.parentSpanId)) if (p.spanId === executorRoot) return true;
      return false;
    };
    const executorSpans = spans.filter(underExecutor);
    expect(executorSpans.length).toBeGreaterThanOrEqual(5);
    const wrong = executorSpans
      .filter((s) => s.attributes['agentsec.agent.role'] !== 'executor' || JSON.stringify(s.attributes['agentsec.chain.depth']) !== '{"int":"1"}' || s.attributes['agentsec.chain.path'] !== 'planner>executor')
      .map((s) => `${s.name} ${s.spanId}: ${JSON.stringify(Object.fromEntries(Object.entries(s.attributes).filter(([k]) => k.startsWith('agentsec.'))))}`);
    expect(wrong, `${wrong.join('\n')}\n--- trace ---\n${shape}`).toEqual([]);
  });
});
