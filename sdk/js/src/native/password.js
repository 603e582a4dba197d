import { NativeComponentError, doubles } from './doubles.js';

export function verify(password, hash) {
  if (!doubles.hashes.has(hash)) {
    throw new NativeComponentError('malformed-hash', 'not a hash the test doubles know (setPasswordHash)');
  }
  return doubles.hashes.get(hash) === password;
}
