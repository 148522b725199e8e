// A small Prometheus registry. Label values are bound once (labels() returns a handle),
// so the hot path is a property increment, never a string build.

type LabelValues = readonly string[];

interface Series {
  readonly labels: LabelValues;
  value: number;
  read?: () => number;
}

abstract class Family {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly #series = new Map<string, Series>();
  abstract readonly type: 'counter' | 'gauge';

  constructor(name: string, help: string, labelNames: readonly string[]) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  protected series(values: LabelValues): Series {
    if (values.length !== this.labelNames.length) {
      throw new Error(`${this.name}: expected labels ${this.labelNames.join(',')}, got ${values.length} values`);
    }
    const key = values.join('\u0000');
    let s = this.#series.get(key);
    if (!s) this.#series.set(key, (s = { labels: values, value: 0 }));
    return s;
  }

  /** Drops every series whose labels match (e.g. when a component shuts down). */
  remove(...values: string[]): void {
    this.#series.delete(values.join('\u0000'));
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`);
    for (const s of this.#series.values()) {
      const v = s.read ? s.read() : s.value;
      const labels = s.labels.length === 0 ? '' : `{${s.labels.map((l, i) => `${this.labelNames[i]}="${escapeLabel(l)}"`).join(',')}}`;
      out.push(`${this.name}${labels} ${Number.isFinite(v) ? v : 0}`);
    }
  }

  /** Current value of one series, for tests and the API. */
  get(...values: string[]): number {
    const s = this.#series.get(values.join('\u0000'));
    return s ? (s.read ? s.read() : s.value) : 0;
  }

  sum(): number {
    let total = 0;
    for (const s of this.#series.values()) total += s.read ? s.read() : s.value;
    return total;
  }
}

export interface CounterHandle {
  inc(n?: number): void;
}

export class Counter extends Family {
  readonly type = 'counter' as const;
  labels(...values: string[]): CounterHandle {
    const s = this.series(values);
    return { inc: (n = 1) => void (s.value += n) };
  }
  inc(values: LabelValues, n = 1): void {
    this.series(values).value += n;
  }
}

export class Gauge extends Family {
  readonly type = 'gauge' as const;
  set(values: LabelValues, v: number): void {
    this.series(values).value = v;
  }
  /** The value is read when /metrics is scraped. */
  track(values: LabelValues, read: () => number): void {
    this.series(values).read = read;
  }
}

export class MetricsRegistry {
  readonly #families = new Map<string, Family>();
  readonly #collectors: ((out: string[]) => void)[] = [];

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.#family(name, () => new Counter(name, help, labelNames), Counter);
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.#family(name, () => new Gauge(name, help, labelNames), Gauge);
  }

  /** Adds lines computed at scrape time (process metrics). */
  collect(fn: (out: string[]) => void): void {
    this.#collectors.push(fn);
  }

  render(): string {
    const out: string[] = [];
    for (const f of this.#families.values()) f.render(out);
    for (const c of this.#collectors) c(out);
    return out.join('\n') + '\n';
  }

  #family<T extends Family>(name: string, make: () => T, cls: abstract new (...a: never[]) => T): T {
    const existing = this.#families.get(name);
    if (existing) {
      if (!(existing instanceof cls)) throw new Error(`metric ${name} already registered as a ${existing.type}`);
      return existing;
    }
    const f = make();
    this.#families.set(name, f);
    return f;
  }
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** process_* and nodejs_* metrics, read at scrape time. */
export function registerProcessMetrics(registry: MetricsRegistry): void {
  const startSeconds = Math.round(Date.now() / 1000 - process.uptime());
  let lastElu = performance.eventLoopUtilization();
  registry.collect((out) => {
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    const elu = performance.eventLoopUtilization(lastElu);
    lastElu = performance.eventLoopUtilization();
    const line = (name: string, type: string, help: string, v: number) =>
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${v}`);
    line('process_cpu_user_seconds_total', 'counter', 'User CPU time spent in seconds.', cpu.user / 1e6);
    line('process_cpu_system_seconds_total', 'counter', 'System CPU time spent in seconds.', cpu.system / 1e6);
    line('process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.', (cpu.user + cpu.system) / 1e6);
    line('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', mem.rss);
    line('process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.', startSeconds);
    line('nodejs_heap_size_used_bytes', 'gauge', 'V8 heap in use, in bytes.', mem.heapUsed);
    line('nodejs_heap_size_total_bytes', 'gauge', 'V8 heap reserved, in bytes.', mem.heapTotal);
    line('nodejs_external_memory_bytes', 'gauge', 'Memory of C++ objects bound to JS (buffers), in bytes.', mem.external);
    line('nodejs_eventloop_utilization', 'gauge', 'Share of time the event loop was busy since the last scrape.', elu.utilization);
  });
}
