// Attack scenario: a delegation chain deeper than the role allows → excessive_depth (OWASP
// ASI08; ASI03 unusual delegation chains), with REAL instrumentation: Vercel AI SDK v7 +
// @ai-sdk/otel and scripted mock models. The spans the SDK recorded (in-memory exporter, in the
// order it ended them: child first) go through normalize → tracegraph → detect → enrich
// in-process (detect harness), every detector on, with the policy below.
//
//   orchestrator → research → analysis → writer            writer acts at depth 3; its role allows 2
//
// Hard negative, no finding of any kind: orchestrator → research → writer (writer at depth 2,
// the limit), with the same policy.
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

const POLICY = `
roles:
  writer: { max_depth: 2 }
`;

// ---------------------------------------------------------------------------------- helpers



// ---------------------------------------------------------------------------------- the system

let memory: InMemorySpanExporter;
let sdk: NodeSDK;
let otel: OpenTelemetry;

/**
 * Runs agents nested as `path` says (each delegates to the next through a tool
 * delegate_<next>; the last one saves a draft); returns the trace's spans in the order they ended.
 */
async function runChain(path: string[]): Promise<ReadableSpan[]> {
  let traceId = '';
  const run = async (i: number, task: string): Promise<string> => {
    const name = path[i]!;
    const next = path[i + 1];
    const tools: ToolSet = next
      ? { [`delegate_${next}`]: tool({ inputSchema: z.object({ task: z.string() }), execute: async ({ task: t }) => {
          traceId = trace.getActiveSpan()?.spanContext().traceId ?? '';
          return run(i + 1, t);
        } }) }
      : { save_draft: tool({ inputSchema: z.object({ text: z.string() }), execute: async () => ({ saved: true }) }) };
    const call = next ? toolCallStep({ id: `${name}-call`, tool: `delegate_${next}`, args: { task: `${task} / ${next}` } }) : toolCallStep({ id: `${name}-call`, tool: 'save_draft', args: { text: 'Q3 summary draft' } });
    const model = new MockLanguageModelV4({ provider: 'openai.chat', modelId: `gpt-${name}`, doGenerate: [call, textStep(`${name} done`)] });
    const r = await generateText({ model, prompt: task, stopWhen: stepCountIs(3), telemetry: { functionId: name, integrations: [otel] }, tools });
    return r.text;
  };
  await run(0, 'Summarise the quarter');
  expect(traceId).toMatch(/^[0-9a-f]{32}$/);
  return memory.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
}

// ---------------------------------------------------------------------------------- the tests

describe('attack: a delegation chain deeper than the role allows (AI SDK v7)', () => {
  let deep: ReadableSpan[];
  let within: ReadableSpan[];
  let shape = '';
  const agentSpan = (spans: readonly ReadableSpan[], role: string) => {
    const found = spans.filter((s) => s.name === `invoke_agent ${role}`);
    expect(found, shape).toHaveLength(1);
    return found[0]!.spanContext().spanId;
  };

  beforeAll(async () => {
    ({ memory, sdk } = startRecordingSdk('report-agents'));
    otel = new OpenTelemetry({ agentSpanName: 'functionId' });
    deep = await runChain(['orchestrator', 'research', 'analysis', 'writer']);
    within = await runChain(['orchestrator', 'research', 'writer']);
    shape = describeSpans(specsFromSdk(deep).map((s) => ({ spanId: s.id, parentSpanId: s.parent ?? '', kind: s.kind ?? 1, name: s.name ?? '', attributes: s.attrs ?? {} })));
  });

  afterAll(() => stopRecordingSdk(sdk));

  it('finds excessive_depth on writer: depth 3 beyond its 2, the whole chain, shown on the writer', async () => {
    const h = detectHarness(POLICY);
    await h.send(specsFromSdk(deep));
    const findings = h.findings();
    expect(findings.map((f) => f.kind), shape).toEqual(['excessive_depth']);
    const f = findings[0]!;
    const ids = ['orchestrator', 'research', 'analysis', 'writer'].map((r) => agentSpan(deep, r));
    expect(f).toMatchObject({ severity: 'medium', confidence: 'high', owasp: 'ASI08' });
    expect(f.chain).toEqual(['orchestrator', 'research', 'analysis', 'writer'].map((role, i) => ({ role, spanId: ids[i] })));
    expect(f.spanIds).toEqual([ids[3], ids[0], ids[1], ids[2]]);
    expect(f.evidence).toEqual({ depth: 3, max_depth: 2, path: 'orchestrator>research>analysis>writer', limit_from: 'role policy' });
    expect(h.exported().find((s) => s.spanId === ids[3])!.attributes).toMatchObject({ 'agentsec.finding.kind': 'excessive_depth', 'agentsec.chain.depth': { int: '3' } });
  });

  it('finds the same when the agents arrive root first, one span per batch', async () => {
    const specs = specsFromSdk(deep);
    const once = detectHarness(POLICY);
    await once.send(specs);
    const expected = comparableFindings(once.findings());
    expect(expected).toHaveLength(1);
    const h = detectHarness(POLICY);
    for (const s of [...specs].sort((a, b) => a.t - b.t)) await h.send([s]);
    expect(comparableFindings(h.findings())).toEqual(expected);
  });

  // Exported child first, writer's invoke_agent span arrives before the agents above it: its
  // depth is judged when they arrive.
  it('finds the same when the spans arrive as the SDK exported them (child first), one per batch', async () => {
    const specs = specsFromSdk(deep);
    const once = detectHarness(POLICY);
    await once.send(specs);
    const expected = comparableFindings(once.findings());
    expect(expected).toHaveLength(1);
    for (const order of [specs, [...specs].sort((a, b) => b.t - a.t)]) {
      const h = detectHarness(POLICY);
      for (const s of order) await h.send([s]);
      expect(comparableFindings(h.findings())).toEqual(expected);
    }
  });

  it('gives no finding of any kind within the limit: orchestrator → research → writer', async () => {
    for (const order of [specsFromSdk(within), [...specsFromSdk(within)].sort((a, b) => a.t - b.t)]) {
      const h = detectHarness(POLICY);
      for (const s of order) await h.send([s]);
      expect(h.findings()).toEqual([]);
    }
  });
});
