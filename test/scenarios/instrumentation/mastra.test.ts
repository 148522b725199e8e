// Mastra 1.x (@mastra/core 1.71, @mastra/observability 1.17, @mastra/otel-exporter 1.4) → agentsec collector.
//
// A supervisor agent with a sub-agent (`agents: { analyst }`). Mastra turns the sub-agent into a
// tool named `agent-analyst`; the supervisor's scripted model calls it, the analyst's scripted
// model calls the tool `sql_query`. Mock models from ai@7's `ai/test`: no network, no key.
// Mastra's OtelExporter (provider `custom`, http/protobuf) sends to the collector; the spans of a
// trace leave together when the trace completes or at `await mastra.shutdown()`. A second
// OtelExporter sends the same spans (same ids) to a FakeBackend, so the test sees what was on the
// wire independently of the collector. `signals: { logs: false }`: otherwise the exporter also
// POSTs OTLP logs to <endpoint base>/v1/logs.
//
// What Mastra 1.71 + otel-exporter 1.4 puts on the wire (observed; scope @mastra/otel-exporter,
// resource service.name=<serviceName>, telemetry.sdk.name=@mastra/otel-exporter):
//   invoke_agent supervisor              INTERNAL root  gen_ai.operation.name=invoke_agent mastra.span.type=agent_run gen_ai.agent.id=supervisor gen_ai.agent.name=supervisor gen_ai.tool.definitions=["agent-analyst"]
//   └ model_generation supervisor-model  INTERNAL       gen_ai.operation.name=model_generation mastra.span.type=model_generation
//     ├ agent_step supervisor            INTERNAL       gen_ai.operation.name=agent_step mastra.span.type=model_step (step 0)
//     │ ├ chat supervisor-model          CLIENT         gen_ai.operation.name=chat mastra.span.type=model_inference gen_ai.agent.{id,name}=supervisor gen_ai.provider.name=openai.chat
//     │ │ └ model_chunk supervisor ×2    INTERNAL       mastra.span.type=model_chunk
//     │ └ execute_tool agent-analyst     INTERNAL       gen_ai.operation.name=execute_tool mastra.span.type=tool_call gen_ai.tool.name=agent-analyst gen_ai.tool.type=tool (no agent attribute)
//     │   └ invoke_agent analyst         INTERNAL       mastra.span.type=agent_run gen_ai.agent.id=analyst gen_ai.agent.name=analyst gen_ai.tool.definitions=["sql_query"]
//     │     └ model_generation analyst-model
//     │       ├ agent_step analyst (0)
//     │       │ ├ chat analyst-model     CLIENT         gen_ai.agent.{id,name}=analyst
//     │       │ │ └ model_chunk analyst ×2
//     │       │ └ execute_tool sql_query INTERNAL       gen_ai.tool.name=sql_query gen_ai.tool.call.{id,arguments,result} (no agent attribute)
//     │       └ agent_step analyst (1) → chat analyst-model → model_chunk analyst
//     ├ mapping agent-analyst            INTERNAL       mastra.span.type=mapping (sub-agent result → model output)
//     └ agent_step supervisor (1) → chat supervisor-model → model_chunk supervisor
// Only invoke_agent and chat spans carry gen_ai.agent.*; tool, step and chunk spans inherit the
// agent from their ancestors. 21 spans in all.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Agent } from '@mastra/core/agent';
import { Mastra } from '@mastra/core/mastra';
import { createTool } from '@mastra/core/tools';
import { Observability } from '@mastra/observability';
import { OtelExporter } from '@mastra/otel-exporter';
import { z } from 'zod';
import { startAgentCollector, type AgentCollector } from '../../helpers/agent-collector.ts';
import { FakeBackend } from '../../helpers/fake-backend.ts';
import type { PlainSpan } from '../../helpers/plain-spans.ts';
import { scriptedModel } from './fixtures/mastra-scripted-model.ts';

// @mastra/core reports feature usage to PostHog (us.posthog.com) unless this is set; read at call time.
process.env.MASTRA_TELEMETRY_DISABLED = '1';

let ac: AgentCollector;
/** A second copy of Mastra's OTLP output, straight from its exporter: what was on the wire. */
let wire: FakeBackend;
let mastra: Mastra | undefined;

beforeAll(async () => {
  ac = await startAgentCollector();
  wire = await FakeBackend.start();
});

afterAll(async () => {
  await mastra?.shutdown().catch(() => {});
  await ac?.stop();
  await wire?.close();
});



describe('Mastra supervisor with a sub-agent', () => {
  let traceId = '';
  /** What Mastra sent. */
  let spans: PlainSpan[] = [];
  const one = (name: string, from: PlainSpan[] = spans) => {
    const found = from.filter((s) => s.name === name);
    expect(found, name).toHaveLength(1);
    return found[0];
  };

  beforeAll(async () => {
    const sqlQuery = createTool({
      id: 'sql_query',
      description: 'Run a read-only SQL query',
      inputSchema: z.object({ sql: z.string() }),
      execute: async ({ sql }) => ({ rows: [{ n: 42 }], sql }),
    });
    const analyst = new Agent({
      id: 'analyst',
      name: 'analyst',
      description: 'Answers questions about the orders database',
      instructions: 'You analyse data with SQL.',
      model: scriptedModel('analyst-model', [
        { toolCall: { name: 'sql_query', args: { sql: 'select count(*) from orders' } } },
        { text: '42 orders' },
      ]),
      tools: { sql_query: sqlQuery },
    });
    const supervisor = new Agent({
      id: 'supervisor',
      name: 'supervisor',
      instructions: 'Delegate data questions to the analyst.',
      model: scriptedModel('supervisor-model', [
        { toolCall: { name: 'agent-analyst', args: { prompt: 'How many orders are there?' } } },
        { text: 'There are 42 orders.' },
      ]),
      agents: { analyst },
    });
    mastra = new Mastra({
      agents: { supervisor, analyst },
      logger: false,
      observability: new Observability({
        configs: {
          otel: {
            serviceName: 'mastra-app',
            exporters: [ac.httpUrl, wire.httpUrl].map((base) =>
              new OtelExporter({
                provider: { custom: { endpoint: `${base}/v1/traces`, protocol: 'http/protobuf' } },
                // Logs would go to <endpoint minus /v1/traces>/v1/logs; this is a trace collector.
                signals: { logs: false },
              })),
          },
        },
      }),
    });
    const result = await mastra.getAgent('supervisor').generate('How many orders are there?', { maxSteps: 5 });
    expect(result.text).toBe('There are 42 orders.');
    traceId = result.traceId ?? '';
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    await mastra.shutdown(); // flushes the exporters
    mastra = undefined;
    spans = wire.plainSpans().filter((s) => s.traceId === traceId);
  });

  test('Mastra emits the sub-agent as a tool call whose child is the sub-agent run', () => {
    const parentName = (s: PlainSpan) => spans.find((p) => p.spanId === s.parentSpanId)?.name ?? '';
    expect(one('invoke_agent supervisor').parentSpanId).toBe('');
    expect(one('invoke_agent supervisor').attributes).toMatchObject({ 'gen_ai.operation.name': 'invoke_agent', 'mastra.span.type': 'agent_run', 'gen_ai.agent.name': 'supervisor' });
    expect(parentName(one('invoke_agent analyst'))).toBe('execute_tool agent-analyst');
    expect(one('invoke_agent analyst').attributes).toMatchObject({ 'mastra.span.type': 'agent_run', 'gen_ai.agent.id': 'analyst', 'gen_ai.agent.name': 'analyst' });
    expect(one('execute_tool sql_query').attributes).toMatchObject({ 'gen_ai.operation.name': 'execute_tool', 'mastra.span.type': 'tool_call', 'gen_ai.tool.name': 'sql_query' });
    // The tool span names no agent: the collector has to inherit it.
    expect(one('execute_tool sql_query').attributes['gen_ai.agent.name']).toBeUndefined();
    const chats = spans.filter((s) => s.name.startsWith('chat '));
    expect(chats.map((s) => s.name).sort()).toEqual(['chat analyst-model', 'chat analyst-model', 'chat supervisor-model', 'chat supervisor-model']);
    expect(chats.every((s) => s.kind === 3)).toBe(true); // CLIENT
  });

  test('graph: supervisor at depth 0 delegates to analyst at depth 1', async () => {
    const g = await ac.graphOf(traceId, spans.length);
    expect(g.traceId).toBe(traceId);
    expect(g.spanCount).toBe(spans.length);
    expect(g.nodes.map((n) => n.role).sort()).toEqual(['analyst', 'supervisor']);
    const supervisor = g.nodes.find((n) => n.role === 'supervisor')!;
    const analyst = g.nodes.find((n) => n.role === 'analyst')!;
    expect(supervisor).toMatchObject({ id: one('invoke_agent supervisor').spanId, depth: 0, root: 'supervisor', path: 'supervisor' });
    expect(analyst).toMatchObject({ id: one('invoke_agent analyst').spanId, depth: 1, root: 'supervisor', path: 'supervisor>analyst' });
    expect(analyst.tools).toContain('sql_query');
    expect(supervisor.tools).not.toContain('sql_query');
    expect(supervisor.tools).toContain('agent-analyst');
    expect(analyst.tools).not.toContain('agent-analyst');
    expect(g.edges).toHaveLength(1);
    expect(g.edges[0]).toMatchObject({ from: supervisor.id, to: analyst.id, fromRole: 'supervisor', toRole: 'analyst', via: 'parent_child' });
    expect([one('execute_tool agent-analyst').spanId, one('invoke_agent analyst').spanId]).toContain(g.edges[0].spanId);
  });

  test('exported spans carry the agentsec.* chain attributes of their agent', async () => {
    const out = await ac.exportedOf(traceId, spans.length);
    expect(out.map((s) => s.spanId).sort()).toEqual(spans.map((s) => s.spanId).sort());
    expect(one('execute_tool sql_query', out).attributes).toMatchObject({
      'agentsec.agent.role': 'analyst',
      'agentsec.chain.depth': { int: '1' },
      'agentsec.chain.root': 'supervisor',
      'agentsec.chain.path': 'supervisor>analyst',
    });
    for (const chat of out.filter((s) => s.name === 'chat analyst-model')) {
      expect(chat.attributes).toMatchObject({ 'agentsec.agent.role': 'analyst', 'agentsec.chain.depth': { int: '1' } });
    }
    expect(one('execute_tool agent-analyst', out).attributes).toMatchObject({
      'agentsec.agent.role': 'supervisor',
      'agentsec.chain.depth': { int: '0' },
      'agentsec.chain.path': 'supervisor',
    });
    // Every span of this trace is inside an agent run, so every one is enriched.
    const bare = out.filter((s) => s.attributes['agentsec.agent.role'] === undefined).map((s) => s.name);
    expect(bare).toEqual([]);
  });
});
