import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Request, denyReason, grantOf } from 'nats-callout-sdk';

import { Users } from '../src/policy.js';

const SETTINGS = JSON.stringify({
  users: { alice: { password: 'wonderland', account: 'APP', publish: ['app.alice.>'] } },
});

test('a user with the right password gets a grant', () => {
  const grant = grantOf(new Users(SETTINGS).authorize(Request.forTest().withUserAndPassword('alice', 'wonderland')));
  assert.equal(grant?.account, 'APP');
  assert.deepEqual(grant?.publish.allow, ['app.alice.>']);
});

test('a wrong password is denied', () => {
  const decision = new Users(SETTINGS).authorize(Request.forTest().withUserAndPassword('alice', 'guess'));
  assert.equal(denyReason(decision), 'unknown user or wrong password');
});

test('settings without users are refused', () => {
  assert.throws(() => new Users('{"users": {}}'), /no users/);
});
