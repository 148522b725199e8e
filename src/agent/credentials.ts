// Credentials seen on spans: fingerprinted with a keyed HMAC (so the same token maps to the
// same fingerprint across restarts and replicas that share the key, and a fingerprint cannot
// be reversed or brute-forced without the key), and JWT claims read WITHOUT verifying the
// signature: they are evidence of what the token claims, not proof.
import { createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const DEFAULT_CREDENTIAL_ATTRIBUTES = ['http.request.header.authorization', 'ai.request.headers.authorization', 'agentsec.credential'];

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
