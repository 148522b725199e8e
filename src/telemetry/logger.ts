// pino, structured, one line per event. Components get child loggers bound to their id.
// Synchronous writes: we log per event, never per span, and no line is lost at exit.
import { pino, type Logger, type DestinationStream } from 'pino';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export function createLogger(level: LogLevel = 'info', destination?: DestinationStream): Logger {
  return pino({ level, base: { service: 'agentsec' }, timestamp: pino.stdTimeFunctions.isoTime }, destination ?? pino.destination({ fd: 1, sync: true }));
}

export type { Logger };
