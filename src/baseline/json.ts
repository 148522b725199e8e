// One role's learnt profile as JSON (GET /api/baselines/{role}).
import type { Baselines } from './baselines.ts';
import { evidence } from './generate.ts';
import type { Item } from './profile.ts';

/** The role's summary, every item it was seen with (and how often, since when), and its volume; undefined for a role never seen. */
export function baselineJson(engine: Baselines, role: string): Record<string, unknown> | undefined {
  const summary = engine.summary(role);
  if (!summary) return undefined;
  const items = engine.items(role);
  const list = (entries: [string, Item][]) => entries.map(([value, it]) => ({ value, ...evidence(it) }));
  return {
    ...summary,
    tools: list(items.tool),
    endpoints: list(items.endpoint),
    collapsed_endpoints: engine.collapsedEndpoints(role),
    mcp: list(items.mcp),
    delegations: list(items.delegation),
    models: list(items.model),
    volume: engine.volume(role),
  };
}
