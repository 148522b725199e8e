// file: each batch as one OTLP/JSON ExportTraceServiceRequest per line (the collector's
// file exporter format, which `agentsec analyze` and the OTel tools read back), with
// size-based rotation so the embedded default never fills the disk. Writes happen in the
// request path (no queue): a slow or full disk pushes back to clients as a retryable error.
import { mkdirSync } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import type { ExporterFactory, Settings } from '../component/types.ts';
import { batchJson } from '../otlp/encoded-batch.ts';
import type { TraceBatch } from '../otlp/types.ts';
import { createExporter, IN_REQUEST_PATH } from '../pipeline/exporter-helper.ts';

export const FileExporterConfig = z.strictObject({
  path: z.string().min(1),
  rotation: z
    .strictObject({
      /** Rotate when the file passes this size; 0 never rotates. */
      max_megabytes: z.number().nonnegative().default(100),
      /** Rotated files kept as path.1 … path.N (newest first). */
      max_backups: z.number().int().nonnegative().default(3),
    })
    .prefault({}),
});
export type FileExporterConfig = z.output<typeof FileExporterConfig>;

/** Appends lines to a file, rotating by size; one writer at a time. */
export class RotatingFile {
  readonly path: string;
  readonly #maxBytes: number;
  readonly #maxBackups: number;
  #handle: FileHandle | undefined;
  #size = 0;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(path: string, maxBytes: number, maxBackups: number) {
    this.path = path;
    this.#maxBytes = maxBytes;
    this.#maxBackups = maxBackups;
  }

  async open(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true });
    this.#handle = await open(this.path, 'a');
    this.#size = (await this.#handle.stat()).size;
  }

  /** Serialized so that rotation never interleaves with a write. Text is turned into UTF-8 once, here. */
  append(text: string | Buffer): Promise<void> {
    const bytes = typeof text === 'string' ? Buffer.from(text) : text;
    const run = this.#tail.then(() => this.#write(bytes));
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #write(bytes: Buffer): Promise<void> {
    if (!this.#handle) throw new Error(`${this.path} is not open`);
    if (this.#maxBytes > 0 && this.#size > 0 && this.#size + bytes.length > this.#maxBytes) await this.#rotate();
    await this.#handle.write(bytes);
    this.#size += bytes.length;
  }

  async #rotate(): Promise<void> {
    await this.#handle!.close();
    if (this.#maxBackups === 0) await rm(this.path, { force: true });
    for (let i = this.#maxBackups; i >= 1; i--) {
      const from = i === 1 ? this.path : `${this.path}.${i - 1}`;
      await rename(from, `${this.path}.${i}`).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
    this.#handle = await open(this.path, 'a');
    this.#size = 0;
  }

  async close(): Promise<void> {
    await this.#tail;
    await this.#handle?.sync().catch(() => undefined);
    await this.#handle?.close();
    this.#handle = undefined;
  }
}

const INITIAL_BUFFER = 1 << 20;
/** Buffers kept for reuse, and the largest kept (one huge batch does not pin its buffer). */
const MAX_BUFFERS = 4;
const MAX_BUFFER = 64 << 20;

export function createFileExporter(set: Settings, cfg: FileExporterConfig) {
  const buffers: Buffer[] = [];
  const file = new RotatingFile(cfg.path, cfg.rotation.max_megabytes * 1024 * 1024, cfg.rotation.max_backups);
  return createExporter(
    set,
    {
      ...IN_REQUEST_PATH,
      start: async () => {
        await file.open();
        set.logger.info({ path: cfg.path }, 'writing spans as OTLP/JSON lines');
      },
      shutdown: () => file.close(),
    },
    async (batch: TraceBatch) => {
      // Written from buffers reused across batches: a fresh one per batch (megabytes of memory
      // outside the V8 heap) would make V8 run full garbage collections for it, over the whole heap.
      const into = buffers.pop() ?? Buffer.allocUnsafe(INITIAL_BUFFER);
      const transcoded = batch.protobuf !== undefined;
      const json = batchJson(batch, '\n', into);
      try {
        await file.append(json);
      } finally {
        // A transcoding that outgrew `into` wrote into a larger buffer of its own: kept instead.
        const reusable = !transcoded || json.buffer === into.buffer ? into : Buffer.from(json.buffer, 0, json.buffer.byteLength);
        if (buffers.length < MAX_BUFFERS && reusable.length <= MAX_BUFFER) buffers.push(reusable);
      }
    },
  );
}

export const fileExporterFactory: ExporterFactory<typeof FileExporterConfig> = {
  kind: 'exporter',
  type: 'file',
  stability: 'beta',
  config: FileExporterConfig,
  create: createFileExporter,
};
