import { NativeComponentError, doubles } from './doubles.js';

export function get(bucket, key) {
  const entries = doubles.kv.get(bucket);
  if (!entries) throw new NativeComponentError('not-granted', bucket);
  if (doubles.unavailable.has(bucket)) throw new NativeComponentError('unavailable', `bucket "${bucket}": (test double)`);
  return entries.get(key);
}
