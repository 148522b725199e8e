// The top-level config (collector-shaped) and its validation against the component
// registry. Every problem is collected and named by its key path, e.g.
// `service::pipelines::traces::exporters: references exporter "otlp/x" which is not configured`.
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import type { ComponentKind } from '../component/types.ts';
import { type Registry, typeOf } from '../component/registry.ts';
import { formatIssues } from './issues.ts';
import { duration } from './units.ts';

const ComponentMap = z.record(z.string(), z.unknown()).default({});

const Pipeline = z.strictObject({
  receivers: z.array(z.string()).min(1, 'must list at least one receiver'),
  processors: z.array(z.string()).default([]),
  exporters: z.array(z.string()).min(1, 'must list at least one exporter'),
});

const Service = z.strictObject({
  extensions: z.array(z.string()).default([]),
  pipelines: z.record(z.string(), Pipeline).refine((p) => Object.keys(p).length > 0, 'must define at least one pipeline'),
  telemetry: z
    .strictObject({
      logs: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }).prefault({}),
      /**
       * Accepted and ignored: the OpenTelemetry Operator writes `metrics: { address: … }` into
       * every collector config it stores. Our metrics are served by the admin extension (/metrics).
       */
      metrics: z.unknown().optional(),
    })
    .prefault({}),
  /** Where the collector keeps state it owns (keys, stores). */
  data_dir: z.string().default('data'),
  /** How long a drain may take on SIGTERM before what is left is counted as dropped. */
  shutdown_timeout: duration.prefault('20s'),
});

export const ConfigSchema = z.strictObject({
  receivers: ComponentMap,
  processors: ComponentMap,
  exporters: ComponentMap,
  extensions: ComponentMap,
  service: Service,
});

export type ServiceConfig = z.output<typeof Service>;
export type PipelineConfig = z.output<typeof Pipeline>;

/** A validated config: every component's settings parsed by its factory's schema. */
export interface ResolvedConfig {
  service: ServiceConfig;
  components: Record<ComponentKind, Map<string, unknown>>;
}

const SECTION: Record<ComponentKind, 'receivers' | 'processors' | 'exporters' | 'extensions'> = {
  receiver: 'receivers',
  processor: 'processors',
  exporter: 'exporters',
  extension: 'extensions',
};

const ID_RE = /^[a-z][a-z0-9_]*(\/[A-Za-z0-9_.-]+)?$/;
const PIPELINE_ID_RE = /^traces(\/[A-Za-z0-9_.-]+)?$/;

export function resolveConfig(raw: unknown, registry: Registry): ResolvedConfig {
  const top = ConfigSchema.safeParse(raw);
  if (!top.success) throw new ConfigError(formatIssues([], top.error));
  const cfg = top.data;
  const issues: string[] = [];
  const components = { receiver: new Map(), processor: new Map(), exporter: new Map(), extension: new Map() } as ResolvedConfig['components'];

  for (const kind of Object.keys(SECTION) as ComponentKind[]) {
    const section = SECTION[kind];
    for (const [id, value] of Object.entries(cfg[section])) {
      if (!ID_RE.test(id)) {
        issues.push(`${section}::${id}: invalid component id: use type or type/name (lowercase type, e.g. otlp/jaeger)`);
        continue;
      }
      const factory = registry.get(kind, typeOf(id));
      if (!factory) {
        issues.push(`${section}::${id}: unknown ${kind} type "${typeOf(id)}" (known: ${registry.types(kind).join(', ') || 'none'})`);
        continue;
      }
      const parsed = factory.config.safeParse(value ?? {});
      if (!parsed.success) issues.push(...formatIssues([section, id], parsed.error));
      else components[kind].set(id, parsed.data);
    }
  }

  for (const ext of cfg.service.extensions) {
    if (!(ext in cfg.extensions)) issues.push(`service::extensions: references extension "${ext}" which is not configured`);
  }
  for (const [name, p] of Object.entries(cfg.service.pipelines)) {
    const at = `service::pipelines::${name}`;
    if (!PIPELINE_ID_RE.test(name)) issues.push(`${at}: only traces pipelines are supported (name them traces or traces/<name>)`);
    const check = (list: string[], kind: ComponentKind) => {
      const seen = new Set<string>();
      for (const id of list) {
        if (!(id in cfg[SECTION[kind]])) issues.push(`${at}::${SECTION[kind]}: references ${kind} "${id}" which is not configured`);
        if (seen.has(id)) issues.push(`${at}::${SECTION[kind]}: ${kind} "${id}" is listed twice`);
        seen.add(id);
      }
    };
    check(p.receivers, 'receiver');
    check(p.processors, 'processor');
    check(p.exporters, 'exporter');
    const types = p.processors.map(typeOf);
    types.forEach((type, i) => {
      for (const needed of registry.get('processor', type)?.after ?? []) {
        const before = p.processors.slice(0, i).filter((id) => typeOf(id) === needed);
        if (before.length === 0) {
          issues.push(`${at}::processors: ${type} needs ${needed} before it in the same pipeline`);
          continue;
        }
        // A processor of that type may, by its config, not give what this one reads from it.
        const lacks = registry.get('processor', needed)?.lacks;
        const reasons = before.map((id) => (lacks && components.processor.has(id) ? lacks(components.processor.get(id)) : undefined)).filter((r): r is string => r !== undefined);
        if (reasons.length === before.length) issues.push(`${at}::processors: ${type} needs ${needed} before it, and ${before.at(-1)} there does not serve it: ${reasons.at(-1)}`);
      }
    });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return { service: cfg.service, components };
}
