// docker-compose.yml read against the files it names (no Docker engine here): the collector's
// config loaded with the environment compose gives it agrees with the published ports, the
// volume, the stop grace period, the Jaeger and Tempo services it exports to, and what
// Grafana, Prometheus and the demo expect of it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/service.ts';
import type { ResolvedConfig } from '../../src/config/schema.ts';
import { compose, composeEnv, composeMounts, composePorts, composeMs, containerArgv, hostOf, image, PathMap, portOf, REPO, repoPath, withoutInit, yamlFile } from './deploy.ts';

const img = image();
const c = compose();
const svc = c.services.agentsec!;

/** The collector's container paths as files here: the compose mounts, WORKDIR → the repository. */
function paths(): PathMap {
  const map = new PathMap().add(img.workdir, REPO);
  for (const m of composeMounts(svc)) map.add(m.target, m.bind ? m.source : join(REPO, 'data'));
  return map;
}

/** The collector's config as the container loads it. */
function collectorConfig(): { config: ResolvedConfig; env: Record<string, string>; source: string } {
  const map = paths();
  const env = map.mapEnv({ ...img.env, ...composeEnv(svc) });
  const argv = withoutInit(containerArgv(img, svc)).command;
  const flag = argv.find((a) => a.startsWith('--config'));
  expect(flag, `the agentsec service's command names a config: ${argv.join(' ')}`).toBeDefined();
  const source = map.map(flag!.includes('=') ? flag! : argv[argv.indexOf(flag!) + 1]!).replace(/^--config=/, '');
  return { config: loadConfig({ source, env }), env, source };
}

const endpoint = (config: ResolvedConfig, kind: 'receiver' | 'exporter' | 'extension', id: string) => config.components[kind].get(id) as Record<string, any>;

describe('docker-compose.yml', () => {
  it('has the collector, Jaeger, Tempo with Grafana, Prometheus and the demo', () => {
    expect(Object.keys(c.services)).toEqual(expect.arrayContaining(['agentsec', 'jaeger', 'tempo', 'grafana', 'prometheus', 'demo']));
    expect(c.services.jaeger!.image).toMatch(/^(cr\.jaegertracing\.io\/)?jaegertracing\/jaeger:2\.\d+\.\d+$/);
    // The collector builds the Dockerfile's final stage; the demo a stage of it.
    expect(svc.build?.target).toBe(img.final.name);
    expect(img.stages.map((s) => s.name)).toContain(c.services.demo!.build?.target);
  });

  it('the collector runs the compose config, mounted from the repository', () => {
    const { source } = collectorConfig();
    expect(source).toBe(repoPath('config/agentsec-compose.yaml'));
  });

  it('publishes the receiver and admin ports of that config, keeps its data in a named volume, and stops after the drain has had its time', () => {
    const { config, env } = collectorConfig();
    const otlp = endpoint(config, 'receiver', 'otlp');
    const wanted = [portOf(otlp.protocols.grpc.endpoint), portOf(otlp.protocols.http.endpoint), portOf(endpoint(config, 'extension', 'admin').endpoint)];
    expect(composePorts(svc).map((p) => p.container).sort()).toEqual([...wanted].sort());
    const data = composeMounts(svc).find((m) => m.target === img.env.AGENTSEC_DATA_DIR);
    expect(data?.bind).toBe(false);
    expect(Object.keys(c.volumes ?? {})).toContain(data!.source);
    expect(config.service.data_dir).toBe(env.AGENTSEC_DATA_DIR);
    expect(composeMs(svc.stop_grace_period ?? '10s')).toBeGreaterThan(config.service.shutdown_timeout);
  });

  it('exports to both Jaeger and Tempo, as named exporters, at their compose services and OTLP/gRPC ports', () => {
    const { config } = collectorConfig();
    expect([...config.components.exporter.keys()].sort()).toEqual(['otlp/jaeger', 'otlp/tempo']);
    expect(config.service.pipelines.traces!.exporters.sort()).toEqual(['otlp/jaeger', 'otlp/tempo']);
    const jaeger = endpoint(config, 'exporter', 'otlp/jaeger');
    const tempo = endpoint(config, 'exporter', 'otlp/tempo');
    for (const e of [jaeger, tempo]) expect(e.protocol).toBe('grpc');
    expect(hostOf(jaeger.endpoint)).toBe('jaeger');
    expect(c.services.jaeger!.expose).toContain(String(portOf(jaeger.endpoint)));
    expect(hostOf(tempo.endpoint)).toBe('tempo');
    const tempoYaml = yamlFile('config/tempo/tempo.yaml');
    expect(portOf(tempoYaml.distributor.receivers.otlp.protocols.grpc.endpoint)).toBe(portOf(tempo.endpoint));
    expect(c.services.tempo!.expose).toContain(String(portOf(tempo.endpoint)));
    // The collector waits for Jaeger to be healthy; Tempo reads the mounted config.
    expect(svc.depends_on).toMatchObject({ jaeger: { condition: 'service_healthy' } });
    const tempoMounts = composeMounts(c.services.tempo!);
    const configArg = c.services.tempo!.command!.find((a) => a.startsWith('-config.file='))!.slice('-config.file='.length);
    expect(tempoMounts.find((m) => m.target === configArg)?.source).toBe(repoPath('config/tempo/tempo.yaml'));
    for (const p of [tempoYaml.storage.trace.wal.path, tempoYaml.storage.trace.local.path]) {
      expect(tempoMounts.some((m) => !m.bind && p.startsWith(m.target + '/')), `${p} is in Tempo's volume`).toBe(true);
    }
  });

  it('each finding links to its trace in the Jaeger UI that compose publishes', () => {
    const { config } = collectorConfig();
    const detect = config.components.processor.get('detect') as { jaeger_ui_url: string; policy: string };
    const ui = composePorts(c.services.jaeger!).find((p) => p.container === 16686);
    expect(ui).toBeDefined();
    expect(detect.jaeger_ui_url).toBe(`http://localhost:${ui!.host}`);
    // The demo policy, so that the demo's attacks are labelled.
    expect(detect.policy).toBe(repoPath('config/policies/demo.yaml'));
  });

  it('Grafana\'s Tempo data source points at the tempo service and its HTTP port; the dashboard uses provisioned data sources', () => {
    const grafana = c.services.grafana!;
    const provisioning = composeMounts(grafana).find((m) => m.target === '/etc/grafana/provisioning')!;
    expect(provisioning.source).toBe(repoPath('config/grafana/provisioning'));
    const ds = yamlFile<{ datasources: { name: string; type: string; uid: string; url: string; jsonData?: any }[] }>('config/grafana/provisioning/datasources/datasources.yaml').datasources;
    const tempo = ds.find((d) => d.type === 'tempo')!;
    expect(hostOf(tempo.url)).toBe('tempo');
    expect(portOf(tempo.url)).toBe(yamlFile('config/tempo/tempo.yaml').server.http_listen_port);
    const prom = ds.find((d) => d.type === 'prometheus')!;
    expect(hostOf(prom.url)).toBe('prometheus');
    expect(composePorts(c.services.prometheus!).map((p) => p.container)).toContain(portOf(prom.url));
    expect(tempo.jsonData.serviceMap.datasourceUid).toBe(prom.uid);
    const jaeger = ds.find((d) => d.type === 'jaeger')!;
    expect(hostOf(jaeger.url)).toBe('jaeger');
    expect(composePorts(c.services.jaeger!).map((p) => p.container)).toContain(portOf(jaeger.url));

    // Dashboards: the provider's path is where compose mounts config/grafana/dashboards.
    const provider = yamlFile('config/grafana/provisioning/dashboards/dashboards.yaml').providers[0];
    const dashboards = composeMounts(grafana).find((m) => m.target === provider.options.path)!;
    expect(dashboards.source).toBe(repoPath('config/grafana/dashboards'));
    const dash = JSON.parse(readFileSync(join(dashboards.source, 'agentsec.json'), 'utf8')) as { panels: { datasource: { uid: string }; targets: { datasource?: { uid: string } }[] }[] };
    const uids = new Set(ds.map((d) => d.uid));
    for (const p of dash.panels) {
      expect(uids.has(p.datasource.uid), `panel data source ${p.datasource.uid}`).toBe(true);
      for (const t of p.targets) if (t.datasource) expect(uids.has(t.datasource.uid)).toBe(true);
    }
  });

  it('Prometheus scrapes the collector\'s admin endpoint at its compose name', () => {
    const { config } = collectorConfig();
    const prom = yamlFile('config/prometheus/prometheus.yml');
    const job = prom.scrape_configs.find((j: { job_name: string }) => j.job_name === 'agentsec');
    expect(job.metrics_path ?? '/metrics').toBe('/metrics');
    expect(job.static_configs[0].targets).toEqual([`agentsec:${portOf(endpoint(config, 'extension', 'admin').endpoint)}`]);
    const mount = composeMounts(c.services.prometheus!).find((m) => m.source === repoPath('config/prometheus/prometheus.yml'));
    expect(c.services.prometheus!.command).toContain(`--config.file=${mount!.target}`);
  });

  it('the demo sends OTLP/HTTP to the collector\'s service and port, reads findings from its admin port, and starts when it is healthy', () => {
    const { config } = collectorConfig();
    const env = composeEnv(c.services.demo!);
    expect(env.OTEL_EXPORTER_OTLP_ENDPOINT).toBe(`http://agentsec:${portOf(endpoint(config, 'receiver', 'otlp').protocols.http.endpoint)}`);
    expect(env.AGENTSEC_ADMIN_URL).toBe(`http://agentsec:${portOf(endpoint(config, 'extension', 'admin').endpoint)}`);
    expect(c.services.demo!.depends_on).toMatchObject({ agentsec: { condition: 'service_healthy' } });
    // service_healthy needs a health check: the image's HEALTHCHECK (compose sets none of its own).
    expect(svc.healthcheck).toBeUndefined();
    expect(img.final.instructions.some((i) => i.keyword === 'HEALTHCHECK')).toBe(true);
  });
});
