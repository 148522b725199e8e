// Attack scenario (OWASP ASI03, NHI9 NHI reuse): one API key presented by three workloads (three
// services, each in its own pod, in three traces) within ten minutes. Hard negative: the same key
// from one workload, many times, in many traces.
//
// Real instrumentation: each workload is a Vercel AI SDK v6 (`ai-v6`) agent with a mock model,
// traced by a real NodeSDK whose resource names the service and pod; the key is passed as
// `headers: { authorization }`, which v6 records on its spans as ai.request.headers.authorization.
// The spans are serialised to OTLP/protobuf with the official otlp-transformer and run through the
// agent pipeline in-process (normalize → tracegraph → detect → enrich): the in-process collector of
// test/helpers/agent-collector.ts has no detect in its pipeline list.
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { generateText, stepCountIs, tool } from 'ai-v6';
import { MockLanguageModelV3 } from 'ai-v6/test';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { runRecorded } from '../../helpers/sdk-spans.ts';
import { detectHarness, type DetectHarness } from '../../helpers/detect-harness.ts';
import { textStep, toolCallStep } from '../instrumentation/fixtures/ai-sdk-tracing.ts';

const SECRET = 'sk-live-SHAREDKEY0123456789';
const AUTHORIZATION = `Bearer ${SECRET}`;
const POLICY = 'internal_domains: [internal]';


/** One agent run in its own trace, calling its model with the shared key and one tool. */
async function agentRun(functionId: string, authorization: string): Promise<void> {
  const result = await generateText({
    model: new MockLanguageModelV3({
      provider: 'openai.chat',
      modelId: 'gpt-4o-mini',
      doGenerate: [toolCallStep({ id: 'call-1', tool: 'lookup_invoice', args: { invoice: 'INV-7' } }), textStep('Invoice INV-7 is paid.')],
    }),
    prompt: 'Is invoice INV-7 paid?',
    headers: { authorization },
    stopWhen: stepCountIs(3),
    experimental_telemetry: { isEnabled: true, functionId },
    tools: { lookup_invoice: tool({ inputSchema: z.object({ invoice: z.string() }), execute: async ({ invoice }) => ({ invoice, status: 'paid' }) }) },
  });
  expect(result.text).toBe('Invoice INV-7 is paid.');
}

function pipeline(): { h: DetectHarness; send(spans: ReadableSpan[]): Promise<void> } {
  const h = detectHarness(POLICY, {}, { hmac_key: 'scenario-key-0123456789abcdef0123456789' });
  return { h, send: (spans) => h.sendRecorded(spans) };
}

const WORKLOADS = [
  { 'service.name': 'billing-agent', 'k8s.pod.name': 'billing-agent-5d8f7-x2k9q', 'k8s.namespace.name': 'agents', agent: 'billing' },
  { 'service.name': 'support-agent', 'k8s.pod.name': 'support-agent-66c4b-7fwzt', 'k8s.namespace.name': 'agents', agent: 'support' },
  { 'service.name': 'research-agent', 'k8s.pod.name': 'research-agent-7b9d2-qq4lm', 'k8s.namespace.name': 'agents', agent: 'research' },
];

describe('attack: one API key presented by three workloads (AI SDK v6)', () => {
  /** One trace per workload. */
  let shared: ReadableSpan[][] = [];
  /** The same key, one workload, five traces. */
  let alone: ReadableSpan[][] = [];

  beforeAll(async () => {
    for (const { agent, ...resource } of WORKLOADS) shared.push(await runRecorded(resource, () => agentRun(agent, AUTHORIZATION)));
    const { agent, ...resource } = WORKLOADS[0]!;
    for (let i = 0; i < 5; i++) alone.push(await runRecorded(resource, () => agentRun(agent, AUTHORIZATION)));
  });

  const traceOf = (spans: ReadableSpan[]) => spans[0]!.spanContext().traceId;

  it('records three traces whose spans carry the key as ai.request.headers.authorization', () => {
    expect(new Set(shared.map(traceOf)).size).toBe(3);
    for (const spans of shared) {
      expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(1);
      expect(spans.filter((s) => s.attributes['ai.request.headers.authorization'] === AUTHORIZATION).length).toBeGreaterThanOrEqual(1);
    }
  });

  it('finds credential_shared on the third trace, naming the three workloads, never the key', async () => {
    const p = pipeline();
    await p.send(shared[0]!);
    await p.send(shared[1]!);
    expect(p.h.findings()).toEqual([]);
    await p.send(shared[2]!);
    const findings = p.h.findings();
    expect(findings.map((f) => f.kind)).toEqual(['credential_shared']);
    const f = findings[0]!;
    const third = shared[2]!;
    const carriers = third.filter((s) => s.attributes['ai.request.headers.authorization'] === AUTHORIZATION).map((s) => s.spanContext().spanId);
    expect(f).toMatchObject({ traceId: traceOf(third), severity: 'medium', confidence: 'high', owasp: 'ASI03' });
    expect(carriers).toContain(f.spanIds[0]);
    expect(f.chain.map((c) => c.role)).toEqual(['research']);
    expect(f.evidence).toMatchObject({ count: 3, min_workloads: 3, distinct_by: 'service', namespaces: ['agents'] });
    expect((f.evidence.workloads as { service: string; pod: string; trace: string }[]).map((w) => [w.service, w.pod, w.trace])).toEqual(
      WORKLOADS.map((w, i) => [w['service.name'], w['k8s.pod.name'], traceOf(shared[i]!)]),
    );
    expect(JSON.stringify(findings)).not.toContain(SECRET);
    expect(JSON.stringify(p.h.exported())).not.toContain(SECRET);
    expect(p.h.exported().find((s) => s.spanId === f.spanIds[0])?.attributes['agentsec.finding.kind']).toBe('credential_shared');
  });

  it('finds it the same way when each trace arrives one span per batch, children first or parents first', async () => {
    for (const reverse of [false, true]) {
      const p = pipeline();
      for (const spans of shared) for (const s of reverse ? [...spans].reverse() : spans) await p.send([s]);
      expect(p.h.findings().map((f) => [f.kind, f.traceId, f.evidence.count])).toEqual([['credential_shared', traceOf(shared[2]!), 3]]);
    }
  });

  it('hard negative: the same key from one workload, many times in many traces, gives no finding of any kind', async () => {
    const p = pipeline();
    for (const spans of alone) await p.send(spans);
    expect(alone.flat().filter((s) => s.attributes['ai.request.headers.authorization'] === AUTHORIZATION).length).toBeGreaterThanOrEqual(5);
    expect(p.h.findings()).toEqual([]);
  });
});
