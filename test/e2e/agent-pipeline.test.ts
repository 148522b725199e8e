// The agent-semantics pipeline (normalize → tracegraph → enrich) through a real collector:
// enrichment on exported spans, credentials that never leave raw, the inventory API, and a
// graph that does not depend on arrival order, even across batches minutes apart.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgentCollector, type AgentCollector } from '../helpers/agent-collector.ts';
import { postJson, postProtobuf } from '../receivers/otlp-helpers.ts';
import { encodeTraceProtobuf } from '../../src/otlp/encode.ts';
import { Normalize, NormalizeConfig } from '../../src/processors/normalize.ts';
import { TraceGraphConfig, TraceGraphProcessor } from '../../src/processors/tracegraph.ts';
import { graphJson } from '../../src/tracegraph/json.ts';
import { decodeTraceJson } from '../../src/otlp/decode.ts';
import { TracesSink } from '../helpers/sink.ts';
import { testSettings } from '../helpers/settings.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const RAW_BEARER = 'sk-live-9f8e7d6c5b4a39281706f5e4d3c2b1a0';
/** A second token on the same span, in another credential attribute. */
const RAW_SECOND = 'sk-live-second-7c1d9e04b2aa4f31';
/** A token on a span event only: replaced there, though the span presents no credential. */
const RAW_IN_EVENT = 'sk-live-event-5e0b1c7d2f9a8e63';
// {"alg":"HS256","typ":"JWT"} . {"sub":"user-42","azp":"orchestrator","scope":"customers:read","act":{"sub":"research","act":{"sub":"analysis"}}}
const JWT =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.' +
  Buffer.from(JSON.stringify({ sub: 'user-42', azp: 'orchestrator', scope: 'customers:read', act: { sub: 'research', act: { sub: 'analysis' } } })).toString('base64url') +
  '.c2lnbmF0dXJlLW5vdC1jaGVja2Vk';

type Attr = [string, string | number];
function span(id: string, parent: string, name: string, attrs: Attr[], t: number) {
  return {
    traceId: TRACE,
    spanId: id.padStart(16, '0'),
    ...(parent ? { parentSpanId: parent.padStart(16, '0') } : {}),
    name,
    kind: 1,
    startTimeUnixNano: String(1_763_700_000_000_000_000n + BigInt(t) * 1_000_000n),
    endTimeUnixNano: String(1_763_700_000_000_000_000n + BigInt(t + 5) * 1_000_000n),
    attributes: attrs.map(([key, v]) => ({ key, value: typeof v === 'number' ? { intValue: v } : { stringValue: v } })),
  };
}

/** orchestrator → research → analysis, with credentials on the research and analysis calls. */
const SPANS = [
  span('1', '', 'invoke_agent orchestrator', [['gen_ai.operation.name', 'invoke_agent'], ['gen_ai.agent.name', 'orchestrator']], 0),
  {
    ...span('2', '1', 'chat gpt-4o', [['gen_ai.operation.name', 'chat'], ['gen_ai.provider.name', 'openai'], ['gen_ai.request.model', 'gpt-4o'], ['server.address', 'api.openai.com']], 1),
    events: [{ name: 'retry', timeUnixNano: '1763700000001000000', attributes: [{ key: 'http.request.header.authorization', value: { stringValue: `Bearer ${RAW_IN_EVENT}` } }] }],
  },
  span('3', '1', 'execute_tool delegate', [['gen_ai.operation.name', 'execute_tool'], ['gen_ai.tool.name', 'delegate_research']], 2),
  span('4', '3', 'invoke_agent research', [['gen_ai.operation.name', 'invoke_agent'], ['gen_ai.agent.name', 'research']], 3),
  span('5', '4', 'execute_tool web_search', [['gen_ai.tool.name', 'web_search'], ['http.request.header.authorization', `Bearer ${RAW_BEARER}`], ['ai.request.headers.authorization', `Bearer ${RAW_SECOND}`]], 4),
  span('6', '4', 'invoke_agent analysis', [['gen_ai.operation.name', 'invoke_agent'], ['gen_ai.agent.name', 'analysis']], 5),
  span('7', '6', 'execute_tool customers', [['gen_ai.tool.name', 'get_customer'], ['url.full', 'https://customers.internal/v1/c/42'], ['agentsec.credential', JWT]], 6),
  span('8', '6', 'tools/call', [['mcp.method.name', 'tools/call'], ['gen_ai.tool.name', 'query_db'], ['server.address', 'mcp.internal']], 7),
];

function request(spans: unknown[]) {
  return { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'agents' } }] }, scopeSpans: [{ spans }] }] };
}

let c: AgentCollector | undefined;
afterEach(async () => {
  await c?.stop();
  c = undefined;
});

describe('agent pipeline', () => {
  it('enriches every exported span with role, depth, root and path', async () => {
    c = await startAgentCollector();
    expect((await postJson(c.httpUrl.slice(7), request(SPANS))).status).toBe(200);
    const out = new Map((await c.exported(SPANS.length)).map((s) => [s.spanId, s.attributes]));
    const at = (id: string) => out.get(id.padStart(16, '0'))!;
    expect(at('2')).toMatchObject({ 'agentsec.agent.role': 'orchestrator', 'agentsec.chain.depth': { int: '0' }, 'agentsec.chain.path': 'orchestrator' });
    expect(at('5')).toMatchObject({ 'agentsec.agent.role': 'research', 'agentsec.chain.depth': { int: '1' }, 'agentsec.chain.root': 'orchestrator', 'agentsec.chain.path': 'orchestrator>research' });
    expect(at('7')).toMatchObject({ 'agentsec.agent.role': 'analysis', 'agentsec.chain.depth': { int: '2' }, 'agentsec.chain.path': 'orchestrator>research>analysis' });

    const g = await c.graph(TRACE);
    expect(g.edges.map((e) => `${e.fromRole}>${e.toRole}:${e.via}`)).toEqual(['orchestrator>research:parent_child', 'research>analysis:parent_child']);
    expect(g.nodes.find((n) => n.role === 'analysis')).toMatchObject({ depth: 2, tools: ['get_customer', 'query_db'], targets: ['customers.internal', 'mcp.internal'] });
  });

  // Protobuf batches are held as their bytes (the changed spans decoded): both paths are checked.
  it.each(['OTLP/JSON', 'OTLP/protobuf'])('never lets a raw credential out (%s in): not in exported bytes, logs or API answers; its fingerprint is stable across restarts', async (encoding) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'agentsec-key-'));
    c = await startAgentCollector({ dataDir });
    const sent = request(SPANS);
    const answer = encoding === 'OTLP/JSON' ? await postJson(c.httpUrl.slice(7), sent) : await postProtobuf(c.httpUrl.slice(7), encodeTraceProtobuf(decodeTraceJson(JSON.stringify(sent)).batch.resourceSpans));
    expect(answer.status).toBe(200);
    const exported = await c.exported(SPANS.length);
    const wire = Buffer.concat(c.backend.requests.map((r) => r.body)).toString('latin1');
    const api = JSON.stringify(await c.graph(TRACE)) + JSON.stringify(await (await fetch(`${c.collector.adminUrl}/api/inventory`)).json());
    const metrics = await (await fetch(`${c.collector.adminUrl}/metrics`)).text();
    const logs = JSON.stringify(c.collector.logs);
    for (const secret of [RAW_BEARER, RAW_SECOND, RAW_IN_EVENT, JWT, JWT.split('.')[1]!, JWT.split('.')[2]!]) {
      for (const [where, text] of Object.entries({ wire, api, metrics, logs })) expect(text.includes(secret), `${where} holds a secret`).toBe(false);
    }
    const byId = new Map(exported.map((s) => [s.spanId, s.attributes]));
    const bearerFp = byId.get('0000000000000005')!['agentsec.credential.fingerprint'] as string;
    const jwtFp = byId.get('0000000000000007')!['agentsec.credential.fingerprint'] as string;
    expect(bearerFp).toMatch(/^fp_[0-9a-f]{24}$/);
    expect(jwtFp).toMatch(/^fp_[0-9a-f]{24}$/);
    expect(bearerFp).not.toBe(jwtFp);
    // The credential attributes themselves now hold the fingerprint.
    expect(byId.get('0000000000000005')!['http.request.header.authorization']).toBe(bearerFp);
    expect(byId.get('0000000000000007')!['agentsec.credential']).toBe(jwtFp);

    const inventory = (await (await fetch(`${c.collector.adminUrl}/api/inventory`)).json()) as { credentials: { fingerprint: string; holders: string[]; presenters: string[] }[] };
    // The JWT names its holder (azp); the bearer token's holder is its first presenter.
    expect(inventory.credentials).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ fingerprint: jwtFp, holders: ['orchestrator'], presenters: ['analysis'] }),
        expect.objectContaining({ fingerprint: bearerFp, holders: ['research'], presenters: ['research'] }),
      ]),
    );

    await c.stop();
    c = await startAgentCollector({ dataDir });
    await postJson(c.httpUrl.slice(7), request(SPANS));
    const again = new Map((await c.exported(SPANS.length)).map((s) => [s.spanId, s.attributes]));
    expect(again.get('0000000000000005')!['agentsec.credential.fingerprint']).toBe(bearerFp);
  });

  it('lists agents, models, tools, endpoints, MCP servers and credentials in the inventory', async () => {
    c = await startAgentCollector();
    await postJson(c.httpUrl.slice(7), request(SPANS));
    await c.exported(SPANS.length);
    const inv = (await (await fetch(`${c.collector.adminUrl}/api/inventory`)).json()) as Record<string, { [k: string]: unknown }[]>;
    expect(inv.agents!.map((a) => a.role)).toEqual(['analysis', 'orchestrator', 'research']);
    expect(inv.agents!.find((a) => a.role === 'research')).toMatchObject({ workloads: ['agents'] });
    expect(inv.models).toEqual([expect.objectContaining({ provider: 'openai', model: 'gpt-4o', roles: ['orchestrator'] })]);
    expect(inv.tools!.map((t) => t.tool)).toEqual(['delegate_research', 'get_customer', 'query_db', 'web_search']);
    expect(inv.endpoints!.map((e) => e.host)).toEqual(['api.openai.com', 'customers.internal', 'mcp.internal']);
    expect(inv.mcpServers).toEqual([expect.objectContaining({ server: 'mcp.internal', methods: ['tools/call'], roles: ['analysis'] })]);
    expect(inv.credentials).toHaveLength(2);
  });

  it('answers 404 for an unknown trace and 400 for a malformed id', async () => {
    c = await startAgentCollector();
    expect((await fetch(`${c.collector.adminUrl}/api/traces/${'0'.repeat(31)}1/graph`)).status).toBe(404);
    expect((await fetch(`${c.collector.adminUrl}/api/traces/xyz/graph`)).status).toBe(400);
  });
});

describe('arrival order', () => {
  it('builds the same graph from child-first batches minutes apart as from one in-order batch', async () => {
    const graphOf = async (batches: unknown[][], minutesApart: number) => {
      const set = testSettings('tracegraph');
      const sink = new TracesSink();
      const tracegraph = new TraceGraphProcessor(set, TraceGraphConfig.parse({}), sink);
      const normalize = new Normalize(set, NormalizeConfig.parse({ hmac_key: 'k'.repeat(32) }), tracegraph);
      let now = Date.parse('2026-11-21T09:00:00Z');
      tracegraph.now = () => now;
      for (const spans of batches) {
        await normalize.consume(decodeTraceJson(JSON.stringify(request(spans))).batch, { receiver: 'otlp', transport: 'http' });
        now += minutesApart * 60_000;
        tracegraph.store.sweep(now);
      }
      return graphJson(tracegraph.store.get(TRACE)!);
    };
    const inOrder = await graphOf([SPANS], 0);
    const reversed = await graphOf([...SPANS].reverse().map((s) => [s]), 2);
    const shuffled = await graphOf([[SPANS[6]], [SPANS[2], SPANS[7]], [SPANS[4]], [SPANS[0], SPANS[5]], [SPANS[1]], [SPANS[3]]], 3);
    expect(inOrder.nodes.map((n) => n.path)).toEqual(['orchestrator', 'orchestrator>research', 'orchestrator>research>analysis']);
    expect(reversed).toEqual(inOrder);
    expect(shuffled).toEqual(inOrder);
    expect(inOrder.pendingParents).toBe(0);
  });
});
