// Vercel AI SDK v6 (`ai.*` spans, installed through the npm alias `ai-v6`), real instrumentation
// and a mock model: the same orchestrator → research delegation as ai-sdk-v7.test.ts, where the
// agent is known only from `ai.telemetry.functionId` and the change of agent is visible only as a
// change of functionId between an `ai.toolCall` span and the nested `ai.generateText` span.
// The research call passes an Authorization header, which v6 copies onto its spans as
// `ai.request.headers.authorization`: the raw token must not leave the collector.
//
// Span shape emitted by ai@6.0.326 (scope `ai`, every span INTERNAL):
//   ai.generateText                 ai.telemetry.functionId=orchestrator, operation.name="ai.generateText orchestrator"
//   ├─ ai.generateText.doGenerate   (functionId orchestrator, gen_ai.system=openai.chat)
//   ├─ ai.toolCall                  ai.toolCall.name=delegate_research (functionId orchestrator)
//   │  └─ ai.generateText           functionId=research, ai.request.headers.authorization="Bearer …"
//   │     ├─ ai.generateText.doGenerate ×2   (functionId research, ai.request.headers.authorization)
//   │     └─ ai.toolCall ×2         ai.toolCall.name=web_search / fetch_url (functionId research)
//   └─ ai.generateText.doGenerate
import { trace } from '@opentelemetry/api';
import { generateText, stepCountIs, tool } from 'ai-v6';
import { MockLanguageModelV3 } from 'ai-v6/test';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgentCollector, type AgentCollector, type TraceGraphJson } from '../../helpers/agent-collector.ts';
import type { PlainSpan } from '../../helpers/plain-spans.ts';
import { delegateResearch, describeSpans, expectResearchDelegation, ORCHESTRATOR_PROMPT, orchestratorModelSettings, researchModelSettings, researchTools, startTracing, type Tracing } from './fixtures/ai-sdk-tracing.ts';

const SECRET = 'RAWSECRET123';
const AUTHORIZATION = `Bearer sk-test-${SECRET}`;

describe('AI SDK v6 ai.* spans: orchestrator delegating to a research sub-agent', () => {
  let agents: AgentCollector;
  let tracing: Tracing;
  let traceId = '';
  let spans: PlainSpan[] = [];
  let graph: TraceGraphJson;
  let shape = '';
  /** Span ids that the instrumentation recorded with ai.request.headers.authorization. */
  let carriedCredential: string[] = [];

  beforeAll(async () => {
    agents = await startAgentCollector();
    tracing = startTracing('support-app', agents.httpUrl);

    const researchModel = new MockLanguageModelV3(researchModelSettings());
    const orchestratorModel = new MockLanguageModelV3(orchestratorModelSettings());

    const result = await generateText({
      model: orchestratorModel,
      prompt: ORCHESTRATOR_PROMPT,
      stopWhen: stepCountIs(4),
      experimental_telemetry: { isEnabled: true, functionId: 'orchestrator' },
      tools: {
        delegate_research: tool({
          ...delegateResearch,
          execute: async ({ topic }) => {
            traceId = trace.getActiveSpan()?.spanContext().traceId ?? '';
            const research = await generateText({
              model: researchModel,
              prompt: `Research: ${topic}`,
              stopWhen: stepCountIs(4),
              headers: { authorization: AUTHORIZATION },
              experimental_telemetry: { isEnabled: true, functionId: 'research' },
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
    carriedCredential = produced.filter((s) => s.attributes['ai.request.headers.authorization'] === AUTHORIZATION).map((s) => s.spanContext().spanId);
    // The fixture works only if the instrumentation really put the raw header on spans.
    expect(carriedCredential.length).toBeGreaterThanOrEqual(1);
    spans = (await agents.exported(produced.length)).filter((s) => s.traceId === traceId);
    shape = describeSpans(spans);
    graph = await agents.graph(traceId);
  });

  afterAll(async () => {
    await agents?.stop();
  });

  const byId = () => new Map(spans.map((s) => [s.spanId, s]));
  const toolSpan = (toolName: string) => {
    const found = spans.filter((s) => s.name === 'ai.toolCall' && s.attributes['ai.toolCall.name'] === toolName);
    expect(found, `ai.toolCall ${toolName} in\n${shape}`).toHaveLength(1);
    return found[0];
  };
  const agentSpan = (functionId: string) => {
    const found = spans.filter((s) => s.name === 'ai.generateText' && s.attributes['ai.telemetry.functionId'] === functionId);
    expect(found, `ai.generateText ${functionId} in\n${shape}`).toHaveLength(1);
    return found[0];
  };
  /** The functionId of the nearest ai.generateText ancestor-or-self, as the instrumentation recorded it. */
  const owningAgent = (span: PlainSpan): string | undefined => {
    const ids = byId();
    for (let s: PlainSpan | undefined = span; s; s = ids.get(s.parentSpanId)) {
      if (s.name === 'ai.generateText') return s.attributes['ai.telemetry.functionId'] as string;
    }
    return undefined;
  };

  it('exports every span the instrumentation produced, in one trace, in the ai.* dialect', () => {
    expect(spans).toHaveLength(tracing.produced().length);
    expect(new Set(spans.map((s) => s.scope.name))).toEqual(new Set(['ai']));
    expect(agentSpan('orchestrator').parentSpanId).toBe('');
    expect(agentSpan('research').parentSpanId).toBe(toolSpan('delegate_research').spanId);
    expect(spans.every((s) => s.kind === 1)).toBe(true);
  });

  it('builds the delegation graph: orchestrator (depth 0) → research (depth 1) via parent/child', () => {
    const { orchestrator, research } = expectResearchDelegation(graph, {
      traceId,
      count: spans.length,
      orchestrator: agentSpan('orchestrator').spanId,
      research: agentSpan('research').spanId,
      delegate: toolSpan('delegate_research').spanId,
    });
    expect(orchestrator.credentials).toEqual([]);
    expect(research.credentials).toHaveLength(1);
  });

  it("enriches the research agent's ai.toolCall spans with depth 1, its path and its root", () => {
    for (const name of ['web_search', 'fetch_url']) {
      expect(toolSpan(name).attributes, name).toMatchObject({
        'agentsec.agent.role': 'research',
        'agentsec.chain.depth': { int: '1' },
        'agentsec.chain.path': 'orchestrator>research',
        'agentsec.chain.root': 'orchestrator',
      });
    }
    expect(toolSpan('delegate_research').attributes).toMatchObject({
      'agentsec.agent.role': 'orchestrator',
      'agentsec.chain.depth': { int: '0' },
      'agentsec.chain.path': 'orchestrator',
      'agentsec.chain.root': 'orchestrator',
    });
  });

  it('enriches every span with the agent that owns it, doGenerate spans included', () => {
    const wrong: string[] = [];
    for (const span of spans) {
      const expected =
        owningAgent(span) === 'research'
          ? { role: 'research', depth: { int: '1' }, path: 'orchestrator>research', root: 'orchestrator' }
          : { role: 'orchestrator', depth: { int: '0' }, path: 'orchestrator', root: 'orchestrator' };
      const got = {
        role: span.attributes['agentsec.agent.role'],
        depth: span.attributes['agentsec.chain.depth'],
        path: span.attributes['agentsec.chain.path'],
        root: span.attributes['agentsec.chain.root'],
      };
      if (JSON.stringify(got) !== JSON.stringify(expected)) wrong.push(`${span.name} ${span.attributes['operation.name']} (${span.spanId}): expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`);
    }
    expect(wrong, `${wrong.join('\n')}\n--- trace ---\n${shape}`).toEqual([]);
  });

  it('never lets the raw bearer token leave: not in exported bytes, span attributes, the graph API or the logs', () => {
    const exportedBytes = agents.backend.requests.map((r) => r.body);
    expect(exportedBytes.length).toBeGreaterThan(0);
    expect(exportedBytes.filter((b) => b.includes(SECRET))).toHaveLength(0);
    const leaking = spans.filter((s) => JSON.stringify(s).includes(SECRET)).map((s) => `${s.name} ${s.spanId}`);
    expect(leaking).toEqual([]);
    expect(JSON.stringify(graph)).not.toContain(SECRET);
    expect(JSON.stringify(agents.collector.logs)).not.toContain(SECRET);
  });

  it('puts one stable fingerprint on exactly the spans that carried the credential', () => {
    const ids = byId();
    const fingerprints = carriedCredential.map((id) => ids.get(id)?.attributes['agentsec.credential.fingerprint']);
    expect(fingerprints.every((f) => typeof f === 'string' && f.length >= 8), JSON.stringify(fingerprints)).toBe(true);
    expect(new Set(fingerprints).size).toBe(1);
    const [fingerprint] = fingerprints as string[];
    expect(AUTHORIZATION).not.toContain(fingerprint);
    // The graph reports the same fingerprint as the research agent's credential.
    expect(graph.nodes.find((n) => n.role === 'research')?.credentials).toEqual([fingerprint]);
    // The orchestrator never held the credential.
    for (const span of spans.filter((s) => owningAgent(s) === 'orchestrator')) {
      expect(span.attributes['agentsec.credential.fingerprint'], `${span.name} ${span.spanId}`).toBeUndefined();
    }
    // The credential attribute itself is replaced by the fingerprint (DESIGN §4), not dropped.
    for (const id of carriedCredential) expect(ids.get(id)?.attributes['ai.request.headers.authorization']).toBe(fingerprint);
  });
});
