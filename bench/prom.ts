// Reading the collector's /metrics (Prometheus text format) in the benches.

/** [label value, sample value] of every sample of a metric; the label value is '' without `label`. */
export function metricValues(text: string, name: string, label?: string): [string, number][] {
  const out: [string, number][] = [];
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) {
    const value = label ? (new RegExp(`${label}="([^"]*)"`).exec(m[1] ?? '')?.[1] ?? '') : '';
    out.push([value, Number(m[2])]);
  }
  return out;
}

export const sum = (samples: readonly [string, number][]) => samples.reduce((n, [, v]) => n + v, 0);

/** Sum per label value. */
export function byLabel(text: string, name: string, label: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of metricValues(text, name, label)) out.set(k, (out.get(k) ?? 0) + v);
  return out;
}

/** Spans an exporter has sent (agentsec_exporter_sent_spans_total{exporter}). */
export function sentSpans(text: string, exporter: string): number {
  return byLabel(text, 'agentsec_exporter_sent_spans_total', 'exporter').get(exporter) ?? 0;
}

/** Why the collector refused data: the reasons of refused spans and of requests refused before decoding. */
export function refusalReasons(text: string): string[] {
  const reasons = new Set<string>();
  for (const name of ['agentsec_receiver_refused_spans_total', 'agentsec_receiver_refused_requests_total']) {
    for (const [reason, v] of metricValues(text, name, 'reason')) if (v > 0) reasons.add(reason);
  }
  return [...reasons];
}

export async function scrapeMetrics(adminUrl: string): Promise<string> {
  return (await fetch(`${adminUrl}/metrics`)).text();
}
