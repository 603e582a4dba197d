import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Grant, Request, definePolicy, deny, denyReason, grantOf, isAllow } from '../src/index.js';

test('the builder fills every field', () => {
  const decision = Grant.to('APP')
    .named('alice')
    .publish('app.>')
    .denyPublish(['app.secret'])
    .subscribe('_INBOX.>')
    .denySubscribe('app.secret')
    .allowResponses(1, 30_000)
    .expiresIn(600)
    .tags('team:a')
    .maxSubscriptions(10)
    .maxData(1 << 20)
    .maxPayload(1024)
    .fromNetworks('10.0.0.0/8')
    .during('08:00:00', '18:00:00')
    .inTimeZone('Europe/Paris')
    .connectionTypes('standard', 'websocket')
    .allow();
  assert.ok(isAllow(decision));
  assert.deepEqual(grantOf(decision), {
    account: 'APP',
    name: 'alice',
    publish: { allow: ['app.>'], deny: ['app.secret'] },
    subscribe: { allow: ['_INBOX.>'], deny: ['app.secret'] },
    responses: { maxMessages: 1, ttlMs: 30000n },
    expiresInSecs: 600n,
    tags: ['team:a'],
    limits: {
      subs: 10n,
      data: 1048576n,
      payload: 1024n,
      sourceCidrs: ['10.0.0.0/8'],
      times: [{ start: '08:00:00', end: '18:00:00' }],
      timesLocation: 'Europe/Paris',
    },
    connectionTypes: ['standard', 'websocket'],
  });
  assert.equal(denyReason(decision), undefined);
  assert.equal(denyReason(deny('no')), 'no');
});

test('accessors read the credentials, and with* copies', () => {
  const base = Request.forTest();
  assert.equal(base.token(), undefined);
  assert.equal(base.userAndPassword(), undefined);
  const token = base.withToken('t');
  assert.equal(token.token(), 't');
  assert.equal(token.clientInfo.user, '[REDACTED]');
  assert.equal(base.token(), undefined, 'the original is unchanged');
  const user = base.withUserAndPassword('u', 'p').withClientHost('10.0.0.1');
  assert.deepEqual(user.userAndPassword(), { user: 'u', password: 'p' });
  assert.equal(user.clientHost(), '10.0.0.1');
  assert.equal(user.clientCertificate(), undefined);
});

test('definePolicy turns a refusal into init\'s error and guards authorize', () => {
  const refusing = definePolicy(() => {
    throw new Error('bad settings');
  });
  assert.throws(() => refusing.init('{}'), (thrown) => thrown === 'bad settings');
  assert.equal(denyReason(refusing.authorize(Request.forTest())), 'policy was not initialized');
  const ok = definePolicy((settings) => ({ authorize: () => deny(settings) }));
  ok.init('{"a":1}');
  assert.equal(denyReason(ok.authorize(Request.forTest())), '{"a":1}');
});

test('64-bit fields take numbers, fractions truncated, and refuse what is not a number', () => {
  assert.equal(grantOf(Grant.to('APP').expiresIn(1.9).allow())?.expiresInSecs, 1n);
  assert.equal(grantOf(Grant.to('APP').maxData(5n).allow())?.limits.data, 5n);
  assert.throws(() => Grant.to('APP').expiresIn(Number.NaN), /finite number/);
});
