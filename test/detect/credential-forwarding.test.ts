// credential_forwarding: a credential presented by an agent that is not its holder (azp/client_id,
// else sub naming an agent, else the first presenter), no relay, named by no act chain. Severity
// by hops, scope, destination and cnf; child-first arrival gives the same finding.
import { describe, expect, it } from 'vitest';
import { detectHarness, type SpanSpec } from '../helpers/detect-harness.ts';
import type { Finding } from '../../src/detect/finding.ts';

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
/** An unsigned-looking JWT (claims are read without verification). */
const jwt = (claims: Record<string, unknown>) => `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ iss: 'https://idp.internal', exp: 2_000_000_000, ...claims })}.c2lnbmF0dXJl`;

const CUSTOMER_READ = jwt({ sub: 'user-42', azp: 'orchestrator', scope: 'customers:read' });
const POLICY = 'internal_domains: [internal]';
const id = (n: string) => n.padStart(16, '0');

/**
 * orchestrator → research → analysis (gen_ai.* agent spans, delegation through tool calls), and
 * analysis's HTTP client call presenting `token`. `extra` presentations go under any span.
 */
function flow(token: string, opts: { url?: string; presenterKind?: number; extra?: SpanSpec[] } = {}): SpanSpec[] {
  return [
    { id: '1', name: 'invoke_agent orchestrator', t: 0, d: 1000, attrs: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'orchestrator' } },
    { id: '2', parent: '1', name: 'execute_tool delegate_research', t: 10, d: 900, attrs: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'delegate_research' } },
    { id: '3', parent: '2', name: 'invoke_agent research', t: 20, d: 800, attrs: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'research' } },
    { id: '4', parent: '3', name: 'execute_tool delegate_analysis', t: 30, d: 700, attrs: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'delegate_analysis' } },
    { id: '5', parent: '4', name: 'invoke_agent analysis', t: 40, d: 600, attrs: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'analysis' } },
    { id: '6', parent: '5', name: 'execute_tool lookup_customer', t: 50, d: 200, attrs: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'lookup_customer' } },
    {
      id: '7',
      parent: '6',
      name: 'GET',
      kind: opts.presenterKind ?? 3,
      t: 60,
      d: 100,
      attrs: { 'http.request.method': 'GET', 'url.full': opts.url ?? 'https://customers.internal/v1/customers/42', 'http.request.header.authorization': [`Bearer ${token}`] },
    },
    ...(opts.extra ?? []),
  ];
}

/** A presentation of `token` by the agent owning `parent`. */
const use = (spanId: string, parent: string, t: number, token: string, url = 'https://customers.internal/v1/customers'): SpanSpec => ({
  id: spanId,
  parent,
  name: 'GET',
  kind: 3,
  t,
  d: 1,
  attrs: { 'http.request.method': 'GET', 'url.full': url, 'http.request.header.authorization': [`Bearer ${token}`] },
});

const only = (h: { findings(): Finding[] }, kind = 'credential_forwarding') => {
  const all = h.findings();
  expect(all.map((f) => f.kind)).toEqual([kind]);
  return all[0]!;
};

describe('credential_forwarding', () => {
  it('finds the azp holder’s token presented two hops down, with the path and the use on the last hop', async () => {
    const h = detectHarness(POLICY);
    await h.send(flow(CUSTOMER_READ));
    const f = only(h);
    expect(f).toMatchObject({ kind: 'credential_forwarding', owasp: 'ASI03', severity: 'high', confidence: 'high' });
    expect(f.chain.map((c) => c.role)).toEqual(['orchestrator', 'research', 'analysis']);
    expect(f.chain.map((c) => c.spanId)).toEqual([id('1'), id('3'), id('7')]);
    expect(f.chain.at(-1)).toMatchObject({ role: 'analysis', capability: 'customers.internal' });
    expect(f.spanIds[0]).toBe(id('7'));
    expect(f.spanIds).toEqual(expect.arrayContaining([id('1'), id('3'), id('5'), id('7')]));
    expect(f.evidence).toMatchObject({
      holder: 'orchestrator',
      holder_source: 'azp',
      holder_in_trace: true,
      presenter: 'analysis',
      hops: 2,
      hosts: ['customers.internal'],
      external_hosts: [],
      scope: ['customers:read'],
      privileged_scope: [],
      act_chain: [],
      sender_constrained: false,
      path: 'orchestrator>research>analysis',
    });
    expect(f.evidence.fingerprint).toMatch(/^fp_[0-9a-f]{24}$/);
    // Never the secret: not in the finding, the sink, or any exported span.
    const token = CUSTOMER_READ.split('.')[1]!;
    expect(JSON.stringify(f)).not.toContain(token);
    expect(h.stdout.join('')).not.toContain(token);
    expect(JSON.stringify(h.exported())).not.toContain(token);
    const shows = h.exported().find((s) => s.spanId === id('7'))!;
    expect(shows.attributes['agentsec.finding.kind']).toBe('credential_forwarding');
  });

  it('gives the same finding when the spans arrive child-first, one per batch', async () => {
    const spans = flow(CUSTOMER_READ);
    const inOrder = detectHarness(POLICY);
    await inOrder.send(spans);
    const childFirst = detectHarness(POLICY);
    for (const s of [...spans].reverse()) {
      await childFirst.send([s]);
      // The holder's invocation is not there until the root arrives: nothing yet.
      if (s.id !== '1') expect(childFirst.findings()).toEqual([]);
    }
    const [a, b] = [only(inOrder), only(childFirst)];
    expect(b.id).toBe(a.id);
    expect({ ...b, time: '' }).toEqual({ ...a, time: '' });
  });

  it('stays quiet for an exchanged token whose act chain names the presenter, not for one that names only another hop', async () => {
    const exchanged = jwt({ sub: 'user-42', azp: 'orchestrator', scope: 'customers:read', act: { sub: 'analysis', act: { sub: 'research' } } });
    const ok = detectHarness(POLICY);
    await ok.send(flow(exchanged));
    expect(ok.findings()).toEqual([]);

    const partial = jwt({ sub: 'user-42', azp: 'orchestrator', scope: 'customers:read', act: { sub: 'research' } });
    const bad = detectHarness(POLICY);
    await bad.send(flow(partial));
    expect(only(bad).evidence).toMatchObject({ act_chain: ['research'], presenter: 'analysis' });
  });

  it('stays quiet when the presenter is the holder (azp, client_id or sub) or an allowed relay', async () => {
    for (const token of [jwt({ azp: 'analysis' }), jwt({ client_id: 'analysis', sub: 'user-1' }), jwt({ sub: 'analysis' })]) {
      const h = detectHarness(POLICY);
      await h.send(flow(token));
      expect(h.findings(), token).toEqual([]);
    }
    const relay = detectHarness(`${POLICY}\nrelays: [analysis]`);
    await relay.send(flow(CUSTOMER_READ));
    expect(relay.findings()).toEqual([]);
  });

  it('takes sub as the holder when it names an agent and there is no azp', async () => {
    const h = detectHarness(POLICY);
    await h.send(flow(jwt({ sub: 'research', scope: 'customers:read' })));
    const f = only(h);
    expect(f).toMatchObject({ severity: 'medium', confidence: 'high' });
    expect(f.chain.map((c) => c.role)).toEqual(['research', 'analysis']);
    expect(f.evidence).toMatchObject({ holder: 'research', holder_source: 'sub', hops: 1 });
  });

  it('raises severity for a write or admin scope, an external destination, and to critical for a cnf-bound token', async () => {
    const oneHop = jwt({ sub: 'research' });
    const cases: [string, { url?: string }, string][] = [
      [oneHop, {}, 'medium'],
      [jwt({ sub: 'research', scope: 'customers:read customers:write' }), {}, 'high'],
      [oneHop, { url: 'https://api.example.com/v1/customers' }, 'high'],
      [jwt({ sub: 'research', scope: 'admin' }), { url: 'https://api.example.com/v1/customers' }, 'critical'],
      [jwt({ azp: 'orchestrator', scope: 'customers:read' }), { url: 'https://api.example.com/x' }, 'critical'],
      [jwt({ sub: 'research', cnf: { jkt: 'thumb' } }), {}, 'critical'],
    ];
    for (const [token, opts, severity] of cases) {
      const h = detectHarness(POLICY);
      await h.send(flow(token, opts));
      expect(only(h).severity, `${JSON.stringify(opts)} ${Buffer.from(token.split('.')[1]!, 'base64url')}`).toBe(severity);
    }
    const h = detectHarness(POLICY);
    await h.send(flow(jwt({ sub: 'research', cnf: { jkt: 'thumb' } })));
    expect(only(h).evidence).toMatchObject({ sender_constrained: ['jkt'] });
  });

  it('without claims, takes the first presenter as the holder (confidence medium), whatever the arrival order', async () => {
    const opaque = 'sk-live-0123456789abcdef';
    const spans = flow(opaque, { extra: [use('a1', '2', 15, opaque)] }); // the orchestrator used it first
    const h = detectHarness(POLICY);
    await h.send(spans);
    const f = only(h);
    expect(f).toMatchObject({ severity: 'high', confidence: 'medium' });
    expect(f.chain.map((c) => c.role)).toEqual(['orchestrator', 'research', 'analysis']);
    expect(f.evidence).toMatchObject({ holder: 'orchestrator', holder_source: 'first_presenter', hops: 2 });
    expect(f.spanIds.slice(0, 2)).toEqual([id('7'), id('a1')]);

    const childFirst = detectHarness(POLICY);
    for (const s of [...spans].reverse()) await childFirst.send([s]);
    expect({ ...only(childFirst), time: '' }).toEqual({ ...f, time: '' });

    // The one agent that used it, however often: nothing.
    const alone = detectHarness(POLICY);
    await alone.send(flow(opaque, { extra: [use('a2', '6', 70, opaque), use('a3', '6', 80, opaque)] }));
    expect(alone.findings()).toEqual([]);
  });

  it('does not count a span that received the credential (SERVER) as a presentation', async () => {
    const opaque = 'sk-live-0123456789abcdef';
    const h = detectHarness(POLICY);
    // The orchestrator's server span saw the header arrive; only analysis presents it.
    await h.send(flow(opaque, { extra: [{ ...use('a1', '1', 5, opaque), kind: 2, name: 'POST /chat' }] }));
    expect(h.findings()).toEqual([]);
    // The same, as a CLIENT span, is the orchestrator presenting it first.
    const client = detectHarness(POLICY);
    await client.send(flow(opaque, { extra: [use('a1', '2', 15, opaque)] }));
    expect(only(client).evidence).toMatchObject({ holder: 'orchestrator' });
  });

  it('reports a holder the policy knows but that is not in the trace, with the path the credential came down', async () => {
    const h = detectHarness(`${POLICY}\nroles: { billing: { max_depth: 3 } }`);
    await h.send(flow(jwt({ azp: 'billing', scope: 'invoices:read' })));
    const f = only(h);
    expect(f).toMatchObject({ severity: 'medium', confidence: 'high' });
    expect(f.chain.map((c) => c.role)).toEqual(['orchestrator', 'research', 'analysis']);
    expect(f.evidence).toMatchObject({ holder: 'billing', holder_in_trace: false, hops: null });
    // An azp that names nothing known is no holder: the first presenter is.
    const unknown = detectHarness(POLICY);
    await unknown.send(flow(jwt({ azp: '0oa1b2c3d4e5f6g7h8i9', scope: 'invoices:read' })));
    expect(unknown.findings()).toEqual([]);
  });

  it('finds a holder in another branch of the tree, through the common ancestor', async () => {
    // orchestrator → research (presents first) and orchestrator → analysis (presents later).
    const opaque = 'sk-live-sibling';
    const spans: SpanSpec[] = [
      { id: '1', t: 0, d: 100, attrs: { 'gen_ai.agent.name': 'orchestrator' } },
      { id: '2', parent: '1', t: 1, d: 20, attrs: { 'gen_ai.agent.name': 'research' } },
      use('3', '2', 2, opaque),
      { id: '4', parent: '1', t: 30, d: 20, attrs: { 'gen_ai.agent.name': 'analysis' } },
      use('5', '4', 31, opaque),
    ];
    const h = detectHarness(POLICY);
    await h.send(spans);
    const f = only(h);
    expect(f.chain.map((c) => c.role)).toEqual(['research', 'orchestrator', 'analysis']);
    expect(f.evidence).toMatchObject({ holder: 'research', presenter: 'analysis', hops: 2 });
  });

  it('keeps its state bounded per trace', async () => {
    const h = detectHarness(POLICY, { detectors: { credential_forwarding: { max_credentials_per_trace: 1 } } });
    const other = 'sk-other';
    // Another credential takes the only place first: the customer token is not judged.
    await h.send([use('a1', '1', 5, other), ...flow(CUSTOMER_READ)]);
    expect(h.findings()).toEqual([]);
  });
});
