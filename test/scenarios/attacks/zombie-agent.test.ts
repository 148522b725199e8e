// Attack scenario (OWASP ASI10 rogue agents): an orchestrator's tool call starts a research
// sub-agent and returns at once, without waiting; the sub-agent keeps working, and calls
// export_report 2.5 s after the invocation that started it has ended. Hard negative: the same
// agents, the same model delays, where the tool call waits for the sub-agent (it finishes inside
// its invocation). And a retired identity (policy `retired`) acting at all.
//
// Real instrumentation: the agents are Vercel AI SDK v6 (`ai-v6`) generateText calls with mock
// models (the research model takes 2.5 s on its first step), traced by a real NodeSDK into memory,
// serialised to OTLP/protobuf with the official otlp-transformer and run through the agent
// pipeline in-process (normalize → tracegraph → detect → enrich): the in-process collector of
// test/helpers/agent-collector.ts has no detect in its pipeline list.
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { generateText, stepCountIs, tool } from 'ai-v6';
import { MockLanguageModelV3 } from 'ai-v6/test';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { runRecorded } from '../../helpers/sdk-spans.ts';
import { detectHarness, type DetectHarness } from '../../helpers/detect-harness.ts';
import type { Finding } from '../../../src/detect/finding.ts';
import { textStep, toolCallStep } from '../instrumentation/fixtures/ai-sdk-tracing.ts';
import { hrMs } from '../../helpers/plain-spans.ts';

const SLOW_STEP_MS = 2500;


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A model whose steps are played in order, the first after `delayMs`. */
function slowModel(modelId: string, delayMs: number, ...steps: ReturnType<typeof toolCallStep | typeof textStep>[]) {
  let call = 0;
  return new MockLanguageModelV3({
    provider: 'openai.chat',
    modelId,
    doGenerate: async () => {
      if (call === 0 && delayMs > 0) await sleep(delayMs);
      return steps[Math.min(call++, steps.length - 1)]! as never;
    },
  });
}

/**
 * orchestrator → (tool delegate_research) → `sub` agent, which calls export_report after a slow
 * first model step. `wait`: the tool call waits for the sub-agent; else it starts it and returns.
 */
async function delegation(opts: { wait: boolean; sub?: string; delayMs?: number }): Promise<void> {
  let background: Promise<unknown> | undefined;
  const sub = () =>
    generateText({
      model: slowModel('gpt-research', opts.delayMs ?? SLOW_STEP_MS, toolCallStep({ id: 'call-export', tool: 'export_report', args: { format: 'pdf' } }), textStep('Report exported.')),
      prompt: 'Research the quarter and export a report.',
      stopWhen: stepCountIs(3),
      experimental_telemetry: { isEnabled: true, functionId: opts.sub ?? 'research' },
      // The export takes a few ms, as a real one does: the next model step then starts after the tool
      // call, not in the same millisecond (where which span shows the finding would hang on the
      // order spans arrive in, one batch each).
      tools: { export_report: tool({ inputSchema: z.object({ format: z.string() }), execute: async ({ format }) => (await sleep(5), { url: `s3://reports/q3.${format}` }) }) },
    });
  const result = await generateText({
    model: slowModel('gpt-orchestrator', 0, toolCallStep({ id: 'call-research', tool: 'delegate_research', args: { topic: 'Q3' } }), textStep('On it.')),
    prompt: 'Summarise Q3.',
    stopWhen: stepCountIs(3),
    experimental_telemetry: { isEnabled: true, functionId: 'orchestrator' },
    tools: {
      delegate_research: tool({
        inputSchema: z.object({ topic: z.string() }),
        execute: async () => {
          const run = sub();
          if (opts.wait) return (await run).text;
          background = run; // fire and forget: the invocation ends, the sub-agent does not
          return 'started';
        },
      }),
    },
  });
  expect(result.text).toBe('On it.');
  await background;
}

// The default grace (1 s), with the late call well past it: a loaded machine can neither pull the
// late call inside the grace nor push the sub-agent's first spans (which start as the invocation
// ends) beyond it.
const GRACE = '1s';

function pipeline(policy = ''): { h: DetectHarness; send(spans: ReadableSpan[]): Promise<void> } {
  const h = detectHarness(policy, { detectors: { zombie_agent: { grace: GRACE } } }, { hmac_key: 'scenario-key-0123456789abcdef0123456789' });
  return { h, send: (spans) => h.sendRecorded(spans) };
}

const comparable = (f: Finding) => ({ id: f.id, kind: f.kind, severity: f.severity, confidence: f.confidence, roles: f.chain.map((c) => c.role), spanIds: f.spanIds });

describe('attack: a sub-agent acting after its invocation ended (AI SDK v6)', () => {
  let zombie: ReadableSpan[] = [];
  let waited: ReadableSpan[] = [];
  let retired: ReadableSpan[] = [];

  beforeAll(async () => {
    zombie = await runRecorded('support-app', () => delegation({ wait: false }));
    waited = await runRecorded('support-app', () => delegation({ wait: true }));
    retired = await runRecorded('support-app', () => delegation({ wait: true, sub: 'legacy-billing', delayMs: 0 }));
  }, 20_000);

  const toolSpan = (spans: ReadableSpan[], name: string) => spans.find((s) => s.name === 'ai.toolCall' && s.attributes['ai.toolCall.name'] === name)!;
  const agentSpan = (spans: ReadableSpan[], functionId: string) => spans.find((s) => s.name === 'ai.generateText' && s.attributes['ai.telemetry.functionId'] === functionId)!;
  const id = (s: ReadableSpan) => s.spanContext().spanId;

  it('records the real instrumentation shape: the sub-agent under the delegating tool call, acting after it ended', () => {
    const delegate = toolSpan(zombie, 'delegate_research');
    const research = agentSpan(zombie, 'research');
    expect(research.parentSpanContext?.spanId).toBe(id(delegate));
    const exported = toolSpan(zombie, 'export_report');
    expect(hrMs(exported.startTime) - hrMs(delegate.endTime)).toBeGreaterThan(1000);
    // The negative: the same shape, the export inside the invocation.
    expect(hrMs(toolSpan(waited, 'export_report').endTime)).toBeLessThan(hrMs(toolSpan(waited, 'delegate_research').endTime));
  });

  it('finds zombie_agent on the late export_report call, chain orchestrator > research', async () => {
    const p = pipeline();
    await p.send(zombie);
    const findings = p.h.findings();
    expect(findings.map((f) => f.kind)).toEqual(['zombie_agent']);
    const f = findings[0]!;
    const exported = toolSpan(zombie, 'export_report');
    expect(f).toMatchObject({ severity: 'high', confidence: 'high', owasp: 'ASI10' });
    expect(f.spanIds).toEqual([id(exported), id(agentSpan(zombie, 'research')), id(toolSpan(zombie, 'delegate_research'))]);
    expect(f.chain.map((c) => c.role)).toEqual(['orchestrator', 'research']);
    expect(f.chain.at(-1)).toMatchObject({ spanId: id(exported), capability: 'export_report' });
    expect(f.evidence).toMatchObject({ role: 'research', invoked_by: 'orchestrator', delegating_span: id(toolSpan(zombie, 'delegate_research')), tool: 'export_report', grace_ms: 1000 });
    expect(f.evidence.late_by_ms as number).toBeGreaterThan(1000);
    expect(p.h.exported().find((s) => s.spanId === id(exported))?.attributes['agentsec.finding.kind']).toBe('zombie_agent');
  });

  it('gives the same finding whatever the arrival order: as exported (children first), parents first, latest first', async () => {
    const once = pipeline();
    await once.send(zombie);
    const expected = once.h.findings().map(comparable);
    expect(expected).toHaveLength(1);
    const byStart = [...zombie].sort((a, b) => hrMs(a.startTime) - hrMs(b.startTime));
    for (const order of [zombie, byStart, [...byStart].reverse()]) {
      const p = pipeline();
      for (const s of order) await p.send([s]);
      expect(p.h.findings().map(comparable)).toEqual(expected);
    }
  });

  it('hard negative: the same agents, the sub-agent finishing inside its invocation, give no finding of any kind', async () => {
    for (const order of [waited, [...waited].reverse()]) {
      const p = pipeline();
      for (const s of order) await p.send([s]);
      expect(p.h.findings()).toEqual([]);
    }
  });

  it('finds a retired identity acting, and nothing when the policy retires someone else', async () => {
    const p = pipeline('retired: [legacy-billing]');
    await p.send(retired);
    const findings = p.h.findings();
    expect(findings.map((f) => f.kind)).toEqual(['zombie_agent']);
    expect(findings[0]).toMatchObject({ severity: 'high', evidence: { identity: 'legacy-billing', matched: 'role' } });
    expect(findings[0]!.chain.map((c) => c.role)).toEqual(['orchestrator', 'legacy-billing']);
    expect(findings[0]!.spanIds).toContain(id(agentSpan(retired, 'legacy-billing')));

    const other = pipeline('retired: [billing-v1]');
    await other.send(retired);
    expect(other.h.findings()).toEqual([]);
  });
});
