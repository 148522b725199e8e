// policy_violation: enforced roles are deny-by-default (tools, delegations; hosts when listed);
// observed roles and roles without a policy give nothing (unless report_observed); child-first
// arrival gives the same findings.
import { describe, expect, it } from 'vitest';
import { detectHarness, type SpanSpec, spanId as pad } from '../helpers/detect-harness.ts';

const agent = (id: string, parent: string | undefined, name: string, t: number, d = 500): SpanSpec => ({
  id, ...(parent ? { parent } : {}), name: `invoke_agent ${name}`, t, d, attrs: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': name },
});
const tool = (id: string, parent: string, name: string, t: number, d = 20): SpanSpec => ({
  id, parent, name: `execute_tool ${name}`, t, d, attrs: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': name },
});

/** orchestrator → research (tools web_search, shell_exec); the research tools name no agent (AI SDK v7). */
const RUN: SpanSpec[] = [
  agent('1', undefined, 'orchestrator', 0, 1000),
  tool('2', '1', 'delegate_research', 10, 900),
  agent('3', '2', 'research', 20, 800),
  { id: '4', parent: '3', name: 'step 1', t: 30, d: 700, attrs: { 'gen_ai.operation.name': 'agent_step' } },
  { id: '5', parent: '4', name: 'chat gpt', kind: 3, t: 31, d: 100, attrs: { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'gpt', 'server.address': 'api.openai.com' } },
  tool('6', '4', 'web_search', 140),
  tool('7', '4', 'shell_exec', 160),
  tool('8', '4', 'shell_exec', 180),
];

const ENFORCE = 'roles: { research: { mode: enforce, allowed_tools: [web_search] } }';

describe('policy_violation', () => {
  it('reports an enforced role calling a tool outside allowed_tools, once per tool', async () => {
    const h = detectHarness(ENFORCE);
    await h.send(RUN);
    const findings = h.findings();
    expect(findings.map((f) => f.kind)).toEqual(['policy_violation']);
    const f = findings[0]!;
    expect(f).toMatchObject({ severity: 'medium', confidence: 'high', owasp: 'ASI02' });
    expect(f.spanIds[0]).toBe(pad('7'));
    expect(f.chain).toEqual([
      { role: 'orchestrator', spanId: pad('1') },
      { role: 'research', spanId: pad('3') },
      { role: 'research', spanId: pad('7'), capability: 'shell_exec' },
    ]);
    expect(f.evidence).toEqual({ role: 'research', mode: 'enforce', rule: 'allowed_tools', value: 'shell_exec', allowed: ['web_search'], list_set: true });
  });

  it('gives nothing for the same role observed, or for a role without a policy', async () => {
    for (const policy of ['roles: { research: { mode: observe, allowed_tools: [web_search] } }', 'roles: { research: { allowed_tools: [web_search] } }', 'roles: { writer: { mode: enforce, allowed_tools: [] } }', '']) {
      const h = detectHarness(policy);
      await h.send(RUN);
      expect(h.findings(), policy).toEqual([]);
    }
  });

  it('with report_observed, checks the lists an observed role sets, at severity low', async () => {
    const h = detectHarness('roles: { research: { mode: observe, allowed_tools: [web_search] }, orchestrator: { mode: observe } }', { detectors: { policy_violation: { report_observed: true } } });
    await h.send(RUN);
    expect(h.findings().map((f) => [f.severity, f.evidence.role, f.evidence.value])).toEqual([['low', 'research', 'shell_exec']]);
  });

  it('rates a tool the policy labels a sink high, and matches tool globs', async () => {
    const h = detectHarness(`
capabilities: [{ name: shell, match: { tool: "shell_*" }, sink: exec }]
roles: { research: { mode: enforce, allowed_tools: ["web_*"] } }
`);
    await h.send(RUN);
    expect(h.findings().map((f) => [f.severity, f.evidence.value])).toEqual([['high', 'shell_exec']]);
  });

  it('denies every delegation of an enforced role outside allowed_delegations (none when unset)', async () => {
    const spans: SpanSpec[] = [
      agent('1', undefined, 'orchestrator', 0, 1000),
      tool('2', '1', 'delegate_research', 10, 100),
      agent('3', '2', 'research', 20, 50),
      tool('4', '1', 'delegate_writer', 200, 100),
      agent('5', '4', 'writer', 210, 50),
    ];
    const h = detectHarness('roles: { orchestrator: { mode: enforce, allowed_tools: ["delegate_*"], allowed_delegations: [research] } }');
    await h.send(spans);
    const findings = h.findings();
    expect(findings.map((f) => f.evidence)).toEqual([{ role: 'orchestrator', mode: 'enforce', rule: 'allowed_delegations', value: 'writer', allowed: ['research'], list_set: true }]);
    expect(findings[0]!.spanIds[0]).toBe(pad('5'));
    expect(findings[0]!.chain.map((c) => c.role)).toEqual(['orchestrator', 'writer']);

    const none = detectHarness('roles: { orchestrator: { mode: enforce, allowed_tools: ["delegate_*"] } }');
    await none.send(spans);
    expect(none.findings().map((f) => f.evidence.value).sort()).toEqual(['research', 'writer']);
  });

  it('checks hosts only when allowed_hosts is set, not the model endpoint, high outside the internal domains', async () => {
    const http = (id: string, parent: string, host: string, t: number): SpanSpec => ({ id, parent, name: 'GET', kind: 3, t, attrs: { 'http.request.method': 'GET', 'url.full': `https://${host}/x` } });
    const spans: SpanSpec[] = [
      ...RUN.filter((s) => s.id !== '7' && s.id !== '8'),
      { id: '9', parent: '5', name: 'POST', kind: 3, t: 32, attrs: { 'server.address': 'api.openai.com' } },
      http('a', '6', 'kb.corp.example', 141),
      http('b', '6', 'wiki.corp.example', 142),
      http('c', '6', 'evil.example.net', 143),
      // The role's own address where it was called (an HTTP SERVER span in its invocation): no destination.
      { id: 'd', parent: '6', name: 'POST /invoke', kind: 2, t: 144, attrs: { 'http.request.method': 'POST', 'server.address': 'research.agents.example', 'url.path': '/invoke' } },
    ];
    const policy = (hosts: string) => `
internal_domains: [corp.example]
roles: { research: { mode: enforce, allowed_tools: [web_search]${hosts} } }
`;
    const h = detectHarness(policy(', allowed_hosts: ["kb.corp.example"]'));
    await h.send(spans);
    expect(h.findings().map((f) => [f.evidence.rule, f.evidence.value, f.severity]).sort()).toEqual([
      ['allowed_hosts', 'evil.example.net', 'high'],
      ['allowed_hosts', 'wiki.corp.example', 'medium'],
    ]);
    const unset = detectHarness(policy(''));
    await unset.send(spans);
    expect(unset.findings()).toEqual([]);
  });

  it('takes a handoff for a delegation, not a tool call', async () => {
    const h = detectHarness('roles: { Triage: { mode: enforce, allowed_tools: [lookup], allowed_delegations: [Billing] } }');
    await h.send([
      { id: '1', name: 'task', t: 0, d: 1000 },
      { id: '2', parent: '1', name: 'Triage', t: 10, d: 100, attrs: { 'gen_ai.agent.name': 'Triage' } },
      { id: '3', parent: '2', name: 'execute_tool transfer_to_billing', t: 20, attrs: { 'gen_ai.tool.name': 'transfer_to_billing' } },
      { id: '4', parent: '1', name: 'Billing', t: 200, d: 100, attrs: { 'gen_ai.agent.name': 'Billing' } },
    ]);
    expect(h.findings()).toEqual([]);
  });

  it('gives the same findings child-first, and none from the service-name fallback meanwhile', async () => {
    const policy = `
roles:
  research: { mode: enforce, allowed_tools: [web_search] }
  agents: { mode: enforce, allowed_tools: [] }
  orchestrator: { mode: enforce, allowed_tools: [delegate_research], allowed_delegations: [] }
`;
    const parentFirst = detectHarness(policy);
    await parentFirst.send(RUN);
    const expected = parentFirst.findings().map(({ time: _t, ...f }) => f);
    expect(expected.map((f) => f.evidence.value).sort()).toEqual(['research', 'shell_exec']);

    const childFirst = detectHarness(policy);
    const reversed = [...RUN].reverse();
    // Every span but the root: the research tools still wait (the fallback role "agents" is enforced, and denies everything).
    for (const s of reversed.slice(0, -1)) await childFirst.send([s]);
    expect(childFirst.findings()).toEqual([]);
    await childFirst.send(reversed.slice(-1));
    expect(childFirst.findings().map(({ time: _t, ...f }) => f).sort((a, b) => a.id.localeCompare(b.id))).toEqual(expected.sort((a, b) => a.id.localeCompare(b.id)));
  });
});
