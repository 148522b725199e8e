// credential_shared: one credential presented from min_workloads distinct workloads (a service in
// its namespace; pods with distinct_by: pod) within the window, across traces, by span start time;
// reported on the trace that crosses the threshold, again only when a new workload joins.
import { describe, expect, it } from 'vitest';
import { detectHarness, otlpJson, type SpanSpec } from '../helpers/detect-harness.ts';
import { testSettings } from '../helpers/settings.ts';
import { Normalize, NormalizeConfig } from '../../src/processors/normalize.ts';
import { TraceGraphConfig, TraceGraphProcessor } from '../../src/processors/tracegraph.ts';
import { decodeTraceJson } from '../../src/otlp/decode.ts';

const MIN = 60_000;
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const jwt = (claims: Record<string, unknown>) => `${b64({ alg: 'RS256' })}.${b64(claims)}.c2ln`;
const SHARED = 'sk-live-shared-0123456789';

/** The harness's detect (and sinks) behind a pipeline that sets resource attributes (pods, namespaces). */
function shared(policy = '', detect: Record<string, unknown> = {}) {
  const h = detectHarness(policy, detect);
  const set = testSettings('shared');
  const graph = new TraceGraphProcessor(set, TraceGraphConfig.parse({}), h.detect);
  const normalize = new Normalize(set, NormalizeConfig.parse({ hmac_key: 'detect-harness-key-0123456789abcdef' }), graph);
  let n = 0;
  return {
    h,
    /** One trace: `agent` in `service` (pod, namespace) presenting `token` at `t` ms; `kind` 3 (CLIENT) unless given. */
    async present(o: { service: string; pod?: string; namespace?: string; agent?: string; t: number; token?: string; kind?: number }): Promise<string> {
      n++;
      const trace = n.toString(16).padStart(32, 'a');
      const spans: SpanSpec[] = [
        { id: '1', trace, t: o.t, d: 50, service: o.service, attrs: { 'gen_ai.agent.name': o.agent ?? o.service } },
        { id: '2', parent: '1', trace, kind: o.kind ?? 3, name: 'GET', t: o.t + 1, d: 5, service: o.service, attrs: { 'url.full': 'https://billing.internal/v1/invoices', 'http.request.header.authorization': [`Bearer ${o.token ?? SHARED}`] } },
      ];
      const json = JSON.parse(otlpJson(spans)) as { resourceSpans: { resource: { attributes: unknown[] } }[] };
      const extra = { 'k8s.pod.name': o.pod, 'k8s.namespace.name': o.namespace };
      for (const rs of json.resourceSpans) {
        for (const [key, v] of Object.entries(extra)) if (v) rs.resource.attributes.push({ key, value: { stringValue: v } });
      }
      await normalize.consume(decodeTraceJson(JSON.stringify(json)).batch, { receiver: 'test', transport: 'http' });
      return trace;
    },
  };
}

describe('credential_shared', () => {
  it('finds one credential presented by three services in three traces within the window, on the trace that crosses it', async () => {
    const s = shared();
    await s.present({ service: 'billing-agent', t: 0 });
    await s.present({ service: 'support-agent', t: 2 * MIN });
    expect(s.h.findings()).toEqual([]);
    const third = await s.present({ service: 'research-agent', t: 4 * MIN });
    const findings = s.h.findings();
    expect(findings.map((f) => f.kind)).toEqual(['credential_shared']);
    const f = findings[0]!;
    expect(f).toMatchObject({ traceId: third, severity: 'medium', confidence: 'high', owasp: 'ASI03', spanIds: ['0000000000000002'] });
    expect(f.chain).toEqual([{ role: 'research-agent', spanId: '0000000000000002', capability: 'billing.internal' }]);
    expect(f.evidence).toMatchObject({ count: 3, min_workloads: 3, window_ms: 10 * MIN, spread_ms: 4 * MIN, distinct_by: 'service' });
    expect((f.evidence.workloads as { service: string }[]).map((w) => w.service)).toEqual(['billing-agent', 'support-agent', 'research-agent']);
    expect(f.evidence.fingerprint).toMatch(/^fp_/);
    expect(JSON.stringify(f)).not.toContain(SHARED);
  });

  it('stays quiet for one workload presenting it many times, in many traces', async () => {
    const s = shared();
    for (let i = 0; i < 10; i++) await s.present({ service: 'billing-agent', t: i * 1000 });
    expect(s.h.findings()).toEqual([]);
  });

  it('counts only workloads within one window, by span start time', async () => {
    const s = shared();
    await s.present({ service: 'a', t: 0 });
    await s.present({ service: 'b', t: 1 * MIN });
    await s.present({ service: 'c', t: 12 * MIN }); // a and b are more than 10 minutes before
    await s.present({ service: 'd', t: 12.5 * MIN });
    expect(s.h.findings()).toEqual([]);
    await s.present({ service: 'e', t: 13 * MIN });
    expect(s.h.findings().map((f) => f.evidence.count)).toEqual([3]);
    // Late arrivals are judged by when they happened: b again, at 0.5 min, is far from c, d, e.
    await s.present({ service: 'b', t: 0.5 * MIN });
    expect(s.h.findings()).toHaveLength(1);
  });

  it('does not count replicas of one service as several workloads, unless told to', async () => {
    const replicas = shared();
    for (const pod of ['billing-7f9c-a', 'billing-7f9c-b', 'billing-7f9c-c']) await replicas.present({ service: 'billing-agent', pod, t: 0 });
    expect(replicas.h.findings()).toEqual([]);
    const pods = shared('', { detectors: { credential_shared: { distinct_by: 'pod' } } });
    for (const pod of ['billing-7f9c-a', 'billing-7f9c-b', 'billing-7f9c-c']) await pods.present({ service: 'billing-agent', pod, t: 0 });
    expect(pods.h.findings()).toMatchObject([{ kind: 'credential_shared', evidence: { count: 3, distinct_by: 'pod' } }]);
  });

  it('reports again only when a new workload joins', async () => {
    const s = shared();
    for (const service of ['a', 'b', 'c']) await s.present({ service, t: 0 });
    await s.present({ service: 'b', t: 1000 });
    expect(s.h.findings()).toHaveLength(1);
    const fourth = await s.present({ service: 'd', t: 2000 });
    const [latest] = s.h.findings();
    expect(s.h.findings()).toHaveLength(2);
    expect(latest).toMatchObject({ traceId: fourth, evidence: { count: 4 } });
  });

  it('does not count where the credential was received (SERVER spans) as presentations', async () => {
    const s = shared();
    for (const service of ['a', 'b', 'c']) await s.present({ service, t: 0, kind: 2 });
    expect(s.h.findings()).toEqual([]);
  });

  it('raises severity across namespaces, at twice the threshold, for a write scope, to critical for a bound token', async () => {
    const ns = shared();
    for (const [service, namespace] of [['a', 'prod'], ['b', 'prod'], ['c', 'staging']]) await ns.present({ service, namespace, t: 0 });
    expect(ns.h.findings()).toMatchObject([{ severity: 'high', evidence: { namespaces: ['prod', 'staging'] } }]);

    const many = shared('', { detectors: { credential_shared: { min_workloads: 2 } } });
    for (const service of ['a', 'b', 'c', 'd']) await many.present({ service, t: 0 });
    expect(many.h.findings().map((f) => f.severity)).toEqual(['high', 'medium', 'medium']); // newest first: 4, 3, 2 workloads

    const write = shared();
    for (const service of ['a', 'b', 'c']) await write.present({ service, t: 0, token: jwt({ sub: 'svc', scope: 'invoices:write' }) });
    expect(write.h.findings()).toMatchObject([{ severity: 'high', evidence: { privileged_scope: ['invoices:write'] } }]);

    const bound = shared();
    for (const service of ['a', 'b', 'c']) await bound.present({ service, t: 0, token: jwt({ sub: 'svc', cnf: { 'x5t#S256': 'thumb' } }) });
    expect(bound.h.findings()).toMatchObject([{ severity: 'critical', evidence: { sender_constrained: ['x5t#S256'] } }]);
  });

  it('keeps at most max_keys fingerprints, least recently presented forgotten first', async () => {
    const run = async (maxKeys?: number) => {
      const s = shared('', maxKeys ? { detectors: { credential_shared: { max_keys: maxKeys } } } : {});
      await s.present({ service: 'a', t: 0 });
      await s.present({ service: 'b', t: 1000 });
      await s.present({ service: 'a', t: 2000, token: 'sk-other' }); // pushes the shared key out of a one-key table
      await s.present({ service: 'c', t: 3000 });
      return s.h.findings().length;
    };
    expect(await run()).toBe(1);
    expect(await run(1)).toBe(0);
  });
});
