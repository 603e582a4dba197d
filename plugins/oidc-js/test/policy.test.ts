import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Request, denyReason, grantOf } from 'nats-callout-sdk';
import { acceptToken, refuseToken, resetCapabilities } from 'nats-callout-sdk/testing';

import { OidcBroker } from '../src/policy.js';

const SETTINGS = JSON.stringify({
  rules: [
    { claim: 'groups', value: 'ops', account: 'OPS', publish: ['>'], subscribe: ['>'] },
    { account: 'APP', name: '{{email}}', publish: ['user.{{sub}}.>'], subscribe: ['user.{{sub}}.>', '_INBOX.>'] },
  ],
});

test('claims choose the rule and fill the subjects', () => {
  resetCapabilities();
  acceptToken('alice', 'https://idp', { sub: 'alice', email: 'a.b@example.com', groups: ['dev'], exp: 4102444800 });
  acceptToken('olga', 'https://idp', { sub: 'olga', groups: ['ops'] });
  const policy = new OidcBroker(SETTINGS);
  const alice = grantOf(policy.authorize(Request.forTest().withToken('alice')));
  assert.equal(alice?.account, 'APP');
  assert.equal(alice?.name, 'a.b@example.com');
  assert.deepEqual(alice?.publish.allow, ['user.alice.>']);
  assert.ok((alice?.expiresInSecs ?? 0n) > 3600n);
  const olga = grantOf(policy.authorize(Request.forTest().withUserAndPassword('olga', 'olga')));
  assert.equal(olga?.account, 'OPS');
});

test('refused tokens and hostile claims deny', () => {
  resetCapabilities();
  refuseToken('old', 'expired');
  acceptToken('sneaky', 'https://idp', { sub: 'a.>', email: 'x' });
  const policy = new OidcBroker(SETTINGS);
  assert.equal(denyReason(policy.authorize(Request.forTest().withToken('old'))), 'token refused: expired');
  assert.equal(denyReason(policy.authorize(Request.forTest().withToken('forged'))), 'token refused: bad signature');
  assert.match(denyReason(policy.authorize(Request.forTest().withToken('sneaky'))) ?? '', /not a single subject token/);
  assert.throws(() => new OidcBroker('{"rules": []}'), /empty/);
  assert.throws(() => new OidcBroker('{"token_form": "token", "rules": [{"account": "A"}]}'), /unknown field `token_form`/);
  assert.throws(() => new OidcBroker('{"rules": [{"account": "A", "publish": "x.>"}]}'), /not a list of subjects/);
  assert.throws(() => new OidcBroker('{"rules": [{"account": "A", "value": "x"}]}'), /no claim/);
  // null is absent; inherited properties are not claims.
  const lenient = new OidcBroker('{"rules": [{"issuer": null, "claim": "constructor", "account": "A"}, {"account": "B"}]}');
  acceptToken('plain', 'https://idp', { sub: 'x' });
  assert.equal(grantOf(lenient.authorize(Request.forTest().withToken('plain')))?.account, 'B');
});
