// Agent traffic for the baseline tests: invocations made with the OpenTelemetry API under a real
// NodeSDK (GenAI semantic conventions), sent by the official OTLP/proto exporter.
import { trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { exportWith, runRecorded } from './sdk-spans.ts';

export interface Invocation {
  role: string;
  tools: string[];
  conversation: string;
  /** A sub-agent the role delegates to, inside the same trace. */
  delegate?: { role: string; tools: string[] };
}

/** Records one invocation (and its sub-agent's); returns its spans and trace id. */
export async function recordInvocation(inv: Invocation): Promise<{ spans: ReadableSpan[]; traceId: string }> {
  let traceId = '';
  const spans = await runRecorded(`${inv.role}-service`, async () => {
    const tracer = trace.getTracer('agentsec-test-agent');
    const agent = async (role: string, tools: string[], sub?: { role: string; tools: string[] }) =>
      tracer.startActiveSpan(`invoke_agent ${role}`, { attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': role, 'gen_ai.conversation.id': inv.conversation } }, async (span) => {
        traceId ||= span.spanContext().traceId;
        for (const tool of tools) tracer.startSpan(`execute_tool ${tool}`, { attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': tool } }).end();
        if (sub) await agent(sub.role, sub.tools);
        span.end();
      });
    await agent(inv.role, inv.tools, inv.delegate);
  });
  return { spans, traceId };
}

/** Sends spans to a collector's OTLP/HTTP receiver (base URL) with the official exporter. */
export async function sendSpans(httpUrl: string, spans: ReadableSpan[]): Promise<void> {
  const exporter = new OTLPTraceExporter({ url: `${httpUrl}/v1/traces` });
  await exportWith(exporter, spans);
  await exporter.shutdown();
}

/** Records and sends one invocation; returns its trace id. */
export async function invoke(httpUrl: string, inv: Invocation): Promise<string> {
  const { spans, traceId } = await recordInvocation(inv);
  await sendSpans(httpUrl, spans);
  return traceId;
}
