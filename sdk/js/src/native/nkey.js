import { NativeComponentError, doubles } from './doubles.js';

const kinds = { O: 'operator', A: 'account', U: 'user', N: 'server', C: 'cluster', X: 'curve' };

export function parsePublicKey(key) {
  const kind = kinds[key[0]];
  if (key.length !== 56 || !kind) throw new NativeComponentError('invalid-key', 'not a public nkey');
  return kind;
}

export function verify(key, message, signature) {
  parsePublicKey(key);
  const text = new TextDecoder().decode(message);
  if (!doubles.signatures.has(`${key}\0${text}\0${signature}`)) throw new NativeComponentError('bad-signature');
}
