// Sidecar → gateway, end to end with real processes and sockets: the demo's agents (one
// TracerProvider per service, each with the official OTLP/protobuf exporter) send the demo's
// credential-forwarding attack (research presents the orchestrator's CRM token: azp
// orchestrator, crm:read crm:write) to the sidecar as deployed (config/agentsec-sidecar.yaml,
// normalize mode: redact), which forwards through a TCP tap (every byte that leaves it) to the
// gateway as deployed (config/k8s/gateway.yaml: its ConfigMap's config and policy, full
// analysis, trust_forwarded_claims: true; Redis for its baselines), which exports to a fake
// backend. The same attack sent by identical agents straight to that gateway gives the same
// credential_forwarding finding (kind, severity, confidence, holder, chain, evidence): the
// claims travelled with the fingerprint. No raw token in any byte that leaves the sidecar or
// the gateway. And claims attributes forged by an agent that sends to a gateway directly are
// ignored by a gateway that does not trust them (the default: config/agentsec-forward.yaml),
// while one that trusts them is fooled — which is why trust is off unless set.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentCast, makeCredentials, Rng, spanCount, type PlannedSpan, type TaskPlan } from '../../demo/agents.ts';
import { ATTACKS } from '../../demo/scenarios.ts';
import { CredentialReader } from '../../src/agent/credentials.ts';
import type { Finding } from '../../src/detect/finding.ts';
import { FakeBackend } from '../helpers/fake-backend.ts';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis.ts';
import { configMapMounts, k8sArgv, localPorts, image, k8sEnv, k8sManifests, manifest, podContainers, REPO, runCommand, terminate, withoutInit, type Running } from './deploy.ts';
import { eventually } from '../helpers/wait.ts';

const img = image();
const all = k8sManifests();
const SEED = 4711;
const ATTACK = ATTACKS.find((a) => a.name === 'credential forwarding')!;

/** The demo's four agent services, identical for every seed-equal call, exporting to `httpEndpoint`. */
function agents(httpEndpoint: string): AgentCast {
  const rng = new Rng(SEED);
  return new AgentCast({
    credentials: makeCredentials(rng),
    rng,
    processor: () => new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${httpEndpoint}/v1/traces` }), scheduledDelayMillis: 50 }),
  });
}

function walk(s: PlannedSpan, f: (s: PlannedSpan) => void): void {
  f(s);
  for (const c of s.children) walk(c, f);
}

/** The span of the plan that presents the CRM token. */
function crmLookup(plan: TaskPlan): PlannedSpan {
  let found: PlannedSpan | undefined;
  walk(plan.root, (s) => {
    if (s.attributes['gen_ai.tool.name'] === 'crm_lookup') found = s;
  });
  return found!;
}

/** Every secret the agents hold or present: whole, and a JWT's payload and signature apart. */
function secrets(cast: AgentCast, plan: TaskPlan): string[] {
  const c = cast.credentials;
  const raw = [...Object.values(c.model), ...Object.values(c.agents), c.orchestratorMail, c.researchSearch, c.analysisRender, c.writerKb];
  walk(plan.root, (s) => {
    const h = s.attributes['http.request.header.authorization'];
    for (const v of Array.isArray(h) ? h : []) raw.push(String(v).replace(/^Bearer /, ''));
  });
  return [...new Set(raw.flatMap((t) => (t.split('.').length === 3 ? [t, ...t.split('.').slice(1)] : [t])))];
}

/** A TCP pass-through that keeps every byte the client sends. */
async function tap(target: number): Promise<{ port: number; bytes(): Buffer; close(): Promise<void> }> {
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (d: Buffer) => chunks.push(d));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    port: (server.address() as { port: number }).port,
    bytes: () => Buffer.concat(chunks),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((done) => server.close(() => done()));
    },
  };
}

interface Collector {
  run: Running;
  admin: string;
  http: string;
  grpcPort: number;
  backend: FakeBackend;
}

/** The gateway of config/k8s/gateway.yaml: its command, environment and ConfigMap; local ports, backend and Redis. */
async function k8sGateway(redis: TestRedis | undefined): Promise<Collector & { hmacKey: string }> {
  const workload = manifest(all, 'Deployment', 'agentsec-gateway');
  const container = podContainers(workload).find((c) => c.name === 'agentsec')!;
  const paths = configMapMounts(all, workload, container).add(img.workdir, REPO);
  // The ConfigMap as mounted, with Redis here instead of the cluster's Service.
  const file = paths.map('/etc/agentsec/agentsec.yaml');
  const text = readFileSync(file, 'utf8');
  const clusterRedis = 'redis://agentsec-redis.agentsec.svc.cluster.local:6379';
  expect(text).toContain(clusterRedis);
  expect(text).toMatch(/normalize:\n\s+hmac_key: \$\{env:AGENTSEC_HMAC_KEY\}\n\s+trust_forwarded_claims: true\n/);
  const local = text.replaceAll('/etc/agentsec/', `${paths.map('/etc/agentsec')}/`);
  writeFileSync(file, redis ? local.replace(clusterRedis, redis.url) : local.replace('storage: redis', 'storage: sqlite'));
  const backend = await FakeBackend.start();
  const p = await localPorts();
  const env: Record<string, string> = { ...img.env, ...paths.mapEnv(k8sEnv(all, workload.metadata.namespace!, container.env)), AGENTSEC_OTLP_ENDPOINT: `http://${backend.grpcAddress}`, ...p.env };
  const command = k8sArgv(img, container).map((a) => paths.map(a));
  const admin = `http://127.0.0.1:${p.admin}`;
  return { run: await runCommand(command, env, admin), admin, http: `http://127.0.0.1:${p.http}`, grpcPort: p.grpc, backend, hmacKey: env.AGENTSEC_HMAC_KEY! };
}

/** The sidecar of config/k8s/agent-with-sidecar.yaml (AGENTSEC_MODE=sidecar), forwarding to `gateway` uncompressed (so the tap reads it). */
async function sidecar(gateway: string): Promise<{ run: Running; http: string }> {
  const agent = manifest(all, 'Deployment', 'research-agent');
  const container = podContainers(agent).find((c) => c.name === 'agentsec')!;
  const p = await localPorts();
  const env: Record<string, string> = {
    ...img.env,
    ...k8sEnv(all, agent.metadata.namespace!, container.env),
    ...p.env,
    AGENTSEC_GATEWAY_ENDPOINT: gateway,
    AGENTSEC_GATEWAY_COMPRESSION: 'none',
    AGENTSEC_DATA_DIR: mkdtempSync(join(tmpdir(), 'agentsec-sidecar-')),
  };
  expect(env.AGENTSEC_MODE).toBe('sidecar');
  const command = k8sArgv(img, container);
  return { run: await runCommand(command, env, `http://127.0.0.1:${p.admin}`), http: `http://127.0.0.1:${p.http}` };
}

/** `docker run -e AGENTSEC_OTLP_ENDPOINT=…`: config/agentsec-forward.yaml, trust_forwarded_claims at its default. */
async function forwardGateway(): Promise<Collector> {
  const backend = await FakeBackend.start();
  const p = await localPorts();
  const env = { ...img.env, ...p.env, AGENTSEC_OTLP_ENDPOINT: `http://${backend.grpcAddress}`, AGENTSEC_DATA_DIR: mkdtempSync(join(tmpdir(), 'agentsec-forward-')) };
  const admin = `http://127.0.0.1:${p.admin}`;
  return { run: await runCommand([...withoutInit(img.entrypoint).command, ...img.cmd], env, admin), admin, http: `http://127.0.0.1:${p.http}`, grpcPort: p.grpc, backend };
}

async function findings(c: Collector, traceId: string): Promise<Finding[]> {
  const r = await fetch(`${c.admin}/api/findings?trace=${traceId}`);
  return ((await r.json()) as { findings: Finding[] }).findings;
}

/** The credential_forwarding finding of a trace, once made. */
function forwardingFinding(c: Collector, traceId: string): Promise<Finding> {
  return eventually(`credential_forwarding in ${traceId}`, async () => (await findings(c, traceId)).find((f) => f.kind === 'credential_forwarding'), (f) => f !== undefined, 15_000).then((f) => f!);
}

/** Every span of a trace the backend received, as plain data. */
function exported(backend: FakeBackend, traceId: string) {
  return backend.plainSpans().filter((s) => s.traceId === traceId);
}

/** Sends a plan through a cast of agents and returns its trace id. */
async function send(cast: AgentCast, plan: TaskPlan): Promise<string> {
  const traceId = cast.emit(plan, Date.now() - plan.duration);
  await cast.forceFlush();
  return traceId;
}

const comparable = (f: Finding) => ({ kind: f.kind, severity: f.severity, confidence: f.confidence, owasp: f.owasp, roles: f.chain.map((h) => h.role), capability: f.chain.at(-1)?.capability, evidence: f.evidence });

describe('sidecar (mode: redact) → gateway (trust_forwarded_claims: true)', () => {
  let redis: TestRedis | undefined;
  let gateway: (Collector & { hmacKey: string }) | undefined;
  let side: { run: Running; http: string } | undefined;
  let wire: Awaited<ReturnType<typeof tap>> | undefined;
  let untrusting: Collector | undefined;
  const closers: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    if (!redisUnavailable()) {
      redis = await startRedis();
      closers.push(() => redis!.stop());
    }
    gateway = await k8sGateway(redis);
    closers.push(() => gateway!.backend.close(), async () => gateway!.run.child.kill('SIGKILL'));
    wire = await tap(gateway.grpcPort);
    closers.push(() => wire!.close());
    side = await sidecar(`http://127.0.0.1:${wire.port}`);
    closers.push(async () => side!.run.child.kill('SIGKILL'));
    untrusting = await forwardGateway();
    closers.push(() => untrusting!.backend.close(), async () => untrusting!.run.child.kill('SIGKILL'));
  }, 60_000);

  afterAll(async () => {
    for (const close of closers.reverse()) await close().catch(() => undefined);
  });

  it('gives at the gateway the same credential_forwarding finding as sending straight to it; no raw token leaves the sidecar or the gateway', async () => {
    const viaSidecar = agents(side!.http);
    const direct = agents(gateway!.http);
    const plan = ATTACK.plans(viaSidecar, new Rng(SEED + 1))[0]!;
    const token = String((crmLookup(plan).attributes['http.request.header.authorization'] as string[])[0]).replace(/^Bearer /, '');
    try {
      const sidecarTrace = await send(viaSidecar, plan);
      const directTrace = await send(direct, plan);
      const [behind, straight] = await Promise.all([forwardingFinding(gateway!, sidecarTrace), forwardingFinding(gateway!, directTrace)]);

      // The JWT's holder, scope and all: confidence high, as when the gateway reads the token itself.
      expect(straight).toMatchObject({ severity: 'high', confidence: 'high' });
      expect(straight.evidence).toMatchObject({ holder: 'orchestrator', holder_source: 'azp', presenter: 'research', scope: ['crm:read', 'crm:write'], privileged_scope: ['crm:write'], aud: ['crm'], hosts: ['crm.corp.internal'] });
      expect(comparable(behind)).toEqual(comparable(straight));
      // And every other finding of both traces alike.
      await gateway!.backend.waitForDelivered(2 * spanCount(plan));
      const all = async (t: string) => (await findings(gateway!, t)).map(comparable).sort((a, b) => a.kind.localeCompare(b.kind));
      expect(await all(sidecarTrace)).toEqual(await all(directTrace));

      // What left the sidecar (every byte on the wire, uncompressed): fingerprints and claims, no token.
      const reader = new CredentialReader(Buffer.from(gateway!.hmacKey, 'utf8'));
      const fp = reader.read(`Bearer ${token}`).fingerprint;
      const leftSidecar = wire!.bytes();
      expect(leftSidecar.includes(fp)).toBe(true);
      expect(leftSidecar.includes('agentsec.credential.client_id')).toBe(true);
      // What left the gateway: to the backend, on stdout (the OCSF findings), from the API.
      const api = await Promise.all(['/api/findings', '/api/inventory', `/api/traces/${sidecarTrace}/graph`, `/api/traces/${directTrace}/graph`].map(async (p) => (await fetch(gateway!.admin + p)).text()));
      const out = { sidecar: leftSidecar, backend: Buffer.concat(gateway!.backend.requests.map((r) => r.body)), stdout: Buffer.from(gateway!.run.output()), api: Buffer.from(api.join('\n')) };
      expect(out.stdout.includes(sidecarTrace)).toBe(true);
      for (const secret of secrets(viaSidecar, plan)) {
        for (const [where, bytes] of Object.entries(out)) expect(bytes.includes(secret), `${secret.slice(0, 10)}… in what leaves the ${where}`).toBe(false);
      }

      // The spans leave the gateway with the fingerprint and the claims, on both paths alike.
      for (const t of [sidecarTrace, directTrace]) {
        const lookup = exported(gateway!.backend, t).find((s) => s.name === 'execute_tool crm_lookup')!;
        expect(lookup.attributes).toMatchObject({
          'http.request.header.authorization': [fp],
          'agentsec.credential.fingerprint': fp,
          'agentsec.credential.attribute': 'http.request.header.authorization',
          'agentsec.credential.scheme': 'jwt',
          'agentsec.credential.client_id': 'orchestrator',
          'agentsec.credential.sub': 'user-4711',
          'agentsec.credential.scope': ['crm:read', 'crm:write'],
          'agentsec.finding.kind': 'credential_forwarding',
        });
      }
    } finally {
      await Promise.all([viaSidecar.shutdown(), direct.shutdown()]);
    }
  });

  it('claims forged by an agent sending to a gateway directly are ignored by one that does not trust them (and fool one that does)', async () => {
    // research presents its own search key, and claims it is the orchestrator's: attributes as a
    // sidecar writes them, bound to the key's real fingerprint.
    const toUntrusting = agents(untrusting!.http);
    const toTrusting = agents(gateway!.http);
    const plan = ATTACK.plans(toUntrusting, new Rng(SEED + 2))[0]!;
    const span = crmLookup(plan);
    const reader = new CredentialReader(Buffer.from(gateway!.hmacKey, 'utf8'));
    const own = reader.read(toUntrusting.credentials.researchSearch).fingerprint;
    Object.assign(span.attributes, {
      'http.request.header.authorization': [own],
      'agentsec.credential.fingerprint': own,
      'agentsec.credential.attribute': 'http.request.header.authorization',
      'agentsec.credential.scheme': 'jwt',
      'agentsec.credential.client_id': 'orchestrator',
      'agentsec.credential.scope': ['crm:admin'],
    });

    try {
      const ignored = await send(toUntrusting, plan);
      await untrusting!.backend.waitForDelivered(spanCount(plan));
      expect((await findings(untrusting!, ignored)).filter((f) => f.kind === 'credential_forwarding')).toEqual([]);
      const lookup = exported(untrusting!.backend, ignored).find((s) => s.name === 'execute_tool crm_lookup')!;
      // The forged attributes are gone, and the fingerprint-shaped value was fingerprinted as any
      // other value: what describes it now is what this gateway read (an opaque value).
      const [value] = lookup.attributes['http.request.header.authorization'] as string[];
      expect(value).toMatch(/^fp_[0-9a-f]{24}$/);
      expect(value).not.toBe(own);
      const described = Object.fromEntries(Object.entries(lookup.attributes).filter(([k]) => k.startsWith('agentsec.credential.')));
      expect(described).toEqual({ 'agentsec.credential.fingerprint': value, 'agentsec.credential.attribute': 'http.request.header.authorization', 'agentsec.credential.scheme': 'opaque' });

      const fooled = await send(toTrusting, plan);
      const f = await forwardingFinding(gateway!, fooled);
      expect(f.evidence).toMatchObject({ holder: 'orchestrator', holder_source: 'azp', fingerprint: own, scope: ['crm:admin'] });
    } finally {
      await Promise.all([toUntrusting.shutdown(), toTrusting.shutdown()]);
    }
  });

  it('the processes stop cleanly', async () => {
    expect(await terminate(side!.run, 15_000)).toBe(0);
    expect(await terminate(gateway!.run, 25_000)).toBe(0);
    expect(await terminate(untrusting!.run, 25_000)).toBe(0);
  });
});
