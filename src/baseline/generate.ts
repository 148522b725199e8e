// Observe-to-enforce (reference/detection.md §10): from the stored baselines, the least-privilege
// policy the evidence supports, in the policy file's own format. Per role: the tools, hosts and
// delegations seen at least generate.min_observations times in generate.min_conversations
// conversations, the deepest delegation seen, and a calls-per-minute ceiling; each with its
// evidence. What must not be allowed silently goes to `review:` instead: tools the policy labels
// sinks or whose names say they destroy, execute, pay or send; hosts outside the internal
// domains that the policy's egress list does not already allow; and anything seen too little.
// The rest of the current policy (capabilities, domains, egress, relays) is kept as it is.
import { Document } from 'yaml';
import { Baselines } from './baselines.ts';
import type { BaselinesConfig } from './config.ts';
import type { Item } from './profile.ts';
import { createStore } from './store.ts';
import { EMPTY_POLICY, loadPolicy, type Policy, type PolicyConfig } from '../detect/policy.ts';
import type { DetectConfig } from '../processors/detect.ts';
import type { ResolvedConfig } from '../config/schema.ts';
import { ConfigError } from '../errors.ts';
import { typeOf } from '../component/registry.ts';

/** Names of capabilities that are never promoted without a human look. */
const RISKY_NAME = /(delete|drop|destroy|remove|purge|wipe|exec|shell|bash|terminal|run_?code|python|eval|pay|transfer|wire|refund|send|email|mail|post|publish|upload|share|deploy|grant|admin)/i;

export interface Evidence {
  observations: number;
  conversations: number;
  first_seen: string;
  last_seen: string;
}

export interface ReviewEntry extends Evidence {
  value: string;
  reason: string;
}

export interface GeneratedRole {
  mode: 'observe' | 'enforce';
  allowed_tools: string[];
  allowed_hosts: string[];
  allowed_delegations: string[];
  max_depth: number;
  max_calls_per_minute?: number;
  evidence: {
    tools: Record<string, Evidence>;
    hosts: Record<string, Evidence>;
    delegations: Record<string, Evidence>;
    max_depth: { observed: number; invocations: number };
    calls_per_minute?: { observed_max: number; median: number; windows: number };
    learning: { state: string; first_seen: string; last_seen: string; calls: number };
  };
}

export interface GeneratedPolicy extends Partial<PolicyConfig> {
  roles: Record<string, GeneratedRole>;
  review: Record<string, { tools?: ReviewEntry[]; hosts?: ReviewEntry[]; delegations?: ReviewEntry[] }>;
}

export interface GenerateOptions {
  role?: string;
  mode?: 'observe' | 'enforce';
  minObservations: number;
  minConversations: number;
}

/** How often and when an item was seen, as the generated policy and GET /api/baselines/{role} show it. */
export function evidence(it: Item): Evidence {
  return {
    observations: it.count,
    conversations: it.convs.length,
    first_seen: new Date(it.first).toISOString(),
    last_seen: new Date(it.last).toISOString(),
  };
}

export function generatePolicy(engine: Baselines, policy: Policy, opts: GenerateOptions): GeneratedPolicy {
  const base = policy.config;
  const out: GeneratedPolicy = {
    internal_domains: base.internal_domains,
    egress: base.egress,
    capabilities: base.capabilities,
    relays: base.relays,
    retired: base.retired,
    roles: {},
    review: {},
  };
  const roles = opts.role ? [opts.role] : engine.roles();
  for (const role of roles) {
    const summary = engine.summary(role);
    if (!summary) continue;
    const items = engine.items(role);
    const review: { tools: ReviewEntry[]; hosts: ReviewEntry[]; delegations: ReviewEntry[] } = { tools: [], hosts: [], delegations: [] };
    const confident = (it: Item) => it.count >= opts.minObservations && it.convs.length >= opts.minConversations;
    const tooLittle = (it: Item) => `seen ${it.count} times in ${it.convs.length} conversations (needs ${opts.minObservations} in ${opts.minConversations})`;

    const gen: GeneratedRole = {
      mode: opts.mode ?? 'enforce',
      allowed_tools: [],
      allowed_hosts: [],
      allowed_delegations: [],
      max_depth: 0,
      evidence: { tools: {}, hosts: {}, delegations: {}, max_depth: { observed: 0, invocations: summary.invocations }, learning: { state: summary.state, first_seen: summary.first_seen, last_seen: summary.last_seen, calls: summary.calls } },
    };

    for (const [tool, it] of items.tool) {
      const labels = policy.labels({ tool, host: '', method: '', path: '', db: '', mcpMethod: '' });
      const reason = labels.sink ? `labelled sink: ${labels.sink} (${labels.capabilities.join(', ')})` : RISKY_NAME.test(tool) ? 'its name says it destroys, executes, pays or sends' : !confident(it) ? tooLittle(it) : '';
      if (reason) review.tools.push({ value: tool, reason, ...evidence(it) });
      else {
        gen.allowed_tools.push(tool);
        gen.evidence.tools[tool] = evidence(it);
      }
    }

    // Hosts: endpoints and MCP servers, by host (the policy's allowed_hosts are hosts).
    const hosts = new Map<string, Item>();
    for (const [key, it] of [...items.endpoint, ...items.mcp]) {
      const host = key.split(' ')[0]!;
      if (host === '-') continue;
      const known = hosts.get(host);
      if (!known) hosts.set(host, { ...it, convs: [...it.convs] });
      else {
        known.count += it.count;
        known.first = Math.min(known.first, it.first);
        known.last = Math.max(known.last, it.last);
        for (const c of it.convs) if (!known.convs.includes(c)) known.convs.push(c);
      }
    }
    for (const [host, it] of hosts) {
      const external = !policy.isInternal(host) && !policy.isAllowedEgress(host);
      const reason = external ? 'new egress: a host outside the internal domains and the egress allowlist' : !confident(it) ? tooLittle(it) : '';
      if (reason) review.hosts.push({ value: host, reason, ...evidence(it) });
      else {
        gen.allowed_hosts.push(host);
        gen.evidence.hosts[host] = evidence(it);
      }
    }

    for (const [to, it] of items.delegation) {
      if (!confident(it)) review.delegations.push({ value: to, reason: tooLittle(it), ...evidence(it) });
      else {
        gen.allowed_delegations.push(to);
        gen.evidence.delegations[to] = evidence(it);
      }
    }

    const volume = engine.volume(role);
    gen.max_depth = volume.max_depth;
    gen.evidence.max_depth.observed = volume.max_depth;
    const rate = engine.rateEvidence(role);
    if (rate) {
      // Enforced per minute, learnt per window: the busiest window's calls all in one minute is
      // the most the evidence allows (bursty traffic never trips the policy it taught), and a
      // ceiling for runaway loops.
      gen.max_calls_per_minute = Math.max(10, Math.ceil(rate.observed_max * (engine.cfg.window / 60_000)));
      gen.evidence.calls_per_minute = rate;
    }
    for (const list of [gen.allowed_tools, gen.allowed_hosts, gen.allowed_delegations]) list.sort();
    out.roles[role] = gen;
    const r: { tools?: ReviewEntry[]; hosts?: ReviewEntry[]; delegations?: ReviewEntry[] } = {};
    if (review.tools.length) r.tools = review.tools;
    if (review.hosts.length) r.hosts = review.hosts;
    if (review.delegations.length) r.delegations = review.delegations;
    if (Object.keys(r).length > 0) out.review[role] = r;
  }
  return out;
}

/** The first detect processor with baselines in a config's traces pipelines. */
export function baselineSettings(config: ResolvedConfig): { detect: DetectConfig; baselines: BaselinesConfig } | undefined {
  for (const pipeline of Object.values(config.service.pipelines)) {
    for (const id of pipeline.processors) {
      if (typeOf(id) !== 'detect') continue;
      const detect = config.components.processor.get(id) as DetectConfig | undefined;
      if (detect?.baselines) return { detect, baselines: detect.baselines };
    }
  }
  return undefined;
}

/** `agentsec policy generate`: opens the config's baseline store, reads it, writes the policy as YAML. */
export async function generatePolicyYaml(config: ResolvedConfig, opts: { role?: string; mode?: 'observe' | 'enforce' }): Promise<string> {
  const found = baselineSettings(config);
  if (!found) throw new ConfigError(['processors: no detect processor with `baselines` in the pipelines: there is nothing to generate a policy from']);
  const store = await createStore(found.baselines, config.service.data_dir);
  const engine = new Baselines(found.baselines, { store });
  await engine.start();
  try {
    if (opts.role && !engine.summary(opts.role)) throw new ConfigError([`--role: no baseline for role ${JSON.stringify(opts.role)} (known: ${engine.roles().join(', ') || 'none'})`]);
    const policy = found.detect.policy ? loadPolicy(found.detect.policy) : EMPTY_POLICY;
    const generated = generatePolicy(engine, policy, { ...opts, minObservations: found.baselines.generate.min_observations, minConversations: found.baselines.generate.min_conversations });
    const header = [
      `agentsec policy, generated ${new Date().toISOString()} from the ${store.kind} baselines (${store.where})${opts.role ? ` for role ${opts.role}` : ''}.`,
      'Each role allows what it was seen doing often enough; `evidence` says how often and when.',
      '`review` holds what was not allowed on its own (sinks, risky tools, new egress, too little evidence): move what you accept into `roles`.',
    ];
    const doc = new Document(generated);
    doc.commentBefore = header.map((l) => ` ${l}`).join('\n');
    return doc.toString({ lineWidth: 0 });
  } finally {
    await store.close();
  }
}
