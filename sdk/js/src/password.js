// Capability `password`: password hashes checked by the host
// (`[policy.capabilities.password]`).
import { verify } from 'nats:callout/password@0.1.0';

import { calling } from './capability-error.js';

export function verifyPassword(password, hash) {
  return calling('password', () => verify(password, hash));
}
