// The policy file (DESIGN §5): capabilities named by match rules over the canonical view and
// labelled (source: untrusted, data: sensitive, sink: egress | privileged | destructive | exec),
// the internal domains and allowed egress destinations, roles with their allowed tools,
// delegations, maximum depth and mode, relays allowed to pass a credential on, and retired
// identities. Validated with zod; errors name the key.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { formatIssues } from '../config/issues.ts';

const Glob = z.string().min(1);

export const CapabilityMatch = z
  .strictObject({
    tool: Glob.optional(),
    host: Glob.optional(),
    method: Glob.optional(),
    path: Glob.optional(),
    db_operation: Glob.optional(),
    mcp_method: Glob.optional(),
  })
  .refine((m) => Object.keys(m).length > 0, 'needs at least one of tool, host, method, path, db_operation, mcp_method');

export const SinkLabel = z.enum(['egress', 'privileged', 'destructive', 'exec']);
export type SinkLabel = z.output<typeof SinkLabel>;

export const Capability = z.strictObject({
  name: z.string().min(1),
  /** Every given field must match (globs with *). */
  match: CapabilityMatch,
  source: z.enum(['untrusted']).optional(),
  data: z.enum(['sensitive']).optional(),
  sink: SinkLabel.optional(),
});

export const RolePolicy = z.strictObject({
  /** enforce: deny-by-default, every call outside the lists below is a policy_violation; observe: learnt from, not reported (see policy_violation's report_observed). */
  mode: z.enum(['observe', 'enforce']).default('observe'),
  allowed_tools: z.array(Glob).optional(),
  allowed_delegations: z.array(z.string()).optional(),
  allowed_hosts: z.array(Glob).optional(),
  max_depth: z.number().int().nonnegative().optional(),
  /** Calls (tool, model, MCP) the role may make per minute, over all its invocations (counted per replica); enforced roles only. */
  max_calls_per_minute: z.number().int().positive().optional(),
  /** What a generated policy learnt each entry from (agentsec policy generate); not used to judge. */
  evidence: z.record(z.string(), z.unknown()).optional(),
});

export const PolicySchema = z.strictObject({
  internal_domains: z.array(z.string()).default([]),
  egress: z
    .strictObject({
      allowed_hosts: z.array(Glob).default([]),
      allowed_email_domains: z.array(z.string()).default([]),
      allowed_accounts: z.array(z.string()).default([]),
    })
    .prefault({}),
  capabilities: z.array(Capability).default([]),
  roles: z.record(z.string(), RolePolicy).default({}),
  /** Agents allowed to pass a credential on (gateways, sidecars). */
  relays: z.array(z.string()).default([]),
  /** Identities that must no longer act. */
  retired: z.array(z.string()).default([]),
  /** Entries a generated policy did not allow on its own (sinks, risky tools, new egress, too little evidence), per role: for a human to move into `roles`. Not used to judge. */
  review: z.record(z.string(), z.unknown()).default({}),
});
export type PolicyConfig = z.output<typeof PolicySchema>;

export interface Labels {
  /** Names of the capabilities the span matched. */
  capabilities: readonly string[];
  untrusted: boolean;
  sensitive: boolean;
  sink: SinkLabel | undefined;
}

/** Distinct capability combinations remembered (beyond, each span gets its own Labels). */
const MAX_LABEL_SETS = 4096;

export const NO_LABELS: Labels = Object.freeze({ capabilities: [], untrusted: false, sensitive: false, sink: undefined }) as Labels;

/** What a capability rule can see of a span. */
export interface MatchSubject {
  tool: string;
  host: string;
  method: string;
  path: string;
  db: string;
  mcpMethod: string;
}

/** A case-insensitive glob with `*`, as the policy file writes them. */
export function glob(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'i');
}

/** Case-insensitive globs with `*`, as the policy file writes them. */
export function globList(patterns: readonly string[]): (value: string) => boolean {
  const exact = new Set<string>();
  const res: RegExp[] = [];
  for (const p of patterns) {
    if (p.includes('*')) res.push(glob(p));
    else exact.add(p.toLowerCase());
  }
  return (value) => exact.has(value.toLowerCase()) || res.some((re) => re.test(value));
}

export class Policy {
  readonly config: PolicyConfig;
  readonly #caps: { name: string; test: (s: MatchSubject) => boolean; source: boolean; data: boolean; sink: SinkLabel | undefined }[];
  readonly #internal: string[];
  readonly #egressHosts: RegExp[];
  readonly #egressEmail: Set<string>;
  readonly #relays: Set<string>;
  readonly #retired: Set<string>;
  readonly #labelSets = new Map<string, Labels>();

  constructor(config: PolicyConfig) {
    this.config = config;
    this.#caps = config.capabilities.map((c) => {
      const checks: ((s: MatchSubject) => boolean)[] = [];
      const add = (p: string | undefined, get: (s: MatchSubject) => string) => {
        if (p === undefined) return;
        const re = glob(p);
        checks.push((s) => re.test(get(s)));
      };
      add(c.match.tool, (s) => s.tool);
      add(c.match.host, (s) => s.host);
      add(c.match.method, (s) => s.method);
      add(c.match.path, (s) => s.path);
      add(c.match.db_operation, (s) => s.db);
      add(c.match.mcp_method, (s) => s.mcpMethod);
      return { name: c.name, test: (s) => checks.every((f) => f(s)), source: c.source === 'untrusted', data: c.data === 'sensitive', sink: c.sink };
    });
    this.#internal = config.internal_domains.map((d) => d.toLowerCase().replace(/^\*?\.?/, ''));
    this.#egressHosts = config.egress.allowed_hosts.map(glob);
    this.#egressEmail = new Set(config.egress.allowed_email_domains.map((d) => d.toLowerCase()));
    this.#relays = new Set(config.relays);
    this.#retired = new Set(config.retired);
  }

  /**
   * What the policy says of a span. One frozen Labels per combination of capabilities matched,
   * shared by every span that matches it: labels live as long as their trace's detector state.
   */
  labels(s: MatchSubject): Labels {
    let key = '';
    for (let i = 0; i < this.#caps.length; i++) if (this.#caps[i]!.test(s)) key += key === '' ? String(i) : ',' + i;
    if (key === '') return NO_LABELS;
    let out = this.#labelSets.get(key);
    if (out) return out;
    const caps = key.split(',').map((i) => this.#caps[Number(i)]!);
    out = Object.freeze({
      capabilities: Object.freeze(caps.map((c) => c.name)),
      untrusted: caps.some((c) => c.source),
      sensitive: caps.some((c) => c.data),
      sink: caps.find((c) => c.sink !== undefined)?.sink,
    });
    if (this.#labelSets.size < MAX_LABEL_SETS) this.#labelSets.set(key, out);
    return out;
  }

  /** A host in one of the internal domains (or a bare cluster-local name). */
  isInternal(host: string): boolean {
    const h = host.toLowerCase();
    if (!h.includes('.') || h === 'localhost' || /^(10|127)\.|^192\.168\.|^172\.(1[6-9]|2\d|3[01])\./.test(h)) return true;
    return this.#internal.some((d) => h === d || h.endsWith('.' + d));
  }

  /** A destination (host or e-mail address) that data may leave to. */
  isAllowedEgress(destination: string): boolean {
    const d = destination.toLowerCase();
    const at = d.lastIndexOf('@');
    if (at >= 0) {
      const domain = d.slice(at + 1);
      return this.#egressEmail.has(domain) || this.isInternal(domain) || this.config.egress.allowed_accounts.includes(d);
    }
    return this.isInternal(d) || this.#egressHosts.some((re) => re.test(d)) || this.config.egress.allowed_accounts.includes(d);
  }

  isRelay(role: string): boolean {
    return this.#relays.has(role);
  }

  isRetired(identity: string): boolean {
    return this.#retired.has(identity);
  }

  role(role: string) {
    return this.config.roles[role];
  }
}

export function parsePolicy(text: string, name: string): Policy {
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (err) {
    throw new ConfigError([`policy: ${name} is not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
  }
  const parsed = PolicySchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(formatIssues(['policy'], parsed.error));
  return new Policy(parsed.data);
}

export function loadPolicy(path: string): Policy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`policy: cannot read ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`]);
  }
  return parsePolicy(text, path);
}

export const EMPTY_POLICY = new Policy(PolicySchema.parse({}));
