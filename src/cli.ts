// agentsec: run | validate | analyze | policy generate | components. Exit codes are part of the interface:
//   0 ok · 1 unexpected failure · 2 bad usage · 3 config unreadable or invalid · 4 could not start (port in use, TLS files…)
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { ConfigError, errorMessage } from './errors.ts';
import { components } from './components.ts';
import { loadConfig, Service } from './service.ts';
import { StartError } from './pipeline/build.ts';
import { analyze } from './analyze.ts';
import { generatePolicyYaml } from './baseline/generate.ts';
import { writeFileSync } from 'node:fs';

export const EXIT = { OK: 0, FAILURE: 1, USAGE: 2, CONFIG: 3, START: 4 } as const;

const DEFAULT_CONFIG = fileURLToPath(new URL('../config/agentsec.yaml', import.meta.url));
const FORWARD_CONFIG = fileURLToPath(new URL('../config/agentsec-forward.yaml', import.meta.url));
const SIDECAR_CONFIG = fileURLToPath(new URL('../config/agentsec-sidecar.yaml', import.meta.url));

const USAGE = `agentsec collector — finds the attack chains between AI agents in their OTLP traces

usage:
  agentsec run [--config FILE | --config env:VAR]   run the collector (default: the embedded config)
  agentsec validate [--config FILE]                 check a config and exit
  agentsec analyze FILE... [--config FILE] [--policy FILE] [--out-spans FILE]
                                                    run the agent processors offline over OTLP/JSON
                                                    files (- reads stdin); findings as NDJSON on stdout
  agentsec policy generate [--config FILE] [--role R] [--mode enforce|observe] [--out FILE]
                                                    write the least-privilege policy the stored
                                                    baselines support (YAML, to stdout or --out)
  agentsec components                               list the component types
  agentsec --help

The embedded default (config/agentsec.yaml) receives OTLP on :4317 (gRPC) and :4318 (HTTP)
and writes spans to data/spans.jsonl; with AGENTSEC_OTLP_ENDPOINT set it uses
config/agentsec-forward.yaml and forwards to that endpoint (AGENTSEC_OTLP_PROTOCOL:
grpc, http/protobuf or http/json). AGENTSEC_MODE=sidecar uses config/agentsec-sidecar.yaml
(fingerprint credentials and forward to AGENTSEC_GATEWAY_ENDPOINT). \`agentsec --config …\`
with no command runs the collector, as the OpenTelemetry Operator's sidecar invokes it
(--config=env:OTEL_CONFIG).

SIGHUP makes a running collector re-read its policy file (a broken one is refused; the old stays).

exit codes: 0 ok, 1 failure, 2 usage, 3 config unreadable or invalid, 4 could not start`;

/** The embedded default: the sidecar config in sidecar mode; else forward when an endpoint is given, else write to data/. */
export function defaultConfigSource(env: NodeJS.ProcessEnv = process.env): string {
  if (env.AGENTSEC_MODE === 'sidecar') return SIDECAR_CONFIG;
  return env.AGENTSEC_OTLP_ENDPOINT ? FORWARD_CONFIG : DEFAULT_CONFIG;
}

function fail(code: number, message: string): number {
  process.stderr.write(`agentsec: ${message}\n`);
  return code;
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        policy: { type: 'string' },
        'out-spans': { type: 'string' },
        role: { type: 'string' },
        mode: { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    return fail(EXIT.USAGE, `${errorMessage(err)}\n\n${USAGE}`);
  }
  const [given, ...rest] = parsed.positionals;
  // `agentsec --config X` runs, as `otelcol --config X` does (the Operator's injected sidecar passes only that).
  const command = given ?? (parsed.values.config !== undefined ? 'run' : undefined);
  if (parsed.values.help || command === 'help') {
    process.stdout.write(USAGE + '\n');
    return EXIT.OK;
  }
  if (command === 'analyze') return runAnalyze(rest, parsed.values.config, parsed.values.policy, parsed.values['out-spans']);
  if (command === 'policy') return runPolicy(rest, parsed.values.config ?? defaultConfigSource(), parsed.values);
  if (rest.length > 0) return fail(EXIT.USAGE, `unexpected argument ${JSON.stringify(rest[0])}\n\n${USAGE}`);
  const mode = process.env.AGENTSEC_MODE;
  if (mode && mode !== 'sidecar' && mode !== 'gateway') return fail(EXIT.USAGE, `AGENTSEC_MODE must be sidecar or gateway, not ${JSON.stringify(mode)}`);
  const source = parsed.values.config ?? defaultConfigSource();

  switch (command) {
    case 'run':
      return run(source);
    case 'validate':
      try {
        loadConfig({ source });
        process.stdout.write(`${source}: valid\n`);
        return EXIT.OK;
      } catch (err) {
        return configFailure(source, err);
      }
    case 'components': {
      const registry = components();
      for (const kind of ['receiver', 'processor', 'exporter', 'extension'] as const) {
        process.stdout.write(`${kind}s: ${registry.types(kind).join(', ')}\n`);
      }
      return EXIT.OK;
    }
    case undefined:
      return fail(EXIT.USAGE, `a command is required\n\n${USAGE}`);
    default:
      return fail(EXIT.USAGE, `unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
  }
}

async function runAnalyze(files: string[], configSource: string | undefined, policy: string | undefined, outSpans: string | undefined): Promise<number> {
  if (files.length === 0) return fail(EXIT.USAGE, `analyze needs at least one FILE (or - for stdin)\n\n${USAGE}`);
  let config;
  if (configSource) {
    try {
      config = loadConfig({ source: configSource });
    } catch (err) {
      return configFailure(configSource, err);
    }
  }
  try {
    const s = await analyze({ files, config, outSpans, policy });
    process.stderr.write(
      `agentsec analyze: ${s.spans} spans in ${s.traces} traces (${s.agents} agent roles) from ${s.requests} requests` +
        (s.rejectedSpans ? `, ${s.rejectedSpans} spans rejected` : '') +
        `; ${s.findings} findings` +
        (outSpans ? `; enriched spans written to ${outSpans}` : '') + '\n',
    );
    return EXIT.OK;
  } catch (err) {
    if (err instanceof ConfigError) return configFailure(policy ?? configSource ?? 'policy', err);
    return fail(EXIT.FAILURE, `analyze: ${errorMessage(err)}`);
  }
}

async function runPolicy(rest: string[], source: string, opts: { role?: string; mode?: string; out?: string }): Promise<number> {
  if (rest[0] !== 'generate' || rest.length > 1) return fail(EXIT.USAGE, `policy needs the subcommand generate\n\n${USAGE}`);
  if (opts.mode !== undefined && opts.mode !== 'enforce' && opts.mode !== 'observe') return fail(EXIT.USAGE, `--mode must be enforce or observe, not ${JSON.stringify(opts.mode)}`);
  let config;
  try {
    config = loadConfig({ source });
  } catch (err) {
    return configFailure(source, err);
  }
  try {
    const yaml = await generatePolicyYaml(config, { role: opts.role, mode: opts.mode as 'enforce' | 'observe' | undefined });
    if (opts.out) {
      writeFileSync(opts.out, yaml);
      process.stderr.write(`agentsec: policy written to ${opts.out}\n`);
    } else process.stdout.write(yaml);
    return EXIT.OK;
  } catch (err) {
    if (err instanceof ConfigError) return configFailure(source, err);
    return fail(EXIT.FAILURE, `policy generate: ${errorMessage(err)}`);
  }
}

function configFailure(source: string, err: unknown): number {
  if (err instanceof ConfigError) return fail(EXIT.CONFIG, `invalid configuration (${source}):\n  ${err.issues.join('\n  ')}`);
  return fail(EXIT.FAILURE, errorMessage(err));
}

async function run(source: string): Promise<number> {
  let config;
  try {
    config = loadConfig({ source });
  } catch (err) {
    return configFailure(source, err);
  }
  let service: Service;
  try {
    service = await Service.start({ config });
  } catch (err) {
    if (err instanceof StartError) return fail(EXIT.START, `could not start: ${err.message}`);
    return fail(EXIT.FAILURE, `could not start: ${errorMessage(err)}`);
  }
  service.logger.info({ config: source, pid: process.pid }, 'using configuration');

  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        service.logger.warn({ signal }, 'second signal: exiting without finishing the drain');
        resolve(EXIT.FAILURE);
        return;
      }
      service.logger.info({ signal }, 'signal received');
      service.shutdown().then(
        () => resolve(EXIT.OK),
        (err: unknown) => {
          service.logger.error({ err: errorMessage(err) }, 'shutdown failed');
          resolve(EXIT.FAILURE);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    process.on('SIGHUP', () => void service.reload().catch((err: unknown) => service.logger.error({ err: errorMessage(err) }, 'reload failed')));
    process.on('unhandledRejection', (reason) => {
      // A bug in a background task must not take the collector (and its queued data) down.
      service.logger.error({ err: errorMessage(reason) }, 'unhandled promise rejection');
    });
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`agentsec: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(EXIT.FAILURE);
    },
  );
}
