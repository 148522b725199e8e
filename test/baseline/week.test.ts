// The simulated week of bench/baseline-week.ts, reduced: 10 roles over 7 days (Wednesday to
// Tuesday, a weekend in between) at 30% of the bench's traffic, driven straight into the engine
// with its default config. Normal noise must stay within the budget of 0.1 findings per
// role per day (counted over the days after each role's learning); a new tool and a sustained 5×
// volume injected after learning must be found, a single 5× window must not.
//
// The seed is the bench's (this run: 0.04 findings per role per day), almost all of them on the
// first day after learning (rare-but-known tools first used then): see the bench's output.
import { describe, expect, it } from 'vitest';
import { breakdown, simulateWeek } from '../../bench/baseline-week.ts';

describe('baselines over a simulated week', () => {
  it('normal noise stays within 0.1 findings per role per day; a new tool and a sustained 5× are found, a one-window spike is not', async () => {
    const r = await simulateWeek({ roles: 10, days: 7, seed: 5, start: Date.UTC(2026, 10, 4), inject: true, scale: 0.3 });
    const why = JSON.stringify({ perRolePerDay: r.perRolePerDay, breakdown: breakdown(r.falsePositives), injections: r.injections }, null, 1);
    // Every role learnt, about two days (learning.period 48h) after it was first seen.
    expect(r.roleDays, why).toBeGreaterThan(10 * 4.5);
    expect(r.perRolePerDay, why).toBeLessThanOrEqual(0.1);
    const inj = Object.fromEntries(r.injections.map((j) => [j.kind, j]));
    expect(inj.new_tool?.found, why).toBe(true);
    // Reported once, though the tool was called again.
    expect(r.findings.filter((f) => f.injected && f.kind === 'baseline_new_tool'), why).toHaveLength(1);
    expect(inj.sustained_5x?.found, why).toBe(true);
    expect(inj.single_window_5x?.found, why).toBe(false);
    // About 7 s on a quiet 2-core machine (most of it the engine judging windows), up to 19 s
    // beside a benchmark: the timeout leaves room for a busy machine.
  }, 60_000);
});
