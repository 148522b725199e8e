import { mkdtempSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfigText, readConfigSource } from '../../src/config/load.ts';
import { resolveConfig } from '../../src/config/schema.ts';
import { components } from '../../src/components.ts';
import { ConfigError } from '../../src/errors.ts';
import { parseDuration } from '../../src/config/units.ts';

const registry = components();

function issuesOf(yaml: string, env: Record<string, string> = {}): string[] {
  try {
    resolveConfig(parseConfigText(yaml, 'test.yaml', env), registry);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.issues];
    throw err;
  }
  return [];
}

const MINIMAL = `
receivers:
  otlp:
    protocols:
      http: { endpoint: "localhost:0" }
exporters:
  debug: {}
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [debug] }
`;

describe('config substitution', () => {
  it('expands ${env:VAR} inside strings and takes the YAML type of a whole-value reference', () => {
    const raw = parseConfigText('a: "x-${env:NAME}-y"\nb: ${env:PORT}\nc: ${env:LIST}\nd: ${env:MISSING:-fallback}\ne: $${env:LITERAL}', 't', {
      NAME: 'mid',
      PORT: '4317',
      LIST: '[otlp, debug]',
    }) as Record<string, unknown>;
    expect(raw).toEqual({ a: 'x-mid-y', b: 4317, c: ['otlp', 'debug'], d: 'fallback', e: '${env:LITERAL}' });
  });

  it('names the key when a variable without a default is unset', () => {
    expect(() => parseConfigText('exporters:\n  otlp:\n    endpoint: ${env:NOPE}\n', 't', {})).toThrow(
      /exporters::otlp::endpoint: environment variable NOPE is not set/,
    );
  });

  it('reports invalid YAML and unreadable files clearly', () => {
    expect(() => parseConfigText('a: [1, 2', 'bad.yaml', {})).toThrow(/bad.yaml is not valid YAML/);
    expect(() => readConfigSource('/no/such/agentsec.yaml')).toThrow(/cannot read \/no\/such\/agentsec.yaml: no such file/);
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const file = join(dir, 'locked.yaml');
    writeFileSync(file, MINIMAL);
    chmodSync(file, 0o000);
    if (process.getuid?.() !== 0) expect(() => readConfigSource(file)).toThrow(/permission denied/);
    expect(readConfigSource('env:AGENTSEC_CFG', { AGENTSEC_CFG: MINIMAL }).text).toBe(MINIMAL);
    expect(() => readConfigSource('env:AGENTSEC_CFG', {})).toThrow(/AGENTSEC_CFG is not set/);
  });

  it('parses durations as collectors write them', () => {
    expect(parseDuration('200ms')).toBe(200);
    expect(parseDuration('1m30s')).toBe(90_000);
    expect(parseDuration('5 s')).toBeUndefined();
  });
});

/** Something wrong in every section. */
const BROKEN = `
receivers:
  otlp:
    protocols:
      http: { endpoint: "nope" }
  kafka: {}
exporters:
  debug: { level: loud }
  otlp: { protocol: grpc }
service:
  extensions: [health]
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [debug, file] }
    metrics: { receivers: [otlp], exporters: [debug] }
`;

describe('config validation', () => {
  it('accepts a minimal config and fills defaults', () => {
    const cfg = resolveConfig(parseConfigText(MINIMAL, 't', {}), registry);
    expect(cfg.service.shutdown_timeout).toBe(20_000);
    expect(cfg.components.receiver.get('otlp')).toMatchObject({ protocols: { http: { endpoint: 'localhost:0' } } });
  });

  it('names the key and what is wrong, for every problem at once', () => {
    const issues = issuesOf(BROKEN + '  colour: blue\n');
    expect(issues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^service: unknown key "colour"/),
      ]),
    );
    // The top-level error stops before component checks; fix it and look at the rest.
    const rest = issuesOf(BROKEN);
    expect(rest).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^receivers::otlp::protocols::http::endpoint: must be host:port/),
        expect.stringMatching(/^receivers::kafka: unknown receiver type "kafka" \(known: otlp\)/),
        expect.stringMatching(/^exporters::debug::level: /),
        expect.stringMatching(/^exporters::otlp::endpoint: is required/),
        'service::extensions: references extension "health" which is not configured',
        'service::pipelines::traces::processors: references processor "batch" which is not configured',
        'service::pipelines::traces::exporters: references exporter "file" which is not configured',
        expect.stringMatching(/^service::pipelines::metrics: only traces pipelines are supported/),
      ]),
    );
  });

  it('rejects a pipeline without exporters and a component listed twice', () => {
    expect(issuesOf(MINIMAL.replace('exporters: [debug]', 'exporters: []'))).toEqual([
      expect.stringMatching(/^service::pipelines::traces::exporters: must list at least one exporter/),
    ]);
    expect(issuesOf(MINIMAL.replace('exporters: [debug]', 'exporters: [debug, debug]'))).toEqual([
      'service::pipelines::traces::exporters: exporter "debug" is listed twice',
    ]);
  });

  it('checks the policy file named by detect', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const bad = join(dir, 'policy.yaml');
    writeFileSync(bad, 'roles: { research: { mode: audit } }');
    const withDetect = (policy: string) =>
      MINIMAL.replace('exporters:\n  debug: {}', `processors:\n  normalize: {}\n  tracegraph: {}\n  detect: { policy: "${policy}" }\nexporters:\n  debug: {}`).replace(
        'exporters: [debug] }',
        'processors: [normalize, tracegraph, detect], exporters: [debug] }',
      );
    expect(issuesOf(withDetect(bad))).toEqual([expect.stringMatching(/^processors::detect::policy: policy::roles::research::mode: /)]);
    expect(issuesOf(withDetect(join(dir, 'missing.yaml')))).toEqual([expect.stringMatching(/processors::detect::policy: policy: cannot read .*missing.yaml: no such file/)]);
    expect(issuesOf(withDetect('config/policies/demo.yaml'))).toEqual([]);
  });

  it('validates the shipped configs', () => {
    for (const file of ['config/agentsec.yaml', 'config/agentsec-forward.yaml']) {
      const { text } = readConfigSource(file);
      const cfg = resolveConfig(parseConfigText(text, file, { AGENTSEC_OTLP_ENDPOINT: 'http://localhost:4317' }), registry);
      expect(Object.keys(cfg.service.pipelines)).toEqual(['traces']);
    }
  });
});
