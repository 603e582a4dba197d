import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Request, denyReason, grantOf, isAllow } from 'nats-callout-sdk';

import { TokenTable } from '../src/policy.js';

const SETTINGS = JSON.stringify({
  tokens: { s3cr3t: { account: 'APP', publish: ['app.>'], subscribe: ['_INBOX.>'] } },
  users: { alice: { password: 'wonderland', account: 'APP', expires_in_secs: 60 } },
});

const policy = () => new TokenTable(SETTINGS);

test('a known token gets its grant', () => {
  const grant = grantOf(policy().authorize(Request.forTest().withToken('s3cr3t')));
  assert.equal(grant?.account, 'APP');
  assert.deepEqual(grant?.publish.allow, ['app.>']);
  assert.deepEqual(grant?.subscribe.allow, ['_INBOX.>']);
});

test('an unknown token is denied', () => {
  assert.equal(denyReason(policy().authorize(Request.forTest().withToken('guess'))), 'unknown token');
});

test('users need the right password', () => {
  const ok = grantOf(policy().authorize(Request.forTest().withUserAndPassword('alice', 'wonderland')));
  assert.equal(ok?.expiresInSecs, 60n);
  assert.equal(ok?.name, 'alice');
  const wrong = policy().authorize(Request.forTest().withUserAndPassword('alice', 'x'));
  assert.equal(denyReason(wrong), 'wrong password for user "alice"');
  const unknown = policy().authorize(Request.forTest().withUserAndPassword('bob', 'x'));
  assert.equal(denyReason(unknown), 'unknown user "bob"');
});

test('anonymous clients are denied', () => {
  assert.ok(!isAllow(policy().authorize(Request.forTest())));
});

test('bad settings are refused', () => {
  assert.throws(() => new TokenTable('{}'), /no `tokens`/);
  assert.throws(() => new TokenTable('{"tokens": 3}'), /^Error: invalid settings/);
  assert.throws(() => new TokenTable('{"tokenz": {}}'), /tokenz/);
});
