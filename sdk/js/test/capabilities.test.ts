import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  CapabilityError,
  Request,
  kvGet,
  kvGetText,
  verifiedClientKey,
  verifyPassword,
  verifyToken,
} from '../src/index.js';
import {
  acceptSignature,
  acceptToken,
  makeKvUnavailable,
  putKv,
  refuseToken,
  resetCapabilities,
  setPasswordHash,
} from '../src/testing.js';

const KEY = 'UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4';

function refusal(call: () => unknown): CapabilityError {
  try {
    call();
  } catch (error) {
    assert.ok(error instanceof CapabilityError, `not a CapabilityError: ${error}`);
    return error;
  }
  assert.fail('no error');
}

test('kv reads answer from the doubles, and say when a bucket is not granted or stale', () => {
  resetCapabilities();
  putKv('users', 'alice', '{"account": "APP"}');
  assert.equal(kvGetText('users', 'alice'), '{"account": "APP"}');
  assert.equal(kvGet('users', 'bob'), undefined);
  const other = refusal(() => kvGet('secrets', 'x'));
  assert.equal(other.kind, 'not-granted');
  assert.equal(other.message, 'bucket "secrets" is not granted');
  makeKvUnavailable('users');
  assert.equal(refusal(() => kvGet('users', 'alice')).kind, 'unavailable');
});

test('tokens and passwords', () => {
  resetCapabilities();
  acceptToken('good', 'https://idp', { sub: 'alice' });
  assert.deepEqual(verifyToken('good'), { issuer: 'https://idp', claims: '{"sub":"alice"}' });
  refuseToken('old', 'expired');
  assert.equal(refusal(() => verifyToken('old')).message, 'expired');
  assert.equal(refusal(() => verifyToken('forged')).kind, 'bad-signature');
  setPasswordHash('$argon2id$x', 'wonderland');
  assert.equal(verifyPassword('wonderland', '$argon2id$x'), true);
  assert.equal(verifyPassword('guess', '$argon2id$x'), false);
  assert.equal(refusal(() => verifyPassword('x', '$md5$y')).kind, 'malformed-hash');
});

test('an nkey client is admitted only with its signature of the nonce', () => {
  resetCapabilities();
  acceptSignature(KEY, 'nonce-1', 'good');
  const signed = (sig?: string, nonce?: string) =>
    new Request({
      ...Request.forTest(),
      connectOpts: { ...Request.forTest().connectOpts, nkey: KEY, sig },
      clientInfo: { ...Request.forTest().clientInfo, nonce },
    });
  assert.equal(verifiedClientKey(signed('good', 'nonce-1')), KEY);
  assert.equal(refusal(() => verifiedClientKey(signed('forged', 'nonce-1'))).kind, 'bad-signature');
  assert.match(refusal(() => verifiedClientKey(signed('good'))).message, /no nonce/);
  assert.match(refusal(() => verifiedClientKey(signed(undefined, 'nonce-1'))).message, /without a signature/);
  assert.equal(verifiedClientKey(Request.forTest()), undefined);
});
