// alertmanager: findings as alerts on the Alertmanager v2 API (POST <url>/api/v2/alerts, a
// JSON array of postable alerts), batched: what is queued, up to max_batch findings a request.
//
// Alertmanager identifies an alert by its label set. finding_id is a label too (besides the
// annotation), so that two findings that share kind, severity, trace and roles stay two
// alerts. An upgraded finding may change a label (severity, or root/role when its chain
// grows): it then is a new alert, and the sink resolves the one it replaces (same labels,
// endsAt now) in the same request, so that the old severity does not keep paging.
// No endsAt on a firing alert: Alertmanager resolves it after its resolve_timeout (5m by
// default) unless it is sent again: a finding is an event, not a condition that persists.
import type { z } from 'zod';
import type { Finding } from '../finding.ts';
import type { AlertmanagerSinkConfig } from '../sinks.ts';
import { httpFailure, httpPoster, type HttpPoster } from '../../exporters/http-client.ts';
import { loadSinkTls } from './http.ts';
import { QueuedSink, type SinkContext, USER_AGENT, MAX_ANSWER_BYTES } from './queue.ts';

export interface PostableAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt?: string;
  generatorURL?: string;
}

/** Findings whose last label set is remembered, to resolve the alert an upgrade replaces. */
const REMEMBERED = 10_000;
const MAX_DESCRIPTION = 2000;
const MAX_VALUE = 120;
const MAX_ITEMS = 10;

export function alertmanagerSink(name: string, cfg: z.output<typeof AlertmanagerSinkConfig>, ctx: SinkContext): QueuedSink<PostableAlert[], string> {
  let poster: HttpPoster | undefined;
  const sent = new Map<string, { key: string; alert: PostableAlert }>();
  return new QueuedSink<PostableAlert[], string>(
    ctx,
    { name, maxQueue: cfg.max_queue, maxBatch: cfg.max_batch, retry: cfg.retry, timeout: cfg.timeout },
    {
      async start() {
        const url = new URL(`${cfg.url.replace(/\/+$/, '')}/api/v2/alerts`);
        const tls = url.protocol === 'https:' ? await loadSinkTls(name, cfg.tls) : undefined;
        poster = httpPoster(url, { headers: cfg.headers, contentType: 'application/json', tls, userAgent: USER_AGENT, maxAnswerBytes: MAX_ANSWER_BYTES });
      },
      encode(f) {
        const alert = alertOf(f);
        const key = JSON.stringify(alert.labels);
        const before = sent.get(f.id);
        sent.delete(f.id);
        if (sent.size >= REMEMBERED) sent.delete(sent.keys().next().value!);
        sent.set(f.id, { key, alert });
        if (!before || before.key === key) return [alert];
        const now = new Date().toISOString();
        const resolved: PostableAlert = { ...before.alert, endsAt: now < before.alert.startsAt ? before.alert.startsAt : now };
        return [resolved, alert];
      },
      request: (payloads) => JSON.stringify(payloads.flat()),
      async send(body, signal) {
        const answer = await poster!.post(body, signal);
        const failure = httpFailure(answer);
        if (failure) throw failure;
      },
      close: () => poster?.close(),
    },
  );
}

export function alertOf(f: Finding): PostableAlert {
  const labels: Record<string, string> = {
    alertname: 'AgentsecFinding',
    kind: f.kind,
    severity: f.severity,
    owasp: f.owasp,
    trace_id: f.traceId,
    finding_id: f.id,
  };
  // Alertmanager treats an empty label value as no label: leave them out.
  const root = f.chain[0]?.role;
  const role = f.chain.at(-1)?.role;
  if (root) labels.root = root;
  if (role) labels.role = role;
  return {
    labels,
    annotations: { summary: f.summary, description: describeFinding(f), finding_id: f.id },
    startsAt: f.time,
    ...(f.link && { generatorURL: f.link }),
  };
}

/**
 * The chain and a bounded rendering of the evidence. Built only from roles, capabilities and
 * evidence, which by the finding contract hold fingerprints, hosts, tools and counts, never
 * raw secrets (credentials are fingerprinted before detection sees them).
 */
export function describeFinding(f: Finding): string {
  const chain = f.chain.map((h) => (h.capability ? `${h.role} [${h.capability}]` : h.role)).join(' → ');
  const evidence: string[] = [];
  flatten('', f.evidence, evidence, 0);
  const lines = [
    `${f.kind} (${f.severity}, ${f.confidence} confidence, OWASP ${f.owasp})`,
    `chain: ${chain || '(none)'}`,
    `evidence: ${evidence.join('; ') || '(none)'}`,
    `trace ${f.traceId}, spans ${f.spanIds.join(', ')}`,
  ];
  const text = lines.join('\n');
  return text.length > MAX_DESCRIPTION ? `${text.slice(0, MAX_DESCRIPTION - 1)}…` : text;
}

function flatten(prefix: string, value: unknown, out: string[], depth: number): void {
  if (value === undefined) return;
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && depth < 2) {
    for (const [k, v] of Object.entries(value)) flatten(prefix ? `${prefix}.${k}` : k, v, out, depth + 1);
    return;
  }
  out.push(`${prefix || 'value'}=${render(value)}`);
}

function render(value: unknown): string {
  if (Array.isArray(value)) {
    const items = value.slice(0, MAX_ITEMS).map(render).join(', ');
    return `[${items}${value.length > MAX_ITEMS ? `, … +${value.length - MAX_ITEMS}` : ''}]`;
  }
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  return text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE - 1)}…` : text;
}
