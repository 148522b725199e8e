// Factories by kind and type (otelcol Factories / MakeFactoryMap): duplicates are rejected.
import type { AnyFactory, ComponentKind } from './types.ts';

export class Registry {
  readonly #byKind = new Map<ComponentKind, Map<string, AnyFactory>>();

  constructor(factories: readonly AnyFactory[]) {
    for (const f of factories) {
      let m = this.#byKind.get(f.kind);
      if (!m) this.#byKind.set(f.kind, (m = new Map()));
      if (m.has(f.type)) throw new Error(`duplicate ${f.kind} factory for type "${f.type}"`);
      m.set(f.type, f);
    }
  }

  get<K extends ComponentKind>(kind: K, type: string): Extract<AnyFactory, { kind: K }> | undefined {
    return this.#byKind.get(kind)?.get(type) as Extract<AnyFactory, { kind: K }> | undefined;
  }

  types(kind: ComponentKind): string[] {
    return [...(this.#byKind.get(kind)?.keys() ?? [])].sort();
  }

  all(): AnyFactory[] {
    return [...this.#byKind.values()].flatMap((m) => [...m.values()]);
  }
}

/** `type[/name]` → type. */
export function typeOf(id: string): string {
  const slash = id.indexOf('/');
  return slash < 0 ? id : id.slice(0, slash);
}
