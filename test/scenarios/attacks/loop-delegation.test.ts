// Attack scenario: an agent that calls back into its own caller chain — orchestrator → research →
// orchestrator — → delegation_loop (OWASP ASI08 cascading failures), with REAL instrumentation:
// Vercel AI SDK v7 + @ai-sdk/otel and scripted mock models. The spans the SDK recorded
// (in-memory exporter, in the order it ended them: child first) go through normalize →
// tracegraph → detect → enrich in-process (detect harness), every detector on, no policy.
//
//   invoke_agent orchestrator
//   └─ execute_tool delegate_research ─ invoke_agent research
//        └─ execute_tool ask_orchestrator ─ invoke_agent orchestrator      (the loop closes here)
//             └─ execute_tool lookup_customer
//
// Hard negative, no finding of any kind: the orchestrator delegating to research and to writer
// (siblings), the writer's own tool calls included.
import { trace } from '@opentelemetry/api';
import { OpenTelemetry } from '@ai-sdk/otel';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { generateText, stepCountIs, tool, type ToolSet } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startRecordingSdk, stopRecordingSdk } from '../../helpers/sdk-spans.ts';
import { detectHarness, specsFromSdk, comparableFindings } from '../../helpers/detect-harness.ts';
import { describeSpans, textStep, toolCallStep } from '../instrumentation/fixtures/ai-sdk-tracing.ts';

// ---------------------------------------------------------------------------------- helpers



// ---------------------------------------------------------------------------------- the system

let memory: InMemorySpanExporter;
let sdk: NodeSDK;
let otel: OpenTelemetry;
const telemetry = (functionId: string) => ({ functionId, integrations: [otel] });

/** An agent: a mock model that asks for `calls` one per step, then answers; its tools as given. */
async function runAgent(name: string, prompt: string, calls: { tool: string; args: Record<string, unknown> }[], tools: ToolSet): Promise<string> {
  const model = new MockLanguageModelV4({
    provider: 'openai.chat',
    modelId: `gpt-${name}`,
    doGenerate: [...calls.map((c, i) => toolCallStep({ id: `${name}-call-${i}`, tool: c.tool, args: c.args })), textStep(`${name} done`)],
  });
  const r = await generateText({ model, prompt, stopWhen: stepCountIs(calls.length + 2), telemetry: telemetry(name), tools });
  return r.text;
}

const lookupCustomer = tool({ inputSchema: z.object({ id: z.string() }), execute: async ({ id }) => ({ id, tier: 'gold' }) });
const webSearch = tool({ inputSchema: z.object({ query: z.string() }), execute: async ({ query }) => ({ hits: [`${query}: result`] }) });

/** Runs the system; returns its trace's spans in the order they ended. */
async function runSystem(callback: boolean): Promise<ReadableSpan[]> {
  let traceId = '';
  const delegate = (name: string, tools: ToolSet, calls: { tool: string; args: Record<string, unknown> }[]) =>
    tool({
      inputSchema: z.object({ task: z.string() }),
      execute: async ({ task }) => {
        traceId = trace.getActiveSpan()?.spanContext().traceId ?? '';
        return runAgent(name, task, calls, tools);
      },
    });
  if (callback) {
    // research, unsure of the customer's tier, asks the orchestrator, which runs again (same role).
    const askOrchestrator = tool({
      inputSchema: z.object({ question: z.string() }),
      execute: async ({ question }) => runAgent('orchestrator', question, [{ tool: 'lookup_customer', args: { id: 'C-7' } }], { lookup_customer: lookupCustomer }),
    });
    await runAgent('orchestrator', 'Prepare a renewal offer for customer C-7.', [{ tool: 'delegate_research', args: { task: 'Research C-7' } }], {
      delegate_research: delegate('research', { web_search: webSearch, ask_orchestrator: askOrchestrator }, [
        { tool: 'web_search', args: { query: 'C-7 renewal' } },
        { tool: 'ask_orchestrator', args: { question: 'Which tier is C-7?' } },
      ]),
    });
  } else {
    await runAgent('orchestrator', 'Prepare a renewal offer for customer C-7.', [
      { tool: 'delegate_research', args: { task: 'Research C-7' } },
      { tool: 'delegate_writer', args: { task: 'Write the offer for C-7' } },
    ], {
      delegate_research: delegate('research', { web_search: webSearch }, [{ tool: 'web_search', args: { query: 'C-7 renewal' } }]),
      delegate_writer: delegate('writer', { lookup_customer: lookupCustomer }, [{ tool: 'lookup_customer', args: { id: 'C-7' } }]),
    });
  }
  expect(traceId).toMatch(/^[0-9a-f]{32}$/);
  return memory.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
}

// ---------------------------------------------------------------------------------- the tests

describe('attack: research calls back into the orchestrator that called it (AI SDK v7)', () => {
  let attack: ReadableSpan[];
  let siblings: ReadableSpan[];
  let shape = '';
  const byName = (spans: readonly ReadableSpan[], name: string) => spans.filter((s) => s.name === name).sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]).map((s) => s.spanContext().spanId);

  beforeAll(async () => {
    ({ memory, sdk } = startRecordingSdk('sales-agents'));
    otel = new OpenTelemetry({ agentSpanName: 'functionId' });
    attack = await runSystem(true);
    siblings = await runSystem(false);
    shape = describeSpans(specsFromSdk(attack).map((s) => ({ spanId: s.id, parentSpanId: s.parent ?? '', kind: s.kind ?? 1, name: s.name ?? '', attributes: s.attrs ?? {} })));
  });

  afterAll(() => stopRecordingSdk(sdk));

  it('records the loop as the instrumentation sees it: two invoke_agent orchestrator spans, the inner one under research', () => {
    const [outer, inner] = byName(attack, 'invoke_agent orchestrator');
    expect(inner, shape).toBeDefined();
    const parentOf = new Map(attack.map((s) => [s.spanContext().spanId, s.parentSpanContext?.spanId]));
    const [ask] = byName(attack, 'execute_tool ask_orchestrator');
    const [research] = byName(attack, 'invoke_agent research');
    expect(parentOf.get(inner!)).toBe(ask);
    expect(parentOf.get(outer!)).toBeUndefined();
    expect(byName(attack, 'invoke_agent research')).toEqual([research]);
  });

  it('finds one delegation_loop: orchestrator → research → orchestrator, shown where it closes', async () => {
    const h = detectHarness();
    // As the SDK exported them: each span when it ended (children first), one span per batch.
    for (const s of specsFromSdk(attack)) await h.send([s]);
    const findings = h.findings();
    expect(findings.map((f) => f.kind), shape).toEqual(['delegation_loop']);
    const f = findings[0]!;
    const [outer, inner] = byName(attack, 'invoke_agent orchestrator');
    const [research] = byName(attack, 'invoke_agent research');
    const [delegateResearch] = byName(attack, 'execute_tool delegate_research');
    const [ask] = byName(attack, 'execute_tool ask_orchestrator');
    expect(f).toMatchObject({ severity: 'medium', confidence: 'high', owasp: 'ASI08' });
    expect(f.chain).toEqual([
      { role: 'orchestrator', spanId: outer },
      { role: 'research', spanId: research },
      { role: 'orchestrator', spanId: inner },
    ]);
    expect(f.spanIds[0]).toBe(inner);
    expect([...f.spanIds].sort()).toEqual([outer!, research!, inner!].sort());
    expect(f.evidence).toMatchObject({ role: 'orchestrator', loop: 'orchestrator>research>orchestrator', occurrences: 2, hops: 2, depth: 2, chain_path: 'orchestrator>research>orchestrator' });
    // The delegating tool spans are the hops' parents, as recorded.
    const parentOf = new Map(attack.map((s) => [s.spanContext().spanId, s.parentSpanContext?.spanId]));
    expect([parentOf.get(research!), parentOf.get(inner!)]).toEqual([delegateResearch, ask]);
    const findingSpans = h.exported().filter((s) => s.name === 'agentsec.finding delegation_loop');
    expect(findingSpans.map((s) => s.parentSpanId)).toEqual([inner]);
    expect(findingSpans[0]!.links.map((l) => l.spanId).sort()).toEqual([...f.spanIds].sort());
  });

  it('finds the same whatever order the spans arrive in', async () => {
    const specs = specsFromSdk(attack);
    const once = detectHarness();
    await once.send(specs);
    const expected = comparableFindings(once.findings());
    expect(expected.map((f) => f.kind)).toEqual(['delegation_loop']);
    for (const order of [specs, [...specs].sort((a, b) => b.t - a.t), [...specs].sort((a, b) => a.t - b.t)]) {
      const h = detectHarness();
      for (const s of order) await h.send([s]);
      expect(comparableFindings(h.findings())).toEqual(expected);
    }
  });

  it('gives no finding of any kind for siblings: orchestrator → research, orchestrator → writer', async () => {
    expect(byName(siblings, 'invoke_agent research')).toHaveLength(1);
    expect(byName(siblings, 'invoke_agent writer')).toHaveLength(1);
    for (const specs of [specsFromSdk(siblings), [...specsFromSdk(siblings)].sort((a, b) => a.t - b.t)]) {
      const h = detectHarness();
      for (const s of specs) await h.send([s]);
      expect(h.findings()).toEqual([]);
    }
  });
});
