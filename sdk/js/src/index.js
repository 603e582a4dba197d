// The JavaScript SDK for nats-callout policies. Types and documentation are in
// index.d.ts; the field names are those of wit/policy.wit in camelCase.
import { log as hostLog } from './host.js';

// The capabilities: each imports its WIT interface only when used (the
// package has no side effects, so a bundle drops the unused ones).
export { CapabilityError } from './capability-error.js';
export { kvGet, kvGetText } from './kv.js';
export { nkeyKind, verifiedClientKey, verifyNkey } from './nkey.js';
export { verifyToken } from './oidc.js';
export { verifyPassword } from './password.js';

/**
 * Exports a policy: `export const { init, authorize } = definePolicy(make)`.
 * `make(settings)` receives the policy's settings as JSON text and returns an
 * object with an `authorize(request)` method, or throws to refuse them.
 */
export function definePolicy(make) {
  let policy;
  return {
    init(settings) {
      try {
        policy = make(settings);
      } catch (error) {
        // A thrown string becomes the `err` of init's result.
        throw error instanceof Error ? error.message : String(error);
      }
      if (!policy || typeof policy.authorize !== 'function') {
        throw 'the policy factory returned no object with an authorize method';
      }
    },
    authorize(raw) {
      if (!policy) return deny('policy was not initialized');
      return policy.authorize(new Request(raw));
    },
  };
}

/** One connection attempt: the fields of the WIT `auth-request`, plus accessors. */
export class Request {
  constructor(raw) {
    Object.assign(this, raw);
  }

  token() {
    return this.connectOpts.authToken;
  }

  userAndPassword() {
    const { user, pass } = this.connectOpts;
    return user !== undefined && pass !== undefined ? { user, password: pass } : undefined;
  }

  user() {
    return this.connectOpts.user;
  }

  nkey() {
    return this.connectOpts.nkey;
  }

  jwt() {
    return this.connectOpts.jwt;
  }

  clientHost() {
    return this.clientInfo.host;
  }

  connectionName() {
    return this.connectOpts.name ?? this.clientInfo.name;
  }

  clientCertificate() {
    const tls = this.clientTls;
    if (!tls) return undefined;
    return tls.verifiedChains[0]?.[0] ?? tls.certs[0];
  }

  static forTest() {
    return new Request({
      server: {
        name: 'test-server',
        host: '127.0.0.1',
        id: 'NTESTSERVER',
        version: '2.11.0',
        cluster: undefined,
        tags: [],
        xkey: undefined,
      },
      userNkey: 'UTESTUSER',
      clientInfo: {
        host: '127.0.0.1',
        id: 1n,
        user: undefined,
        name: undefined,
        tags: [],
        nameTag: undefined,
        kind: 'Client',
        clientType: 'nats',
        mqttId: undefined,
        nonce: undefined,
      },
      connectOpts: {
        jwt: undefined,
        nkey: undefined,
        sig: undefined,
        authToken: undefined,
        user: undefined,
        pass: undefined,
        name: undefined,
        lang: 'javascript',
        version: '0.0.0',
        protocol: 1,
      },
      clientTls: undefined,
      issuer: 'ATESTISSUER',
    });
  }

  #with(change) {
    const copy = structuredClone({ ...this });
    change(copy);
    return new Request(copy);
  }

  withToken(token) {
    return this.#with((r) => {
      r.connectOpts.authToken = token;
      r.clientInfo.user = '[REDACTED]';
    });
  }

  withUserAndPassword(user, password) {
    return this.#with((r) => {
      r.connectOpts.user = user;
      r.connectOpts.pass = password;
      r.clientInfo.user = user;
    });
  }

  withClientHost(host) {
    return this.#with((r) => {
      r.clientInfo.host = host;
    });
  }
}

// u64 and s64 fields travel as BigInt; fractions are truncated.
function big(value) {
  if (typeof value === 'bigint') return value;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new TypeError(`expected a finite number, got ${String(value)}`);
  }
  return BigInt(Math.trunc(value));
}

/** Builds the grant of an allow decision; every method chains. */
export class Grant {
  #grant;

  constructor(account) {
    this.#grant = {
      account,
      name: undefined,
      publish: { allow: [], deny: [] },
      subscribe: { allow: [], deny: [] },
      responses: undefined,
      expiresInSecs: undefined,
      tags: [],
      limits: {
        subs: undefined,
        data: undefined,
        payload: undefined,
        sourceCidrs: [],
        times: [],
        timesLocation: undefined,
      },
      connectionTypes: [],
    };
  }

  static to(account) {
    return new Grant(account);
  }

  #set(change) {
    change(this.#grant);
    return this;
  }

  named(name) {
    return this.#set((g) => (g.name = name));
  }

  publish(...subjects) {
    return this.#set((g) => g.publish.allow.push(...subjects.flat()));
  }

  denyPublish(...subjects) {
    return this.#set((g) => g.publish.deny.push(...subjects.flat()));
  }

  subscribe(...subjects) {
    return this.#set((g) => g.subscribe.allow.push(...subjects.flat()));
  }

  denySubscribe(...subjects) {
    return this.#set((g) => g.subscribe.deny.push(...subjects.flat()));
  }

  allowResponses(maxMessages, ttlMs) {
    return this.#set((g) => (g.responses = { maxMessages, ttlMs: big(ttlMs) }));
  }

  expiresIn(seconds) {
    return this.#set((g) => (g.expiresInSecs = big(seconds)));
  }

  tags(...tags) {
    return this.#set((g) => g.tags.push(...tags.flat()));
  }

  maxSubscriptions(subs) {
    return this.#set((g) => (g.limits.subs = big(subs)));
  }

  maxData(bytes) {
    return this.#set((g) => (g.limits.data = big(bytes)));
  }

  maxPayload(bytes) {
    return this.#set((g) => (g.limits.payload = big(bytes)));
  }

  fromNetworks(...cidrs) {
    return this.#set((g) => g.limits.sourceCidrs.push(...cidrs.flat()));
  }

  during(start, end) {
    return this.#set((g) => g.limits.times.push({ start, end }));
  }

  inTimeZone(location) {
    return this.#set((g) => (g.limits.timesLocation = location));
  }

  connectionTypes(...types) {
    return this.#set((g) => g.connectionTypes.push(...types.flat()));
  }

  // The builder's own record, handed over: copying it costs more than the
  // rest of a typical call in an interpreter.
  build() {
    return this.#grant;
  }

  allow() {
    return { tag: 'allow', val: this.build() };
  }
}

export function deny(reason) {
  return { tag: 'deny', val: String(reason) };
}

export function isAllow(decision) {
  return decision.tag === 'allow';
}

export function grantOf(decision) {
  return decision.tag === 'allow' ? decision.val : undefined;
}

export function denyReason(decision) {
  return decision.tag === 'deny' ? decision.val : undefined;
}

export const log = {
  write: (level, message) => hostLog(level, String(message)),
  trace: (message) => hostLog('trace', String(message)),
  debug: (message) => hostLog('debug', String(message)),
  info: (message) => hostLog('info', String(message)),
  warn: (message) => hostLog('warn', String(message)),
  error: (message) => hostLog('error', String(message)),
};
