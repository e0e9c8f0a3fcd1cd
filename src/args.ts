/**
 * Argument checks of the public entry points, so that a null, a missing or a wrong-typed argument
 * is the package's ValueError naming the argument and what came, never a TypeError from deep
 * inside. @internal
 */
import { ValueError } from './errors';

/** How a value reads in an error message. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'object') {
    const ctor = (value as { constructor?: { name?: string } }).constructor?.name;
    return !ctor || ctor === 'Object' ? 'a plain object' : `a ${ctor}`;
  }
  return `${typeof value} ${String(value)}`;
}

/** `value` as a plain options object; undefined gives {} when `optional`. */
export function objectArg<T extends object>(value: T | undefined | null, name: string, optional = false): T {
  if (value === undefined && optional) return {} as T;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValueError(`${name} must be an object${optional ? ' (or omitted)' : ''}, got ${describeValue(value)}`);
  }
  return value;
}

/** `value` as a non-empty string (a path, a name). */
export function stringArg(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new ValueError(`${name} must be a non-empty string, got ${describeValue(value)}`);
  return value;
}
