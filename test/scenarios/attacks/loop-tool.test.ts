// Attack scenario: a sub-agent repeating the same tool call with identical arguments 50 times in
// 10 s → tool_loop (OWASP ASI02 loop amplification), with REAL instrumentation: Vercel AI SDK v7 +
// @ai-sdk/otel (GenAI-convention spans, tool arguments recorded, the SDK's defaults) and scripted
// mock models. The spans the SDK recorded (in-memory exporter, in the order it ended them: child
// first) go through normalize → tracegraph → detect → enrich in-process (detect harness), with
// every detector on and no policy.
//
//   invoke_agent orchestrator
//   └─ execute_tool delegate_research ─ invoke_agent research
//        step 1…50: chat + execute_tool lookup_order {"order_id":"A-1042"}   (the same call, 50 times)
//        step 51: chat (answer)
//
// Hard negatives, no finding of any kind: the same system making 50 lookups with different
// arguments (real instrumentation); and the recorded attack spans with the 50 identical calls
// spread over 10 minutes (the real spans, re-timed: a mock model cannot make the SDK's clock
// run for 10 minutes).
import { trace } from '@opentelemetry/api';
import { OpenTelemetry } from '@ai-sdk/otel';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { generateText, stepCountIs, tool } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startRecordingSdk, stopRecordingSdk } from '../../helpers/sdk-spans.ts';
import { detectHarness, type SpanSpec, specsFromSdk, comparableFindings } from '../../helpers/detect-harness.ts';
import { argHash } from '../../../src/detect/detectors/tool-loop.ts';
import { describeSpans, textStep, toolCallStep } from '../instrumentation/fixtures/ai-sdk-tracing.ts';

// ---------------------------------------------------------------------------------- helpers



// ---------------------------------------------------------------------------------- the system

const ORDER = { order_id: 'A-1042' };
let memory: InMemorySpanExporter;
let sdk: NodeSDK;
let otel: OpenTelemetry;

/** The orchestrator delegates to research, whose model asks for lookup_order 50 times; returns the trace's spans in the order they ended. */
async function runSystem(argsOf: (i: number) => Record<string, unknown>): Promise<ReadableSpan[]> {
  const telemetry = (functionId: string) => ({ functionId, integrations: [otel] });
  const research = new MockLanguageModelV4({
    provider: 'openai.chat',
    modelId: 'gpt-research',
    doGenerate: [
      ...Array.from({ length: 50 }, (_, i) => toolCallStep({ id: `call-${i}`, tool: 'lookup_order', args: argsOf(i) })),
      textStep('The order is still pending.'),
    ],
  });
  const orchestrator = new MockLanguageModelV4({
    provider: 'openai.chat',
    modelId: 'gpt-orchestrator',
    doGenerate: [toolCallStep({ id: 'call-research', tool: 'delegate_research', args: { question: 'Where is order A-1042?' } }), textStep('It is pending.')],
  });
  let traceId = '';
  await generateText({
    model: orchestrator,
    prompt: 'Where is my order A-1042?',
    stopWhen: stepCountIs(4),
    telemetry: telemetry('orchestrator'),
    tools: {
      delegate_research: tool({
        inputSchema: z.object({ question: z.string() }),
        execute: async ({ question }) => {
          traceId = trace.getActiveSpan()?.spanContext().traceId ?? '';
          const r = await generateText({
            model: research,
            prompt: question,
            stopWhen: stepCountIs(60),
            telemetry: telemetry('research'),
            tools: { lookup_order: tool({ inputSchema: z.object({ order_id: z.string() }), execute: async ({ order_id }) => ({ order_id, status: 'pending' }) }) },
          });
          return r.text;
        },
      }),
    },
  });
  expect(traceId).toMatch(/^[0-9a-f]{32}$/);
  return memory.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
}

/**
 * The same spans with research's steps 12 s apart: time t moves by 12 s for every step that
 * started at or before it, so that order and containment are kept (the parents stretch).
 */
function spreadSteps(specs: SpanSpec[], researchId: string, gapMs: number): SpanSpec[] {
  const steps = specs.filter((s) => s.parent === researchId && s.name?.startsWith('step ')).map((s) => s.t).sort((a, b) => a - b);
  const shift = (t: number) => t + gapMs * steps.filter((x) => x <= t).length;
  return specs.map((s) => {
    const t = shift(s.t);
    return { ...s, t, d: shift(s.t + (s.d ?? 1)) - t };
  });
}

// ---------------------------------------------------------------------------------- the tests

describe('attack: a sub-agent calling the same tool with identical arguments 50 times in 10 s (AI SDK v7)', () => {
  let attack: ReadableSpan[];
  let varied: ReadableSpan[];
  let shape = '';
  const ids = (spans: readonly ReadableSpan[], name: string) => spans.filter((s) => s.name === name).sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]).map((s) => s.spanContext().spanId);

  beforeAll(async () => {
    ({ memory, sdk } = startRecordingSdk('support-agents'));
    otel = new OpenTelemetry({ agentSpanName: 'functionId' });
    attack = await runSystem(() => ORDER);
    varied = await runSystem((i) => ({ order_id: `A-${1000 + i}` }));
    shape = describeSpans(specsFromSdk(attack).map((s) => ({ spanId: s.id, parentSpanId: s.parent ?? '', kind: s.kind ?? 1, name: s.name ?? '', attributes: s.attrs ?? {} })));
  });

  afterAll(() => stopRecordingSdk(sdk));

  it('records what the scenario needs: 50 lookup_order calls under research, arguments captured, within 10 s', () => {
    const calls = attack.filter((s) => s.name === 'execute_tool lookup_order');
    expect(calls, shape).toHaveLength(50);
    expect(new Set(calls.map((s) => s.attributes['gen_ai.tool.call.arguments']))).toEqual(new Set([JSON.stringify(ORDER)]));
    const specs = specsFromSdk(attack);
    const times = specs.filter((s) => s.name === 'execute_tool lookup_order').map((s) => s.t);
    expect(Math.max(...times) - Math.min(...times)).toBeLessThan(10_000);
    expect(ids(attack, 'invoke_agent research')).toHaveLength(1);
  });

  it('finds one tool_loop: research, lookup_order, 50 calls, the arguments hashed, shown on the fifth call', async () => {
    const h = detectHarness();
    // As the SDK exported them: each span when it ended (children first), one span per batch.
    for (const s of specsFromSdk(attack)) await h.send([s]);
    const findings = h.findings();
    expect(findings.map((f) => f.kind), shape).toEqual(['tool_loop']);
    const f = findings[0]!;
    const calls = ids(attack, 'execute_tool lookup_order');
    const [orchestrator] = ids(attack, 'invoke_agent orchestrator');
    const [research] = ids(attack, 'invoke_agent research');
    expect(f).toMatchObject({ severity: 'high', confidence: 'high', owasp: 'ASI02' });
    expect(f.spanIds[0]).toBe(calls[4]);
    expect([...f.spanIds].sort()).toEqual([...calls].sort());
    expect(f.chain).toEqual([
      { role: 'orchestrator', spanId: orchestrator },
      { role: 'research', spanId: research },
      { role: 'research', spanId: calls[4], capability: 'lookup_order' },
    ]);
    expect(f.evidence).toMatchObject({ role: 'research', tool: 'lookup_order', arg_hash: argHash(JSON.stringify(ORDER)), count: 50, window_ms: 10_000, max_repeats: 5 });
    expect(JSON.stringify(f)).not.toContain('A-1042');
    // On the way out: a finding span hangs under the fifth call, linked to every call. (The call
    // itself left in its own batch before the agents above it arrived: with enrich's hold at 0
    // it cannot carry the attributes; see the one-batch case below.)
    const findingSpans = h.exported().filter((s) => s.name === 'agentsec.finding tool_loop');
    expect(findingSpans.map((s) => s.parentSpanId)).toEqual([calls[4]]);
    expect(findingSpans[0]!.links).toHaveLength(50);

    const batch = detectHarness();
    await batch.send(specsFromSdk(attack));
    expect(batch.exported().find((s) => s.spanId === calls[4])!.attributes).toMatchObject({ 'agentsec.finding.kind': 'tool_loop', 'agentsec.finding.severity': 'high' });
  });

  it('finds the same whatever order the spans arrive in', async () => {
    const specs = specsFromSdk(attack);
    const once = detectHarness();
    await once.send(specs);
    const expected = comparableFindings(once.findings());
    expect(expected.map((f) => f.kind)).toEqual(['tool_loop']);
    // As exported (each span when it ended: children first), parents last in reverse start order.
    for (const order of [specs, [...specs].sort((a, b) => b.t - a.t)]) {
      const h = detectHarness();
      for (const s of order) await h.send([s]);
      expect(comparableFindings(h.findings())).toEqual(expected);
    }
    // Roots first, one span per batch (a replay; live spans arrive when they end): the same
    // finding, reported as the fifth call arrives (medium) and raised when the twentieth does.
    const rootsFirst = detectHarness();
    for (const s of [...specs].sort((a, b) => a.t - b.t)) await rootsFirst.send([s]);
    const [f, ...rest] = rootsFirst.findings();
    expect(rest).toEqual([]);
    expect(f).toMatchObject({ id: expected[0]!.id, kind: 'tool_loop', chain: expected[0]!.chain, severity: 'high' });
    expect(f!.spanIds[0]).toBe(expected[0]!.spanIds[0]);
    expect(f!.evidence).toMatchObject({ count: 20, arg_hash: expected[0]!.evidence.arg_hash });
    expect(rootsFirst.stdout.map((l) => JSON.parse(l).severity)).toEqual(['medium', 'high']);
  });

  it('gives no finding of any kind for 50 lookups with different arguments', async () => {
    expect(new Set(varied.filter((s) => s.name === 'execute_tool lookup_order').map((s) => s.attributes['gen_ai.tool.call.arguments'])).size).toBe(50);
    const h = detectHarness();
    for (const s of specsFromSdk(varied)) await h.send([s]);
    expect(h.findings()).toEqual([]);
  });

  it('gives no finding of any kind for the 50 identical calls spread over 10 minutes', async () => {
    const [research] = ids(attack, 'invoke_agent research');
    const spread = spreadSteps(specsFromSdk(attack), research!, 12_000);
    const times = spread.filter((s) => s.name === 'execute_tool lookup_order').map((s) => s.t);
    expect(Math.max(...times) - Math.min(...times)).toBeGreaterThan(49 * 12_000 - 1);
    const h = detectHarness();
    for (const s of spread) await h.send([s]);
    expect(h.findings()).toEqual([]);
  });
});
