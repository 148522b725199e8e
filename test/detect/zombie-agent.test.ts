// zombie_agent: an agent (or one it delegated to) starting work later than `grace` after the end of
// the span that invoked it; a retired identity acting at all. Asynchronous delegations by design
// (messaging) are not invocations; child-first arrival gives the same finding.
import { describe, expect, it } from 'vitest';
import { detectHarness, type SpanSpec } from '../helpers/detect-harness.ts';
import type { Finding } from '../../src/detect/finding.ts';

const id = (n: string) => n.padStart(16, '0');

/**
 * orchestrator (1) → execute_tool delegate_research (2, ends at 10 + invocationMs) → research (3)
 * → research's own tool call (4) at `actAt`.
 */
function run(opts: { invocationMs: number; actAt: number; invokeKind?: number; researchKind?: number; researchService?: string }): SpanSpec[] {
  const service = opts.researchService ?? 'agents';
  return [
    { id: '1', name: 'invoke_agent orchestrator', t: 0, d: 10 + opts.invocationMs + 5, attrs: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'orchestrator' } },
    { id: '2', parent: '1', name: 'execute_tool delegate_research', kind: opts.invokeKind ?? 1, t: 10, d: opts.invocationMs, attrs: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'delegate_research' } },
    { id: '3', parent: '2', name: 'invoke_agent research', kind: opts.researchKind ?? 1, t: 11, d: opts.actAt + 100, service, attrs: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'research' } },
    { id: '4', parent: '3', name: 'execute_tool export_report', t: opts.actAt, d: 5, service, attrs: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'export_report' } },
  ];
}

const kinds = (fs: Finding[]) => fs.map((f) => f.kind);

describe('zombie_agent', () => {
  it('finds a sub-agent acting after the tool call that invoked it returned', async () => {
    const h = detectHarness();
    await h.send(run({ invocationMs: 20, actAt: 2000 }));
    expect(kinds(h.findings())).toEqual(['zombie_agent']);
    const f = h.findings()[0]!;
    expect(f).toMatchObject({ owasp: 'ASI10', severity: 'high', confidence: 'high' });
    expect(f.spanIds).toEqual([id('4'), id('3'), id('2')]);
    expect(f.chain.map((c) => c.role)).toEqual(['orchestrator', 'research']);
    expect(f.chain.at(-1)).toMatchObject({ spanId: id('4'), capability: 'export_report' });
    expect(f.evidence).toMatchObject({ role: 'research', invoked_by: 'orchestrator', delegating_span: id('2'), acting_span: id('4'), late_by_ms: 2000 - 30, grace_ms: 1000, tool: 'export_report' });
  });

  it('stays quiet when the sub-agent finishes inside its invocation, or within the grace', async () => {
    const inside = detectHarness();
    await inside.send(run({ invocationMs: 3000, actAt: 2000 }));
    expect(inside.findings()).toEqual([]);
    const grace = detectHarness();
    await grace.send(run({ invocationMs: 20, actAt: 1029 })); // 999 ms after the end
    expect(grace.findings()).toEqual([]);
    const longer = detectHarness('', { detectors: { zombie_agent: { grace: '5s' } } });
    await longer.send(run({ invocationMs: 20, actAt: 2000 }));
    expect(longer.findings()).toEqual([]);
  });

  it('shows the tool call, not a model step that started in the same millisecond, whatever their ids', async () => {
    // The tool call as 'a4'; a model step with a lower id, then with a higher one.
    const spans = run({ invocationMs: 20, actAt: 2000 }).map((s) => (s.id === '4' ? { ...s, id: 'a4' } : s));
    for (const stepId of ['5', 'f0']) {
      const h = detectHarness();
      const step: SpanSpec = { id: stepId, parent: '3', name: 'chat gpt-research', t: 2000, d: 5, attrs: { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'gpt-research' } };
      await h.send([...spans, step]);
      expect(h.findings()).toHaveLength(1);
      expect(h.findings()[0]).toMatchObject({ severity: 'high', evidence: { acting_span: id('a4'), tool: 'export_report' } });
    }
  });

  it('gives the same finding whatever the arrival order', async () => {
    const spans = run({ invocationMs: 20, actAt: 2000 });
    const all = detectHarness();
    await all.send(spans);
    for (const order of [[...spans].reverse(), [spans[3]!, spans[0]!, spans[2]!, spans[1]!]]) {
      const h = detectHarness();
      for (const s of order) await h.send([s]);
      expect(h.findings().map((f) => ({ ...f, time: '' }))).toEqual(all.findings().map((f) => ({ ...f, time: '' })));
    }
  });

  it('is medium when what it does late is no tool, host or credential', async () => {
    const spans = run({ invocationMs: 20, actAt: 2000 });
    spans[3] = { id: '4', parent: '3', name: 'chat gpt', t: 2000, attrs: { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'gpt' } };
    const h = detectHarness();
    await h.send(spans);
    expect(h.findings()).toMatchObject([{ kind: 'zombie_agent', severity: 'medium' }]);
  });

  it('reports the invocation that outlived its caller when an agent it delegated to acts late', async () => {
    // research returns to the orchestrator at 30; analysis, which research invoked and waited for
    // (its own invocation 5 lasts to 4000), acts at 3000: research's invocation is the zombie.
    const spans: SpanSpec[] = [
      ...run({ invocationMs: 20, actAt: 12 }).slice(0, 3),
      { id: '5', parent: '3', name: 'execute_tool delegate_analysis', t: 13, d: 4000, attrs: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'delegate_analysis' } },
      { id: '6', parent: '5', name: 'invoke_agent analysis', t: 14, d: 3500, attrs: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'analysis' } },
      { id: '7', parent: '6', name: 'execute_tool summarize', t: 3000, attrs: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'summarize' } },
    ];
    const h = detectHarness();
    await h.send(spans);
    const f = h.findings();
    expect(kinds(f)).toEqual(['zombie_agent']);
    expect(f[0]!.spanIds[0]).toBe(id('7'));
    expect(f[0]!.evidence).toMatchObject({ role: 'research', acting_role: 'analysis', delegating_span: id('2') });
    expect(f[0]!.chain.map((c) => c.role)).toEqual(['orchestrator', 'research', 'analysis']);
  });

  it('does not take an asynchronous delegation by design (messaging) for an invocation', async () => {
    const producer = detectHarness();
    await producer.send(run({ invocationMs: 20, actAt: 2000, invokeKind: 4 }));
    expect(producer.findings()).toEqual([]);
    const consumer = detectHarness();
    await consumer.send(run({ invocationMs: 20, actAt: 2000, researchKind: 5 }));
    expect(consumer.findings()).toEqual([]);
  });

  it('has medium confidence across workloads, whose clocks may disagree', async () => {
    const h = detectHarness();
    await h.send(run({ invocationMs: 20, actAt: 2000, researchService: 'research-svc' }));
    expect(h.findings()).toMatchObject([{ kind: 'zombie_agent', confidence: 'medium', chain: [{ role: 'orchestrator' }, { role: 'research' }] }]);
  });

  it('finds a retired identity acting at all, by role or agent id; critical when it presents a credential', async () => {
    const policy = 'retired: [legacy-billing, agent-7f3a]';
    const h = detectHarness(policy);
    await h.send([
      { id: '1', t: 0, d: 100, attrs: { 'gen_ai.agent.name': 'orchestrator' } },
      { id: '2', parent: '1', t: 10, d: 50, attrs: { 'gen_ai.agent.name': 'legacy-billing' } },
      { id: '3', parent: '2', t: 20, attrs: { 'gen_ai.tool.name': 'refund' } },
    ]);
    expect(kinds(h.findings())).toEqual(['zombie_agent']);
    expect(h.findings()[0]).toMatchObject({ severity: 'high', spanIds: [id('2'), id('1')], chain: [{ role: 'orchestrator' }, { role: 'legacy-billing' }] });
    expect(h.findings()[0]!.evidence).toMatchObject({ identity: 'legacy-billing', matched: 'role' });

    const byId = detectHarness(policy);
    await byId.send([{ id: '1', t: 0, d: 100, attrs: { 'gen_ai.agent.name': 'billing', 'gen_ai.agent.id': 'agent-7f3a', 'http.request.header.authorization': ['Bearer sk-old'] }, kind: 3 }]);
    expect(byId.findings()).toMatchObject([{ kind: 'zombie_agent', severity: 'critical', evidence: { identity: 'agent-7f3a', matched: 'agent id', presents_credential: true } }]);
    expect(JSON.stringify(byId.findings())).not.toContain('sk-old');

    // Not retired: nothing.
    const other = detectHarness(policy);
    await other.send([{ id: '1', t: 0, d: 100, attrs: { 'gen_ai.agent.name': 'billing', 'gen_ai.agent.id': 'agent-0001' } }]);
    expect(other.findings()).toEqual([]);
  });
});
