// OpenLLMetry / Traceloop (@traceloop/node-server-sdk 0.27) → agentsec collector.
//
// Real Traceloop wrappers, no model, no network: workflow 'incident' → agent 'ops' → tool
// 'read_logs', and ops' tool 'delegate_research' → agent 'research' → tool 'web_search'.
// Traceloop starts its own NodeSDK in initialize() (do not start a second one); we hand it the
// official OTLP/protobuf exporter pointed at the collector. With disableBatch every span is
// exported on its own as it ends, i.e. children before parents, one request per span.
//
// What Traceloop 0.27 puts on the wire (observed):
//   incident.workflow          INTERNAL root  traceloop.span.kind=workflow traceloop.entity.name=incident traceloop.workflow.name=incident  (no gen_ai.agent.name)
//   └ ops.agent                INTERNAL       traceloop.span.kind=agent traceloop.entity.name=ops gen_ai.agent.name=ops traceloop.workflow.name=ops
//     ├ read_logs.tool         INTERNAL       traceloop.span.kind=tool traceloop.entity.name=read_logs gen_ai.agent.name=ops traceloop.entity.path=''
//     └ delegate_research.tool INTERNAL       traceloop.span.kind=tool traceloop.entity.name=delegate_research gen_ai.agent.name=ops
//       └ research.agent       INTERNAL       traceloop.span.kind=agent traceloop.entity.name=research gen_ai.agent.name=research traceloop.entity.path=delegate_research
//         └ web_search.tool    INTERNAL       traceloop.span.kind=tool traceloop.entity.name=web_search gen_ai.agent.name=research traceloop.entity.path=delegate_research
// gen_ai.agent.name is the innermost enclosing withAgent (the nested agent overrides it for its
// subtree); traceloop.workflow.name is overwritten by every withAgent too. Tool input/output in
// traceloop.entity.input = {"args":[],"kwargs":{…}} / traceloop.entity.output (JSON strings).
// OTel JS hands SpanKind.INTERNAL (0) to the exporter; on the wire that is OTLP kind 1.
//
// Second scenario: the research agent makes an AI SDK call (ai@6 via the `ai-v6` alias, mock
// model) that uses the AI SDK tool fetch_page. Traceloop rewrites the AI SDK spans in place:
//   research.agent
//   └ chat gpt-mock             (was ai.generateText; scope ai) gen_ai.agent.name=research gen_ai.provider.name=openai
//     ├ chat gpt-mock           (was ai.generateText.doGenerate)  gen_ai.system=openai.chat gen_ai.request.model=gpt-mock
//     ├ execute_tool fetch_page (was ai.toolCall) gen_ai.operation.name=execute_tool gen_ai.tool.name=fetch_page
//     │                          gen_ai.tool.call.arguments={"url":…} traceloop.span.kind=tool traceloop.entity.name=fetch_page
//     └ chat gpt-mock           (second step)
// (It also stamps ai.sdk.version with the version of the top-level `ai` package, 7.x, not the one
// that ran.) Gotcha: Traceloop 0.27 registers its tracer provider through its own
// @opentelemetry/api 1.9.x; this project's api is 1.10, and the API's global registry does not let
// a 1.10 consumer use a 1.9 registration, so the AI SDK's default tracer is a silent no-op and its
// spans are simply missing. Passing Traceloop's tracer (scope name 'ai', one of the scopes Traceloop
// post-processes) in experimental_telemetry.tracer fixes it.
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import * as traceloop from '@traceloop/node-server-sdk';
import type { Tracer } from '@opentelemetry/api';
import { generateText, stepCountIs, tool } from 'ai-v6';
import { MockLanguageModelV3 } from 'ai-v6/test';
import { z } from 'zod';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import type { ExportResult } from '@opentelemetry/core';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { startAgentCollector, type AgentCollector } from '../../helpers/agent-collector.ts';

/** What Traceloop handed to its exporter, as it handed it. */
interface SentSpan {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  attributes: Record<string, unknown>;
}

let ac: AgentCollector;
const sent: SentSpan[] = [];

beforeAll(async () => {
  ac = await startAgentCollector();
  const otlp = new OTLPTraceExporter({ url: `${ac.httpUrl}/v1/traces` });
  // The official exporter, with a window on what passes through it.
  const exporter = {
    export(spans: ReadableSpan[], done: (r: ExportResult) => void) {
      for (const s of spans) {
        sent.push({
          name: s.name,
          kind: s.kind,
          traceId: s.spanContext().traceId,
          spanId: s.spanContext().spanId,
          parentSpanId: s.parentSpanContext?.spanId ?? '',
          attributes: { ...s.attributes },
        });
      }
      otlp.export(spans, done);
    },
    shutdown: () => otlp.shutdown(),
    forceFlush: () => otlp.forceFlush(),
  };
  traceloop.initialize({
    appName: 'incident-app',
    // Traceloop's SpanExporter type comes from its own sdk-trace-base 2.x; the shapes match.
    exporter: exporter as never,
    disableBatch: true,
    apiKey: 'x',
    baseUrl: ac.httpUrl,
    traceloopSyncEnabled: false,
    silenceInitializationMessage: true,
  });
});

afterAll(async () => {
  await traceloop.forceFlush().catch(() => {});
  await ac?.stop();
});

async function runIncident(): Promise<string> {
  return traceloop.withWorkflow({ name: 'incident' }, async () =>
    traceloop.withAgent({ name: 'ops' }, async () => {
      const logs: string = await traceloop.withTool({ name: 'read_logs' }, async (q: { service: string }) => `500s on ${q.service}`, { service: 'checkout' });
      return traceloop.withTool({ name: 'delegate_research' }, async (task: { question: string }) =>
        traceloop.withAgent({ name: 'research' }, async () =>
          traceloop.withTool({ name: 'web_search' }, async (q: { query: string }) => `3 results for ${q.query}`, { query: task.question })),
      { question: `known issues: ${logs}` });
    }));
}

const usage = { inputTokens: { total: 10, noCache: 10, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 5, text: 5, reasoning: 0 } };

/** The tracer of Traceloop's own @opentelemetry/api copy (see the header). */
function traceloopTracer(scope: string): Tracer {
  const api = createRequire(import.meta.resolve('@traceloop/node-server-sdk'))('@opentelemetry/api') as typeof import('@opentelemetry/api');
  return api.trace.getTracer(scope);
}

async function runIncidentWithLlm(): Promise<string> {
  let step = 0;
  const model = new MockLanguageModelV3({
    provider: 'openai.chat',
    modelId: 'gpt-mock',
    doGenerate: async () => (step++ === 0
      ? { content: [{ type: 'tool-call', toolCallId: 'call-1', toolName: 'fetch_page', input: JSON.stringify({ url: 'https://nvd.example.org/CVE-2026-0001' }) }], finishReason: { unified: 'tool-calls', raw: undefined }, usage, warnings: [] }
      : { content: [{ type: 'text', text: 'CVE-2026-0001 affects checkout' }], finishReason: { unified: 'stop', raw: undefined }, usage, warnings: [] }),
  });
  return traceloop.withWorkflow({ name: 'incident-llm' }, async () =>
    traceloop.withAgent({ name: 'ops' }, async () =>
      traceloop.withTool({ name: 'delegate_research' }, async () =>
        traceloop.withAgent({ name: 'research' }, async () => {
          const result = await generateText({
            model,
            prompt: 'What is known about the checkout 500s?',
            stopWhen: stepCountIs(3),
            tools: { fetch_page: tool({ inputSchema: z.object({ url: z.string() }), execute: async ({ url }) => `advisory at ${url}` }) },
            experimental_telemetry: { isEnabled: true, tracer: traceloopTracer('ai') },
          });
          return result.text;
        }))));
}



const SPANS = ['incident.workflow', 'ops.agent', 'read_logs.tool', 'delegate_research.tool', 'research.agent', 'web_search.tool'];

describe('OpenLLMetry/Traceloop withWorkflow/withAgent/withTool', () => {
  let traceId = '';
  let byName: Map<string, SentSpan>;

  beforeAll(async () => {
    const answer = await runIncident();
    expect(answer).toBe('3 results for known issues: 500s on checkout');
    await traceloop.forceFlush();
    byName = new Map(sent.map((s) => [s.name, s]));
    traceId = byName.get('incident.workflow')?.traceId ?? '';
  });

  test('Traceloop emits the span tree we expect, with gen_ai.agent.name of the innermost agent', () => {
    expect(sent.map((s) => s.name).sort()).toEqual([...SPANS].sort());
    expect(new Set(sent.map((s) => s.traceId))).toEqual(new Set([traceId]));
    const parentOf = (n: string) => sent.find((s) => s.spanId === byName.get(n)!.parentSpanId)?.name ?? '';
    expect(parentOf('ops.agent')).toBe('incident.workflow');
    expect(parentOf('read_logs.tool')).toBe('ops.agent');
    expect(parentOf('delegate_research.tool')).toBe('ops.agent');
    expect(parentOf('research.agent')).toBe('delegate_research.tool');
    expect(parentOf('web_search.tool')).toBe('research.agent');
    const agentName = Object.fromEntries(sent.map((s) => [s.name, s.attributes['gen_ai.agent.name']]));
    expect(agentName).toEqual({
      'incident.workflow': undefined,
      'ops.agent': 'ops',
      'read_logs.tool': 'ops',
      'delegate_research.tool': 'ops',
      'research.agent': 'research',
      'web_search.tool': 'research',
    });
    expect(byName.get('research.agent')!.attributes['traceloop.span.kind']).toBe('agent');
    expect(byName.get('web_search.tool')!.attributes['traceloop.span.kind']).toBe('tool');
    expect(byName.get('web_search.tool')!.attributes['traceloop.entity.name']).toBe('web_search');
    // Children are exported before their parents: the collector sees them out of order.
    expect(sent.findIndex((s) => s.name === 'web_search.tool')).toBeLessThan(sent.findIndex((s) => s.name === 'ops.agent'));
  });

  test('graph: ops is the root agent, research is delegated by ops at depth 1', async () => {
    const g = await ac.graphOf(traceId, SPANS.length);
    expect(g.traceId).toBe(traceId);
    expect(g.spanCount).toBe(SPANS.length);
    const ops = g.nodes.find((n) => n.role === 'ops')!;
    const research = g.nodes.find((n) => n.role === 'research')!;
    expect(ops).toMatchObject({ id: byName.get('ops.agent')!.spanId, depth: 0, root: 'ops', path: 'ops' });
    expect(research).toMatchObject({ id: byName.get('research.agent')!.spanId, depth: 1, root: 'ops', path: 'ops>research' });
    expect(ops.tools).toContain('read_logs');
    expect(ops.tools).toContain('delegate_research');
    expect(ops.tools).not.toContain('web_search');
    expect(research.tools).toContain('web_search');
    expect(research.tools).not.toContain('read_logs');
    expect(g.edges).toHaveLength(1);
    expect(g.edges[0]).toMatchObject({ from: ops.id, to: research.id, fromRole: 'ops', toRole: 'research', via: 'parent_child' });
    expect([byName.get('delegate_research.tool')!.spanId, byName.get('research.agent')!.spanId]).toContain(g.edges[0].spanId);
  });

  // The workflow span has no agent attribute and no agent above it; the only agent-ish thing about
  // it is the resource service.name. If the collector makes it an agent, it must be the root of
  // ops (edge, depth 1 for ops); making it a second, unconnected root at depth 0 is inconsistent.
  test('the Traceloop workflow span is not an agent of its own', async () => {
    const g = await ac.graphOf(traceId, SPANS.length);
    expect(g.nodes.map((n) => n.role).sort()).toEqual(['ops', 'research']);
    const spans = await ac.exportedOf(traceId, SPANS.length);
    expect(spans.find((s) => s.name === 'incident.workflow')!.attributes['agentsec.agent.role']).toBeUndefined();
  });

  test('exported spans carry the agentsec.* chain attributes of their agent', async () => {
    const spans = await ac.exportedOf(traceId, SPANS.length);
    expect(spans.map((s) => s.name).sort()).toEqual([...SPANS].sort());
    const at = (name: string) => spans.find((s) => s.name === name)!.attributes;
    expect(at('web_search.tool')).toMatchObject({
      'agentsec.agent.role': 'research',
      'agentsec.chain.depth': { int: '1' },
      'agentsec.chain.root': 'ops',
      'agentsec.chain.path': 'ops>research',
    });
    expect(at('research.agent')).toMatchObject({ 'agentsec.agent.role': 'research', 'agentsec.chain.depth': { int: '1' }, 'agentsec.chain.path': 'ops>research' });
    for (const name of ['ops.agent', 'read_logs.tool', 'delegate_research.tool']) {
      expect(at(name), name).toMatchObject({ 'agentsec.agent.role': 'ops', 'agentsec.chain.depth': { int: '0' }, 'agentsec.chain.root': 'ops', 'agentsec.chain.path': 'ops' });
    }
    // The original attributes pass through untouched.
    expect(at('web_search.tool')).toMatchObject({ 'traceloop.span.kind': 'tool', 'traceloop.entity.name': 'web_search', 'gen_ai.agent.name': 'research' });
  });
});

describe('OpenLLMetry/Traceloop with an AI SDK call inside the delegated agent', () => {
  const names = ['incident-llm.workflow', 'ops.agent', 'delegate_research.tool', 'research.agent', 'chat gpt-mock', 'chat gpt-mock', 'execute_tool fetch_page', 'chat gpt-mock'];
  let traceId = '';
  let mine: SentSpan[] = [];

  beforeAll(async () => {
    const before = sent.length;
    expect(await runIncidentWithLlm()).toBe('CVE-2026-0001 affects checkout');
    await traceloop.forceFlush();
    mine = sent.slice(before);
    traceId = mine.find((s) => s.name === 'incident-llm.workflow')?.traceId ?? '';
  });

  test('Traceloop rewrites the AI SDK spans and stamps them with the enclosing agent', () => {
    expect(mine.map((s) => s.name).sort()).toEqual([...names].sort());
    const fetch = mine.find((s) => s.name === 'execute_tool fetch_page')!;
    expect(fetch.attributes).toMatchObject({ 'operation.name': 'ai.toolCall', 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'fetch_page', 'gen_ai.agent.name': 'research', 'traceloop.span.kind': 'tool' });
    const top = mine.find((s) => s.attributes['operation.name'] === 'ai.generateText')!;
    expect(top.name).toBe('chat gpt-mock');
    expect(mine.find((s) => s.spanId === top.parentSpanId)?.name).toBe('research.agent');
    expect(fetch.parentSpanId).toBe(top.spanId);
  });

  test('graph and exported spans: the AI SDK calls belong to research, at depth 1', async () => {
    const g = await ac.graphOf(traceId, names.length);
    const ops = g.nodes.find((n) => n.role === 'ops')!;
    const research = g.nodes.find((n) => n.role === 'research')!;
    expect(ops).toMatchObject({ depth: 0, path: 'ops' });
    expect(research).toMatchObject({ id: mine.find((s) => s.name === 'research.agent')!.spanId, depth: 1, root: 'ops', path: 'ops>research' });
    expect(research.tools).toContain('fetch_page');
    expect(ops.tools).not.toContain('fetch_page');
    // The URL in the tool arguments is a target of research (DESIGN §3).
    expect(research.targets.join(' ')).toContain('nvd.example.org');
    expect(g.edges.map((e) => `${e.fromRole}>${e.toRole}:${e.via}`)).toEqual(['ops>research:parent_child']);

    const spans = await ac.exportedOf(traceId, names.length);
    const aiSpans = spans.filter((s) => s.scope.name === 'ai');
    expect(aiSpans).toHaveLength(4);
    for (const s of aiSpans) {
      expect(s.attributes, s.name).toMatchObject({ 'agentsec.agent.role': 'research', 'agentsec.chain.depth': { int: '1' }, 'agentsec.chain.path': 'ops>research' });
    }
  });
});
