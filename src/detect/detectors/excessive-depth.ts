// excessive_depth: an agent invocation deeper in the delegation chain than its role allows
// (policy roles.<role>.max_depth), or than the hard cap for every role (reference/detection.md:
// OWASP's Rego uses depth > 5; MS AGT caps delegation at 3). Shown on the deep agent's first span.
import { z } from 'zod';
import type { DetectorDefinition } from '../detector.ts';
import { agentChain, ends, hopsOf, structureMayHaveChanged } from '../detector.ts';

export const ExcessiveDepthConfig = z.strictObject({
  /** Deepest delegation any role may reach when its policy sets none. */
  max_depth: z.number().int().nonnegative().default(5),
});

export const excessiveDepth: DetectorDefinition<typeof ExcessiveDepthConfig> = {
  kind: 'excessive_depth',
  config: ExcessiveDepthConfig,
  create(cfg, ctx) {
    return {
      kind: 'excessive_depth',
      onSpans(trace, added, report) {
        // Spans arrive child-first: an agent's depth is known only once every ancestor is in, which
        // may be a later batch than its own. Look at every agent of the trace when the structure
        // may have changed, and judge those whose ancestors have all arrived.
        if (!structureMayHaveChanged(added)) return;
        const policy = ctx.policy();
        const limitOf = (role: string) => policy.role(role)?.max_depth ?? cfg.max_depth;
        for (const node of trace.graph.nodes.values()) {
          if (node.transparent || node.start.awaitsAncestor()) continue;
          const limit = limitOf(node.role);
          if (node.depth <= limit) continue;
          const chain = agentChain(node);
          // Where the chain crosses a limit, not every agent below it: a chain of thousands would
          // otherwise make thousands of findings, each listing the chain.
          const above = chain.at(-2);
          if (above && above.depth > limitOf(above.role)) continue;
          report({
            key: node.id,
            severity: node.depth > limit + 2 ? 'high' : 'medium',
            confidence: 'high',
            summary: `${node.role} acts at delegation depth ${node.depth}, beyond the ${limit} its role allows (${node.path})`,
            spans: [node.start, ...ends(chain.slice(0, -1)).map((n) => n.start)],
            chain: hopsOf(chain),
            evidence: { depth: node.depth, max_depth: limit, path: node.path, limit_from: policy.role(node.role)?.max_depth !== undefined ? 'role policy' : 'default' },
          });
        }
      },
    };
  },
};
