// Sidecar mode: config/agentsec-sidecar.yaml, as the Kubernetes sidecar runs it (the image's
// command with the manifest's environment; ports, data dir and the gateway replaced by local
// ones through its own variables), forwards what an OTel JS exporter sends with every
// credential attribute replaced by its keyed fingerprint: the raw values appear nowhere in the
// bytes that reach the gateway (a fake OTLP backend), the fingerprints do, each with what was
// read of its credential (agentsec.credential.*: scheme, JWT claims; the gateway's side of it is
// test/ship/sidecar-gateway.test.ts). Then the same sidecar as the OpenTelemetry Operator
// injects it: its config in OTEL_CONFIG, the Operator's only argument --config=env:OTEL_CONFIG,
// and the service.telemetry.metrics key the Operator adds.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { CredentialReader } from '../../src/agent/credentials.ts';
import { FakeBackend } from '../helpers/fake-backend.ts';
import { eventually } from '../helpers/wait.ts';
import { k8sArgv, localPorts, image, k8sEnv, k8sManifests, manifest, podContainers, REPO, runCommand, terminate, withoutInit, type Running } from './deploy.ts';

const img = image();
const all = k8sManifests();

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const JWT = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ sub: 'user-42', azp: 'orchestrator', scope: 'crm:read crm:write', aud: 'crm' })}.${Buffer.from('a-signature-that-is-not-checked-0123456789').toString('base64url')}`;
const MODEL_KEY = 'sk-proj-research-7f3a9c0e5b2d4f6a8c1e3b5d7f9a0c2e4b6d8f0a';
const SERVICE_TOKEN = 'ghp_R4wS3rv1ceT0kenTh4tMustN0tLeaveThePod';

/** Spans as an agent's SDK records them, each with a credential in an attribute normalize reads. */
async function sendWithCredentials(httpEndpoint: string): Promise<string> {
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'research-agent' }),
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${httpEndpoint}/v1/traces` }) })],
  });
  const tracer = provider.getTracer('@opentelemetry/instrumentation-undici', '0.14.0');
  let traceId = '';
  tracer.startActiveSpan('invoke_agent research', { attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'research' } }, (agent) => {
    traceId = agent.spanContext().traceId;
    // No context manager is registered here: the parent is passed explicitly.
    const under = trace.setSpan(ROOT_CONTEXT, agent);
    tracer.startSpan('GET', { kind: SpanKind.CLIENT, attributes: { 'url.full': 'https://crm.corp.internal/api/accounts/globex', 'http.request.method': 'GET', 'http.request.header.authorization': [`Bearer ${JWT}`] } }, under).end();
    tracer.startSpan('chat gpt-4o', { kind: SpanKind.CLIENT, attributes: { 'gen_ai.operation.name': 'chat', 'ai.request.headers.authorization': `Bearer ${MODEL_KEY}` } }, under).end();
    tracer.startSpan('execute_tool repo_search', { attributes: { 'gen_ai.tool.name': 'repo_search', 'agentsec.credential': SERVICE_TOKEN } }, under).end();
    agent.end();
  });
  await provider.forceFlush();
  await provider.shutdown();
  return traceId;
}

/** What reached the gateway: every byte of every request (decompressed), and the spans. */
function forwarded(gateway: FakeBackend) {
  const bytes = Buffer.concat(gateway.requests.map((r) => r.body));
  const spans = gateway.plainSpans();
  return { bytes, spans };
}

function expectFingerprinted(gateway: FakeBackend, hmacKey: string, traceId: string): void {
  const { bytes, spans } = forwarded(gateway);
  expect(spans.filter((s) => s.traceId === traceId)).toHaveLength(4);
  // No raw credential, nor any part of the JWT, in any byte forwarded.
  for (const secret of [JWT, ...JWT.split('.').slice(1), MODEL_KEY, SERVICE_TOKEN]) expect(bytes.includes(secret), `raw ${secret.slice(0, 12)}… forwarded`).toBe(false);
  // The fingerprints instead, in the same attributes, as a gateway with the same key computes them.
  const reader = new CredentialReader(Buffer.from(hmacKey, 'utf8'));
  for (const raw of [`Bearer ${JWT}`, `Bearer ${MODEL_KEY}`, SERVICE_TOKEN]) expect(bytes.includes(reader.read(raw).fingerprint)).toBe(true);
  const attrs = (name: string) => spans.find((s) => s.name === name)!.attributes;
  expect(attrs('GET')['http.request.header.authorization']).toEqual([reader.read(`Bearer ${JWT}`).fingerprint]);
  expect(attrs('chat gpt-4o')['ai.request.headers.authorization']).toBe(reader.read(`Bearer ${MODEL_KEY}`).fingerprint);
  expect(attrs('execute_tool repo_search')['agentsec.credential']).toBe(reader.read(SERVICE_TOKEN).fingerprint);
  expect(reader.read(SERVICE_TOKEN).fingerprint).toMatch(/^fp_[0-9a-f]{24}$/);
  // Beside each fingerprint, what was read of its credential (mode: redact): for the JWT its claims.
  expect(attrs('GET')).toMatchObject({
    'agentsec.credential.fingerprint': reader.read(`Bearer ${JWT}`).fingerprint,
    'agentsec.credential.attribute': 'http.request.header.authorization',
    'agentsec.credential.scheme': 'jwt',
    'agentsec.credential.sub': 'user-42',
    'agentsec.credential.client_id': 'orchestrator',
    'agentsec.credential.scope': ['crm:read', 'crm:write'],
    'agentsec.credential.aud': ['crm'],
  });
  expect(attrs('execute_tool repo_search')).toMatchObject({ 'agentsec.credential.fingerprint': reader.read(SERVICE_TOKEN).fingerprint, 'agentsec.credential.scheme': 'opaque' });
  // Everything else goes on as it was.
  expect(attrs('GET')['url.full']).toBe('https://crm.corp.internal/api/accounts/globex');
}

describe('sidecar mode', () => {
  let gateway: FakeBackend | undefined;
  let sidecar: Running | undefined;
  afterEach(async () => {
    sidecar?.child.kill('SIGKILL');
    await gateway?.close();
  });

  /** Ports, data dir and gateway: the only things replaced, through the config's own variables. */
  async function local(): Promise<{ overrides: Record<string, string>; adminUrl: string; httpEndpoint: string }> {
    gateway = await FakeBackend.start();
    const p = await localPorts();
    return {
      overrides: { ...p.env, AGENTSEC_GATEWAY_ENDPOINT: `http://${gateway.grpcAddress}`, AGENTSEC_DATA_DIR: mkdtempSync(join(tmpdir(), 'agentsec-sidecar-')) },
      adminUrl: p.adminUrl,
      httpEndpoint: p.httpUrl,
    };
  }

  it('config/agentsec-sidecar.yaml (AGENTSEC_MODE=sidecar, as in the Kubernetes manifest) forwards every span with its credentials fingerprinted, no raw value', async () => {
    const agent = manifest(all, 'Deployment', 'research-agent');
    const container = podContainers(agent).find((c) => c.name === 'agentsec')!;
    const env = { ...img.env, ...k8sEnv(all, agent.metadata.namespace!, container.env) };
    expect(env.AGENTSEC_MODE).toBe('sidecar');
    const { overrides, adminUrl, httpEndpoint } = await local();
    const command = k8sArgv(img, container);
    sidecar = await runCommand(command, { ...env, ...overrides }, adminUrl);
    // The line is logged once the service has started, which /readyz may answer before.
    const logLines = () => sidecar!.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; config?: string });
    const started = await eventually('the using-configuration line', logLines, (ls) => ls.some((l) => l.msg === 'using configuration'));
    expect(started.find((l) => l.msg === 'using configuration')?.config).toBe(join(REPO, 'config/agentsec-sidecar.yaml'));

    const traceId = await sendWithCredentials(httpEndpoint);
    await gateway!.waitForDelivered(4, 15_000);
    expectFingerprinted(gateway!, env.AGENTSEC_HMAC_KEY!, traceId);
    expect(await terminate(sidecar, 15_000)).toBe(0);
  });

  it('as the OpenTelemetry Operator injects it: --config=env:OTEL_CONFIG as the only argument, the Operator\'s telemetry defaults in the config', async () => {
    const cr = manifest(all, 'OpenTelemetryCollector', 'agentsec-sidecar');
    // What the Operator does to the stored config (webhook defaulting) and to the container (pkg/sidecar/pod.go).
    const config = structuredClone(cr.spec.config);
    config.service.telemetry = { ...config.service.telemetry, metrics: { address: '0.0.0.0:8888' } };
    const env: Record<string, string> = { ...img.env, ...k8sEnv(all, cr.metadata.namespace!, cr.spec.env), POD_NAME: 'writer-agent-0', OTEL_CONFIG: toYaml(config) };
    const { overrides, adminUrl, httpEndpoint } = await local();
    const command = [...withoutInit(img.entrypoint).command, '--config=env:OTEL_CONFIG'];
    sidecar = await runCommand(command, { ...env, ...overrides }, adminUrl);

    const traceId = await sendWithCredentials(httpEndpoint);
    await gateway!.waitForDelivered(4, 15_000);
    expectFingerprinted(gateway!, env.AGENTSEC_HMAC_KEY!, traceId);
    expect(await terminate(sidecar, 25_000)).toBe(0);
  });
});
