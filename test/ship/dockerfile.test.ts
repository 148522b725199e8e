// The image, read from the Dockerfile (no Docker engine here): what runs, as whom, with which
// dependencies, ports, volume and health check, and that those agree with the collector's own
// defaults when it runs with the image's environment.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/service.ts';
import { defaultConfigSource } from '../../src/cli.ts';
import { image, portOf, readRepo, REPO, repoPath, withoutInit } from './deploy.ts';
import { stageCopies, stageExpose, stageHealthcheck, stageRuns, stageUser, stageVolumes } from './dockerfile.ts';

const img = image();
const CLI = repoPath('src/cli.ts');

describe('Dockerfile', () => {
  it('is multi-stage on node:24-slim; the final stage has production dependencies only', () => {
    expect(img.stages.length).toBeGreaterThan(1);
    for (const s of img.stages) expect(s.from).toBe('node:24-slim');
    // The final stage's node_modules come from a stage that ran `npm ci --omit=dev`, and it installs nothing itself.
    const modules = stageCopies(img.final).filter((c) => c.sources.some((s) => s.includes('node_modules')));
    expect(modules).toHaveLength(1);
    const from = img.stages.find((s) => s.name === modules[0]!.from);
    expect(from, `COPY --from=${modules[0]!.from}`).toBeDefined();
    const installs = stageRuns(from!).filter((r) => /\bnpm (ci|install)\b/.test(r));
    expect(installs.length).toBeGreaterThan(0);
    for (const r of installs) expect(r).toMatch(/--omit=dev/);
    for (const r of stageRuns(img.final)) expect(r).not.toMatch(/\bnpm (ci|install)\b/);
    // Nothing else is copied from a stage that has every dependency.
    for (const c of stageCopies(img.final).filter((c) => c.from)) expect(c.from).toBe(modules[0]!.from);
  });

  it('the production dependencies are all the collector needs: nothing under src/ imports a dev dependency', () => {
    const pkg = JSON.parse(readRepo('package.json')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    const dev = new Set(Object.keys(pkg.devDependencies));
    const out = spawnSync('grep', ['-rhoE', `from '[^.'][^']*'`, repoPath('src')], { encoding: 'utf8' }).stdout;
    const imported = new Set(out.split('\n').filter(Boolean).map((l) => l.slice(6, -1)).filter((m) => !m.startsWith('node:')).map((m) => (m.startsWith('@') ? m.split('/').slice(0, 2).join('/') : m.split('/')[0]!)));
    expect(imported.size).toBeGreaterThan(3);
    for (const m of imported) {
      expect(dev.has(m), `src imports dev dependency ${m}`).toBe(false);
      expect(m in pkg.dependencies, `src imports ${m}, which is not a dependency`).toBe(true);
    }
  });

  it('copies the sources to the same relative paths under WORKDIR (so the repository stands in for /app), and .dockerignore keeps node_modules, data and .git out', () => {
    expect(img.workdir).toBe('/app');
    const copies = stageCopies(img.final).filter((c) => !c.from);
    const copied = copies.flatMap((c) => c.sources);
    for (const needed of ['package.json', 'src', 'config', 'proto']) expect(copied).toContain(needed);
    for (const c of copies) {
      for (const src of c.sources) {
        expect(existsSync(repoPath(src)), `COPY ${src}`).toBe(true);
        // `COPY src ./src`, `COPY package.json ./`: the same relative path under WORKDIR.
        const dest = c.dest.replace(/^\.\//, '').replace(/\/$/, '');
        expect(dest === '' || dest === '.' ? src : dest, `COPY ${src} ${c.dest}`).toBe(src);
      }
    }
    const ignore = readFileSync(repoPath('.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const p of ['node_modules', 'data', '.git']) expect(ignore).toContain(p);
    for (const src of copied) expect(ignore, `${src} is copied but ignored`).not.toContain(src);
  });

  it('runs as a non-root user, under an init process that forwards SIGTERM (tini, installed in the image)', () => {
    expect(['', 'root', '0']).not.toContain(stageUser(img.final));
    const { init, command } = withoutInit(img.entrypoint);
    expect(init[0]).toMatch(/tini$/);
    expect(stageRuns(img.final).some((r) => /apt-get install[^&]*\btini\b/.test(r))).toBe(true);
    // node runs the TypeScript sources itself: no npm in between (it would not pass the signal on).
    expect(command[0]).toBe('node');
    expect(command).toContain('src/cli.ts');
    expect(command).not.toContain('npm');
  });

  it('keeps `npm start`\'s node flag, in NODE_OPTIONS so a deployment can replace it', () => {
    const start = (JSON.parse(readRepo('package.json')) as { scripts: { start: string } }).scripts.start;
    const flag = /--max-semi-space-size=\d+/.exec(start)![0];
    expect(img.env.NODE_OPTIONS?.split(/\s+/)).toContain(flag);
    // …and not on the command line, where it would override NODE_OPTIONS.
    expect(img.entrypoint.join(' ') + ' ' + img.cmd.join(' ')).not.toMatch(/--max-/);
  });

  it('exposes exactly the ports of the default config run with the image\'s environment, and keeps its data in the volume', () => {
    const env = { ...img.env };
    const config = loadConfig({ source: defaultConfigSource(env), env });
    const otlp = config.components.receiver.get('otlp') as { protocols: { grpc: { endpoint: string }; http: { endpoint: string } } };
    const admin = config.components.extension.get('admin') as { endpoint: string };
    const ports = [portOf(otlp.protocols.grpc.endpoint), portOf(otlp.protocols.http.endpoint), portOf(admin.endpoint)];
    expect(ports).toEqual([4317, 4318, 13133]);
    expect(stageExpose(img.final).sort()).toEqual([...ports].sort());
    expect(config.service.data_dir).toBe(img.env.AGENTSEC_DATA_DIR);
    expect(stageVolumes(img.final)).toEqual([img.env.AGENTSEC_DATA_DIR]);
    // A config without service.data_dir (./data under WORKDIR) lands in the volume too.
    expect(stageRuns(img.final).some((r) => r.includes(`ln -s ${img.env.AGENTSEC_DATA_DIR} ${img.workdir}/data`))).toBe(true);
  });

  it('has a HEALTHCHECK on the admin server\'s /healthz, with node (no curl in the slim image)', () => {
    const h = stageHealthcheck(img.final)!;
    expect(h).toBeDefined();
    expect(h.argv[0]).toBe('node');
    expect(h.argv.join(' ')).toMatch(/\/healthz/);
    expect(h.argv.join(' ')).not.toMatch(/curl|wget/);
    // The check must give up before Docker's own timeout.
    const timeoutS = Number(/^(\d+)s$/.exec(h.flags.timeout ?? '')?.[1]);
    const fetchTimeoutMs = Number(/AbortSignal\.timeout\((\d+)\)/.exec(h.argv.join(' '))?.[1]);
    expect(fetchTimeoutMs).toBeLessThan(timeoutS * 1000);
  });

  it('CMD is `run`; `--config=env:VAR` (the whole YAML in a variable) and a command-less `--config=…` parse', () => {
    expect(img.cmd).toEqual(['run']);
    const yaml = readFileSync(repoPath('config/agentsec-sidecar.yaml'), 'utf8');
    const env = { ...process.env, AGENTSEC_CONFIG_YAML: yaml, AGENTSEC_GATEWAY_ENDPOINT: 'http://gateway:4317', AGENTSEC_OTLP_ENDPOINT: '' };
    const validate = spawnSync(process.execPath, [CLI, 'validate', '--config=env:AGENTSEC_CONFIG_YAML'], { cwd: REPO, env, encoding: 'utf8' });
    expect(validate.stderr).toBe('');
    expect(validate.stdout).toMatch(/env:AGENTSEC_CONFIG_YAML: valid/);
    expect(validate.status).toBe(0);
    // No command but --config: run (a bad config then exits 3 from `run`, not 2 for usage).
    const run = spawnSync(process.execPath, [CLI, '--config=env:AGENTSEC_CONFIG_YAML'], { cwd: REPO, env: { ...env, AGENTSEC_GATEWAY_ENDPOINT: '' }, encoding: 'utf8' });
    expect(run.status).toBe(3);
    expect(run.stderr).toMatch(/AGENTSEC_GATEWAY_ENDPOINT is not set/);
    // No command and no --config is still a usage error.
    expect(spawnSync(process.execPath, [CLI], { cwd: REPO, encoding: 'utf8' }).status).toBe(2);
  });

  it('AGENTSEC_MODE=sidecar picks the sidecar config; another mode is a usage error', () => {
    expect(defaultConfigSource({ AGENTSEC_MODE: 'sidecar' })).toBe(repoPath('config/agentsec-sidecar.yaml'));
    expect(defaultConfigSource({ AGENTSEC_MODE: 'sidecar', AGENTSEC_OTLP_ENDPOINT: 'http://x:4317' })).toBe(repoPath('config/agentsec-sidecar.yaml'));
    expect(defaultConfigSource({})).toBe(repoPath('config/agentsec.yaml'));
    const r = spawnSync(process.execPath, [CLI, 'validate'], { cwd: REPO, env: { ...process.env, AGENTSEC_MODE: 'sidecra' }, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/AGENTSEC_MODE must be sidecar or gateway/);
  });
});
