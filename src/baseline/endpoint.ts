// Endpoints as a role's profile keeps them: host, method and a path template. Values that are
// ids (numbers, UUIDs, hashes, long opaque tokens) become {id}, so /orders/1 and /orders/2 are
// one endpoint (reference/detection.md §9, "high-cardinality ids"). Beyond that, a path position
// under which more than `collapseAfter` distinct children were seen is collapsed: any child
// there is known (Kubescape collapses after 100 HTTP endpoints). Protected prefixes are never
// collapsed, so a new /admin/... stays new however many /admin children exist (the
// "/etc/shadow.evil" lesson).

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NUMBER = /^\d+$/;
const HEX = /^[0-9a-f]{8,}$/i;
const OPAQUE = /^[A-Za-z0-9_-]{20,}$/;
const MANY_DIGITS = /\d{3,}/;

export function templateSegment(seg: string): string {
  if (seg === '') return seg;
  if (NUMBER.test(seg) || UUID.test(seg)) return '{id}';
  // A run of three digits or more among other characters: kb-1042, order_12345, 2026-11-21.
  if (MANY_DIGITS.test(seg)) return '{id}';
  // A hash: hex with at least one digit (so words like "deadbeefcafe" need a digit too).
  if (HEX.test(seg) && /\d/.test(seg)) return '{id}';
  // A long opaque token: letters and digits mixed.
  if (OPAQUE.test(seg) && /\d/.test(seg) && /[A-Za-z]/.test(seg)) return '{id}';
  return seg;
}

/** The path's template: no query or fragment, ids replaced, no trailing slash. */
export function pathTemplate(path: string): string {
  let p = path;
  const cut = p.search(/[?#]/);
  if (cut >= 0) p = p.slice(0, cut);
  if (p === '' || p === '/') return '/';
  const segs = p.split('/');
  for (let i = 0; i < segs.length; i++) segs[i] = templateSegment(segs[i]!);
  const out = segs.join('/').replace(/\/+$/, '');
  return out.startsWith('/') ? out : '/' + out;
}

/** `host METHOD /template` (method upper-case; empty parts dropped). */
export function endpointKey(host: string, method: string, path: string): string {
  const m = method.toUpperCase();
  return `${host.toLowerCase()}${m ? ' ' + m : ''}${path ? ' ' + pathTemplate(path) : ''}`;
}

/**
 * Which endpoints of one role count as known, collapse included. Keys are added as the profile
 * learns them; `known` answers for a new key.
 */
export class EndpointSet {
  readonly #keys = new Set<string>();
  /** Per parent (`host METHOD /a/b`), its distinct children seen. */
  readonly #children = new Map<string, Set<string>>();
  readonly #collapseAfter: number;
  readonly #protected: readonly string[];

  constructor(collapseAfter: number, protectedPrefixes: readonly string[]) {
    this.#collapseAfter = collapseAfter;
    this.#protected = protectedPrefixes;
  }

  add(key: string): void {
    if (this.#keys.has(key)) return;
    this.#keys.add(key);
    const split = splitKey(key);
    if (!split) return;
    const segs = split.path.split('/');
    for (let i = 1; i < segs.length; i++) {
      const parent = `${split.prefix} ${segs.slice(0, i).join('/') || '/'}`;
      let kids = this.#children.get(parent);
      if (!kids) this.#children.set(parent, (kids = new Set()));
      if (kids.size <= this.#collapseAfter) kids.add(segs[i]!);
    }
  }

  /** The key was seen, or lies under a collapsed position that no protected prefix covers. */
  known(key: string): boolean {
    return this.#keys.has(key) || this.#collapsedAt(key) !== undefined;
  }

  /** What the profile records `key` as: the collapsed position's `…/{*}` when it lies under one, else the key itself. */
  canonical(key: string): string {
    if (this.#keys.has(key)) return key;
    const at = this.#collapsedAt(key);
    return at === undefined ? key : `${at.replace(/\/$/, '')}/{*}`;
  }

  /** The collapsed parent (`host METHOD /a`) `key` lies under, if any (never under a protected prefix). */
  #collapsedAt(key: string): string | undefined {
    const split = splitKey(key);
    if (!split || this.#isProtected(split.path)) return undefined;
    const segs = split.path.split('/');
    for (let i = 1; i < segs.length; i++) {
      const parent = `${split.prefix} ${segs.slice(0, i).join('/') || '/'}`;
      const kids = this.#children.get(parent);
      if (kids && kids.size > this.#collapseAfter) return parent;
      if (!kids || !kids.has(segs[i]!)) return undefined;
    }
    return undefined;
  }

  /** The collapsed positions, as templates with `{*}` (for the generated policy). */
  collapsed(): string[] {
    const out: string[] = [];
    for (const [parent, kids] of this.#children) if (kids.size > this.#collapseAfter) out.push(`${parent.replace(/\/$/, '')}/{*}`);
    return out;
  }

  #isProtected(path: string): boolean {
    return this.#protected.some((p) => path === p || path.startsWith(p.endsWith('/') ? p : p + '/'));
  }
}

function splitKey(key: string): { prefix: string; path: string } | undefined {
  const slash = key.indexOf(' /');
  if (slash < 0) return undefined;
  return { prefix: key.slice(0, slash), path: key.slice(slash + 1) };
}
