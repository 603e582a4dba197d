import { NativeComponentError, doubles } from './doubles.js';

export function verify(token) {
  const accepted = doubles.tokens.get(token);
  if (accepted) return accepted;
  const refused = doubles.refusedTokens.get(token) ?? { tag: 'bad-signature' };
  throw new NativeComponentError(refused.tag, refused.val);
}
