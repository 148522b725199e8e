// Credentials seen on spans: fingerprinted with a keyed HMAC (so the same token maps to the
// same fingerprint across restarts and replicas that share the key, and a fingerprint cannot
// be reversed or brute-forced without the key), and JWT claims read WITHOUT verifying the
// signature: they are evidence of what the token claims, not proof.
import { createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AnyValue, KeyValue } from '../otlp/types.ts';
import { findAttribute, numberOf, stringOf, stringsOf } from './values.ts';

/**
 * Where instrumentations put credentials: the headers that carry them (as HTTP instrumentation
 * records request and response headers, and as the AI SDK copies a call's headers), and the
 * attribute our own tool code sets.
 */
export const DEFAULT_CREDENTIAL_ATTRIBUTES = [
  'http.request.header.authorization',
  'http.request.header.proxy-authorization',
  'http.request.header.x-api-key',
  'http.request.header.api-key',
  'http.request.header.cookie',
  'http.response.header.set-cookie',
  'ai.request.headers.authorization',
  'ai.request.headers.x-api-key',
  'ai.request.headers.api-key',
  'agentsec.credential',
];

/**
 * The configured credential attribute keys, matched as header names are: case-insensitively, and
 * with '_' and '-' alike (instrumentations differ: OpenTelemetry JS's header capture writes
 * `proxy_authorization`, the semantic conventions `proxy-authorization`).
 */
export class CredentialKeys {
  readonly #exact: Set<string>;
  readonly #folded: Set<string>;
  /** First letters (lower case) of the configured keys: most attribute keys (gen_ai.*) start otherwise. */
  readonly #firstLetters: Set<number>;

  constructor(keys: Iterable<string>) {
    this.#folded = new Set([...keys].map(foldKey));
    this.#exact = new Set([...keys, ...this.#folded]);
    this.#firstLetters = new Set([...this.#folded].map((k) => k.charCodeAt(0)));
  }

  // On every attribute of every span: the common key is answered without making a string.
  has(key: string): boolean {
    if (this.#exact.has(key)) return true;
    if (!this.#firstLetters.has(key.charCodeAt(0) | 0x20)) return false;
    // Only a key with an upper-case letter or a '_' can fold into one of ours.
    return MAY_FOLD.test(key) && this.#folded.has(foldKey(key));
  }
}

const MAY_FOLD = /[A-Z_]/;

function foldKey(key: string): string {
  return key.toLowerCase().replaceAll('_', '-');
}

const KEY_FILE = 'hmac.key';
const MIN_KEY_BYTES = 32;

/** The HMAC key: from config, else generated once and kept (mode 0600) in the data directory. */
export function loadHmacKey(configured: string | undefined, dataDir: string): Buffer {
  if (configured) {
    const key = Buffer.from(configured, 'utf8');
    if (key.length < MIN_KEY_BYTES) throw new Error(`hmac_key must be at least ${MIN_KEY_BYTES} bytes`);
    return key;
  }
  const file = join(dataDir, KEY_FILE);
  try {
    const hex = readFileSync(file, 'utf8').trim();
    if (/^[0-9a-f]{64,}$/.test(hex)) return Buffer.from(hex, 'hex');
    throw new Error(`${file} does not hold a hex key; delete it to have a new one generated`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dataDir, { recursive: true });
  const key = randomBytes(MIN_KEY_BYTES);
  writeFileSync(file, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return key;
}

export interface JwtClaims {
  sub?: string;
  /** azp, else client_id: the client the token was issued to. */
  clientId?: string;
  scope?: string[];
  aud?: string[];
  iss?: string;
  exp?: number;
  /** The delegation chain of a token exchange (RFC 8693 `act`), outermost actor first. */
  actors?: string[];
  /** Confirmation (proof-of-possession) key ids, e.g. jkt or x5t#S256. */
  cnf?: Record<string, string>;
}

export interface Credential {
  fingerprint: string;
  /** Present when the value is a JWT; read without verification. */
  claims: JwtClaims | undefined;
  /** bearer, basic, jwt or opaque. */
  scheme: string;
}

export class CredentialReader {
  /** A KeyObject made once: HMAC with it is several times faster than with a raw Buffer key. */
  readonly #key: KeyObject;
  constructor(key: Buffer) {
    this.#key = createSecretKey(key);
  }

  fingerprint(secret: string): string {
    return 'fp_' + createHmac('sha256', this.#key).update(secret).digest('hex').slice(0, 24);
  }

  /** Reads one header-style value: "Bearer <token>", "Basic …", a bare JWT or an opaque key. */
  read(raw: string): Credential {
    const value = raw.trim();
    const space = value.indexOf(' ');
    const prefix = space > 0 ? value.slice(0, space).toLowerCase() : '';
    const token = prefix === 'bearer' || prefix === 'basic' || prefix === 'token' ? value.slice(space + 1).trim() : value;
    const claims = jwtClaims(token);
    return { fingerprint: this.fingerprint(token), claims, scheme: claims ? 'jwt' : prefix === 'basic' ? 'basic' : prefix ? 'bearer' : 'opaque' };
  }
}

const B64URL = /^[A-Za-z0-9_-]+$/;

/** Claims of a JWT (JWS compact form), or undefined when the value is not one. */
export function jwtClaims(token: string): JwtClaims | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !B64URL.test(parts[0]!) || !B64URL.test(parts[1]!)) return undefined;
  let header: unknown;
  let payload: unknown;
  try {
    header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
    payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isRecord(header) || typeof header.alg !== 'string' || !isRecord(payload)) return undefined;
  const claims: JwtClaims = {};
  if (typeof payload.sub === 'string') claims.sub = payload.sub;
  const client = typeof payload.azp === 'string' ? payload.azp : typeof payload.client_id === 'string' ? payload.client_id : undefined;
  if (client) claims.clientId = client;
  const scope = typeof payload.scope === 'string' ? payload.scope.split(/\s+/).filter(Boolean) : Array.isArray(payload.scp) ? payload.scp.filter((s) => typeof s === 'string') : undefined;
  if (scope) claims.scope = scope;
  const aud = typeof payload.aud === 'string' ? [payload.aud] : Array.isArray(payload.aud) ? payload.aud.filter((a) => typeof a === 'string') : undefined;
  if (aud) claims.aud = aud;
  if (typeof payload.iss === 'string') claims.iss = payload.iss;
  if (typeof payload.exp === 'number') claims.exp = payload.exp;
  const actors: string[] = [];
  for (let act = payload.act, guard = 0; isRecord(act) && guard < 16; act = act.act, guard++) {
    const who = typeof act.sub === 'string' ? act.sub : typeof act.client_id === 'string' ? act.client_id : undefined;
    if (who) actors.push(who);
  }
  if (actors.length > 0) claims.actors = actors;
  if (isRecord(payload.cnf)) {
    const cnf: Record<string, string> = {};
    for (const [k, v] of Object.entries(payload.cnf)) if (typeof v === 'string') cnf[k] = v;
    claims.cnf = cnf;
  }
  return claims;
}

function isRecord(v: unknown): v is Record<string, unknown> & { act?: unknown } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------- what travels with a fingerprint

/**
 * Span attributes in which normalize writes what it read of a credential it replaced: the
 * fingerprint it is about, where it was, its scheme and the JWT claims the detectors use.
 * Never the token, nor any part of it (header, payload or signature): only decoded claim values.
 * A gateway behind sidecars rebuilds the credential from them (`trust_forwarded_claims`).
 */
export const CREDENTIAL_ATTR = {
  fingerprint: 'agentsec.credential.fingerprint',
  attribute: 'agentsec.credential.attribute',
  scheme: 'agentsec.credential.scheme',
  sub: 'agentsec.credential.sub',
  clientId: 'agentsec.credential.client_id',
  iss: 'agentsec.credential.iss',
  aud: 'agentsec.credential.aud',
  scope: 'agentsec.credential.scope',
  exp: 'agentsec.credential.exp',
  act: 'agentsec.credential.act',
  cnf: 'agentsec.credential.cnf',
} as const;

/** Every key of CREDENTIAL_ATTR: normalize owns them (untrusted ones are removed). */
export const CREDENTIAL_ATTR_KEYS: ReadonlySet<string> = new Set(Object.values(CREDENTIAL_ATTR));

/** What normalize writes in place of a credential. */
export const FINGERPRINT_RE = /^fp_[0-9a-f]{24}$/;

/** Claim values are names, not text: longer ones are cut, longer lists shortened. */
const MAX_CLAIM_CHARS = 256;
const MAX_CLAIM_ITEMS = 32;

const cut = (s: string) => (s.length > MAX_CLAIM_CHARS ? s.slice(0, MAX_CLAIM_CHARS) : s);
const str = (s: string): AnyValue => ({ stringValue: cut(s) });
const list = (a: readonly string[]): AnyValue => ({ arrayValue: { values: a.slice(0, MAX_CLAIM_ITEMS).map(str) } });

/** The attributes describing a credential (found in `attribute`): fingerprint, scheme and claims. */
export function credentialAttributes(c: Credential, attribute: string): KeyValue[] {
  const out: KeyValue[] = [
    { key: CREDENTIAL_ATTR.fingerprint, value: { stringValue: c.fingerprint } },
    { key: CREDENTIAL_ATTR.attribute, value: { stringValue: attribute } },
    { key: CREDENTIAL_ATTR.scheme, value: { stringValue: c.scheme } },
  ];
  const claims = c.claims;
  if (!claims) return out;
  if (claims.sub !== undefined) out.push({ key: CREDENTIAL_ATTR.sub, value: str(claims.sub) });
  if (claims.clientId !== undefined) out.push({ key: CREDENTIAL_ATTR.clientId, value: str(claims.clientId) });
  if (claims.iss !== undefined) out.push({ key: CREDENTIAL_ATTR.iss, value: str(claims.iss) });
  if (claims.aud !== undefined) out.push({ key: CREDENTIAL_ATTR.aud, value: list(claims.aud) });
  if (claims.scope !== undefined) out.push({ key: CREDENTIAL_ATTR.scope, value: list(claims.scope) });
  if (claims.exp !== undefined && Number.isFinite(claims.exp)) out.push({ key: CREDENTIAL_ATTR.exp, value: Number.isSafeInteger(claims.exp) ? { intValue: claims.exp } : { doubleValue: claims.exp } });
  if (claims.actors !== undefined) out.push({ key: CREDENTIAL_ATTR.act, value: list(claims.actors) });
  if (claims.cnf !== undefined) {
    const methods = Object.entries(claims.cnf).slice(0, MAX_CLAIM_ITEMS);
    out.push({ key: CREDENTIAL_ATTR.cnf, value: { kvlistValue: { values: methods.map(([k, v]) => ({ key: cut(k), value: str(v) })) } } });
  }
  return out;
}

/**
 * The credential that forwarded attributes (written by another agentsec's normalize) describe:
 * only when they name a fingerprint that the attribute they name actually holds on the span,
 * else undefined (unbound claims say nothing about this span's credential).
 */
export function forwardedCredential(attrs: readonly KeyValue[]): (Credential & { attribute: string }) | undefined {
  let fingerprint: string | undefined, attribute: string | undefined, scheme: string | undefined;
  const claims: JwtClaims = {};
  let claimed = false;
  for (const kv of attrs) {
    if (!CREDENTIAL_ATTR_KEYS.has(kv.key)) continue;
    const v = kv.value;
    const s = stringOf(v);
    switch (kv.key) {
      case CREDENTIAL_ATTR.fingerprint: fingerprint = s; continue;
      case CREDENTIAL_ATTR.attribute: attribute = s; continue;
      case CREDENTIAL_ATTR.scheme: scheme = s; continue;
      case CREDENTIAL_ATTR.sub: if (s === undefined) continue; claims.sub = s; break;
      case CREDENTIAL_ATTR.clientId: if (s === undefined) continue; claims.clientId = s; break;
      case CREDENTIAL_ATTR.iss: if (s === undefined) continue; claims.iss = s; break;
      case CREDENTIAL_ATTR.aud: claims.aud = stringsOf(v); break;
      case CREDENTIAL_ATTR.scope: claims.scope = stringsOf(v); break;
      case CREDENTIAL_ATTR.act: claims.actors = stringsOf(v); break;
      case CREDENTIAL_ATTR.exp: {
        const n = s === undefined ? numberOf(v) : undefined;
        if (n === undefined || !Number.isFinite(n)) continue;
        claims.exp = n;
        break;
      }
      case CREDENTIAL_ATTR.cnf: {
        const cnf: Record<string, string> = {};
        for (const e of v?.kvlistValue?.values ?? []) {
          const t = stringOf(e.value);
          if (t !== undefined) cnf[e.key] = t;
        }
        claims.cnf = cnf;
        break;
      }
    }
    claimed = true;
  }
  if (!fingerprint || !FINGERPRINT_RE.test(fingerprint) || !attribute || CREDENTIAL_ATTR_KEYS.has(attribute)) return undefined;
  const held = findAttribute(attrs, attribute);
  const holds = held?.stringValue === fingerprint || (held?.arrayValue?.values ?? []).some((x) => x.stringValue === fingerprint);
  if (!holds) return undefined;
  const jwt = claimed || scheme === 'jwt';
  return { fingerprint, claims: jwt ? claims : undefined, scheme: jwt ? 'jwt' : (scheme ?? 'opaque'), attribute };
}
