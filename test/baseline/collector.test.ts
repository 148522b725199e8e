// Baselines in the running collector, over real sockets: spans made with the OpenTelemetry API
// under a real NodeSDK and sent by the official OTLP/proto exporter (helpers/agent-traffic.ts) to a collector whose detect
// processor learns into SQLite in its data directory. A role that has learnt gets one
// baseline_new_tool finding for a new tool (on the API, and on the exported span); its profile,
// its generated policy and its learning state are on the admin API; a restart keeps every
// profile; the policy file reloads live, and a broken one is refused while the old one stays.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgentCollector, type AgentCollector } from '../helpers/agent-collector.ts';
import { invoke } from '../helpers/agent-traffic.ts';
import { adminGet } from '../helpers/collector.ts';
import { eventually } from '../helpers/wait.ts';
import { metricValue } from '../helpers/collector.ts';
import type { Finding } from '../../src/detect/finding.ts';

const dir = mkdtempSync(join(tmpdir(), 'agentsec-baseline-e2e-'));
const dataDir = join(dir, 'data');
const policyPath = join(dir, 'policy.yaml');

function detectYaml() {
  return `detect:
    policy: "${policyPath}"
    policy_check_interval: 100ms
    baselines:
      storage: sqlite
      learning: { period: 0s, min_observations: 20 }
      sync_interval: 200ms`;
}

async function start(): Promise<AgentCollector> {
  return startAgentCollector({ dataDir, extraProcessors: detectYaml(), processors: ['normalize', 'tracegraph', 'detect', 'enrich'] });
}

const task = (c: AgentCollector, role: string, tools: string[], conversation: string) => invoke(c.httpUrl, { role, tools, conversation });
const api = <T>(c: AgentCollector, path: string) => adminGet<T>(c.collector.adminUrl, `/api${path}`);

const findings = (c: AgentCollector, kind: string) => api<{ findings: Finding[] }>(c, `/findings?kind=${kind}`).then((r) => r.findings);

interface Profile {
  state: string;
  calls: number;
  tools: { value: string; observations: number; conversations: number; first_seen: string; last_seen: string }[];
}

describe('baselines in the collector', () => {
  let c: AgentCollector;
  beforeAll(async () => {
    writeFileSync(policyPath, 'roles: {}\n');
    c = await start();
  });
  afterAll(async () => {
    await c?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('learns a role, then reports its first new tool once, on the API and on the exported span', async () => {
    for (let i = 0; i < 10; i++) await task(c, 'researcher', ['search', 'fetch_page'], `conv-${i % 4}`);
    const ready = await eventually('researcher to be ready', () => api<{ roles: { role: string; state: string }[] }>(c, '/baselines'), (b) => b.roles.some((r) => r.role === 'researcher' && r.state === 'ready'));
    expect(ready.roles.find((r) => r.role === 'researcher')).toMatchObject({ state: 'ready', calls: 20, invocations: 10 });
    expect(await findings(c, 'baseline_new_tool')).toEqual([]);
    await eventually('the learnt log line', async () => c.collector.logs.filter((l) => l.msg === 'baseline learnt: role now alerts on departures' && l.role === 'researcher'), (l) => l.length === 1);

    const traceId = await task(c, 'researcher', ['search', 'wire_money'], 'conv-x');
    const [f] = await eventually('the finding', () => findings(c, 'baseline_new_tool'), (l) => l.length > 0);
    expect(f).toMatchObject({ kind: 'baseline_new_tool', traceId, owasp: 'ASI10', evidence: { role: 'researcher', dimension: 'tool', value: 'wire_money', learnt_values: 2 } });
    // Learnt at once: the same new tool again is no second finding.
    await task(c, 'researcher', ['wire_money'], 'conv-y');
    await eventually('the second trace to be learnt', () => api<Profile>(c, '/baselines/researcher'), (p) => p.tools.some((t) => t.value === 'wire_money' && t.observations === 2));
    expect(await findings(c, 'baseline_new_tool')).toHaveLength(1);

    const exported = await c.exported(1);
    const shows = await eventually('the exported span', async () => (await c.exported(1)).find((s) => s.spanId === f!.spanIds[0]), (s) => s !== undefined);
    expect(shows!.attributes['agentsec.finding.kind']).toBe('baseline_new_tool');
    expect(exported.length).toBeGreaterThan(0);
  });

  it('serves the profile and the generated policy with its evidence and a review of risky entries', async () => {
    const p = await api<Profile>(c, '/baselines/researcher');
    expect(p.state).toBe('ready');
    const search = p.tools.find((t) => t.value === 'search')!;
    expect(search).toMatchObject({ observations: 11, conversations: 5 });
    expect(Date.parse(search.first_seen)).toBeLessThanOrEqual(Date.parse(search.last_seen));
    const res = await fetch(`${c.collector.adminUrl}/api/baselines/nobody`);
    expect(res.status).toBe(404);

    const gen = await api<{ roles: Record<string, { mode: string; allowed_tools: string[]; evidence: { tools: Record<string, { observations: number; conversations: number }> } }>; review: Record<string, { tools?: { value: string; reason: string }[] }> }>(c, '/policy/generated');
    expect(gen.roles.researcher!.mode).toBe('enforce');
    expect(gen.roles.researcher!.allowed_tools).toEqual(['fetch_page', 'search']);
    expect(gen.roles.researcher!.evidence.tools.search).toMatchObject({ observations: 11, conversations: 5 });
    // wire_money: a risky name, and seen only twice.
    expect(gen.review.researcher!.tools!.map((t) => t.value)).toEqual(['wire_money']);
  });

  it('reloads the policy when the file changes, and keeps the old one when the new one is broken', async () => {
    writeFileSync(policyPath, 'roles:\n  researcher: { mode: enforce, allowed_tools: [search] }\n');
    await eventually('the reload', async () => c.collector.logs.filter((l) => l.msg === 'policy reloaded').length, (n) => n >= 1);
    await task(c, 'researcher', ['fetch_page'], 'conv-z');
    await eventually('a policy_violation', () => findings(c, 'policy_violation'), (l) => l.some((f) => (f.evidence as { value?: string }).value === 'fetch_page'));

    writeFileSync(policyPath, 'roles:\n  researcher: { mode: enforce, allowed_tools: [search], max_dept: 3 }\n');
    const rejected = await eventually('the rejection', async () => c.collector.logs.filter((l) => l.msg === 'new policy rejected; the previous one stays in force'), (l) => l.length >= 1);
    expect(JSON.stringify(rejected[0]!.issues)).toContain('max_dept');
    const metrics = await (await fetch(`${c.collector.adminUrl}/metrics`)).text();
    expect(metricValue(metrics, 'agentsec_policy_reloads_total', { result: 'rejected' })).toBe(1);
    // The old policy is still enforced: fetch_page in a new trace is a violation again.
    const traceId = await task(c, 'researcher', ['fetch_page'], 'conv-w');
    await eventually('a violation under the old policy', () => findings(c, 'policy_violation'), (l) => l.some((f) => f.traceId === traceId));
  });

  it('keeps every profile across a restart', async () => {
    const before = await api<Profile>(c, '/baselines/researcher');
    await c.stop();
    writeFileSync(policyPath, 'roles: {}\n');
    c = await start();
    const after = await api<Profile>(c, '/baselines/researcher');
    expect(after).toEqual(before);
    // Known after the restart: no finding for a learnt tool, one for a new one.
    await task(c, 'researcher', ['search', 'fetch_page', 'wire_money'], 'conv-v');
    const traceId = await task(c, 'researcher', ['purge_cache'], 'conv-u');
    const got = await eventually('the new finding', () => findings(c, 'baseline_new_tool'), (l) => l.length > 0);
    expect(got.map((f) => [f.traceId, (f.evidence as { value: string }).value])).toEqual([[traceId, 'purge_cache']]);
  });
});
