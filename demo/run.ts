// npm run demo: the collector with its shipped default config and the demo policy, a simulated
// multi-agent system sending it normal traffic and then each attack, and the findings printed as
// they arrive. Everything on loopback; state in a temporary directory that is kept afterwards.
//
//   npm run demo                       about 40 s
//   npm run demo -- --seconds 15       a short run (or DEMO_SECONDS=15)
//   npm run demo -- --keep             leave the collector running at the end (Ctrl-C stops it)
//   npm run demo -- --config FILE      another collector config (default config/agentsec.yaml)
//
// With OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set, no collector is
// started: the agents send OTLP/HTTP there, and findings are read from AGENTSEC_ADMIN_URL (default:
// that host, port 13133). docker-compose.yml runs the demo that way against its collector.
//
// The collector listens on the default ports (4317, 4318, 13133) on 127.0.0.1 when they are free,
// else on free ones; AGENTSEC_GRPC_ENDPOINT / AGENTSEC_HTTP_ENDPOINT / AGENTSEC_ADMIN_ENDPOINT
// choose the ports. AGENTSEC_POLICY chooses the policy (default config/policies/demo.yaml).
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace';
import { parse as parseYaml } from 'yaml';
import { startCollector, logTail, type CollectorProcess } from '../bench/collector-process.ts';
import type { Finding, FindingKind } from '../src/detect/finding.ts';
import { AGENTS, AgentCast, Rng, makeCredentials, spanCount, type AgentName, type PlannedSpan, type TaskPlan } from './agents.ts';
import { ATTACKS, DEMO_SIZE, normalTask, policyViolationAttack, type Attack } from './scenarios.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const USAGE = `usage: npm run demo [-- --seconds N] [--keep] [--config FILE]`;

// ---------------------------------------------------------------------------------- output

const tty = process.stdout.isTTY === true && !process.env.NO_COLOR;
const paint = (code: string) => (s: string) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = paint('1');
const dim = paint('2');
const red = paint('31');
const green = paint('32');
const yellow = paint('33');
const magenta = paint('35');
const cyan = paint('36');
const SEVERITY_COLOR: Record<string, (s: string) => string> = { critical: (s) => bold(magenta(s)), high: red, medium: yellow, low: dim };
const say = (line = '') => process.stdout.write(line + '\n');

/** The chain as roles from the root, each with what it used where the finding says (a hop repeating its predecessor's role folded in). */
function chainText(f: Finding): string {
  const hops: string[] = [];
  let last = '';
  for (const h of f.chain) {
    const text = h.capability ? `${h.role}(${h.capability})` : h.role;
    if (h.role === last && hops.length > 0 && !hops[hops.length - 1]!.includes('(')) hops[hops.length - 1] = text;
    else hops.push(text);
    last = h.role;
  }
  return hops.join('>');
}

function findingLine(f: Finding, updated = false): string {
  const chain = chainText(f);
  const sev = SEVERITY_COLOR[f.severity]!(f.severity.toUpperCase().padEnd(8));
  return `  ${updated ? '↑' : '●'} ${sev} ${bold(f.kind.padEnd(21))} ${cyan(chain)}  ${f.summary}`;
}

// ---------------------------------------------------------------------------------- setup

interface Options {
  seconds: number;
  keep: boolean;
  config: string;
  policy: string;
}

function options(): Options {
  let parsed;
  try {
    parsed = parseArgs({ options: { seconds: { type: 'string' }, keep: { type: 'boolean' }, config: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (parsed.values.help) {
    say(USAGE);
    process.exit(0);
  }
  const seconds = Number(parsed.values.seconds ?? process.env.DEMO_SECONDS ?? 40);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    console.error(`--seconds must be a positive number\n${USAGE}`);
    process.exit(2);
  }
  return {
    seconds,
    keep: parsed.values.keep === true,
    config: resolve(REPO, parsed.values.config ?? 'config/agentsec.yaml'),
    policy: resolve(REPO, process.env.AGENTSEC_POLICY || 'config/policies/demo.yaml'),
  };
}

/** The collector the agents send to, and where its admin API is. */
interface Target {
  /** OTLP/HTTP traces URL. */
  tracesUrl: string;
  adminUrl: string;
  /** A collector started by the demo: its process and files. */
  local?: { collector: CollectorProcess; dataDir: string; logPath: string };
}

/** The collector named by the standard OTLP exporter variables, when they are set. */
function externalTarget(env: NodeJS.ProcessEnv): Target | undefined {
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.replace(/\/+$/, '');
  const tracesUrl = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || (base ? `${base}/v1/traces` : undefined);
  if (!tracesUrl) return undefined;
  const url = new URL(tracesUrl);
  return { tracesUrl, adminUrl: (env.AGENTSEC_ADMIN_URL || `${url.protocol}//${url.hostname}:13133`).replace(/\/+$/, '') };
}

/** Waits until the collector's /readyz answers 200 (it may still be starting, e.g. in compose). */
async function waitReady(adminUrl: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await fetch(`${adminUrl}/readyz`).catch(() => undefined))?.status === 200) return true;
    await sleep(500);
  }
  return false;
}

/** The port of AGENTSEC_<name>_ENDPOINT, else `fallback` when it is free on 127.0.0.1, else undefined (a free one). */
async function port(envName: string, fallback: number): Promise<number | undefined> {
  const set = process.env[envName];
  if (set) {
    const p = Number(set.slice(set.lastIndexOf(':') + 1));
    if (Number.isInteger(p) && p > 0) return p;
  }
  return (await isFree(fallback)) ? fallback : undefined;
}

function isFree(p: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once('error', () => done(false));
    server.listen(p, '127.0.0.1', () => server.close(() => done(true)));
  });
}

/** The roles the policy enforces (policy_violation needs one). */
function enforcedRoles(policyPath: string): AgentName[] {
  try {
    const p = parseYaml(readFileSync(policyPath, 'utf8')) as { roles?: Record<string, { mode?: string }> } | null;
    return AGENTS.filter((a) => p?.roles?.[a]?.mode === 'enforce');
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------------------------- findings

class FindingsWatch {
  readonly seen = new Map<string, Finding>();
  readonly #url: string;
  #timer: NodeJS.Timeout | undefined;
  #polling: Promise<void> | undefined;
  available = true;

  constructor(adminUrl: string) {
    this.#url = `${adminUrl}/api/findings`;
  }

  /** Whether the collector serves findings at all (the detect processor is in its pipeline). */
  async probe(): Promise<boolean> {
    const res = await fetch(this.#url).catch(() => undefined);
    this.available = res?.status === 200;
    return this.available;
  }

  start(): void {
    this.#timer = setInterval(() => void this.poll(), 250);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Fetches the findings and prints every new one (and every one whose severity rose). */
  poll(): Promise<void> {
    if (!this.available) return Promise.resolve();
    this.#polling ??= (async () => {
      try {
        const res = await fetch(this.#url);
        if (res.status !== 200) return;
        const { findings } = (await res.json()) as { findings: Finding[] };
        for (const f of findings.reverse()) {
          const known = this.seen.get(f.id);
          if (!known) say(findingLine(f));
          else if (known.severity !== f.severity) say(findingLine(f, true));
          this.seen.set(f.id, f);
        }
      } catch {
        // The collector is stopping, or busy: next time.
      } finally {
        this.#polling = undefined;
      }
    })();
    return this.#polling;
  }

  on(traces: ReadonlySet<string>): Finding[] {
    return [...this.seen.values()].filter((f) => traces.has(f.traceId));
  }

  /** Waits until findings of every kind in `kinds` are in on `traces`, or `timeoutMs` passes. */
  async waitFor(traces: ReadonlySet<string>, kinds: readonly FindingKind[], timeoutMs: number): Promise<FindingKind[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.poll();
      const have = new Set(this.on(traces).map((f) => f.kind));
      const missing = kinds.filter((k) => !have.has(k));
      if (missing.length === 0 || Date.now() >= deadline) return missing;
      await sleep(150);
    }
  }
}

// ---------------------------------------------------------------------------------- the run

function toolCounts(plan: TaskPlan): string {
  const counts = new Map<string, number>();
  const walk = (s: PlannedSpan) => {
    const t = s.attributes['gen_ai.tool.name'];
    if (typeof t === 'string') counts.set(t, (counts.get(t) ?? 0) + 1);
    s.children.forEach(walk);
  };
  walk(plan.root);
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  return `${total} tool calls (${[...counts].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([t, n]) => `${t} ${n}`).join(', ')}, …)`;
}

async function main(): Promise<number> {
  const opts = options();
  const started = Date.now();
  const rel = (p: string) => (p.startsWith(REPO) ? relative(REPO, p) : p);

  say(bold('agentsec demo') + dim(' — a simulated multi-agent system, the collector between it and your tracing backend'));
  let target = externalTarget(process.env);
  if (target) {
    say(dim(`  collector ${target.tracesUrl} (OTEL_EXPORTER_OTLP_ENDPOINT) · admin ${target.adminUrl} · policy as that collector has it`));
    if (!(await waitReady(target.adminUrl, 60_000))) {
      console.error(red(`the collector at ${target.adminUrl} was not ready within 60 s`));
      return 1;
    }
  } else {
    const dataDir = mkdtempSync(join(tmpdir(), 'agentsec-demo-'));
    const logPath = join(dataDir, 'collector.log');
    say(dim(`  config ${rel(opts.config)} · policy ${rel(opts.policy)} · data ${dataDir}`));
    const [grpc, http, admin] = await Promise.all([port('AGENTSEC_GRPC_ENDPOINT', 4317), port('AGENTSEC_HTTP_ENDPOINT', 4318), port('AGENTSEC_ADMIN_ENDPOINT', 13133)]);
    try {
      const collector = await startCollector({
        config: opts.config,
        logPath,
        ports: { grpc, http, admin },
        env: { AGENTSEC_POLICY: opts.policy, AGENTSEC_DATA_DIR: dataDir, AGENTSEC_LOG_LEVEL: process.env.AGENTSEC_LOG_LEVEL ?? 'info' },
      });
      target = { tracesUrl: `http://${collector.endpoints.http}/v1/traces`, adminUrl: collector.adminUrl, local: { collector, dataDir, logPath } };
      say(`  collector pid ${collector.pid} ready: OTLP/HTTP http://${collector.endpoints.http} · OTLP/gRPC ${collector.endpoints.grpc} · admin ${collector.adminUrl}`);
    } catch (err) {
      console.error(red(`the collector did not start: ${(err as Error).message}`));
      return 1;
    }
  }
  const { adminUrl, local, tracesUrl } = target;
  let stopping = false;
  const stop = async (): Promise<number | null> => {
    if (stopping) return null;
    stopping = true;
    return local ? local.collector.stop() : 0;
  };
  /** Set while --keep waits for Ctrl-C: a signal then ends the wait, and the run finishes as usual. */
  let endKeep: (() => void) | undefined;
  const onSignal = (code: number) => () => {
    if (endKeep) return endKeep();
    void stop().then(() => process.exit(code));
  };
  process.once('SIGINT', onSignal(130));
  process.once('SIGTERM', onSignal(143));

  const watch = new FindingsWatch(adminUrl);
  if (!(await watch.probe())) {
    say(red(`  ${adminUrl}/api/findings is not served: the config has no detect processor in its pipeline, so nothing will be found.`));
    say(red('  Add `detect: { policy: ${env:AGENTSEC_POLICY:-} }` to processors and to the pipeline (after tracegraph, before enrich), or pass --config.'));
  }
  say(dim(`  while it runs: curl ${adminUrl}/api/findings`));
  say();

  // The agents: one TracerProvider per service, each with the official OTLP/protobuf exporter.
  const rng = new Rng(Date.now());
  const sys = new AgentCast({
    credentials: makeCredentials(rng),
    rng,
    processor: () =>
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter({ url: tracesUrl, timeoutMillis: 10_000 }),
        maxQueueSize: 100_000,
        maxExportBatchSize: 1_000,
        scheduledDelayMillis: 500,
      }),
  });
  let spansSent = 0;
  /** Records a task (ending now) and flushes the agents' exporters. */
  const send = async (plan: TaskPlan, endAt = Date.now()): Promise<string> => {
    const traceId = sys.emit(plan, endAt - plan.duration);
    spansSent += spanCount(plan);
    await sys.forceFlush();
    return traceId;
  };
  watch.start();

  // ------------------------------------------------------------------ normal traffic
  const normalSeconds = Math.max(2, opts.seconds * 0.4);
  const tasks = Math.max(2, Math.round(normalSeconds / 2.5));
  const normalTraces = new Set<string>();
  say(bold(`▶ normal traffic: ${tasks} user questions, each fanning out orchestrator > research, analysis, writer`) + dim(' (expect no findings)'));
  for (let i = 0; i < tasks; i++) {
    const t0 = Date.now();
    const plan = normalTask(sys, rng, DEMO_SIZE);
    const traceId = await send(plan);
    normalTraces.add(traceId);
    say(`  task ${i + 1}/${tasks}  ${dim(traceId)}  ${spanCount(plan)} spans, ${toolCounts(plan)}`);
    say(dim(`           “${plan.label}”`));
    await sleep(Math.max(0, (normalSeconds * 1000) / tasks - (Date.now() - t0)));
  }
  await watch.poll();
  const early = watch.on(normalTraces);
  say(early.length === 0 ? green(`  ✓ ${tasks} normal tasks, no findings`) : red(`  ✗ ${early.length} finding(s) on normal traffic`));
  say();

  // ------------------------------------------------------------------ attacks
  const enforced = enforcedRoles(opts.policy);
  const attacks: Attack[] = [...ATTACKS, ...(enforced.length > 0 ? [policyViolationAttack(enforced[0]!)] : [])];
  const pause = Math.max(300, Math.min(2_500, ((opts.seconds * 0.6) / attacks.length) * 1000 - 600));
  const results: { attack: Attack; traces: Set<string>; missing: FindingKind[] }[] = [];
  say(bold(`▶ attacks: ${attacks.length}, one at a time, with normal traffic going on`));
  for (const [i, attack] of attacks.entries()) {
    say();
    say(bold(`  ${i + 1}/${attacks.length} ${attack.name}`) + dim(` — ${attack.description}`));
    // A normal task alongside, so the attack is found amid ordinary traffic.
    normalTraces.add(await send(normalTask(sys, rng, DEMO_SIZE)));
    const traces = new Set<string>();
    const plans = attack.plans(sys, rng);
    for (const [k, plan] of plans.entries()) traces.add(await send(plan, Date.now() - (plans.length - 1 - k) * 1_500));
    const missing = watch.available ? await watch.waitFor(traces, attack.expect, 8_000) : attack.expect;
    results.push({ attack, traces, missing });
    if (missing.length === 0) say(green(`    ✓ found: ${attack.expect.join(', ')}`) + dim(`  (trace ${[...traces].at(-1)})`));
    else say(red(`    ✗ not found within 8 s: ${missing.join(', ')}`));
    await sleep(pause);
  }
  if (enforced.length === 0) {
    say();
    say(dim('  policy violation: not shown — the demo policy enforces no role (every role is `mode: observe`); set one to `mode: enforce` to see it'));
  }

  // ------------------------------------------------------------------ summary
  await sys.forceFlush();
  await sleep(800); // the enrich hold (500 ms): the last spans reach the spans file
  await watch.poll();
  watch.stop();
  await sys.shutdown();
  const all = [...watch.seen.values()];
  const onNormal = watch.on(normalTraces);
  const byKind = new Map<string, Finding[]>();
  for (const f of all) byKind.set(f.kind, [...(byKind.get(f.kind) ?? []), f]);
  say();
  say(bold(`▶ ${all.length} findings from ${spansSent.toLocaleString('en')} spans in ${normalTraces.size + results.reduce((n, r) => n + r.traces.size, 0)} traces`));
  for (const [kind, fs] of [...byKind].sort()) {
    const sev = [...new Set(fs.map((f) => f.severity))].join('/');
    say(`  ${kind.padEnd(22)} ${String(fs.length).padStart(3)}  ${dim(sev)}`);
  }
  say(onNormal.length === 0 ? green(`  ✓ none on the ${normalTraces.size} normal tasks`) : red(`  ✗ ${onNormal.length} on normal tasks`));
  const missed = results.filter((r) => r.missing.length > 0);
  say(missed.length === 0 ? green(`  ✓ every attack found (${results.length}/${results.length})`) : red(`  ✗ missed: ${missed.map((r) => r.attack.name).join(', ')}`));

  const escalation = results.find((r) => r.attack.expect.includes('capability_escalation'));
  const sample = escalation && watch.on(escalation.traces)[0];
  say();
  say(bold('▶ where to look') + (opts.keep || !local ? '' : dim('  (the admin API lives as long as the collector: `npm run demo -- --keep` keeps it running; the files stay)')));
  say(`  findings        ${adminUrl}/api/findings   ${dim('?kind= ?severity=high ?role=writer ?trace=')}`);
  if (sample) say(`  one finding     ${adminUrl}/api/findings/${sample.id}`);
  if (sample) say(`  its trace graph ${adminUrl}/api/traces/${sample.traceId}/graph`);
  if (sample?.link) say(`  in Jaeger       ${sample.link}   ${dim('(when the spans go to a Jaeger there)')}`);
  say(`  inventory       ${adminUrl}/api/inventory   ${dim('(agents, models, tools, endpoints, credentials by fingerprint)')}`);
  say(`  metrics         ${adminUrl}/metrics   ${dim('(agentsec_findings_total{kind,severity})')}`);
  if (local) {
    const findingsFile = join(local.dataDir, 'findings.jsonl');
    say(`  findings file   ${existsSync(findingsFile) ? findingsFile : dim(`${findingsFile} (not written: the config has no file sink for findings)`)}`);
    say(`  spans           ${join(local.dataDir, 'spans.jsonl')}   ${dim('(OTLP/JSON, enriched: agentsec.chain.path, agentsec.finding.kind, finding spans)')}`);
    say(`  collector log   ${local.logPath}`);
  }
  say(`  with Jaeger     service ${bold('agentsec')} (one finding span per finding), or tag ${bold('agentsec.finding.kind=<kind>')}, e.g. agentsec.finding.kind=${[...byKind.keys()][0] ?? 'capability_escalation'}`);
  say(dim('                  (to send the spans to a Jaeger: AGENTSEC_OTLP_ENDPOINT=http://localhost:4317 AGENTSEC_POLICY=config/policies/demo.yaml npm start)'));

  if (opts.keep && local) {
    say();
    say(bold(`collector still running (pid ${local.collector.pid}); Ctrl-C stops it`));
    await new Promise<void>((done) => (endKeep = done));
  }
  say();
  const code = await stop();
  if (local) say(dim(`collector stopped (exit ${code ?? 'killed'}) · ${((Date.now() - started) / 1000).toFixed(1)} s`));
  if (code !== 0) {
    if (local) say(red(logTail(local.logPath)));
    return 1;
  }
  return missed.length === 0 && onNormal.length === 0 ? 0 : 1;
}

// Exits at once (the collector's stop timer would otherwise hold the process for its full timeout).
process.exit(await main());
