// Every detector, by kind (tail sampling's policy registry: one per file, duplicates rejected).
// The baseline detector (baseline.ts: baseline_new_tool, _new_endpoint, _new_delegation) is not
// here: it needs the baseline engine, so the detect processor creates it when detect.baselines
// is set.
import type { DetectorDefinition } from '../detector.ts';
import type { FindingKind } from '../finding.ts';
import { excessiveDepth } from './excessive-depth.ts';
import { toolLoop } from './tool-loop.ts';
import { delegationLoop } from './delegation-loop.ts';
import { policyViolation } from './policy-violation.ts';
import { capabilityEscalation } from './capability-escalation.ts';
import { dataExfiltration } from './data-exfiltration.ts';
import { credentialForwarding } from './credential-forwarding.ts';
import { credentialShared } from './credential-shared.ts';
import { zombieAgent } from './zombie-agent.ts';

const ALL: DetectorDefinition[] = [
  excessiveDepth as DetectorDefinition,
  toolLoop as DetectorDefinition,
  delegationLoop as DetectorDefinition,
  policyViolation as DetectorDefinition,
  capabilityEscalation as DetectorDefinition,
  dataExfiltration as DetectorDefinition,
  credentialForwarding as DetectorDefinition,
  credentialShared as DetectorDefinition,
  zombieAgent as DetectorDefinition,
];

export const DETECTORS: ReadonlyMap<FindingKind, DetectorDefinition> = (() => {
  const m = new Map<FindingKind, DetectorDefinition>();
  for (const d of ALL) {
    if (m.has(d.kind)) throw new Error(`duplicate detector for ${d.kind}`);
    m.set(d.kind, d);
  }
  return m;
})();
