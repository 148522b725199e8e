// What travels with a fingerprint: the agentsec.credential.* attributes normalize writes where
// it replaces a credential (never any part of the token), the credential pass alone (mode:
// redact), and a gateway that trusts forwarded claims rebuilding the very credential the
// sidecar read, while one that does not removes them and fingerprints every value.
import { describe, expect, it } from 'vitest';
import { CREDENTIAL_ATTR, CredentialReader } from '../../src/agent/credentials.ts';
import { StringPool } from '../../src/agent/values.ts';
import { normalizeSpan, redactSpan, type NormalizeOptions } from '../../src/agent/view.ts';
import { spanViews } from '../../src/agent/annotations.ts';
import { decodeTraceProtobuf } from '../../src/otlp/decode.ts';
import { encodeTraceProtobuf } from '../../src/otlp/encode.ts';
import type { KeyValue, Span, TraceBatch } from '../../src/otlp/types.ts';
import { Normalize, NormalizeConfig } from '../../src/processors/normalize.ts';
import { components } from '../../src/components.ts';
import { resolveConfig } from '../../src/config/schema.ts';
import { plainAttributes } from '../helpers/plain-spans.ts';
import { testSettings } from '../helpers/settings.ts';

const KEY = Buffer.alloc(32, 3);
const base = { credentialAttributes: new Set(['http.request.header.authorization', 'ai.request.headers.authorization', 'agentsec.credential']), credentials: new CredentialReader(KEY) };
const sidecar: NormalizeOptions = { ...base, pool: new StringPool() };
const trusting: NormalizeOptions = { ...base, pool: new StringPool(), trustForwarded: true };
const untrusting: NormalizeOptions = { ...base, pool: new StringPool() };

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const SIGNATURE = Buffer.from('signature-bytes-that-must-never-leave-0123456789').toString('base64url');
const PAYLOAD = { iss: 'https://idp.corp.internal', sub: 'user-42', azp: 'orchestrator', aud: ['crm', 'mail'], scope: 'crm:read crm:write', exp: 2_000_000_000, act: { sub: 'research', act: { client_id: 'analysis' } }, cnf: { jkt: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' } };
const JWT = `${b64({ alg: 'ES256', typ: 'JWT' })}.${b64(PAYLOAD)}.${SIGNATURE}`;

function span(attrs: Record<string, string | string[]>): Span {
  const attributes: KeyValue[] = Object.entries(attrs).map(([key, v]) => ({ key, value: Array.isArray(v) ? { arrayValue: { values: v.map((s) => ({ stringValue: s })) } } : { stringValue: v } }));
  return { traceId: new Uint8Array(16).fill(1), spanId: new Uint8Array(8).fill(2), name: 'GET', kind: 3, attributes };
}

/** Over the wire between two collectors: encoded and decoded again (ints as Long, kvlists and all). */
function wire(s: Span): Span {
  const bytes = encodeTraceProtobuf([{ resource: { attributes: [] }, scopeSpans: [{ scope: { name: 't' }, spans: [s] }] }]);
  return decodeTraceProtobuf(bytes).batch.resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
}

const attrsOf = (s: Span) => plainAttributes(s.attributes);

describe('the attributes that travel with a fingerprint', () => {
  it('describe a JWT by its claims: fingerprint, attribute, scheme, sub, client_id, iss, aud, scope, exp, act, cnf; no part of the token', () => {
    const s = span({ 'http.request.header.authorization': [`Bearer ${JWT}`], 'url.full': 'https://crm.corp.internal/a' });
    const c = redactSpan(s, sidecar)!;
    const fp = base.credentials.fingerprint(JWT);
    expect(c).toEqual({ fingerprint: fp, scheme: 'jwt', attribute: 'http.request.header.authorization', claims: base.credentials.read(JWT).claims });
    expect(attrsOf(s)).toEqual({
      'http.request.header.authorization': [fp],
      'url.full': 'https://crm.corp.internal/a',
      'agentsec.credential.fingerprint': fp,
      'agentsec.credential.attribute': 'http.request.header.authorization',
      'agentsec.credential.scheme': 'jwt',
      'agentsec.credential.sub': 'user-42',
      'agentsec.credential.client_id': 'orchestrator',
      'agentsec.credential.iss': 'https://idp.corp.internal',
      'agentsec.credential.aud': ['crm', 'mail'],
      'agentsec.credential.scope': ['crm:read', 'crm:write'],
      'agentsec.credential.exp': { int: '2000000000' },
      'agentsec.credential.act': ['research', 'analysis'],
      'agentsec.credential.cnf': { kvlist: { jkt: PAYLOAD.cnf.jkt } },
    });
    const text = JSON.stringify(s.attributes);
    for (const part of [JWT, ...JWT.split('.')]) expect(text).not.toContain(part);
  });

  it('describe an opaque or basic credential by fingerprint, attribute and scheme only', () => {
    const s = span({ 'ai.request.headers.authorization': 'Bearer sk-live-0123456789abcdef' });
    redactSpan(s, sidecar);
    expect(attrsOf(s)).toEqual({
      'ai.request.headers.authorization': base.credentials.fingerprint('sk-live-0123456789abcdef'),
      'agentsec.credential.fingerprint': base.credentials.fingerprint('sk-live-0123456789abcdef'),
      'agentsec.credential.attribute': 'ai.request.headers.authorization',
      'agentsec.credential.scheme': 'bearer',
    });
  });

  it('cut claim values that are too long to be names, and lists too long to be scopes', () => {
    const long = `${b64({ alg: 'none' })}.${b64({ sub: 'x'.repeat(10_000), scope: Array.from({ length: 100 }, (_, i) => `s${i}`).join(' ') })}.`;
    const s = span({ 'agentsec.credential': long });
    redactSpan(s, sidecar);
    const a = attrsOf(s);
    expect((a['agentsec.credential.sub'] as string).length).toBe(256);
    expect(a['agentsec.credential.scope']).toHaveLength(32);
  });

  it('mode: redact does the credential pass exactly as the full view does it, and nothing else', () => {
    const attrs = { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'crm', 'http.request.header.authorization': [`Bearer ${JWT}`, 'Bearer other'], 'agentsec.credential': 'ghp_token' };
    const a = span(attrs);
    const b = span(attrs);
    const redacted = redactSpan(a, sidecar);
    const view = normalizeSpan(b, sidecar);
    expect(a).toEqual(b);
    expect(redacted).toEqual(view.credential);
  });
});

describe('a gateway behind a sidecar', () => {
  it('trusting forwarded claims: keeps the fingerprints and rebuilds the credential the sidecar read, attributes untouched', () => {
    const direct = normalizeSpan(span({ 'http.request.header.authorization': [`Bearer ${JWT}`, 'Bearer other'] }), trusting);
    const s = span({ 'http.request.header.authorization': [`Bearer ${JWT}`, 'Bearer other'] });
    redactSpan(s, sidecar);
    const forwarded = wire(s);
    const before = attrsOf(forwarded);
    const v = normalizeSpan(forwarded, trusting);
    expect(v.credential).toEqual(direct.credential);
    expect(v.credential!.claims).toMatchObject({ clientId: 'orchestrator', sub: 'user-42', actors: ['research', 'analysis'], cnf: { jkt: PAYLOAD.cnf.jkt }, exp: 2_000_000_000 });
    expect(attrsOf(forwarded)).toEqual(before);
  });

  it('not trusting them (the default): removes them, fingerprints the fingerprint, reads no claims', () => {
    const s = span({ 'http.request.header.authorization': [`Bearer ${JWT}`] });
    redactSpan(s, sidecar);
    const fp = base.credentials.fingerprint(JWT);
    const v = normalizeSpan(wire(s), untrusting);
    const again = base.credentials.fingerprint(fp);
    expect(v.credential).toEqual({ fingerprint: again, claims: undefined, scheme: 'opaque', attribute: 'http.request.header.authorization' });
    expect(NormalizeConfig.parse({}).trust_forwarded_claims).toBe(false);
  });

  it('trusting them: claims not bound to a fingerprint the span holds are removed, and a raw token there is read (its own claims win)', () => {
    const fp = base.credentials.fingerprint(JWT);
    const forged = { 'agentsec.credential.fingerprint': fp, 'agentsec.credential.attribute': 'http.request.header.authorization', 'agentsec.credential.client_id': 'research', 'agentsec.credential.act': ['research'] };
    // Bound to a fingerprint the attribute does not hold.
    const unbound = span({ 'http.request.header.authorization': ['fp_0123456789abcdef01234567'], ...forged });
    const v1 = normalizeSpan(unbound, trusting);
    expect(v1.credential).toEqual({ fingerprint: 'fp_0123456789abcdef01234567', claims: undefined, scheme: 'fingerprint', attribute: 'http.request.header.authorization' });
    expect(Object.keys(attrsOf(unbound))).toEqual(['http.request.header.authorization']);
    // Naming an attribute the span lacks.
    const elsewhere = span({ 'http.request.header.authorization': [fp], ...forged, 'agentsec.credential.attribute': 'x-api-key' });
    expect(normalizeSpan(elsewhere, trusting).credential?.claims).toBeUndefined();
    // Beside the raw token: what the token says.
    const raw = span({ 'http.request.header.authorization': [`Bearer ${JWT}`], ...forged });
    const v2 = normalizeSpan(raw, trusting);
    expect(v2.credential?.claims).toMatchObject({ clientId: 'orchestrator', actors: ['research', 'analysis'] });
    expect(attrsOf(raw)).toMatchObject({ 'agentsec.credential.client_id': 'orchestrator', 'agentsec.credential.act': ['research', 'analysis'] });
    expect(raw.attributes!.filter((kv) => kv.key === CREDENTIAL_ATTR.clientId)).toHaveLength(1);
  });

  it('a sidecar removes claims attributes an agent wrote itself before it writes its own', () => {
    const s = span({ 'agentsec.credential': 'ghp_token', 'agentsec.credential.client_id': 'orchestrator', 'agentsec.credential.scope': ['admin'] });
    redactSpan(s, sidecar);
    expect(attrsOf(s)).toEqual({
      'agentsec.credential': base.credentials.fingerprint('ghp_token'),
      'agentsec.credential.fingerprint': base.credentials.fingerprint('ghp_token'),
      'agentsec.credential.attribute': 'agentsec.credential',
      'agentsec.credential.scheme': 'opaque',
    });
    const none = span({ 'gen_ai.tool.name': 'x', 'agentsec.credential.client_id': 'orchestrator' });
    expect(redactSpan(none, sidecar)).toBeUndefined();
    expect(attrsOf(none)).toEqual({ 'gen_ai.tool.name': 'x' });
  });
});

describe('the normalize processor', () => {
  const batch = (s: Span): TraceBatch => ({ resourceSpans: [{ resource: { attributes: [] }, scopeSpans: [{ scope: { name: 't' }, spans: [s] }] }], spanCount: 1 });
  const next = { mutatesData: false, consume: async () => {} };

  it('mode: redact replaces and describes credentials and leaves no view; full mode leaves one', async () => {
    const redact = new Normalize(testSettings('normalize'), NormalizeConfig.parse({ hmac_key: 'k'.repeat(32), mode: 'redact' }), next);
    const full = new Normalize(testSettings('normalize'), NormalizeConfig.parse({ hmac_key: 'k'.repeat(32) }), next);
    const a = batch(span({ 'agentsec.credential': JWT }));
    const b = batch(span({ 'agentsec.credential': JWT }));
    await redact.consume(a, { receiver: 't', transport: 'http' });
    await full.consume(b, { receiver: 't', transport: 'http' });
    expect(spanViews.get(a)).toBeUndefined();
    expect(spanViews.get(b)).toHaveLength(1);
    expect(a.resourceSpans).toEqual(b.resourceSpans);
    expect(JSON.stringify(a.resourceSpans)).not.toContain(SIGNATURE);
  });

  it('in either mode, replaces credential attributes on the resource, the scope, span events and links too', async () => {
    for (const mode of ['full', 'redact'] as const) {
      const normalize = new Normalize(testSettings('normalize'), NormalizeConfig.parse({ hmac_key: 'k'.repeat(32), mode }), next);
      const token = (where: string) => ({ key: 'http.request.header.authorization', value: { stringValue: `Bearer sk-${where}-${mode}-0123456789` } });
      const s = span({ 'gen_ai.tool.name': 'x' });
      s.events = [{ name: 'request', attributes: [token('event')] }];
      s.links = [{ traceId: new Uint8Array(16).fill(2), spanId: new Uint8Array(8).fill(2), attributes: [token('link')] }];
      const b: TraceBatch = { resourceSpans: [{ resource: { attributes: [token('resource')] }, scopeSpans: [{ scope: { name: 't', attributes: [token('scope')] }, spans: [s] }] }], spanCount: 1 };
      await normalize.consume(b, { receiver: 't', transport: 'http' });
      const text = JSON.stringify(b.resourceSpans);
      for (const where of ['event', 'link', 'resource', 'scope']) expect(text, `${mode}: ${where}`).not.toContain(`sk-${where}`);
      expect(b.resourceSpans[0]!.resource!.attributes![0]!.value!.stringValue).toMatch(/^fp_[0-9a-f]{24}$/);
      // Not the span's credential: nothing on the span itself presented one.
      if (mode === 'full') expect(spanViews.get(b)![0]!.credential).toBeUndefined();
    }
  });

  it('a pipeline that reads the view after a normalize in mode: redact is refused at start', () => {
    const cfg = (mode: string) => ({
      receivers: { otlp: { protocols: { http: { endpoint: '127.0.0.1:0' } } } },
      processors: { normalize: { hmac_key: 'k'.repeat(32), mode }, tracegraph: {} },
      exporters: { debug: {} },
      service: { pipelines: { traces: { receivers: ['otlp'], processors: ['normalize', 'tracegraph'], exporters: ['debug'] } } },
    });
    expect(() => resolveConfig(cfg('full'), components())).not.toThrow();
    expect(() => resolveConfig(cfg('redact'), components())).toThrow(/tracegraph needs normalize before it, and normalize there does not serve it: it has mode: redact/);
  });
});
