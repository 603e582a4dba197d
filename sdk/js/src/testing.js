// Test doubles of the capabilities, for `nats-callout-js test`: tell them
// what the host would answer. For tests only: in a component they change
// nothing (the host answers).
import { doubles } from './native/doubles.js';

export function resetCapabilities() {
  doubles.kv.clear();
  doubles.unavailable.clear();
  doubles.tokens.clear();
  doubles.refusedTokens.clear();
  doubles.hashes.clear();
  doubles.signatures.clear();
}

export function putKv(bucket, key, value) {
  if (!doubles.kv.has(bucket)) doubles.kv.set(bucket, new Map());
  doubles.kv.get(bucket).set(key, typeof value === 'string' ? new TextEncoder().encode(value) : value);
}

export function deleteKv(bucket, key) {
  if (!doubles.kv.has(bucket)) doubles.kv.set(bucket, new Map());
  doubles.kv.get(bucket).delete(key);
}

export function makeKvUnavailable(bucket) {
  if (!doubles.kv.has(bucket)) doubles.kv.set(bucket, new Map());
  doubles.unavailable.add(bucket);
}

export function acceptToken(token, issuer, claims) {
  doubles.tokens.set(token, { issuer, claims: typeof claims === 'string' ? claims : JSON.stringify(claims) });
}

export function refuseToken(token, kind, detail) {
  doubles.refusedTokens.set(token, { tag: kind, val: detail });
}

export function setPasswordHash(hash, password) {
  doubles.hashes.set(hash, password);
}

export function acceptSignature(key, message, signature) {
  doubles.signatures.add(`${key}\0${message}\0${signature}`);
}
