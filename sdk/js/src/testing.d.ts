// Test doubles of the capabilities, for `nats-callout-js test`.

/** Forgets everything told so far. */
export function resetCapabilities(): void;
/** Puts `key` = `value` in `bucket` (granted from then on). */
export function putKv(bucket: string, key: string, value: string | Uint8Array): void;
/** Deletes `key` from `bucket`. */
export function deleteKv(bucket: string, key: string): void;
/** Makes reads of `bucket` fail as when the host's copy may be stale. */
export function makeKvUnavailable(bucket: string): void;
/** Makes `token` verify, from `issuer`, with `claims`. */
export function acceptToken(token: string, issuer: string, claims: string | object): void;
/** Makes `token` fail with `kind` (others fail as `bad-signature`). */
export function refuseToken(token: string, kind: string, detail?: string): void;
/** Makes `hash` the hash of `password` (other hashes are malformed). */
export function setPasswordHash(hash: string, password: string): void;
/** Makes `signature` a valid signature of `message` by `key`. */
export function acceptSignature(key: string, message: string, signature: string): void;
