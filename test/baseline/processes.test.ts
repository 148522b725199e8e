// Baselines across collector processes (real child processes of `agentsec run`, as deployed):
// - two gateway replicas sharing one real redis-server, each fed half of the traces (split by
//   trace, as a trace-ID load balancer does), hold the same profile as one collector fed all;
// - SIGHUP reloads the policy file (with file polling off), and a broken one is refused;
// - `agentsec policy generate` writes, from the SQLite baselines of a stopped collector, a policy
//   that the policy loader itself accepts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { recordInvocation, sendSpans, type Invocation } from '../helpers/agent-traffic.ts';
import { adminGet, spawnCollector, type CollectorProcess } from '../helpers/collector.ts';
import { eventually } from '../helpers/wait.ts';
import { startAgentCollector } from '../helpers/agent-collector.ts';
import { redisUnavailable, startRedis } from '../helpers/redis.ts';
import { parsePolicy } from '../../src/detect/policy.ts';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'agentsec-bl-proc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Proc extends CollectorProcess {
  httpUrl: string;
  adminUrl: string;
}

function configYaml(dataDir: string, baselines: string, policy = ''): string {
  return `receivers:
  otlp: { protocols: { http: { endpoint: "127.0.0.1:0" } } }
processors:
  normalize: {}
  tracegraph: {}
  detect:
    ${policy ? `policy: "${policy}"\n    policy_check_interval: 0s` : ''}
    baselines:
      ${baselines}
      learning: { period: 0s, min_observations: 10 }
      sync_interval: 200ms
  enrich: { hold: 50ms }
exporters:
  debug: {}
extensions:
  admin: { endpoint: "127.0.0.1:0" }
service:
  extensions: [admin]
  data_dir: "${dataDir}"
  pipelines:
    traces: { receivers: [otlp], processors: [normalize, tracegraph, detect, enrich], exporters: [debug] }
`;
}

async function startReplica(name: string, yaml: string): Promise<Proc> {
  const p = await spawnCollector(join(dir, `${name}.yaml`), yaml);
  return { ...p, httpUrl: `http://${p.endpoints.otlp!.http}`, adminUrl: `http://${p.endpoints.admin!.http}` };
}

interface Profile {
  role: string;
  state: string;
  calls: number;
  invocations: number;
  first_seen: string;
  last_seen: string;
  tools: unknown[];
  endpoints: unknown[];
  delegations: unknown[];
  models: unknown[];
  mcp: unknown[];
  volume: { max_depth: number };
}

const comparable = (p: Profile) => ({ ...p, volume: { max_depth: p.volume.max_depth } });

/** Traffic of three roles: a planner that delegates, with tools rotating over conversations. */
function plan(n: number): Invocation[] {
  const out: Invocation[] = [];
  for (let i = 0; i < n; i++) {
    out.push(i % 3 === 0
      ? { role: 'planner', tools: ['plan'], conversation: `c${i % 5}`, delegate: { role: i % 2 ? 'researcher' : 'writer', tools: i % 2 ? ['search', 'fetch_page'] : ['draft'] } }
      : { role: i % 3 === 1 ? 'researcher' : 'writer', tools: i % 3 === 1 ? ['search'] : ['draft', 'publish'], conversation: `c${i % 7}` });
  }
  return out;
}

const noRedis = redisUnavailable();

describe.skipIf(noRedis !== undefined)(`two collector processes sharing Redis${noRedis ? ` (skipped: ${noRedis})` : ''}`, () => {
  it('each fed half of the traces, both hold the profile of one collector fed all of them', async () => {
    const redis = await startRedis();
    const prefix = redis.prefix();
    const baselines = `storage: redis\n      redis: { url: "${redis.url}", key_prefix: "${prefix}" }`;
    const [a, b] = await Promise.all([
      startReplica('replica-a', configYaml(join(dir, 'a'), baselines)),
      startReplica('replica-b', configYaml(join(dir, 'b'), baselines)),
    ]);
    const one = await startAgentCollector({
      extraProcessors: `detect:\n    baselines: { storage: memory, learning: { period: 0s, min_observations: 10 }, sync_interval: 200ms }`,
      processors: ['normalize', 'tracegraph', 'detect', 'enrich'],
    });
    try {
      const invocations = plan(30);
      for (const [i, inv] of invocations.entries()) {
        const { spans } = await recordInvocation(inv);
        // The same spans to one replica (alternating by trace) and to the single collector.
        await Promise.all([sendSpans(i % 2 === 0 ? a.httpUrl : b.httpUrl, spans), sendSpans(one.httpUrl, spans)]);
      }
      const roles = ['planner', 'researcher', 'writer'];
      for (const role of roles) {
        const want = await eventually(`${role} in the single collector`, () => adminGet<Profile>(one.collector.adminUrl, `/api/baselines/${role}`).catch(() => undefined), (p) => p !== undefined && p.invocations === invocations.filter((x) => x.role === role || x.delegate?.role === role).length);
        for (const replica of [a, b]) {
          const got = await eventually(`${role} merged in a replica`, () => adminGet<Profile>(replica.adminUrl, `/api/baselines/${role}`).catch(() => undefined), (p) => p !== undefined && p.invocations === want!.invocations && p.calls === want!.calls);
          expect(comparable(got!)).toEqual(comparable(want!));
        }
      }
      const planner = await adminGet<Profile>(a.adminUrl, '/api/baselines/planner');
      expect((planner.delegations as { value: string }[]).map((d) => d.value).sort()).toEqual(['researcher', 'writer']);
    } finally {
      expect(await a.stop()).toBe(0);
      expect(await b.stop()).toBe(0);
      await one.stop();
      await redis.stop();
    }
  });
});

describe('a collector process and its policy', () => {
  it('reloads the policy on SIGHUP, refuses a broken one, and its baselines generate a loadable policy', async () => {
    const dataDir = join(dir, 'sighup');
    const policy = join(dir, 'sighup-policy.yaml');
    writeFileSync(policy, 'roles: {}\n');
    const yaml = configYaml(dataDir, 'storage: sqlite', policy);
    const p = await startReplica('sighup', yaml);
    let exit: number | null = null;
    try {
      for (const inv of plan(24)) await sendSpans(p.httpUrl, (await recordInvocation(inv)).spans);
      await eventually('the researcher profile', () => adminGet<Profile>(p.adminUrl, '/api/baselines/researcher').catch(() => undefined), (x) => x !== undefined && x.invocations === 12);

      writeFileSync(policy, 'roles:\n  writer: { mode: enforce, allowed_tools: [draft] }\n');
      p.child.kill('SIGHUP');
      await eventually('the reload', async () => p.logs.filter((l) => l.msg === 'policy reloaded').length, (n) => n === 1);
      writeFileSync(policy, 'roles: [not, a, map]\n');
      p.child.kill('SIGHUP');
      const rejected = await eventually('the rejection', async () => p.logs.filter((l) => String(l.msg).startsWith('new policy rejected')), (l) => l.length === 1);
      expect(JSON.stringify(rejected[0]!.issues)).toContain('policy::roles');
      // Still running, with the previous policy: publish by the writer is a violation.
      await sendSpans(p.httpUrl, (await recordInvocation({ role: 'writer', tools: ['publish'], conversation: 'z' })).spans);
      const violations = await eventually('a violation', () => adminGet<{ findings: { evidence: { value: string } }[] }>(p.adminUrl, '/api/findings?kind=policy_violation'), (r) => r.findings.length > 0);
      expect(violations.findings.map((f) => f.evidence.value)).toEqual(['publish']);
    } finally {
      exit = await p.stop();
    }
    expect(exit).toBe(0);
    writeFileSync(policy, 'roles: {}\n');

    const configFile = join(dir, 'sighup.yaml');
    const out = join(dir, 'generated.yaml');
    const gen = spawnSync(process.execPath, [CLI, 'policy', 'generate', '--config', configFile, '--out', out], { encoding: 'utf8' });
    expect(gen.stderr).toContain(`policy written to ${out}`);
    expect(gen.status).toBe(0);
    const text = readFileSync(out, 'utf8');
    expect(text).toMatch(/^# agentsec policy, generated .* from the sqlite baselines/);
    const loaded = parsePolicy(text, out); // the policy file's own format: the loader accepts it
    expect(loaded.role('researcher')).toMatchObject({ mode: 'enforce', allowed_tools: ['fetch_page', 'search'] });
    expect(loaded.role('planner')!.allowed_delegations).toEqual(['researcher', 'writer']);
    const doc = parseYaml(text) as { roles: Record<string, { evidence: { tools: Record<string, { observations: number; conversations: number; first_seen: string }> } }>; review: Record<string, { tools: { value: string; reason: string }[] }> };
    expect(doc.roles.researcher!.evidence.tools.search).toMatchObject({ observations: 12, conversations: expect.any(Number) });
    // publish is a risky name: for review, not allowed.
    expect(doc.review.writer!.tools.map((t) => t.value)).toContain('publish');
    expect(loaded.role('writer')!.allowed_tools).toEqual(['draft']);

    const one = spawnSync(process.execPath, [CLI, 'policy', 'generate', '--config', configFile, '--role', 'nobody'], { encoding: 'utf8' });
    expect(one.status).toBe(3);
    expect(one.stderr).toContain('--role: no baseline for role "nobody" (known: planner, researcher, writer)');
    const bad = spawnSync(process.execPath, [CLI, 'policy', 'generate', '--config', configFile, '--mode', 'strict'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
  });
});
