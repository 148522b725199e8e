// Attack scenario (OWASP ASI03): a customer-read token issued to the orchestrator (azp=orchestrator,
// scope customers:read) is passed orchestrator → research → analysis and used by analysis, two
// delegation hops down, on the customer API. Hard negative: the same flow, where the token
// analysis presents is a properly exchanged one whose act chain names each hop (RFC 8693).
//
// Real instrumentation: the agents are Vercel AI SDK v6 (`ai-v6`) generateText calls with mock
// models, nested through tool calls, traced by a real NodeSDK into memory. The customer-API call
// is an HTTP CLIENT span emitted through the OTel API in the shape @opentelemetry/instrumentation-
// undici gives it with `headersToSpanAttributes` (url.full, http.request.method, server.address,
// http.request.header.authorization as a string array): no HTTP instrumentation package is
// installed. The spans are serialised to OTLP/protobuf with the official otlp-transformer and
// run through the agent pipeline in-process (normalize → tracegraph → detect → enrich): the
// in-process collector of test/helpers/agent-collector.ts has no detect in its pipeline list.
import { SpanKind, trace } from '@opentelemetry/api';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { generateText, stepCountIs, tool } from 'ai-v6';
import { MockLanguageModelV3 } from 'ai-v6/test';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { runRecorded } from '../../helpers/sdk-spans.ts';
import { detectHarness, type DetectHarness } from '../../helpers/detect-harness.ts';
import { testSettings } from '../../helpers/settings.ts';
import { Normalize, NormalizeConfig } from '../../../src/processors/normalize.ts';
import { decodeTraceProtobuf } from '../../../src/otlp/decode.ts';
import { encodeTraceProtobuf } from '../../../src/otlp/encode.ts';
import type { TracesConsumer } from '../../../src/component/types.ts';
import type { Finding } from '../../../src/detect/finding.ts';
import { textStep, toolCallStep } from '../instrumentation/fixtures/ai-sdk-tracing.ts';
import { hrMs } from '../../helpers/plain-spans.ts';

const POLICY = 'internal_domains: [internal]';
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const jwt = (claims: Record<string, unknown>) => `${b64({ alg: 'RS256', typ: 'JWT', kid: 'idp-1' })}.${b64({ iss: 'https://idp.internal', exp: 2_000_000_000, ...claims })}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk`;
/** Issued to the orchestrator for a user's request. */
const CUSTOMER_READ = jwt({ sub: 'user-42', azp: 'orchestrator', aud: 'customers-api', scope: 'customers:read' });
/** The same grant, exchanged at each hop: analysis acting, research before it. */
const EXCHANGED = jwt({ sub: 'user-42', azp: 'orchestrator', aud: 'customers-api', scope: 'customers:read', act: { sub: 'analysis', act: { sub: 'research' } } });


/** orchestrator → research → analysis, each an AI SDK v6 agent; analysis looks the customer up with `token`. */
async function customerLookup(token: string): Promise<void> {
  const model = (id: string, ...steps: ReturnType<typeof toolCallStep | typeof textStep>[]) => new MockLanguageModelV3({ provider: 'openai.chat', modelId: id, doGenerate: steps });
  const analysis = () =>
    generateText({
      model: model('gpt-analysis', toolCallStep({ id: 'call-lookup', tool: 'lookup_customer', args: { customerId: '42' } }), textStep('Customer 42 is on the enterprise plan.')),
      prompt: 'Analyse customer 42.',
      stopWhen: stepCountIs(4),
      experimental_telemetry: { isEnabled: true, functionId: 'analysis' },
      tools: {
        lookup_customer: tool({
          inputSchema: z.object({ customerId: z.string() }),
          execute: async ({ customerId }) => {
            const url = `https://customers.internal/v1/customers/${customerId}`;
            return trace.getTracer('@opentelemetry/instrumentation-undici', '0.14.0').startActiveSpan(
              'GET',
              {
                kind: SpanKind.CLIENT,
                attributes: {
                  'http.request.method': 'GET',
                  'url.full': url,
                  'url.path': `/v1/customers/${customerId}`,
                  'url.scheme': 'https',
                  'server.address': 'customers.internal',
                  'server.port': 443,
                  'user_agent.original': 'node',
                  'http.request.header.authorization': [`Bearer ${token}`],
                },
              },
              async (span) => {
                span.setAttribute('http.response.status_code', 200);
                span.end();
                return { id: customerId, plan: 'enterprise' };
              },
            );
          },
        }),
      },
    });
  const research = () =>
    generateText({
      model: model('gpt-research', toolCallStep({ id: 'call-analysis', tool: 'delegate_analysis', args: { task: 'analyse customer 42' } }), textStep('Analysis done.')),
      prompt: 'Research customer 42.',
      stopWhen: stepCountIs(4),
      experimental_telemetry: { isEnabled: true, functionId: 'research' },
      tools: { delegate_analysis: tool({ inputSchema: z.object({ task: z.string() }), execute: async () => (await analysis()).text }) },
    });
  const result = await generateText({
    model: model('gpt-orchestrator', toolCallStep({ id: 'call-research', tool: 'delegate_research', args: { topic: 'customer 42' } }), textStep('Report ready.')),
    prompt: 'What plan is customer 42 on?',
    stopWhen: stepCountIs(4),
    experimental_telemetry: { isEnabled: true, functionId: 'orchestrator' },
    tools: { delegate_research: tool({ inputSchema: z.object({ topic: z.string() }), execute: async () => (await research()).text }) },
  });
  expect(result.text).toBe('Report ready.');
}

const HMAC_KEY = 'scenario-key-0123456789abcdef0123456789';

/**
 * The harness's detect behind normalize and tracegraph, fed OTLP/protobuf batches of recorded
 * spans; `behindSidecar`: a sidecar's normalize (mode: redact) first, its output over the wire
 * (OTLP/protobuf) to a gateway's normalize that trusts the claims it forwards.
 */
function pipeline(behindSidecar = false): { h: DetectHarness; send(spans: ReadableSpan[]): Promise<void> } {
  const h = detectHarness(POLICY, {}, { hmac_key: HMAC_KEY, trust_forwarded_claims: behindSidecar });
  if (!behindSidecar) return { h, send: (spans) => h.sendRecorded(spans) };
  const wire: TracesConsumer = { mutatesData: true, consume: (batch, ctx) => h.normalize.consume(decodeTraceProtobuf(encodeTraceProtobuf(batch.resourceSpans)).batch, ctx) };
  const sidecar = new Normalize(testSettings('sidecar'), NormalizeConfig.parse({ hmac_key: HMAC_KEY, mode: 'redact' }), wire);
  return {
    h,
    async send(spans) {
      await sidecar.consume(decodeTraceProtobuf(ProtobufTraceSerializer.serializeRequest(spans)!).batch, { receiver: 'test', transport: 'http' });
    },
  };
}

/** The direct pipeline's findings for `spans` sent as one batch, comparably. */
async function findingsInOneBatch(spans: ReadableSpan[]) {
  const p = pipeline();
  await p.send(spans);
  return p.h.findings().map(comparable);
}

/** As exported (children first), latest start first, earliest start first. */
function arrivalOrders(spans: ReadableSpan[]): ReadableSpan[][] {
  const byStart = [...spans].sort((a, b) => hrMs(a.startTime) - hrMs(b.startTime));
  return [spans, [...byStart].reverse(), byStart];
}

/** Sends `order` one span per batch. */
async function spanBySpan<P extends { send(spans: ReadableSpan[]): Promise<void> }>(p: P, order: ReadableSpan[]): Promise<P> {
  for (const s of order) await p.send([s]);
  return p;
}

const comparable = (f: Finding) => ({ id: f.id, kind: f.kind, severity: f.severity, confidence: f.confidence, roles: f.chain.map((c) => c.role), shows: f.spanIds[0], evidence: f.evidence });

describe('attack: a customer-read token forwarded two hops down (AI SDK v6)', () => {
  let attack: ReadableSpan[] = [];
  let exchanged: ReadableSpan[] = [];

  beforeAll(async () => {
    attack = await runRecorded('support-app', () => customerLookup(CUSTOMER_READ));
    exchanged = await runRecorded('support-app', () => customerLookup(EXCHANGED));
  });

  const httpSpan = (spans: ReadableSpan[]) => {
    const found = spans.filter((s) => s.name === 'GET' && s.kind === SpanKind.CLIENT);
    expect(found).toHaveLength(1);
    return found[0]!;
  };
  const agentSpan = (spans: ReadableSpan[], functionId: string) => spans.find((s) => s.name === 'ai.generateText' && s.attributes['ai.telemetry.functionId'] === functionId)!;

  it('records the real instrumentation shape: three nested ai.generateText agents, the HTTP call under analysis', () => {
    expect(new Set(attack.map((s) => s.spanContext().traceId)).size).toBe(1);
    const byId = new Map(attack.map((s) => [s.spanContext().spanId, s]));
    const owner = (s: ReadableSpan | undefined): string | undefined => {
      for (let c = s; c; c = byId.get(c.parentSpanContext?.spanId ?? '')) if (c.name === 'ai.generateText') return c.attributes['ai.telemetry.functionId'] as string;
      return undefined;
    };
    expect(owner(httpSpan(attack))).toBe('analysis');
    expect(owner(byId.get(agentSpan(attack, 'analysis').parentSpanContext!.spanId))).toBe('research');
    expect(owner(byId.get(agentSpan(attack, 'research').parentSpanContext!.spanId))).toBe('orchestrator');
  });

  it('finds credential_forwarding with the chain orchestrator > research > analysis, shown on the customer-API call', async () => {
    const p = pipeline();
    await p.send(attack);
    const findings = p.h.findings();
    expect(findings.map((f) => f.kind)).toEqual(['credential_forwarding']);
    const f = findings[0]!;
    const http = httpSpan(attack).spanContext().spanId;
    expect(f).toMatchObject({ severity: 'high', confidence: 'high', owasp: 'ASI03', traceId: attack[0]!.spanContext().traceId });
    expect(f.chain.map((c) => c.role)).toEqual(['orchestrator', 'research', 'analysis']);
    expect(f.chain.map((c) => c.spanId)).toEqual([agentSpan(attack, 'orchestrator'), agentSpan(attack, 'research')].map((s) => s.spanContext().spanId).concat(http));
    expect(f.chain.at(-1)).toMatchObject({ capability: 'customers.internal' });
    expect(f.spanIds[0]).toBe(http);
    expect(f.spanIds).toEqual(expect.arrayContaining(['orchestrator', 'research', 'analysis'].map((a) => agentSpan(attack, a).spanContext().spanId)));
    expect(f.evidence).toMatchObject({ holder: 'orchestrator', holder_source: 'azp', presenter: 'analysis', hops: 2, hosts: ['customers.internal'], scope: ['customers:read'], aud: ['customers-api'], act_chain: [] });

    // The finding is on the span that shows it, and nothing leaves with the raw token.
    const out = p.h.exported();
    expect(out.find((s) => s.spanId === http)?.attributes['agentsec.finding.kind']).toBe('credential_forwarding');
    expect(out.filter((s) => s.name === 'agentsec.finding credential_forwarding')).toHaveLength(1);
    const secret = CUSTOMER_READ.split('.')[1]!;
    expect(JSON.stringify(out)).not.toContain(secret);
    expect(JSON.stringify(findings)).not.toContain(secret);
    expect(p.h.stdout.join('')).not.toContain(secret);
  });

  it('gives the same finding whatever the arrival order: as exported (children first), parents first, one span per batch', async () => {
    const expected = await findingsInOneBatch(attack);
    expect(expected).toHaveLength(1);
    for (const order of arrivalOrders(attack)) {
      const p = await spanBySpan(pipeline(), order);
      expect(p.h.findings().map(comparable)).toEqual(expected);
    }
  });

  it('behind a sidecar (normalize mode: redact → the wire → a gateway trusting forwarded claims): the same finding, in every arrival order, and the act chain still clears the exchanged token', async () => {
    const expected = await findingsInOneBatch(attack);
    expect(expected).toHaveLength(1);
    for (const order of arrivalOrders(attack)) {
      const p = await spanBySpan(pipeline(true), order);
      expect(p.h.findings().map(comparable)).toEqual(expected);
      expect(JSON.stringify(p.h.exported())).not.toContain(CUSTOMER_READ.split('.')[1]!);
    }
    for (const order of [exchanged, [...exchanged].reverse()]) {
      const p = await spanBySpan(pipeline(true), order);
      expect(p.h.findings()).toEqual([]);
    }
  });

  it('hard negative: the same flow with a token exchanged at each hop (act names analysis, then research) gives no finding of any kind', async () => {
    expect(httpSpan(exchanged).attributes['http.request.header.authorization']).toEqual([`Bearer ${EXCHANGED}`]);
    for (const order of [exchanged, [...exchanged].reverse()]) {
      const p = pipeline();
      for (const s of order) await p.send([s]);
      expect(p.h.findings()).toEqual([]);
    }
  });
});
