// Error types that carry their handling with them (the collector's consumererror):
// anything not marked permanent is retryable; the receiver maps each to a status
// in one table (src/otlp/status.ts).

/** Never retry: the data is bad or cannot be processed. */
export class PermanentError extends Error {
  readonly code: string = 'AGENTSEC_PERMANENT';
  override readonly name: string = 'PermanentError';
}

/** The request itself is malformed: 400 / INVALID_ARGUMENT. */
export class BadInputError extends PermanentError {
  override readonly code: string = 'AGENTSEC_BAD_INPUT';
  override readonly name: string = 'BadInputError';
}

/** The request is larger than allowed: 413 / RESOURCE_EXHAUSTED (without RetryInfo). */
export class TooLargeError extends PermanentError {
  override readonly code: string = 'AGENTSEC_TOO_LARGE';
  override readonly name: string = 'TooLargeError';
}

/** The content type is not one we accept: 415. */
export class UnsupportedMediaTypeError extends PermanentError {
  override readonly code: string = 'AGENTSEC_UNSUPPORTED_MEDIA_TYPE';
  override readonly name: string = 'UnsupportedMediaTypeError';
}

/** Try again later: 503 / UNAVAILABLE, with Retry-After / RetryInfo when known. */
export class RetryableError extends Error {
  readonly code: string = 'AGENTSEC_RETRYABLE';
  override readonly name: string = 'RetryableError';
  readonly retryAfterMs: number | undefined;
  /** Why the data was refused, a bounded label for metrics (e.g. queue_full, memory_limit). */
  readonly reason: string;
  constructor(message: string, opts: { reason: string; retryAfterMs?: number; cause?: unknown }) {
    super(message, { cause: opts.cause });
    this.reason = opts.reason;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/** A configuration value is wrong; `path` is the key, as `exporters::otlp::endpoint`. */
export class ConfigError extends Error {
  readonly code = 'AGENTSEC_CONFIG';
  override readonly name = 'ConfigError';
  readonly issues: readonly string[];
  constructor(issues: readonly string[]) {
    super(issues.join('\n'));
    this.issues = issues;
  }
}

/** Walks the cause chain, like errors.As for consumererror.Permanent. */
export function isPermanent(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) if (e instanceof PermanentError) return true;
  return false;
}

export function findRetryable(err: unknown): RetryableError | undefined {
  for (let e: unknown = err; e instanceof Error; e = e.cause) if (e instanceof RetryableError) return e;
  return undefined;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
