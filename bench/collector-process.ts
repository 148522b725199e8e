// Runs the collector as users do (`node src/cli.ts run --config FILE`), as a child process
// whose CPU and memory can be measured apart from the bench. Its ports are picked here and
// passed through the AGENTSEC_*_ENDPOINT variables that the embedded configs honour; it is
// ready when its admin endpoint's /readyz answers 200. Logs go to a file.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { peakRssBytes } from './proc-stats.ts';

const REPO_DIR = fileURLToPath(new URL('..', import.meta.url));
const READY_TIMEOUT_MS = 30_000;
/** The collector drains within service.shutdown_timeout (20 s by default); allow a little more. */
const EXIT_TIMEOUT_MS = 25_000;

export interface CollectorOptions {
  /** Config file, relative to the repository or absolute. */
  config: string;
  /** More environment, e.g. AGENTSEC_DATA_DIR or AGENTSEC_OTLP_ENDPOINT. */
  env: Record<string, string>;
  logPath: string;
  /** Extra node flags, e.g. --cpu-prof. */
  nodeFlags?: string[];
  /** Ports to use instead of free ones picked here (e.g. the defaults when they are free). */
  ports?: { grpc?: number; http?: number; admin?: number };
}

export interface CollectorProcess {
  pid: number;
  /** host:port of the OTLP receiver, per transport. */
  endpoints: { http: string; grpc: string };
  /** http://host:port of the admin extension (/readyz, /metrics). */
  adminUrl: string;
  logPath: string;
  /** True once the process has exited (e.g. crashed during a scenario). */
  exited(): boolean;
  /** SIGTERM, then waits for the drain; returns the exit code (null when it had to be killed). */
  stop(): Promise<number | null>;
}

export async function startCollector(opts: CollectorOptions): Promise<CollectorProcess> {
  const [grpcPort, httpPort, adminPort] = await Promise.all([opts.ports?.grpc ?? freePort(), opts.ports?.http ?? freePort(), opts.ports?.admin ?? freePort()]);
  const endpoints = { grpc: `127.0.0.1:${grpcPort}`, http: `127.0.0.1:${httpPort}` };
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const log = openSync(opts.logPath, 'a');
  const child = spawn(process.execPath, [...(opts.nodeFlags ?? []), 'src/cli.ts', 'run', '--config', opts.config], {
    cwd: REPO_DIR,
    env: {
      ...process.env,
      AGENTSEC_GRPC_ENDPOINT: endpoints.grpc,
      AGENTSEC_HTTP_ENDPOINT: endpoints.http,
      AGENTSEC_ADMIN_ENDPOINT: `127.0.0.1:${adminPort}`,
      ...opts.env,
    },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let hasExited = false;
  void exit.then(() => (hasExited = true));

  try {
    await waitUntilReady(`${adminUrl}/readyz`, () => hasExited);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}; collector log (${opts.logPath}):\n${logTail(opts.logPath)}`);
  }
  return {
    pid: child.pid!,
    endpoints,
    adminUrl,
    logPath: opts.logPath,
    exited: () => hasExited,
    stop: () => stopChild(child, exit),
  };
}

async function stopChild(child: ChildProcess, exit: Promise<number | null>): Promise<number | null> {
  child.kill('SIGTERM');
  const timeout = sleep(EXIT_TIMEOUT_MS, 'timeout' as const);
  if ((await Promise.race([exit, timeout])) === 'timeout') {
    child.kill('SIGKILL');
    await exit;
    return null;
  }
  return exit;
}

async function waitUntilReady(url: string, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited()) throw new Error('the collector exited before it was ready');
    const ready = await fetch(url).then(
      (res) => res.status === 200,
      () => false,
    );
    if (ready) return;
    await sleep(100);
  }
  throw new Error(`the collector was not ready within ${READY_TIMEOUT_MS / 1000} s (${url})`);
}

/** A loopback port that was free a moment ago (whoever asked binds it right after). */
export async function freePort(): Promise<number> {
  // A port the kernel hands out on its own (port 0) comes from the ephemeral range, which every
  // outgoing connection also takes its local port from: between our check and the collector's
  // bind, a client socket in another test could take it (EADDRINUSE). So: a random port below
  // that range, checked free; port 0 only when none is found.
  // Never the same port twice from this process (calls made together would otherwise race).
  const below = ephemeralStart();
  for (let attempt = 0; attempt < 20 && below > PRIVATE_PORTS_FROM + 1000; attempt++) {
    const port = PRIVATE_PORTS_FROM + Math.floor(Math.random() * (below - PRIVATE_PORTS_FROM));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await listenable(port)) return port;
  }
  return listenOnce(0);
}

/** Where random ports are picked from, up to the ephemeral range. */
const PRIVATE_PORTS_FROM = 20_000;
const handedOut = new Set<number>();

function ephemeralStart(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32_768;
  } catch {
    return 32_768; // Linux's default
  }
}

async function listenable(port: number): Promise<boolean> {
  return listenOnce(port).then(
    () => true,
    () => false,
  );
}

/** Listens on `port` (0: any) on loopback, closes, and gives the port it had. */
function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const { port: bound } = server.address() as { port: number };
      server.close(() => resolve(bound));
    });
  });
}

/**
 * Stops a measured collector: its peak RSS (NaN when it died during the run), its exit code,
 * and, when it died or exited uncleanly, a warning with the tail of its log.
 */
export async function stopMeasured(collector: CollectorProcess, label: string): Promise<{ peakRssBytes: number; exitCode: number | null }> {
  const crashed = collector.exited();
  const rss = crashed ? Number.NaN : peakRssBytes(collector.pid);
  const exitCode = await collector.stop();
  if (crashed || exitCode !== 0) {
    console.warn(`warning: the ${label} collector ${crashed ? 'exited during the run' : `exited with ${exitCode ?? 'a kill after the drain timed out'}`}; its log:\n${logTail(collector.logPath)}`);
  }
  return { peakRssBytes: rss, exitCode };
}

export function logTail(path: string, lines = 20): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * A shipped config (path from the repository) with one processor's settings changed, written to
 * `dir/name`: `processors.<processor>: {}` becomes `processors.<processor>: <settings>`.
 */
export function configVariant(config: string, processor: string, settings: string, dir: string, name: string): string {
  const text = readFileSync(join(REPO_DIR, config), 'utf8');
  const empty = `\n  ${processor}: {}\n`;
  if (!text.includes(empty)) throw new Error(`${config}: no \`${processor}: {}\` to configure`);
  const path = join(dir, name);
  writeFileSync(path, text.replace(empty, `\n  ${processor}: ${settings}\n`));
  return path;
}
