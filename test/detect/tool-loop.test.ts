// tool_loop: the same (role, tool, argument hash) at least max_repeats times within the window,
// by span start; one finding per loop; child-first arrival gives the same finding.
import { describe, expect, it } from 'vitest';
import { detectHarness, type SpanSpec } from '../helpers/detect-harness.ts';
import { argHash, normalizeArgs } from '../../src/detect/detectors/tool-loop.ts';

const hex = (n: number) => n.toString(16);

/** AI SDK v7 shape: invoke_agent orchestrator → execute_tool delegate_research → invoke_agent research → its tool calls (no agent attribute on them). */
function researchRun(calls: { t: number; args?: string; tool?: string }[], opts: { researchDuration?: number } = {}): SpanSpec[] {
  const end = Math.max(0, ...calls.map((c) => c.t)) + 10;
  return [
    { id: '1', name: 'invoke_agent orchestrator', t: 0, d: end + 20, attrs: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'orchestrator' } },
    { id: '2', parent: '1', name: 'execute_tool delegate_research', t: 1, d: end + 10, attrs: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'delegate_research' } },
    { id: '3', parent: '2', name: 'invoke_agent research', t: 2, d: opts.researchDuration ?? end + 5, attrs: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'research' } },
    ...calls.map((c, i): SpanSpec => ({
      id: hex(0x100 + i),
      parent: '3',
      name: `execute_tool ${c.tool ?? 'lookup'}`,
      t: c.t,
      attrs: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': c.tool ?? 'lookup', ...(c.args !== undefined ? { 'gen_ai.tool.call.arguments': c.args } : {}) },
    })),
  ];
}

const same = (n: number, every: number, args = '{"q":"x"}') => Array.from({ length: n }, (_, i) => ({ t: 10 + i * every, args }));

describe('tool_loop', () => {
  it('reports the fifth identical call within 10 s, once, with count, window, tool and hash, not the arguments', async () => {
    const h = detectHarness();
    await h.send(researchRun(same(4, 100)));
    expect(h.findings()).toEqual([]);

    const h5 = detectHarness();
    await h5.send(researchRun(same(5, 100)));
    const findings = h5.findings();
    expect(findings).toHaveLength(1);
    const f = findings[0]!;
    expect(f).toMatchObject({ kind: 'tool_loop', severity: 'medium', confidence: 'high', owasp: 'ASI02' });
    expect(f.evidence).toMatchObject({ role: 'research', tool: 'lookup', arg_hash: argHash('{"q":"x"}'), count: 5, window_ms: 10_000, max_repeats: 5, args_captured: true });
    expect(f.evidence).not.toHaveProperty('role_resolved');
    expect(f.evidence).not.toHaveProperty('chain_complete');
    // Shown on the call that crossed the threshold, then every call of the loop.
    expect(f.spanIds[0]).toBe(hex(0x104).padStart(16, '0'));
    expect(new Set(f.spanIds)).toEqual(new Set([0x100, 0x101, 0x102, 0x103, 0x104].map((n) => hex(n).padStart(16, '0'))));
    expect(f.chain.map((c) => c.role)).toEqual(['orchestrator', 'research', 'research']);
    expect(f.chain.at(-1)).toMatchObject({ capability: 'lookup', spanId: f.spanIds[0] });
    expect(JSON.stringify(f)).not.toContain('"q"');
    expect(h5.stdout.join('')).not.toContain('\\"q\\"');
  });

  it('is high at four times the threshold', async () => {
    const h = detectHarness();
    await h.send(researchRun(same(50, 150)));
    const [f, ...rest] = h.findings();
    expect(rest).toEqual([]);
    expect(f).toMatchObject({ kind: 'tool_loop', severity: 'high' });
    expect(f!.evidence).toMatchObject({ count: 50 });
    expect(f!.spanIds).toHaveLength(50);
  });

  it('reports a loop arriving one call per batch once', async () => {
    const spans = researchRun(same(50, 150));
    const h = detectHarness();
    for (const s of spans) await h.send([s]);
    expect(h.findings().map((f) => f.kind)).toEqual(['tool_loop']);
    // Reported at the fifth call (medium), and again, the same finding, when it turned high.
    expect(h.findings()[0]).toMatchObject({ severity: 'high' });
    expect(h.findings()[0]!.evidence).toMatchObject({ count: 20 });
    expect(h.stdout.map((l) => [JSON.parse(l).severity, JSON.parse(l).evidence.count])).toEqual([['medium', 5], ['high', 20]]);
  });

  it('gives the same finding when the spans arrive child-first', async () => {
    const spans = researchRun(same(50, 150));
    const parentFirst = detectHarness();
    await parentFirst.send(spans);
    const childFirst = detectHarness();
    // As SimpleSpanProcessor exports them: each span when it ends, children before parents.
    for (const s of [...spans].reverse()) await childFirst.send([s]);
    const a = parentFirst.findings();
    const b = childFirst.findings();
    expect(b.map((f) => f.id)).toEqual(a.map((f) => f.id));
    expect(b[0]).toMatchObject({ severity: 'high', chain: a[0]!.chain });
    expect(b[0]!.evidence).toEqual(a[0]!.evidence);
  });

  it('counts a call once its ancestors have arrived, never under the service-name fallback', async () => {
    const spans = researchRun(same(6, 100));
    const h = detectHarness();
    await h.send(spans.filter((s) => !['1', '2', '3'].includes(s.id)));
    expect(h.findings()).toEqual([]);
    await h.send(spans.filter((s) => s.id === '3')); // the role is known, the chain above it not yet
    expect(h.findings()).toEqual([]);
    await h.send(spans.filter((s) => s.id === '1' || s.id === '2'));
    expect(h.findings().map((f) => [f.evidence.role, f.chain.map((c) => c.role).join('>')])).toEqual([['research', 'orchestrator>research>research']]);
    expect(h.findings()[0]!.evidence).not.toHaveProperty('chain_complete');
  });

  it('counts with what is known after settle_after of trace time: a runaway loop whose agent span never ends', async () => {
    // A call every 100 ms for 70 s under a research agent still running (its span, and its
    // caller's, never arrive).
    const calls = researchRun(same(700, 100)).filter((s) => !['1', '2', '3'].includes(s.id));
    const h = detectHarness();
    await h.send(calls.slice(0, 400)); // 40 s of calls: waiting for their agent
    expect(h.findings()).toEqual([]);
    await h.send(calls.slice(400)); // 30 s later by the trace's clock: counted under the fallback role
    const [f, ...rest] = h.findings();
    expect(rest).toEqual([]);
    expect(f).toMatchObject({ kind: 'tool_loop', severity: 'high', confidence: 'medium' });
    expect(f!.evidence).toMatchObject({ role: 'agents', role_resolved: false, chain_complete: false });

    // A named agent whose caller never arrives: its role is certain, its chain is what is known.
    const named = detectHarness();
    const run = researchRun(same(400, 100)).filter((s) => s.id !== '1' && s.id !== '2');
    await named.send(run.filter((s) => s.id !== '3'));
    await named.send(run.filter((s) => s.id === '3'));
    expect(named.findings()).toEqual([]);
    // Any later span of the trace 30 s on by its clock.
    await named.send([{ id: 'fff', parent: '3', name: 'execute_tool other', t: 70_000, d: 1, attrs: { 'gen_ai.tool.name': 'other' } }]);
    expect(named.findings().map((x) => [x.evidence.role, x.evidence.role_resolved, x.evidence.chain_complete, x.chain.map((c) => c.role).join('>')])).toEqual([
      ['research', undefined, false, 'research>research'],
    ]);
  });

  it('normalises whitespace (outside JSON strings; runs in plain text); calls without captured arguments are not grouped', async () => {
    expect(normalizeArgs('{ "b": 1,\n  "a": "x  y" }')).toBe('{"b":1,"a":"x  y"}');
    expect(normalizeArgs('{"a":"x  y"}')).not.toBe(normalizeArgs('{"a":"x y"}'));
    expect(normalizeArgs(`{'cmd': 'ls -la', "q": "say \\"a b\\""}`)).toBe(`{'cmd':'ls -la',"q":"say \\"a b\\""}`);
    expect(normalizeArgs('  run   ls  -la ')).toBe('run ls -la');
    const variants = ['{"q":"x","n":1}', '{ "q": "x", "n": 1 }', '{"q":"x",\n "n":1}', '{"q" :"x","n":1}', ' {"q": "x", "n": 1} '];
    const h = detectHarness();
    await h.send(researchRun(variants.map((args, i) => ({ t: 10 + i, args }))));
    expect(h.findings().map((f) => f.evidence.count)).toEqual([5]);

    // Arguments are opt-in in the GenAI conventions: without them, five different calls would look
    // identical, so they are not grouped at all.
    const none = detectHarness();
    await none.send(researchRun(Array.from({ length: 5 }, (_, i) => ({ t: 10 + i }))));
    expect(none.findings()).toEqual([]);
    expect(argHash('')).toMatch(/^[0-9a-f]{16}$/);
  });

  it('stays quiet for different arguments, calls spread beyond the window, or the same call by different roles', async () => {
    const h = detectHarness();
    await h.send(researchRun(Array.from({ length: 50 }, (_, i) => ({ t: 10 + i * 10, args: `{"q":"topic ${i}"}` }))));
    expect(h.findings()).toEqual([]);

    const spread = detectHarness();
    await spread.send(researchRun(same(50, 12_000)));
    expect(spread.findings()).toEqual([]);

    // 4 calls in 10 s, then 4 more 10.1 s later: never 5 within one window.
    const edge = detectHarness();
    await edge.send(researchRun([...same(4, 100), ...same(4, 100).map((c) => ({ ...c, t: c.t + 10_100 }))]));
    expect(edge.findings()).toEqual([]);

    const roles = detectHarness();
    const run = researchRun(same(3, 100));
    const orchestratorCalls: SpanSpec[] = same(3, 100).map((c, i) => ({
      id: hex(0x200 + i), parent: '1', name: 'execute_tool lookup', t: c.t, attrs: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'lookup', 'gen_ai.tool.call.arguments': c.args },
    }));
    await roles.send([...run, ...orchestratorCalls]);
    expect(roles.findings()).toEqual([]);
  });

  it('takes max_repeats and window from the config', async () => {
    const h = detectHarness('', { detectors: { tool_loop: { max_repeats: 3, window: '1s' } } });
    await h.send(researchRun(same(3, 400)));
    expect(h.findings().map((f) => f.evidence)).toEqual([expect.objectContaining({ count: 3, window_ms: 1000, max_repeats: 3 })]);
    const slow = detectHarness('', { detectors: { tool_loop: { max_repeats: 3, window: '1s' } } });
    await slow.send(researchRun(same(3, 600)));
    expect(slow.findings()).toEqual([]);
    expect(() => detectHarness('', { detectors: { tool_loop: { max_repeats: 1 } } })).toThrow(/tool_loop: max_repeats/);
  });
});
