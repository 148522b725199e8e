// Every detector, by kind (tail sampling's policy registry: one per file, duplicates rejected).
import type { DetectorDefinition } from '../detector.ts';
import type { FindingKind } from '../finding.ts';
import { excessiveDepth } from './excessive-depth.ts';

const ALL: DetectorDefinition[] = [excessiveDepth as DetectorDefinition];

export const DETECTORS: ReadonlyMap<FindingKind, DetectorDefinition> = (() => {
  const m = new Map<FindingKind, DetectorDefinition>();
  for (const d of ALL) {
    if (m.has(d.kind)) throw new Error(`duplicate detector for ${d.kind}`);
    m.set(d.kind, d);
  }
  return m;
})();
