// Capability `oidc`: tokens verified by the host against the keys of the
// issuers the operator granted (`[[policy.capabilities.oidc]]`).
import { verify } from 'nats:callout/oidc@0.1.0';

import { calling } from './capability-error.js';

export function verifyToken(token) {
  return calling('oidc', () => verify(token));
}
