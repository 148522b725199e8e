// delegation_loop: a role reappearing in its own delegation chain, reported once where the loop
// first closes; the same finding whatever order the spans arrive in.
import { describe, expect, it } from 'vitest';
import { detectHarness, type SpanSpec, spanId as pad } from '../helpers/detect-harness.ts';

const agent = (id: string, parent: string | undefined, name: string, t: number, d = 100, service?: string): SpanSpec => ({
  id, ...(parent ? { parent } : {}), name: `invoke_agent ${name}`, t, d, ...(service ? { service } : {}),
  attrs: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': name },
});
const tool = (id: string, parent: string, name: string, t: number, d = 50, service?: string): SpanSpec => ({
  id, parent, name: `execute_tool ${name}`, t, d, ...(service ? { service } : {}),
  attrs: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': name },
});

/** AI SDK v7 shape: orchestrator's tool runs research, whose tool runs orchestrator again. */
const CALLBACK: SpanSpec[] = [
  agent('1', undefined, 'orchestrator', 0, 1000),
  tool('2', '1', 'delegate_research', 10, 900),
  agent('3', '2', 'research', 20, 800),
  tool('4', '3', 'ask_orchestrator', 30, 700),
  agent('5', '4', 'orchestrator', 40, 600),
  tool('6', '5', 'web_search', 50, 10),
];

describe('delegation_loop', () => {
  it('finds orchestrator → research → orchestrator, with the loop as chain, shown where it closes', async () => {
    const h = detectHarness();
    await h.send(CALLBACK);
    const findings = h.findings();
    expect(findings.map((f) => f.kind)).toEqual(['delegation_loop']);
    const f = findings[0]!;
    expect(f).toMatchObject({ severity: 'medium', confidence: 'high', owasp: 'ASI08' });
    expect(f.chain).toEqual([
      { role: 'orchestrator', spanId: pad('1') },
      { role: 'research', spanId: pad('3') },
      { role: 'orchestrator', spanId: pad('5') },
    ]);
    expect(f.spanIds[0]).toBe(pad('5'));
    expect(new Set(f.spanIds)).toEqual(new Set([pad('1'), pad('3'), pad('5')]));
    expect(f.evidence).toMatchObject({ role: 'orchestrator', loop: 'orchestrator>research>orchestrator', occurrences: 2, hops: 2, via: ['parent_child', 'parent_child'] });
    expect(f.evidence).not.toHaveProperty('chain_complete');
  });

  it('stays quiet for siblings and for a plain chain', async () => {
    const h = detectHarness();
    await h.send([
      agent('1', undefined, 'orchestrator', 0, 1000),
      tool('2', '1', 'delegate_research', 10, 100),
      agent('3', '2', 'research', 20, 50),
      tool('4', '1', 'delegate_writer', 200, 100),
      agent('5', '4', 'writer', 210, 50),
      tool('6', '5', 'delegate_research', 220, 20),
      agent('7', '6', 'research', 230, 10),
    ]);
    expect(h.findings()).toEqual([]);
  });

  it('reports a loop that goes round again once, high, keyed where it first closed', async () => {
    const h = detectHarness();
    await h.send([
      ...CALLBACK,
      tool('7', '5', 'delegate_research', 60, 500),
      agent('8', '7', 'research', 70, 400),
      tool('9', '8', 'ask_orchestrator', 80, 300),
      agent('a', '9', 'orchestrator', 90, 200),
    ]);
    const findings = h.findings();
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ kind: 'delegation_loop', severity: 'high' });
    expect(findings[0]!.spanIds[0]).toBe(pad('5'));
    expect(findings[0]!.evidence).toMatchObject({ occurrences: 3, loop: 'orchestrator>research>orchestrator' });
  });

  it('gives the same finding child-first, one span per batch, and for any order', async () => {
    const parentFirst = detectHarness();
    await parentFirst.send(CALLBACK);
    const expected = parentFirst.findings();
    const orders = [[...CALLBACK].reverse(), [CALLBACK[2]!, CALLBACK[4]!, CALLBACK[0]!, CALLBACK[5]!, CALLBACK[3]!, CALLBACK[1]!]];
    for (const order of orders) {
      const h = detectHarness();
      for (const s of order) await h.send([s]);
      expect(h.findings().map(({ time: _t, ...f }) => f)).toEqual(expected.map(({ time: _t, ...f }) => f));
    }
  });

  it('never sees a loop in the service-name fallback of a fragment whose root has not arrived', async () => {
    // orchestrator (service a) → research (service b) → a handler in service a that names no agent
    // but runs a tool: orchestrator > research > a. Until the root arrives, the fragment's top is
    // also "a" (the fallback), which would look like a > research > a.
    const spans: SpanSpec[] = [
      agent('1', undefined, 'orchestrator', 0, 1000, 'a'),
      tool('2', '1', 'call_research', 10, 900, 'a'),
      { id: '3', parent: '2', name: 'POST /research', kind: 2, t: 20, d: 800, service: 'b', attrs: { 'gen_ai.agent.name': 'research' } },
      tool('4', '3', 'callback', 30, 700, 'b'),
      { id: '5', parent: '4', name: 'POST /callback', kind: 2, t: 40, d: 600, service: 'a' },
      tool('6', '5', 'lookup', 50, 10, 'a'),
    ];
    const h = detectHarness();
    await h.send(spans.slice(1));
    expect(h.findings()).toEqual([]);
    await h.send(spans.slice(0, 1));
    expect(h.findings()).toEqual([]);
  });

  it('rates a hand-back (every hop hands control over) low', async () => {
    const h = detectHarness();
    await h.send([
      { id: '1', name: 'task', t: 0, d: 1000 },
      { id: '2', parent: '1', name: 'Triage', t: 10, d: 100, attrs: { 'gen_ai.agent.name': 'Triage' } },
      { id: '3', parent: '2', name: 'execute_tool transfer_to_billing', t: 20, attrs: { 'gen_ai.tool.name': 'transfer_to_billing' } },
      { id: '4', parent: '1', name: 'Billing', t: 200, d: 100, attrs: { 'gen_ai.agent.name': 'Billing' } },
      { id: '5', parent: '4', name: 'execute_tool transfer_to_triage', t: 210, attrs: { 'gen_ai.tool.name': 'transfer_to_triage' } },
      { id: '6', parent: '1', name: 'Triage', t: 400, d: 100, attrs: { 'gen_ai.agent.name': 'Triage' } },
    ]);
    const [f, ...rest] = h.findings();
    expect(rest).toEqual([]);
    expect(f).toMatchObject({ kind: 'delegation_loop', severity: 'low' });
    expect(f!.chain.map((c) => c.role)).toEqual(['Triage', 'Billing', 'Triage']);
    expect(f!.evidence).toMatchObject({ via: ['handoff', 'handoff'] });
    expect(f!.spanIds).toEqual(expect.arrayContaining([pad('3'), pad('5')]));
  });

  it('can be turned off', async () => {
    const h = detectHarness('', { detectors: { delegation_loop: false } });
    await h.send(CALLBACK);
    expect(h.findings()).toEqual([]);
  });
});
