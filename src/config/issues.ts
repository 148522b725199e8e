// Renders zod issues as the collector does: the key path joined by "::", then what is wrong.
import type { z } from 'zod';

export function formatIssues(prefix: readonly (string | number)[], error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = [...prefix, ...issue.path.map(String)].join('::');
    return path ? `${path}: ${describe(issue)}` : describe(issue);
  });
}

function describe(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
  if (issue.code === 'invalid_type' && issue.input === undefined) return `is required (${issue.expected})`;
  return issue.message;
}
