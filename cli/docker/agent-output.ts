import type { z } from 'zod';
import { OperationFailed } from '../errors';

/** The agent's JSON output read with the agent's own schema: a mismatch (an older agent image) is a clear failure, not a crash. */
export function parseAgentJson<T extends z.ZodType>(schema: T, text: string, what: string): z.infer<T> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new OperationFailed(`${what}: the agent's output is not JSON (is the backup image older than this CLI?): ${text.trim().split('\n')[0]?.slice(0, 120) ?? ''}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new OperationFailed(`${what}: the agent's output has another shape than this CLI reads (is the backup image older than this CLI?): ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}
