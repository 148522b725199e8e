// Vercel AI SDK v7 with @ai-sdk/otel (GenAI-convention spans), real instrumentation and a mock
// model: an orchestrator whose tool `delegate_research` runs a research sub-agent with tools of
// its own. The collector must see two agents, one delegation edge, and enrich every span.
//
// Span shape emitted by ai@7.0.173 + @ai-sdk/otel@1.0.173 (all in one trace, scope `gen_ai`):
//   invoke_agent orchestrator        INTERNAL  gen_ai.operation.name=invoke_agent, gen_ai.agent.name=orchestrator
//   ├─ step 1                        INTERNAL  gen_ai.operation.name=agent_step (no agent attribute)
//   │  ├─ chat gpt-orchestrator      CLIENT    gen_ai.operation.name=chat
//   │  └─ execute_tool delegate_research  INTERNAL  gen_ai.tool.name=delegate_research (no agent attribute)
//   │     └─ invoke_agent research   INTERNAL  gen_ai.agent.name=research
//   │        ├─ step 1 ─ chat gpt-research, execute_tool web_search, execute_tool fetch_url
//   │        └─ step 2 ─ chat gpt-research
//   └─ step 2 ─ chat gpt-orchestrator
import { trace } from '@opentelemetry/api';
import { OpenTelemetry } from '@ai-sdk/otel';
import { generateText, registerTelemetry, stepCountIs, tool } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgentCollector, type AgentCollector, type TraceGraphJson } from '../../helpers/agent-collector.ts';
import type { PlainSpan } from '../../helpers/plain-spans.ts';
import { delegateResearch, describeSpans, expectResearchDelegation, ORCHESTRATOR_PROMPT, orchestratorModelSettings, researchModelSettings, researchTools, startTracing, type Tracing } from './fixtures/ai-sdk-tracing.ts';

const integrations = () => ((globalThis as { AI_SDK_TELEMETRY_INTEGRATIONS?: unknown[] }).AI_SDK_TELEMETRY_INTEGRATIONS ??= []);

describe('AI SDK v7 + @ai-sdk/otel: orchestrator delegating to a research sub-agent', () => {
  let agents: AgentCollector;
  let tracing: Tracing;
  let otel: OpenTelemetry;
  let traceId = '';
  let spans: PlainSpan[] = [];
  let graph: TraceGraphJson;
  let shape = '';

  beforeAll(async () => {
    agents = await startAgentCollector();
    tracing = startTracing('support-app', agents.httpUrl);
    otel = new OpenTelemetry({ agentSpanName: 'functionId' });
    registerTelemetry(otel);

    const researchModel = new MockLanguageModelV4(researchModelSettings());
    const orchestratorModel = new MockLanguageModelV4(orchestratorModelSettings());

    const result = await generateText({
      model: orchestratorModel,
      prompt: ORCHESTRATOR_PROMPT,
      stopWhen: stepCountIs(4),
      telemetry: { functionId: 'orchestrator' },
      tools: {
        delegate_research: tool({
          ...delegateResearch,
          execute: async ({ topic }) => {
            traceId = trace.getActiveSpan()?.spanContext().traceId ?? '';
            const research = await generateText({
              model: researchModel,
              prompt: `Research: ${topic}`,
              stopWhen: stepCountIs(4),
              telemetry: { functionId: 'research' },
              tools: { web_search: tool(researchTools.web_search), fetch_url: tool(researchTools.fetch_url) },
            });
            return research.text;
          },
        }),
      },
    });
    expect(result.text).toBe('Summary sent.');
    await tracing.shutdown();

    const produced = tracing.produced();
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(produced.length).toBeGreaterThanOrEqual(10);
    spans = (await agents.exported(produced.length)).filter((s) => s.traceId === traceId);
    shape = describeSpans(spans);
    graph = await agents.graph(traceId);
  });

  afterAll(async () => {
    const list = integrations();
    if (list.includes(otel)) list.splice(list.indexOf(otel), 1);
    await agents?.stop();
  });

  const byName = (name: string) => {
    const found = spans.filter((s) => s.name === name);
    expect(found, `span ${name} in\n${shape}`).toHaveLength(1);
    return found[0];
  };
  /** The agent whose invoke_agent span is the nearest ancestor-or-self, as the instrumentation recorded it. */
  const owningAgent = (span: PlainSpan): string | undefined => {
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    for (let s: PlainSpan | undefined = span; s; s = byId.get(s.parentSpanId)) {
      if (s.attributes['gen_ai.operation.name'] === 'invoke_agent') return s.attributes['gen_ai.agent.name'] as string;
    }
    return undefined;
  };

  it('exports every span the instrumentation produced, in one trace, with the spec-shaped agent spans', () => {
    expect(spans).toHaveLength(tracing.produced().length);
    const orchestrator = byName('invoke_agent orchestrator');
    const delegate = byName('execute_tool delegate_research');
    const research = byName('invoke_agent research');
    expect(orchestrator.parentSpanId).toBe('');
    expect(orchestrator.resource['service.name']).toBe('support-app');
    expect(research.parentSpanId).toBe(delegate.spanId);
    expect(research.attributes['gen_ai.agent.name']).toBe('research');
  });

  it('builds the delegation graph: orchestrator (depth 0) → research (depth 1) via parent/child', () => {
    const { orchestrator } = expectResearchDelegation(graph, {
      traceId,
      count: spans.length,
      orchestrator: byName('invoke_agent orchestrator').spanId,
      research: byName('invoke_agent research').spanId,
      delegate: byName('execute_tool delegate_research').spanId,
    });
    expect(orchestrator.workloads).toContain('support-app');
  });

  it("enriches the research agent's tool spans with depth 1, its path and its root", () => {
    for (const name of ['execute_tool web_search', 'execute_tool fetch_url']) {
      const span = byName(name);
      expect(span.attributes, name).toMatchObject({
        'agentsec.agent.role': 'research',
        'agentsec.chain.depth': { int: '1' },
        'agentsec.chain.path': 'orchestrator>research',
        'agentsec.chain.root': 'orchestrator',
      });
      // The instrumentation's own attributes are left as they were.
      expect(span.attributes['gen_ai.tool.name']).toBe(name.slice('execute_tool '.length));
    }
  });

  it('enriches every span with the agent that owns it (identity inherited down the tree)', () => {
    const wrong: string[] = [];
    for (const span of spans) {
      const agent = owningAgent(span);
      const expected =
        agent === 'research'
          ? { role: 'research', depth: { int: '1' }, path: 'orchestrator>research' }
          : { role: 'orchestrator', depth: { int: '0' }, path: 'orchestrator' };
      const got = {
        role: span.attributes['agentsec.agent.role'],
        depth: span.attributes['agentsec.chain.depth'],
        path: span.attributes['agentsec.chain.path'],
      };
      if (JSON.stringify(got) !== JSON.stringify(expected) || span.attributes['agentsec.chain.root'] !== 'orchestrator') {
        wrong.push(`${span.name} (${span.spanId}): expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)} root=${String(span.attributes['agentsec.chain.root'])}`);
      }
      // No credential attribute was on these spans, so there is nothing to fingerprint.
      expect(span.attributes['agentsec.credential.fingerprint'], span.name).toBeUndefined();
    }
    expect(wrong, `${wrong.join('\n')}\n--- trace ---\n${shape}`).toEqual([]);
    expect(byName('execute_tool delegate_research').attributes).toMatchObject({ 'agentsec.agent.role': 'orchestrator', 'agentsec.chain.depth': { int: '0' } });
  });
});
