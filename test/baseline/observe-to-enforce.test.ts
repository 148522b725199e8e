// Observe-to-enforce (reference/detection.md §10) end to end, over real sockets with the real
// collector and the demo's agents (demo/agents.ts: one OpenTelemetry TracerProvider per agent
// service, OTLP/protobuf over HTTP):
//   1. a collector with baselines (SQLite in a temp data dir, learning 1 s) and the demo policy
//      (its capabilities label the sinks; every role observed) learns from the demo's normal tasks;
//   2. GET /api/policy/generated, and `agentsec policy generate` run as a child process on the same
//      store once that collector has stopped, give the least-privilege policy: roles with their
//      allowed tools, hosts and delegations, max depth and a calls-per-minute ceiling, each with
//      its evidence; the sinks, risky tools and outside hosts in `review`;
//   3. an operator accepts the review (moves every entry into its role: the benign traffic used
//      them all) and a second collector enforces the policy. The very tasks that taught it give no
//      policy_violation; each attack of demo/scenarios.ts gives one, but those that stay within
//      what the roles did, which give their own finding instead (see EXPECT below).
//
// Spans carry their own times: the tasks one minute apart (span time, in the recent past), so a
// role's calls per minute are what a steady load gives (the generated ceiling is 3× the busiest
// 5-minute window's average rate; enforcement counts single minutes).
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { startAgentCollector, type AgentCollector } from '../helpers/agent-collector.ts';
import { AgentCast, Rng, makeCredentials, type TaskPlan } from '../../demo/agents.ts';
import { ATTACKS, normalTask, policyViolationAttack, TEST_SIZE, type Attack } from '../../demo/scenarios.ts';
import type { Finding, FindingKind } from '../../src/detect/finding.ts';
import type { GeneratedPolicy } from '../../src/baseline/generate.ts';
import { eventually } from '../helpers/wait.ts';
import { adminGet } from '../helpers/collector.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const DEMO_POLICY = join(REPO, 'config/policies/demo.yaml');
const SEED = 20261205;
const TASKS = 10;
const MIN = 60_000;

/**
 * What each attack gives under the generated policy, enforced. An attack that only does what its
 * roles did while the policy was learnt cannot be a policy_violation: it gives its own finding.
 */
const EXPECT: Record<string, { violation: boolean; why: string }> = {
  'credential forwarding': { violation: true, why: 'research calls crm_lookup at crm.corp.internal: a tool and a host it never used' },
  'capability escalation': { violation: true, why: 'research fetches from widget-industry-news.example, a host outside its allowed_hosts' },
  'data exfiltration': { violation: true, why: 'analysis posts to fmt.quickrender-saas.example, a host outside its allowed_hosts' },
  'delegation loop': { violation: true, why: 'research calls ask_orchestrator and delegates to orchestrator: neither allowed' },
  'excessive depth': { violation: true, why: 'research calls delegate_analysis and delegates to analysis: neither allowed' },
  'policy violation': { violation: true, why: 'writer runs run_python, outside its allowed_tools' },
  // By construction, no violation: the same tools and hosts as normal traffic, below the rate ceiling.
  'tool loop': { violation: false, why: 'research re-fetches a page of a site it reads normally (fetch_url, an allowed host): 25 calls in a few seconds, below its ceiling; tool_loop finds it' },
  'zombie agent': { violation: false, why: 'orchestrator → writer → kb_write at kb.corp.internal, as every normal task does; only the timing (after its caller returned) differs: zombie_agent finds it' },
  'credential shared': { violation: false, why: 'model calls with a shared key: models are not in the policy and each role stays below its ceiling; credential_shared finds it' },
};

/** The demo's four agent services sending OTLP/protobuf to `url`; the same seed, the same credentials and pods. */
function agents(url: string): AgentCast {
  const rng = new Rng(SEED);
  return new AgentCast({
    credentials: makeCredentials(rng),
    rng,
    processor: () => new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${url}/v1/traces`, timeoutMillis: 10_000 }), maxQueueSize: 100_000, maxExportBatchSize: 2_000, scheduledDelayMillis: 60_000 }),
  });
}

/** Records a task starting at `at` (ms, span time) and flushes it to the collector; returns its trace id. */
async function send(cast: AgentCast, plan: TaskPlan, at: number): Promise<string> {
  const traceId = cast.emit(plan, at);
  await cast.forceFlush();
  return traceId;
}

async function findings(c: AgentCollector): Promise<Finding[]> {
  return (await adminGet<{ findings: Finding[] }>(c.collector.adminUrl, '/api/findings')).findings;
}

const show = (fs: readonly Finding[]) => fs.map((f) => `${f.kind} ${f.chain.map((h) => h.role).join('>')}: ${f.summary}`).join('\n');

const started: AgentCollector[] = [];
const casts: AgentCast[] = [];
afterAll(async () => {
  for (const c of casts) await c.shutdown().catch(() => {});
  for (const c of started) await c.stop().catch(() => {});
});

describe('observe-to-enforce: baselines → generated policy → enforced', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'agentsec-o2e-'));
  const detectYaml = (extra: string) => `detect: { policy: "${DEMO_POLICY}", ${extra} }`;
  const baselinesYaml = 'baselines: { storage: sqlite, sqlite_path: baselines.db, learning: { period: 1s, min_observations: 20 }, sync_interval: 100ms }';
  const processors = ['normalize', 'tracegraph', 'detect', 'enrich'];
  // The normal tasks, planned once: taught, then replayed to the enforcing collector.
  const planner = agents('http://127.0.0.1:9');
  casts.push(planner);
  const rng = new Rng(SEED + 1);
  const plans = Array.from({ length: TASKS }, () => normalTask(planner, rng, TEST_SIZE));
  const attacks: Attack[] = [...ATTACKS, policyViolationAttack('writer')];
  /** Span time: the normal tasks a minute apart, then the replay, then the attacks two minutes apart, all in the recent past. */
  const t0 = Date.now() - (2 * TASKS + 2 * attacks.length + 10) * MIN;
  let generated: GeneratedPolicy;
  let enforced: string;

  it('learns the normal tasks and generates a least-privilege policy with its evidence and a review section', async () => {
    const teach = await startAgentCollector({ dataDir, processors, extraProcessors: detectYaml(baselinesYaml) });
    started.push(teach);
    const cast = agents(teach.httpUrl);
    casts.push(cast);
    for (const [i, plan] of plans.entries()) await send(cast, plan, t0 + i * MIN);

    const admin = teach.collector.adminUrl;
    const baselines = await eventually('every role learnt', () => adminGet<{ store: string; roles: { role: string; state: string; invocations: number }[] }>(admin, '/api/baselines'), (b) => b.roles.find((r) => r.role === 'writer')?.invocations === TASKS);
    expect(baselines.store).toBe('sqlite');
    expect(baselines.roles.map((r) => r.role).sort()).toEqual(['analysis', 'orchestrator', 'research', 'writer']);
    expect(baselines.roles.every((r) => r.state === 'ready'), JSON.stringify(baselines)).toBe(true);
    // The normal tasks are normal: no policy_violation (every role is observed), nothing else either.
    const learnt = await findings(teach);
    expect(learnt.filter((f) => !f.kind.startsWith('baseline_')), show(learnt)).toEqual([]);

    generated = await adminGet<GeneratedPolicy>(admin, '/api/policy/generated?mode=enforce');
    // The demo policy's capabilities, domains and egress are kept.
    expect(generated.internal_domains).toEqual(['corp.internal', 'svc.cluster.local']);
    expect(generated.capabilities!.map((c) => c.name)).toContain('kb-write');
    expect(Object.keys(generated.roles).sort()).toEqual(['analysis', 'orchestrator', 'research', 'writer']);
    const evidenceShape = { observations: expect.any(Number), conversations: expect.any(Number), first_seen: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), last_seen: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) };
    for (const [role, r] of Object.entries(generated.roles)) {
      expect(r.mode, role).toBe('enforce');
      expect(r.max_depth, role).toBe(role === 'orchestrator' ? 0 : 1);
      expect(r.max_calls_per_minute, role).toBeGreaterThanOrEqual(10);
      expect(r.evidence.calls_per_minute, role).toMatchObject({ observed_max: expect.any(Number), median: expect.any(Number), windows: expect.any(Number) });
      expect(r.evidence.max_depth, role).toEqual({ observed: r.max_depth, invocations: expect.any(Number) });
      expect(r.evidence.learning, role).toMatchObject({ state: 'ready', calls: expect.any(Number) });
      // Every allowed entry has its evidence: seen at least 3 times in at least 2 conversations.
      for (const [list, ev] of [[r.allowed_tools, r.evidence.tools], [r.allowed_hosts, r.evidence.hosts], [r.allowed_delegations, r.evidence.delegations]] as const) {
        expect(Object.keys(ev).sort(), role).toEqual([...list].sort());
        for (const e of Object.values(ev)) {
          expect(e).toEqual(evidenceShape);
          expect(e.observations).toBeGreaterThanOrEqual(3);
          expect(e.conversations).toBeGreaterThanOrEqual(2);
        }
      }
    }
    console.log(
      `observe-to-enforce, generated from ${TASKS} normal tasks:\n${Object.entries(generated.roles).map(([role, r]) => `  ${role.padEnd(12)} tools ${r.allowed_tools.join(',') || '-'} · hosts ${r.allowed_hosts.join(',') || '-'} · delegations ${r.allowed_delegations.join(',') || '-'} · max_depth ${r.max_depth} · max_calls_per_minute ${r.max_calls_per_minute} (busiest window ${r.evidence.calls_per_minute?.observed_max}/min)`).join('\n')}\n` +
        `  review: ${Object.entries(generated.review).map(([role, r]) => `${role}: ${Object.entries(r).map(([k, es]) => `${k} ${(es as { value: string }[]).map((e) => e.value).join(',')}`).join('; ')}`).join(' | ')}`,
    );
    const o = generated.roles.orchestrator!, research = generated.roles.research!, analysis = generated.roles.analysis!, writer = generated.roles.writer!;
    expect(o.allowed_delegations).toEqual(['analysis', 'research', 'writer']);
    expect(o.allowed_tools).toEqual(expect.arrayContaining(['delegate_analysis', 'delegate_research', 'delegate_writer']));
    expect(o.evidence.delegations.writer!.observations).toBe(TASKS);
    expect(o.evidence.delegations.writer!.conversations).toBe(TASKS);
    for (const r of [research, analysis, writer]) expect(r.allowed_delegations).toEqual([]);
    expect(research.allowed_tools).toEqual(['web_search']);
    expect(analysis.allowed_tools).toEqual(['sales_db_query']);
    expect(writer.allowed_tools).toEqual(['kb_search']);
    expect(writer.allowed_hosts).toEqual(expect.arrayContaining(['kb.corp.internal']));
    expect(analysis.allowed_hosts).toEqual(expect.arrayContaining(['render.corp.internal', 'sales-db.corp.internal']));

    // Review: the sinks the demo policy labels, the risky names, the hosts outside.
    const review = generated.review as Record<string, { tools?: { value: string; reason: string }[]; hosts?: { value: string; reason: string }[] }>;
    const reviewed = (role: string, kind: 'tools' | 'hosts', value: string) => review[role]?.[kind]?.find((e) => e.value === value);
    expect(reviewed('writer', 'tools', 'kb_write')).toMatchObject({ reason: expect.stringMatching(/^labelled sink: privileged/), ...evidenceShape });
    expect(reviewed('analysis', 'tools', 'format_report')).toMatchObject({ reason: expect.stringMatching(/^labelled sink: egress/) });
    expect(reviewed('research', 'tools', 'fetch_url')).toMatchObject({ reason: expect.stringMatching(/^labelled sink: egress/) });
    expect(reviewed('orchestrator', 'tools', 'send_email')).toMatchObject({ reason: expect.stringMatching(/^labelled sink: egress/) });
    expect(reviewed('research', 'hosts', 'api.search.example')).toMatchObject({ reason: expect.stringMatching(/^new egress/) });
    // Every fetched site is there, none of them allowed.
    expect(research.allowed_hosts.filter((h) => h.startsWith('www.'))).toEqual([]);
    expect(review.research!.hosts!.filter((h) => h.value.startsWith('www.')).length).toBeGreaterThan(3);

    await teach.stop();
    started.splice(started.indexOf(teach), 1);
  }, 90_000);

  it('`agentsec policy generate` reads the same policy from the stored baselines', async () => {
    expect(generated).toBeDefined();
    const config = join(dataDir, 'agentsec.yaml');
    writeFileSync(
      config,
      `receivers:\n  otlp: { protocols: { http: { endpoint: "127.0.0.1:0" } } }\nprocessors:\n  normalize: {}\n  tracegraph: {}\n  ${detectYaml(baselinesYaml)}\n` +
        `exporters:\n  debug: {}\nservice:\n  data_dir: "${dataDir}"\n  pipelines:\n    traces: { receivers: [otlp], processors: [normalize, tracegraph, detect], exporters: [debug] }\n`,
    );
    const out = join(dataDir, 'generated.yaml');
    const { stderr } = await promisify(execFile)(process.execPath, ['src/cli.ts', 'policy', 'generate', '--config', config, '--mode', 'enforce', '--out', out], { cwd: REPO });
    expect(stderr).toContain(`policy written to ${out}`);
    const text = readFileSync(out, 'utf8');
    expect(text).toMatch(/^# agentsec policy, generated .* from the sqlite baselines/);
    const fromCli = parseYaml(text) as GeneratedPolicy;
    for (const [role, r] of Object.entries(generated.roles)) {
      const c = fromCli.roles[role]!;
      expect({ tools: c.allowed_tools, hosts: c.allowed_hosts, delegations: c.allowed_delegations, depth: c.max_depth, rate: c.max_calls_per_minute }, role).toEqual({
        tools: r.allowed_tools, hosts: r.allowed_hosts, delegations: r.allowed_delegations, depth: r.max_depth, rate: r.max_calls_per_minute,
      });
      expect(c.evidence.tools, role).toEqual(r.evidence.tools);
    }
    expect(Object.keys(fromCli.review).sort()).toEqual(Object.keys(generated.review).sort());

    // The operator's review: every entry was the normal tasks' own doing, so each is accepted.
    const accepted = structuredClone(fromCli) as GeneratedPolicy & { review: Record<string, Record<string, { value: string }[]>> };
    const into = { tools: 'allowed_tools', hosts: 'allowed_hosts', delegations: 'allowed_delegations' } as const;
    for (const [role, lists] of Object.entries(accepted.review)) {
      for (const [kind, entries] of Object.entries(lists)) {
        const list = accepted.roles[role]![into[kind as keyof typeof into]];
        for (const e of entries) list.push(e.value);
        list.sort();
      }
    }
    accepted.review = {};
    enforced = join(dataDir, 'enforced.yaml');
    writeFileSync(enforced, stringifyYaml(accepted));
  }, 60_000);

  it('enforced: the tasks that taught it give no policy_violation; the attacks give one, but those that stay within the roles', async () => {
    expect(enforced).toBeDefined();
    const guard = await startAgentCollector({ processors, extraProcessors: `detect: { policy: "${enforced}" }` });
    started.push(guard);
    const cast = agents(guard.httpUrl);
    casts.push(cast);
    const replay = t0 + (TASKS + 1) * MIN;
    const replayed = new Set<string>();
    for (const [i, plan] of plans.entries()) replayed.add(await send(cast, plan, replay + i * MIN));
    // Everything of the replay is judged once its batches are acknowledged (detect runs before enrich acknowledges).
    const benign = await findings(guard);
    expect(benign, show(benign)).toEqual([]);

    const attackAt = replay + (TASKS + 1) * MIN;
    const results: { name: string; kinds: FindingKind[]; violations: string[] }[] = [];
    for (const [k, attack] of attacks.entries()) {
      const traces = new Set<string>();
      const attackPlans = attack.plans(cast, new Rng(SEED + 100 + k));
      for (const [j, plan] of attackPlans.entries()) traces.add(await send(cast, plan, attackAt + 2 * k * MIN + j * 1500));
      const expectViolation = EXPECT[attack.name]!.violation;
      const wanted: FindingKind[] = expectViolation ? ['policy_violation', ...attack.expect] : attack.expect;
      const got = await eventually(
        attack.name,
        async () => (await findings(guard)).filter((f) => traces.has(f.traceId)),
        (fs) => wanted.every((w) => fs.some((f) => f.kind === w)),
      );
      results.push({
        name: attack.name,
        kinds: [...new Set(got.map((f) => f.kind))].sort(),
        violations: got.filter((f) => f.kind === 'policy_violation').map((f) => `${f.evidence.role} ${f.evidence.rule} ${f.evidence.value}`),
      });
    }
    console.log(
      `observe-to-enforce, attacks under the generated policy (enforced):\n${results.map((r) => `  ${r.name.padEnd(22)} ${r.kinds.join(', ')}${r.violations.length ? `\n  ${''.padEnd(22)} policy_violation: ${r.violations.join('; ')}` : ''}`).join('\n')}`,
    );
    for (const r of results) {
      const attack = attacks.find((a) => a.name === r.name)!;
      const e = EXPECT[r.name];
      expect(e, `no expectation for ${r.name}`).toBeDefined();
      expect(r.violations.length > 0, `${r.name}: ${e!.why}\n${JSON.stringify(r)}`).toBe(e!.violation);
      // Its own findings too (the generated policy keeps the demo policy's capabilities).
      for (const k of attack.expect) expect(r.kinds, r.name).toContain(k);
    }
    // Still nothing on the replayed normal tasks.
    const late = (await findings(guard)).filter((f) => replayed.has(f.traceId));
    expect(late, show(late)).toEqual([]);
  }, 90_000);
});
