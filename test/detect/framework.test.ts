// What every finding gets, whatever its kind: deduplication, a finding span in the same trace,
// the attributes and event on the span that shows it, the sinks, the API filters. Shown with
// excessive_depth, the simplest detector.
import { describe, expect, it } from 'vitest';
import { detectHarness, toolAttrs, TRACE, type SpanSpec } from '../helpers/detect-harness.ts';
import { parsePolicy } from '../../src/detect/policy.ts';
import { toOcsf } from '../../src/detect/finding.ts';
import { DETECTOR_STATE_BYTES, TraceStates } from '../../src/detect/detector.ts';
import { TRACE_OVERHEAD_BYTES, TraceStore } from '../../src/tracegraph/store.ts';

/** a → b → c → d: depth 3 for d. */
const CHAIN: SpanSpec[] = [
  { id: '1', t: 0, d: 100, attrs: { 'gen_ai.agent.name': 'a' } },
  { id: '2', parent: '1', t: 1, d: 90, attrs: { 'gen_ai.agent.name': 'b' } },
  { id: '3', parent: '2', t: 2, d: 80, attrs: { 'gen_ai.agent.name': 'c' } },
  { id: '4', parent: '3', t: 3, d: 70, attrs: { 'gen_ai.agent.name': 'd' } },
  { id: '5', parent: '4', t: 4, attrs: { 'gen_ai.tool.name': 'shell' } },
];

describe('detect', () => {
  it('reports once, with a finding span, span attributes and event, sinks and API', async () => {
    const h = detectHarness('roles: { d: { max_depth: 2 } }');
    await h.send(CHAIN);
    await h.send(CHAIN); // a client resend: judged once
    const findings = h.findings();
    expect(findings).toHaveLength(1);
    const f = findings[0]!;
    expect(f).toMatchObject({ kind: 'excessive_depth', traceId: TRACE, owasp: 'ASI08', spanIds: ['0000000000000004', '0000000000000001', '0000000000000002', '0000000000000003'] });
    expect(f.chain.map((c) => c.role)).toEqual(['a', 'b', 'c', 'd']);
    expect(f.evidence).toMatchObject({ depth: 3, max_depth: 2 });

    const out = h.exported();
    const shows = out.find((s) => s.spanId === '0000000000000004')!;
    expect(shows.attributes).toMatchObject({ 'agentsec.finding.kind': 'excessive_depth', 'agentsec.finding.kinds': ['excessive_depth'], 'agentsec.finding.severity': f.severity });
    expect(shows.events.map((e) => e.name)).toEqual(['agentsec.finding']);
    const findingSpans = out.filter((s) => s.resource['service.name'] === 'agentsec');
    expect(findingSpans).toHaveLength(1);
    expect(findingSpans[0]).toMatchObject({ traceId: TRACE, parentSpanId: '0000000000000004', name: 'agentsec.finding excessive_depth', status: { code: 2 } });
    expect(findingSpans[0]!.links.map((l) => l.spanId)).toEqual(f.spanIds);

    expect(h.stdout.map((l) => JSON.parse(l).id)).toEqual([f.id]);
    expect(h.detect.list({ kind: 'tool_loop' }).findings).toEqual([]);
    expect(h.detect.list({ role: 'c', severity: 'low' }).findings).toHaveLength(1);
    expect(() => h.detect.list({ severity: 'huge' })).toThrow(/severity must be/);
  });

  it('uses the default cap when the role has no policy, and stays quiet within it', async () => {
    const h = detectHarness();
    await h.send(CHAIN);
    expect(h.findings()).toEqual([]);
    const deep = detectHarness('', { detectors: { excessive_depth: { max_depth: 1 } } });
    await deep.send(CHAIN);
    // Where the chain crosses the limit (c, at depth 2), not every agent below it (d).
    expect(deep.findings().map((f) => f.chain.at(-1)!.role)).toEqual(['c']);
  });

  it('keeps a chain thousands of agents deep to one small finding and a short path', async () => {
    const h = detectHarness();
    const spans: SpanSpec[] = Array.from({ length: 2000 }, (_, i) => ({ id: String(i + 1), ...(i > 0 ? { parent: String(i) } : {}), t: i, attrs: { 'gen_ai.agent.name': `agent${i}` } }));
    await h.send(spans);
    const [finding, ...more] = h.findings();
    expect(more).toEqual([]);
    expect(finding!.chain.at(-1)!.role).toBe('agent6');
    const deepest = [...h.graph.store.get(TRACE)!.nodes.values()].find((n) => n.role === 'agent1999')!;
    expect(deepest.depth).toBe(255); // chains are followed 256 delegations up at most
    expect(deepest.path.split('>')).toHaveLength(17);
    expect(deepest.path).toMatch(/^agent1744>.*>…240 more…>.*>agent1999$/);
  });

  it('maps a finding to OCSF Detection Finding', async () => {
    const h = detectHarness('roles: { d: { max_depth: 0 } }', { jaeger_ui_url: 'http://jaeger:16686/' });
    await h.send(CHAIN);
    const f = h.findings()[0]!;
    expect(f.link).toBe(`http://jaeger:16686/trace/${TRACE}`);
    expect(toOcsf(f, '0.1.0')).toMatchObject({ class_uid: 2004, category_uid: 2, type_uid: 200401, finding_info: { uid: f.id, types: ['excessive_depth'], src_url: f.link } });
  });

  it('keeps per-trace detector state beside the graph and releases it when the store evicts the trace', () => {
    const released: string[] = [];
    const store = new TraceStore({ idleTtlMs: 60_000, maxTraces: 1, maxBytes: 1e9 }, () => undefined);
    const states = new TraceStates<{ n: number }>();
    const first = store.touch('aa'.repeat(16), 0);
    first.onEvict(() => {
      states.forget(first);
      released.push(first.traceId);
    });
    expect(states.of(first, () => ({ n: 1 }))).toBe(states.of(first, () => ({ n: 2 })));
    store.touch('bb'.repeat(16), 1);
    store.enforceLimits(); // one trace too many: the idlest goes
    expect(released).toEqual(['aa'.repeat(16)]);
    expect(states.get(first)).toBeUndefined();
  });

  it("charges the detectors' state to the trace graph's byte budget, and releases it with the trace", async () => {
    const h = detectHarness(`
capabilities:
  - { name: web, match: { tool: web_fetch }, source: untrusted }
  - { name: kb, match: { tool: kb_write }, sink: privileged }
`);
    const page = 'lorem ipsum dolor sit amet '.repeat(40);
    const spans: SpanSpec[] = [
      { id: '1', t: 0, d: 100, attrs: { 'gen_ai.agent.name': 'research' } },
      ...Array.from({ length: 10 }, (_, i): SpanSpec => ({ id: `1${i}`, parent: '1', t: 1 + i, attrs: toolAttrs('web_fetch', { url: `https://example.com/${i}` }, { page }) })),
    ];
    await h.send(spans);
    const store = h.graph.store;
    const trace = store.get(TRACE)!;
    const summaries = [...trace.spans.values()].reduce((n, s) => n + s.estimateBytes(), 0);
    // Every judged span, and more: the sources' content hashes.
    expect(trace.bytes - summaries - TRACE_OVERHEAD_BYTES).toBeGreaterThan(11 * DETECTOR_STATE_BYTES);
    expect(store.bytes).toBe(trace.bytes);
    await h.send([{ id: '20', parent: '1', t: 50, attrs: toolAttrs('kb_write', { text: 'summary' }) }]);
    expect(store.bytes).toBe(trace.bytes);
    store.clear();
    expect(store.bytes).toBe(0);
  });

  it('rejects a broken policy with the key that is wrong', () => {
    expect(() => parsePolicy('capabilities: [{ name: x, match: {}, sink: teleport }]', 'p.yaml')).toThrow(/policy::capabilities::0::match: needs at least one of tool/);
    expect(() => parsePolicy('roles: { a: { mode: audit } }', 'p.yaml')).toThrow(/policy::roles::a::mode/);
  });
});
