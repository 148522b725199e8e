// Endpoint templates: ids collapse into {id}; a position with many distinct children collapses;
// protected prefixes never do.
import { describe, expect, it } from 'vitest';
import { EndpointSet, endpointKey, pathTemplate } from '../../src/baseline/endpoint.ts';

describe('endpoint templates', () => {
  it('replaces numbers, UUIDs, hashes and opaque tokens, and drops the query', () => {
    expect(pathTemplate('/orders/12345/items?page=2#x')).toBe('/orders/{id}/items');
    expect(pathTemplate('/users/3f2504e0-4f89-11d3-9a0c-0305e82c3301/profile/')).toBe('/users/{id}/profile');
    expect(pathTemplate('/blobs/9f86d081884c7d659a2feaa0c55ad015')).toBe('/blobs/{id}');
    expect(pathTemplate('/share/AbC123xYz789QwErTy00')).toBe('/share/{id}');
    // Words stay words (no digit), so do short codes.
    expect(pathTemplate('/v1/chat/completions')).toBe('/v1/chat/completions');
    expect(pathTemplate('/repos/acme/deadbeefcafe')).toBe('/repos/acme/deadbeefcafe');
    expect(pathTemplate('/api/articles/kb-1042')).toBe('/api/articles/{id}');
    expect(pathTemplate('/reports/2026-11-21/summary')).toBe('/reports/{id}/summary');
    expect(pathTemplate('/v1/models/gpt-4o')).toBe('/v1/models/gpt-4o');
    expect(pathTemplate('')).toBe('/');
    expect(endpointKey('API.Example.com', 'get', '/orders/7')).toBe('api.example.com GET /orders/{id}');
    expect(endpointKey('api.example.com', '', '')).toBe('api.example.com');
  });

  it('collapses a position after collapse_after children, except under protected prefixes', () => {
    const set = new EndpointSet(3, ['/admin']);
    for (const u of ['alice', 'bob', 'carol']) set.add(`h GET /people/${u}/profile`);
    expect(set.known('h GET /people/alice/profile')).toBe(true);
    expect(set.known('h GET /people/dave/profile')).toBe(false);
    set.add('h GET /people/dave/profile');
    // Four distinct children (> 3): any child of /people is known now, on the same host and method only.
    expect(set.known('h GET /people/erin/profile')).toBe(true);
    expect(set.known('h GET /people/erin/settings')).toBe(true);
    expect(set.known('h POST /people/erin/profile')).toBe(false);
    expect(set.known('other GET /people/erin/profile')).toBe(false);
    expect(set.collapsed()).toEqual(['h GET /people/{*}']);
    // What the profile records a child as, from now on: the position (bounded), never under a protected prefix.
    expect(set.canonical('h GET /people/erin/profile')).toBe('h GET /people/{*}');
    expect(set.canonical('h GET /people/alice/profile')).toBe('h GET /people/alice/profile');

    for (const u of ['a', 'b', 'c', 'd', 'e']) set.add(`h GET /admin/${u}`);
    expect(set.known('h GET /admin/a')).toBe(true);
    expect(set.known('h GET /admin/shadow.evil')).toBe(false);
    expect(set.canonical('h GET /admin/shadow.evil')).toBe('h GET /admin/shadow.evil');
  });
});
