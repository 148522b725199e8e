// What the ship tests read from the deployment files (Dockerfile, docker-compose.yml,
// config/k8s/*.yaml) and how they turn a container's view (its paths, its environment) into
// something that runs here: container paths mapped to the repository or a temp dir, env
// variables resolved from the manifests (Secrets, field references).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { parseDuration } from '../../src/config/units.ts';
import { parseDockerfile, stageCmd, stageEntrypoint, stageEnv, stageWorkdir, type Stage } from './dockerfile.ts';
import { eventually } from '../helpers/wait.ts';
import { freePort } from '../../bench/collector-process.ts';
export { freePort };

export const REPO = resolve(import.meta.dirname, '../..');
export const repoPath = (p: string) => join(REPO, p);
export const readRepo = (p: string) => readFileSync(repoPath(p), 'utf8');
export const yamlFile = <T = any>(p: string): T => parseYaml(readRepo(p)) as T;

// ---------------------------------------------------------------------------------- image

export interface Image {
  stages: Stage[];
  /** The last stage: what `docker build .` produces. */
  final: Stage;
  env: Record<string, string>;
  workdir: string;
  entrypoint: string[];
  cmd: string[];
}

export function image(): Image {
  const stages = parseDockerfile(readRepo('Dockerfile'));
  const final = stages.at(-1)!;
  return { stages, final, env: stageEnv(final), workdir: stageWorkdir(final), entrypoint: stageEntrypoint(final), cmd: stageCmd(final) };
}

/** The init process in front of the command (tini … --), which is not installed here: what follows it is run. */
export function withoutInit(argv: string[]): { init: string[]; command: string[] } {
  const sep = argv.indexOf('--');
  if (/(^|\/)(tini|dumb-init)$/.test(argv[0] ?? '') && sep > 0) return { init: argv.slice(0, sep + 1), command: argv.slice(sep + 1) };
  return { init: [], command: argv };
}

// ---------------------------------------------------------------------------------- compose

export interface ComposeService {
  image?: string;
  build?: { context: string; target?: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string> | string[];
  volumes?: string[];
  ports?: string[];
  expose?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
  stop_grace_period?: string;
  healthcheck?: { test: string[] };
}

export interface Compose {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

export const compose = (): Compose => yamlFile<Compose>('docker-compose.yml');

export function composeEnv(s: ComposeService): Record<string, string> {
  if (!s.environment) return {};
  if (Array.isArray(s.environment)) return Object.fromEntries(s.environment.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(s.environment).map(([k, v]) => [k, String(v)]));
}

export interface Mount {
  source: string;
  target: string;
  /** A host path (bind mount) rather than a named volume. */
  bind: boolean;
  readOnly: boolean;
}

export function composeMounts(s: ComposeService): Mount[] {
  return (s.volumes ?? []).map((v) => {
    const [source, target, mode] = v.split(':');
    const bind = source!.startsWith('.') || source!.startsWith('/');
    return { source: bind ? repoPath(source!) : source!, target: target!, bind, readOnly: mode === 'ro' };
  });
}

/** "4317:4317" → { host: 4317, container: 4317 } */
export function composePorts(s: ComposeService): { host: number; container: number }[] {
  return (s.ports ?? []).map((p) => {
    const parts = String(p).split(':');
    return { host: Number(parts.at(-2) ?? parts.at(-1)), container: Number(parts.at(-1)!.split('/')[0]) };
  });
}

/** Milliseconds of a compose duration ("30s", "1m30s"): the collector's own duration syntax. */
export function composeMs(d: string): number {
  const ms = parseDuration(d);
  if (ms === undefined) throw new Error(`not a duration: ${d}`);
  return ms;
}

/** The argv a compose service's container runs: the image's ENTRYPOINT + (command ?? CMD), as Docker combines them. */
export function containerArgv(img: Image, s: ComposeService): string[] {
  if (s.entrypoint) return [...s.entrypoint, ...(s.command ?? [])];
  return [...img.entrypoint, ...(s.command ?? img.cmd)];
}

// ---------------------------------------------------------------------------------- paths

/** Container paths → paths here; the longest matching prefix wins. */
export class PathMap {
  readonly #entries: [string, string][] = [];

  add(container: string, host: string): this {
    this.#entries.push([container.replace(/\/$/, ''), host]);
    this.#entries.sort((a, b) => b[0].length - a[0].length);
    return this;
  }

  /** A container path, or a string holding one after `=` (e.g. --config=/etc/…), mapped. */
  map(s: string): string {
    for (const [container, host] of this.#entries) {
      const re = new RegExp(`(^|=)${container.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=/|$)`);
      if (re.test(s)) return s.replace(re, (_m, pre: string) => pre + host);
    }
    return s;
  }

  mapEnv(env: Record<string, string>): Record<string, string> {
    return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, this.map(v)]));
  }

  /** Every string in a parsed document (e.g. a config's file paths), mapped. */
  mapStrings(doc: unknown): unknown {
    if (typeof doc === 'string') return this.map(doc);
    if (Array.isArray(doc)) return doc.map((v) => this.mapStrings(v));
    if (doc && typeof doc === 'object') return Object.fromEntries(Object.entries(doc).map(([k, v]) => [k, this.mapStrings(v)]));
    return doc;
  }
}

// ---------------------------------------------------------------------------------- kubernetes

export type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: any; data?: Record<string, string>; stringData?: Record<string, string> };

export function k8sManifests(): Manifest[] {
  const dir = repoPath('config/k8s');
  const out: Manifest[] = [];
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`config/k8s/${f}: ${doc.errors[0]!.message}`);
      const m = doc.toJS() as Manifest | null;
      if (m) out.push(m);
    }
  }
  return out;
}

export function manifest(all: Manifest[], kind: string, name: string): Manifest {
  const m = all.find((x) => x.kind === kind && x.metadata.name === name);
  if (!m) throw new Error(`no ${kind} ${name} in config/k8s`);
  return m;
}

export type Container = { name: string; image: string; args?: string[]; command?: string[]; env?: any[]; ports?: { name?: string; containerPort: number }[]; resources?: any; volumeMounts?: { name: string; mountPath: string }[]; restartPolicy?: string; startupProbe?: any; readinessProbe?: any; livenessProbe?: any; lifecycle?: any; securityContext?: any };

/** Every container of a workload's pod template, init containers first. */
/**
 * The argv a Kubernetes container runs, here (without the image's init): the container's command
 * replaces ENTRYPOINT and its args replace CMD; a command without args drops CMD.
 */
export function k8sArgv(img: Image, c: Container): string[] {
  return [...withoutInit(c.command ?? img.entrypoint).command, ...(c.args ?? (c.command ? [] : img.cmd))];
}

export function podContainers(m: Manifest): Container[] {
  const pod = m.spec.template.spec;
  return [...(pod.initContainers ?? []), ...(pod.containers ?? [])];
}

/** A container's environment as the kubelet gives it: values, Secret keys, $(VAR) references, field refs (fake pod facts). */
export function k8sEnv(all: Manifest[], namespace: string, env: any[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  const fields: Record<string, string> = { 'metadata.name': 'pod-0', 'metadata.namespace': namespace };
  for (const e of env ?? []) {
    let v: string;
    if (e.value !== undefined) v = String(e.value).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n: string) => out[n] ?? m);
    else if (e.valueFrom?.secretKeyRef) {
      const s = all.find((x) => x.kind === 'Secret' && x.metadata.name === e.valueFrom.secretKeyRef.name && (x.metadata.namespace ?? namespace) === namespace);
      const value = s?.stringData?.[e.valueFrom.secretKeyRef.key] ?? (s?.data?.[e.valueFrom.secretKeyRef.key] && Buffer.from(s.data[e.valueFrom.secretKeyRef.key]!, 'base64').toString());
      if (value === undefined) throw new Error(`${e.name}: Secret ${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key} is not in config/k8s (namespace ${namespace})`);
      v = value;
    } else if (e.valueFrom?.fieldRef) v = fields[e.valueFrom.fieldRef.fieldPath] ?? '';
    else throw new Error(`${e.name}: unsupported env source`);
    out[e.name] = v;
  }
  return out;
}

/** ConfigMap volumes of a pod, written out to a temp dir each: mountPath → that dir. */
export function configMapMounts(all: Manifest[], m: Manifest, c: Container): PathMap {
  const paths = new PathMap();
  const volumes: any[] = m.spec.template.spec.volumes ?? [];
  for (const vm of c.volumeMounts ?? []) {
    const v = volumes.find((x) => x.name === vm.name);
    if (v?.configMap) {
      const cm = manifest(all, 'ConfigMap', v.configMap.name);
      const dir = mkdtempSync(join(tmpdir(), `agentsec-cm-${cm.metadata.name}-`));
      for (const [file, text] of Object.entries(cm.data ?? {})) writeFileSync(join(dir, file), text);
      paths.add(vm.mountPath, dir);
    } else if (v?.emptyDir) {
      const dir = mkdtempSync(join(tmpdir(), `agentsec-${vm.name}-`));
      mkdirSync(dir, { recursive: true });
      paths.add(vm.mountPath, dir);
    }
  }
  return paths;
}

/** Bytes of a Kubernetes quantity: 256Mi, 1Gi, 500M, 1073741824. */
export function quantityBytes(q: string | number): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT]i?|k)?$/.exec(String(q));
  if (!m) throw new Error(`not a memory quantity: ${q}`);
  const unit = { '': 1, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 }[m[2] ?? ''];
  return Number(m[1]) * unit!;
}

/** V8's heap limit (bytes) for these node options, asked of node itself. */
export function heapLimitBytes(nodeOptions: string): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(require("node:v8").getHeapStatistics().heap_size_limit))'], {
    env: { ...process.env, NODE_OPTIONS: nodeOptions },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`node with NODE_OPTIONS=${nodeOptions}: ${r.stderr}`);
  return Number(r.stdout);
}

// ---------------------------------------------------------------------------------- misc

/** The port of host:port or scheme://host:port[/…]. */
export function portOf(endpoint: string): number {
  const m = /:(\d+)(?:\/.*)?$/.exec(endpoint);
  if (!m) throw new Error(`no port in ${endpoint}`);
  return Number(m[1]);
}

export function hostOf(endpoint: string): string {
  const m = /^(?:[a-z]+:\/\/)?(\[[^\]]+\]|[^:/]+)/.exec(endpoint);
  if (!m) throw new Error(`no host in ${endpoint}`);
  return m[1]!;
}

/** Free loopback ports for a collector's receivers and admin server, as the config's own variables (AGENTSEC_*_ENDPOINT) take them. */
export async function localPorts(): Promise<{ grpc: number; http: number; admin: number; env: Record<string, string>; adminUrl: string; httpUrl: string }> {
  const [grpc, http, admin] = await Promise.all([freePort(), freePort(), freePort()]);
  return {
    grpc, http, admin,
    env: { AGENTSEC_GRPC_ENDPOINT: `127.0.0.1:${grpc}`, AGENTSEC_HTTP_ENDPOINT: `127.0.0.1:${http}`, AGENTSEC_ADMIN_ENDPOINT: `127.0.0.1:${admin}` },
    adminUrl: `http://127.0.0.1:${admin}`,
    httpUrl: `http://127.0.0.1:${http}`,
  };
}

// ---------------------------------------------------------------------------------- running

export interface Running {
  child: ChildProcess;
  /** The exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  output(): string;
}

/**
 * Runs a container's command here (`node …` with this node), in the repository (the image's
 * WORKDIR), with exactly `env` (plus PATH), and waits until `adminUrl`/readyz answers 200.
 */
export async function runCommand(command: string[], env: Record<string, string>, adminUrl: string): Promise<Running> {
  if (command[0] !== 'node') throw new Error(`not a node command: ${command.join(' ')}`);
  const child = spawn(process.execPath, command.slice(1), { cwd: REPO, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  let gone = false;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then(() => (gone = true));
  await eventually(`${adminUrl}/readyz`, async () => {
    if (gone) throw new Error(`the collector exited before it was ready:\n${output}`);
    return (await fetch(`${adminUrl}/readyz`).catch(() => undefined))?.status === 200;
  }, (ready) => ready, 20_000);
  return { child, exited, output: () => output };
}

/** SIGTERM, then the exit code, or 'late' when it takes longer than `graceMs`. */
export async function terminate(r: Running, graceMs: number): Promise<number | null | 'late'> {
  r.child.kill('SIGTERM');
  return Promise.race([r.exited, new Promise<'late'>((done) => setTimeout(() => done('late'), graceMs).unref())]);
}
