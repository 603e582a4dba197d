// Capability `nkey`: nkey signatures checked by the host
// (`[policy.capabilities] nkey = true`).
import { parsePublicKey, verify } from 'nats:callout/nkey@0.1.0';

import { CapabilityError, calling } from './capability-error.js';

export function verifyNkey(key, message, signature) {
  const bytes = typeof message === 'string' ? new TextEncoder().encode(message) : message;
  calling('nkey', () => verify(key, bytes, signature));
}

export function nkeyKind(key) {
  return calling('nkey', () => parsePublicKey(key));
}

export function verifiedClientKey(request) {
  const key = request.connectOpts.nkey;
  if (key === undefined) return undefined;
  const nonce = request.clientInfo.nonce;
  if (nonce === undefined) {
    throw new CapabilityError(
      'nkey',
      'malformed-signature',
      'the server sent the client no nonce to sign (in config mode it sends one only when an nkey user is configured)',
    );
  }
  const signature = request.connectOpts.sig;
  if (signature === undefined) {
    throw new CapabilityError('nkey', 'malformed-signature', 'the client sent an nkey without a signature');
  }
  verifyNkey(key, nonce, signature);
  return key;
}
