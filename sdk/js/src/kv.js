// Capability `kv`: reads of NATS KV buckets the operator granted
// (`[policy.capabilities.kv] buckets = [...]`), from the host's mirror.
import { get } from 'nats:callout/kv@0.1.0';

import { calling } from './capability-error.js';

export function kvGet(bucket, key) {
  return calling('kv', () => get(bucket, key));
}

export function kvGetText(bucket, key) {
  const value = kvGet(bucket, key);
  return value === undefined ? undefined : new TextDecoder().decode(value);
}
