// Where findings go besides the spans: NDJSON on stdout or in a file, as the native record or as
// an OCSF Detection Finding. Each sink gets every finding once (the detect processor dedupes).
import { z } from 'zod';
import { toOcsf, type Finding } from './finding.ts';
import { RotatingFile } from '../exporters/file.ts';

export const NdjsonSinkConfig = z.strictObject({
  /** `-` (or absent) for stdout, else a file path. */
  path: z.string().default('-'),
  format: z.enum(['native', 'ocsf']).default('native'),
});

export const SinksConfig = z
  .strictObject({
    ndjson: z.array(NdjsonSinkConfig).default([]),
  })
  .prefault({});
export type SinksConfig = z.output<typeof SinksConfig>;

export interface FindingSink {
  start(): Promise<void>;
  deliver(f: Finding): void;
  close(): Promise<void>;
}

const VERSION = '0.1.0';

export class NdjsonSink implements FindingSink {
  readonly #format: 'native' | 'ocsf';
  readonly #file: RotatingFile | undefined;
  readonly #write: (line: string) => void;

  constructor(cfg: z.output<typeof NdjsonSinkConfig>, stdout: { write(s: string): unknown } = process.stdout) {
    this.#format = cfg.format;
    this.#file = cfg.path === '-' ? undefined : new RotatingFile(cfg.path, 100 * 1024 * 1024, 3);
    this.#write = this.#file ? (line) => void this.#file!.append(line) : (line) => void stdout.write(line);
  }

  async start(): Promise<void> {
    await this.#file?.open();
  }

  deliver(f: Finding): void {
    this.#write(JSON.stringify(this.#format === 'ocsf' ? toOcsf(f, VERSION) : f) + '\n');
  }

  async close(): Promise<void> {
    await this.#file?.close();
  }
}

export function createSinks(cfg: SinksConfig, stdout?: { write(s: string): unknown }): FindingSink[] {
  return cfg.ndjson.map((c) => new NdjsonSink(c, stdout));
}
