// The compose collector container, run here: the exact command line of the image (Dockerfile
// ENTRYPOINT + the compose service's command, tini aside — it is not installed here; the
// Dockerfile test checks it is in the image), with the image's ENV and the compose service's
// environment, container paths mapped to the repository and a temp dir, and only what cannot
// be the same here replaced through the config's own variables: the ports (free loopback ports)
// and the Jaeger and Tempo endpoints (whose compose hostnames do not resolve here).
//
// Jaeger and Tempo are STAND-INS (test/ship/standins.ts): fake OTLP backends that keep what
// the collector exports and answer Jaeger's /api/v3/traces and Tempo's TraceQL search for it.
// A real credential-forwarding attack, recorded by the demo's agents through the official OTel
// JS SDK and OTLP exporter, is then found there as the README says to look for it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentCast, makeCredentials, Rng } from '../../demo/agents.ts';
import { ATTACKS } from '../../demo/scenarios.ts';
import { compose, composeEnv, composeMounts, composeMs, containerArgv, localPorts, image, k8sManifests, PathMap, podContainers, REPO, readRepo, runCommand, terminate, withoutInit, type Running } from './deploy.ts';
import { eventually } from '../helpers/wait.ts';
import { stageHealthcheck } from './dockerfile.ts';
import { JaegerStandIn, TempoStandIn } from './standins.ts';

const img = image();
const svc = compose().services.agentsec!;
const CONFIG_FILE = 'config/agentsec-compose.yaml';

interface OtlpJsonSpan {
  traceId: string;
  spanId: string;
  name: string;
  attributes?: { key: string; value: { stringValue?: string } }[];
}
interface OtlpJson {
  resourceSpans: { resource?: { attributes?: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: OtlpJsonSpan[] }[] }[];
}
const strAttr = (attrs: { key: string; value: { stringValue?: string } }[] | undefined, key: string) => attrs?.find((a) => a.key === key)?.value.stringValue;

describe('docker compose: the collector container, run here, exporting to Jaeger and Tempo stand-ins', () => {
  let jaeger: JaegerStandIn;
  let tempo: TempoStandIn;
  let collector: Running;
  let env: Record<string, string>;
  let adminUrl: string;
  let httpEndpoint: string;
  let attackTrace: string;

  const healthcheck = () => {
    const h = stageHealthcheck(img.final)!;
    return spawnSync(process.execPath, h.argv.slice(1), { cwd: REPO, env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8', timeout: 10_000 }).status;
  };

  beforeAll(async () => {
    [jaeger, tempo] = await Promise.all([JaegerStandIn.start(), TempoStandIn.start()]);
    const ports = await localPorts();
    const paths = new PathMap().add(img.workdir, REPO);
    for (const m of composeMounts(svc)) paths.add(m.target, m.bind ? m.source : mkdtempSync(join(tmpdir(), `agentsec-volume-${m.source}-`)));
    const overrides: Record<string, string> = {
      ...ports.env,
      AGENTSEC_JAEGER_OTLP_ENDPOINT: `http://${jaeger.backend.grpcAddress}`,
      AGENTSEC_TEMPO_OTLP_ENDPOINT: `http://${tempo.backend.grpcAddress}`,
    };
    // Each override must be one of the config's own variables, or it would change nothing.
    const configText = readRepo(CONFIG_FILE);
    for (const k of Object.keys(overrides)) expect(configText, `${CONFIG_FILE} reads ${k}`).toContain(`\${env:${k}:-`);
    env = { ...paths.mapEnv({ ...img.env, ...composeEnv(svc) }), ...overrides };
    const command = withoutInit(containerArgv(img, svc)).command.map((a) => paths.map(a));
    expect(command).toContain(`--config=${join(REPO, CONFIG_FILE)}`);
    adminUrl = ports.adminUrl;
    httpEndpoint = ports.httpUrl;
    collector = await runCommand(command, env, adminUrl);
  });

  afterAll(async () => {
    collector?.child.kill('SIGKILL');
    await Promise.all([jaeger?.close(), tempo?.close()]);
  });

  it('is ready, and the image\'s HEALTHCHECK and every probe path of the Kubernetes manifests answer 200', async () => {
    expect(healthcheck()).toBe(0);
    const probes = new Set<string>();
    for (const m of k8sManifests().filter((m) => m.spec?.template)) {
      for (const c of podContainers(m).filter((c) => c.image.includes('agentsec-collector'))) {
        for (const p of [c.startupProbe, c.readinessProbe, c.livenessProbe]) if (p?.httpGet) probes.add(p.httpGet.path);
      }
    }
    expect([...probes].sort()).toEqual(['/healthz', '/readyz']);
    for (const path of probes) expect((await fetch(`${adminUrl}${path}`)).status, path).toBe(200);
  });

  it('serves every metric the Grafana dashboard queries', async () => {
    const dash = readRepo('config/grafana/dashboards/agentsec.json');
    const exprs = [...dash.matchAll(/"expr": "([^"]+)"/g)].map((m) => m[1]!);
    const names = new Set(exprs.flatMap((e) => [...e.matchAll(/\b((?:agentsec|process|nodejs)_[a-z_]+)\b/g)].map((m) => m[1]!)));
    expect(names.size).toBeGreaterThan(10);
    const text = await (await fetch(`${adminUrl}/metrics`)).text();
    for (const n of names) expect(text, `metric ${n}`).toMatch(new RegExp(`^# TYPE ${n} `, 'm'));
  });

  it('a credential-forwarding attack, sent with the OTel JS exporter, is found through the Jaeger query API (service agentsec, tag agentsec.finding.kind) and TraceQL', async () => {
    const rng = new Rng(4711);
    const sys = new AgentCast({
      credentials: makeCredentials(rng),
      rng,
      processor: () => new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${httpEndpoint}/v1/traces` }), scheduledDelayMillis: 100 }),
    });
    const attack = ATTACKS.find((a) => a.expect.includes('credential_forwarding'))!;
    const [plan] = attack.plans(sys, rng);
    attackTrace = sys.emit(plan!, Date.now() - plan!.duration);
    await sys.forceFlush();
    await sys.shutdown();

    const window = `query.startTimeMin=${new Date(Date.now() - 3_600_000).toISOString()}&query.startTimeMax=${new Date(Date.now() + 60_000).toISOString()}`;
    const search = (kind: string) =>
      fetch(`${jaeger.queryUrl}/api/v3/traces?query.serviceName=agentsec&query.attributes=${encodeURIComponent(JSON.stringify({ 'agentsec.finding.kind': kind }))}&${window}`);
    const found = (await eventually('the flagged trace in the Jaeger stand-in', async () => {
      const res = await search('credential_forwarding');
      return res.status === 200 ? ((await res.json()) as { result: OtlpJson }).result : undefined;
    }, (r) => r !== undefined, 20_000))!;
    const spans = found.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans.map((s) => ({ ...s, service: strAttr(rs.resource?.attributes, 'service.name') }))));
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([attackTrace]));
    // The finding span (service agentsec), and the agent span that shows the finding, tagged.
    const findingSpan = spans.find((s) => s.service === 'agentsec');
    expect(findingSpan).toMatchObject({ name: 'agentsec.finding credential_forwarding' });
    expect(strAttr(findingSpan!.attributes, 'agentsec.finding.kind')).toBe('credential_forwarding');
    const shows = spans.filter((s) => s.service !== 'agentsec' && strAttr(s.attributes, 'agentsec.finding.kind') === 'credential_forwarding');
    expect(shows.map((s) => s.service)).toEqual(['research-agent']);
    // Jaeger returns whole traces: the agents' spans are there too.
    expect(new Set(spans.map((s) => s.service))).toEqual(new Set(['agentsec', 'orchestrator-agent', 'research-agent']));
    // A kind that was not found is not: the query does filter.
    expect((await search('tool_loop')).status).toBe(404);

    const traceql = async (q: string) => {
      const res = await fetch(`${tempo.queryUrl}/api/search?q=${encodeURIComponent(q)}&start=${Math.floor(Date.now() / 1000) - 3600}&end=${Math.ceil(Date.now() / 1000) + 60}`);
      expect(res.status).toBe(200);
      return ((await res.json()) as { traces: { traceID: string }[] }).traces.map((t) => t.traceID);
    };
    expect(await traceql('{ span.agentsec.finding.kind = "credential_forwarding" }')).toEqual([attackTrace]);
    expect(await traceql('{ resource.service.name = "agentsec" }')).toEqual([attackTrace]);
    expect(await traceql('{ span.agentsec.finding.kind = "data_exfiltration" }')).toEqual([]);
  });

  it('drains on SIGTERM and exits 0 within compose\'s stop_grace_period; the health check then fails', async () => {
    const code = await terminate(collector, composeMs(svc.stop_grace_period ?? '10s'));
    expect(code).toBe(0);
    expect(healthcheck()).not.toBe(0);
    // Every span it accepted went to both backends (the stand-ins acknowledged them all).
    const delivered = (s: JaegerStandIn | TempoStandIn) => s.backend.delivered().length;
    expect(delivered(jaeger)).toBeGreaterThan(0);
    expect(delivered(tempo)).toBe(delivered(jaeger));
  }, 40_000);
});
