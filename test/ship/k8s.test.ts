// The Kubernetes manifests (config/k8s) read against each other and against the collector:
// every agentsec container's config, loaded with the environment the manifest gives it, agrees
// with its ports, probes, memory limit (V8's heap limit asked of node itself with the same
// NODE_OPTIONS), termination grace period and volumes; the sidecar forwards to the load
// balancer, which routes by trace ID to the gateways' headless Service; the gateways share
// Redis and the sidecars' fingerprint key.
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { defaultConfigSource } from '../../src/cli.ts';
import { parseConfigText, readConfigSource } from '../../src/config/load.ts';
import { resolveConfig, type ResolvedConfig } from '../../src/config/schema.ts';
import { components } from '../../src/components.ts';
import { memoryLimits, type MemoryLimiterConfig } from '../../src/processors/memory-limiter.ts';
import type { BaselinesConfig } from '../../src/baseline/config.ts';
import { configMapMounts, heapLimitBytes, k8sArgv, type PathMap, hostOf, image, k8sEnv, k8sManifests, manifest, podContainers, portOf, quantityBytes, REPO, yamlFile, type Container, type Manifest } from './deploy.ts';

const img = image();
const all = k8sManifests();
const MiB = 2 ** 20;
const isOurs = (c: Container) => c.image.includes('/agentsec-collector:');

interface Ours {
  workload: Manifest;
  container: Container;
  env: Record<string, string>;
  config: ResolvedConfig;
  /** The container's paths as they are here. */
  paths: PathMap;
}

/** The config an agentsec container runs, loaded with the environment and files the manifest gives it. */
function load(workload: Manifest, container: Container): Ours {
  const ns = workload.metadata.namespace!;
  const paths = configMapMounts(all, workload, container).add(img.workdir, REPO);
  const env = paths.mapEnv({ ...img.env, ...k8sEnv(all, ns, container.env) });
  const args = k8sArgv(img, container);
  const flag = args.find((a) => a.startsWith('--config'));
  const source = flag ? paths.map(flag.includes('=') ? flag.slice('--config='.length) : args[args.indexOf(flag) + 1]!) : defaultConfigSource(env);
  // Paths in the config (e.g. detect.policy) are container paths too.
  const raw = paths.mapStrings(parseConfigText(readConfigSource(source, env).text, source, env));
  return { workload, container, env, config: resolveConfig(raw, components()), paths };
}

const ours: Ours[] = all.filter((m) => m.kind === 'Deployment').flatMap((m) => podContainers(m).filter(isOurs).map((c) => load(m, c)));
const byName = (name: string) => ours.find((o) => o.workload.metadata.name === name)!;
const otlpPorts = (o: Ours) => {
  const r = o.config.components.receiver.get('otlp') as { protocols: { grpc?: { endpoint: string }; http?: { endpoint: string } } };
  return { grpc: portOf(r.protocols.grpc!.endpoint), http: portOf(r.protocols.http!.endpoint) };
};
const adminPort = (o: Ours) => portOf((o.config.components.extension.get('admin') as { endpoint: string }).endpoint);
/** A container port given by name or number. */
const portNumber = (c: Container, p: string | number) => (typeof p === 'number' ? p : c.ports?.find((x) => x.name === p)?.containerPort);
const podLabels = (m: Manifest) => m.spec.template.metadata.labels as Record<string, string>;
const selects = (service: Manifest, workload: Manifest) => Object.entries(service.spec.selector as Record<string, string>).every(([k, v]) => podLabels(workload)[k] === v);
/** The Service that `host` (name, name.ns, or name.ns.svc.cluster.local) names. */
function serviceAt(host: string, ns: string): Manifest {
  const [name, namespace = ns] = host.split('.');
  const s = all.find((m) => m.kind === 'Service' && m.metadata.name === name && m.metadata.namespace === namespace);
  if (!s) throw new Error(`no Service for ${host}`);
  return s;
}
/** The container port a Service port leads to, in the workload it selects. */
function servicePortTarget(service: Manifest, port: number, workload: Manifest): number | undefined {
  const sp = (service.spec.ports as { port: number; targetPort?: string | number }[]).find((p) => p.port === port);
  if (!sp) return undefined;
  const c = podContainers(workload).find((c) => portNumber(c, sp.targetPort ?? sp.port) !== undefined);
  return c && portNumber(c, sp.targetPort ?? sp.port);
}

describe('Kubernetes manifests', () => {
  it('run our image as a gateway (full analysis) and as a sidecar (normalize only)', () => {
    expect(ours.map((o) => o.workload.metadata.name).sort()).toEqual(['agentsec-gateway', 'research-agent']);
    expect(byName('agentsec-gateway').config.service.pipelines.traces!.processors).toEqual(['memory_limiter', 'normalize', 'tracegraph', 'detect', 'enrich']);
    expect(byName('research-agent').config.service.pipelines.traces!.processors).toEqual(['memory_limiter', 'normalize']);
  });

  it('every agentsec container declares its config\'s ports, probes /readyz and /healthz on the admin port, runs as non-root and keeps its data in a volume', () => {
    for (const o of ours) {
      const { container: c } = o;
      const declared = (c.ports ?? []).map((p) => p.containerPort);
      const { grpc, http } = otlpPorts(o);
      expect(declared, c.name).toEqual(expect.arrayContaining([grpc, http, adminPort(o)]));
      const probe = (p: any) => ({ path: p?.httpGet?.path, port: portNumber(c, p?.httpGet?.port) });
      expect(probe(c.readinessProbe)).toEqual({ path: '/readyz', port: adminPort(o) });
      expect(probe(c.startupProbe)).toEqual({ path: '/readyz', port: adminPort(o) });
      expect(probe(c.livenessProbe)).toEqual({ path: '/healthz', port: adminPort(o) });
      // The admin server listens on the pod's address, where the kubelet probes.
      expect(hostOf((o.config.components.extension.get('admin') as { endpoint: string }).endpoint)).toBe('0.0.0.0');
      const pod = o.workload.spec.template.spec;
      expect(c.securityContext?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot).toBe(true);
      expect(c.securityContext?.readOnlyRootFilesystem).toBe(true);
      const dataMount = c.volumeMounts?.find((m) => m.mountPath === img.env.AGENTSEC_DATA_DIR);
      expect(dataMount, `${c.name} mounts ${img.env.AGENTSEC_DATA_DIR}`).toBeDefined();
      expect(o.config.service.data_dir).toBe(o.paths.map(dataMount!.mountPath));
      expect(o.workload.spec.template.spec.volumes.find((v: any) => v.name === dataMount!.name).emptyDir).toBeDefined();
    }
  });

  it('memory: V8\'s heap limit (from NODE_OPTIONS) leaves room under the container limit; memory_limiter and the trace graph stay under it', () => {
    for (const o of ours) {
      const limit = quantityBytes(o.container.resources.limits.memory);
      const heap = heapLimitBytes(o.env.NODE_OPTIONS!);
      // Code, stacks and buffers outside the heap need the rest; a heap under half would waste the pod.
      expect(heap, `${o.container.name}: heap ${heap / MiB} MiB of ${limit / MiB} MiB`).toBeLessThanOrEqual(0.75 * limit);
      expect(heap).toBeGreaterThanOrEqual(0.5 * limit);
      expect(quantityBytes(o.container.resources.requests.memory)).toBeLessThanOrEqual(limit);
      // memory_limiter's percentages resolve against min(container limit, heap limit) = the heap limit.
      const limits = memoryLimits(o.config.components.processor.get('memory_limiter') as MemoryLimiterConfig, Math.min(limit, heap));
      expect(limits.hardBytes).toBeLessThan(heap);
      expect(limits.softBytes).toBeLessThan(limits.hardBytes);
      const graph = o.config.components.processor.get('tracegraph') as { max_bytes: number } | undefined;
      if (graph) expect(graph.max_bytes, 'tracegraph.max_bytes within the soft limit').toBeLessThan(limits.softBytes);
    }
  });

  it('the termination grace period covers the preStop pause and the drain (service.shutdown_timeout)', () => {
    for (const o of ours) {
      const pod = o.workload.spec.template.spec;
      const preStop = o.container.lifecycle?.preStop?.exec?.command;
      const pause = preStop ? Number(preStop[preStop.indexOf('sleep') + 1]) : 0;
      expect(pod.terminationGracePeriodSeconds * 1000, o.workload.metadata.name).toBeGreaterThanOrEqual(pause * 1000 + o.config.service.shutdown_timeout + 1000);
    }
  });

  it('the sidecar is a native sidecar in sidecar mode; the agent exports to it over localhost', () => {
    const o = byName('research-agent');
    const pod = o.workload.spec.template.spec;
    expect(pod.initContainers.map((c: Container) => c.name)).toContain(o.container.name);
    expect(o.container.restartPolicy).toBe('Always');
    expect(o.env.AGENTSEC_MODE).toBe('sidecar');
    const agent = (pod.containers as Container[]).find((c) => !isOurs(c))!;
    const agentEnv = k8sEnv(all, o.workload.metadata.namespace!, agent.env);
    const { http } = otlpPorts(o);
    expect(agentEnv.OTEL_EXPORTER_OTLP_ENDPOINT).toBe(`http://localhost:${http}`);
    expect(agentEnv.OTEL_EXPORTER_OTLP_PROTOCOL).toBe('http/protobuf');
    // Loopback receivers: only the pod's own containers send.
    expect(hostOf(o.env.AGENTSEC_HTTP_ENDPOINT!)).toBe('127.0.0.1');
  });

  it('the sidecar forwards to the load balancer, whose loadbalancing exporter routes by trace ID to the gateways\' headless Service and OTLP port', () => {
    const sidecar = byName('research-agent');
    const gateway = byName('agentsec-gateway');
    const ns = gateway.workload.metadata.namespace!;
    const exporter = sidecar.config.components.exporter.get('otlp') as { endpoint: string; protocol: string };
    const lbService = serviceAt(hostOf(exporter.endpoint), ns);
    const lb = manifest(all, 'Deployment', 'agentsec-lb');
    expect(selects(lbService, lb)).toBe(true);
    const lbContainer = podContainers(lb)[0]!;
    const cm = manifest(all, 'ConfigMap', lb.spec.template.spec.volumes.find((v: any) => v.configMap).configMap.name);
    const mount = lbContainer.volumeMounts!.find((m) => lbContainer.args!.some((a) => a.startsWith(`--config=${m.mountPath}/`)))!;
    const lbConfig = parseYaml(cm.data![lbContainer.args!.find((a) => a.startsWith('--config='))!.slice(`--config=${mount.mountPath}/`.length)]!);
    // The sidecar speaks gRPC to the LB's gRPC receiver, through its Service.
    expect(exporter.protocol).toBe('grpc');
    expect(servicePortTarget(lbService, portOf(exporter.endpoint), lb)).toBe(portOf(lbConfig.receivers.otlp.protocols.grpc.endpoint));

    const lbe = lbConfig.exporters.loadbalancing;
    expect(lbConfig.service.pipelines.traces.exporters).toEqual(['loadbalancing']);
    expect(lbe.routing_key).toBe('traceID');
    expect(lbe.protocol.otlp.tls.insecure).toBe(true);
    const headless = serviceAt(lbe.resolver.dns.hostname, ns);
    expect(lbe.resolver.dns.hostname).toBe(`${headless.metadata.name}.${ns}.svc.cluster.local`);
    expect(headless.spec.clusterIP).toBe('None');
    expect(selects(headless, gateway.workload)).toBe(true);
    expect(lbe.resolver.dns.port).toBe(otlpPorts(gateway).grpc);
    expect(servicePortTarget(headless, lbe.resolver.dns.port, gateway.workload)).toBe(otlpPorts(gateway).grpc);
    expect(gateway.workload.spec.replicas).toBeGreaterThan(1);
    // A stopping gateway leaves DNS (not ready at once) and is re-resolved within the interval: its preStop pause is as long.
    const pause = Number(gateway.container.lifecycle.preStop.exec.command.at(-1));
    expect(pause).toBeGreaterThanOrEqual(Number(/^(\d+)s$/.exec(lbe.resolver.dns.interval)![1]));
    // The LB is probed on its health_check extension.
    const hc = portOf(lbConfig.extensions.health_check.endpoint);
    expect(lbConfig.service.extensions).toContain('health_check');
    for (const p of [lbContainer.readinessProbe, lbContainer.livenessProbe]) expect(portNumber(lbContainer, p.httpGet.port)).toBe(hc);
  });

  it('the gateways share baselines through the Redis Service (detect.baselines: storage redis, redis.url)', () => {
    const gateway = byName('agentsec-gateway');
    const b = (gateway.config.components.processor.get('detect') as { baselines: BaselinesConfig }).baselines;
    expect(b.storage).toBe('redis');
    const url = new URL(b.redis.url);
    expect(url.protocol).toBe('redis:');
    const redisService = serviceAt(url.hostname, gateway.workload.metadata.namespace!);
    const redis = manifest(all, 'Deployment', 'agentsec-redis');
    expect(selects(redisService, redis)).toBe(true);
    expect(servicePortTarget(redisService, Number(url.port), redis)).toBe(6379);
  });

  it('sidecars and gateways fingerprint with the same key (one Secret), at least 32 bytes', () => {
    const keys = ours.map((o) => (o.config.components.processor.get('normalize') as { hmac_key?: string }).hmac_key);
    expect(new Set(keys).size).toBe(1);
    expect(Buffer.byteLength(keys[0]!)).toBeGreaterThanOrEqual(32);
    for (const o of ours) expect(o.container.env!.find((e: any) => e.name === 'AGENTSEC_HMAC_KEY').valueFrom.secretKeyRef).toEqual({ name: 'agentsec-hmac', key: 'hmac-key' });
  });

  it('the Operator\'s OpenTelemetryCollector is in sidecar mode, carries config/agentsec-sidecar.yaml without the service keys its schema drops, and fits its memory limit', () => {
    const cr = manifest(all, 'OpenTelemetryCollector', 'agentsec-sidecar');
    expect(cr.apiVersion).toBe('opentelemetry.io/v1beta1');
    expect(cr.spec.mode).toBe('sidecar');
    expect(cr.spec.image).toBe(byName('research-agent').container.image);
    const file = yamlFile('config/agentsec-sidecar.yaml');
    const { data_dir: _d, shutdown_timeout: _s, ...service } = file.service;
    expect(cr.spec.config).toEqual({ ...file, service });
    // The Operator's v1beta1 Service has only extensions, telemetry and pipelines.
    expect(Object.keys(cr.spec.config.service).sort()).toEqual(['extensions', 'pipelines', 'telemetry']);
    const env = k8sEnv(all, cr.metadata.namespace!, cr.spec.env);
    const limit = quantityBytes(cr.spec.resources.limits.memory);
    const heap = heapLimitBytes(env.NODE_OPTIONS!);
    expect(heap).toBeLessThanOrEqual(0.75 * limit);
    expect(heap).toBeGreaterThanOrEqual(0.5 * limit);
    // The annotated workload names it; its grace period covers the default drain (20 s).
    const writer = manifest(all, 'Deployment', 'writer-agent');
    expect(writer.spec.template.metadata.annotations['sidecar.opentelemetry.io/inject']).toBe(cr.metadata.name);
    expect(writer.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(20);
  });
});
