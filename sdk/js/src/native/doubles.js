// What the capabilities answer natively (`nats-callout-js test`): set by the
// functions of `nats-callout-sdk/testing`, read by the native stand-ins of
// the host's interfaces in this folder.
export const doubles = {
  kv: new Map(), // bucket → Map(key → Uint8Array)
  unavailable: new Set(),
  tokens: new Map(), // token → {issuer, claims}
  refusedTokens: new Map(), // token → {tag, val}
  hashes: new Map(), // hash → password
  signatures: new Set(), // `${key}\0${message}\0${signature}`
};

/** Thrown as the host's errors are: a payload holding the WIT variant. */
export class NativeComponentError extends Error {
  constructor(tag, val) {
    super(tag);
    this.payload = val === undefined ? { tag } : { tag, val };
  }
}
