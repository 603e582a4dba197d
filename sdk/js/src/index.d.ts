// Types of the nats-callout JavaScript SDK. The records mirror
// wit/policy.wit, the reference for what every field means, with names in
// camelCase; `option<T>` is `T | undefined`, and 64-bit integers are BigInt.

export interface ServerId {
  name: string;
  host: string;
  id: string;
  version?: string;
  cluster?: string;
  tags: string[];
  xkey?: string;
}

export interface ClientInfo {
  host?: string;
  id?: bigint;
  user?: string;
  name?: string;
  tags: string[];
  nameTag?: string;
  kind?: string;
  clientType?: string;
  mqttId?: string;
  nonce?: string;
}

export interface ConnectOpts {
  jwt?: string;
  nkey?: string;
  sig?: string;
  authToken?: string;
  user?: string;
  pass?: string;
  name?: string;
  lang?: string;
  version?: string;
  protocol: number;
}

export interface ClientTls {
  version?: string;
  cipher?: string;
  certs: string[];
  verifiedChains: string[][];
}

/** The WIT `auth-request`: what the policy decides on. */
export interface AuthRequest {
  server: ServerId;
  userNkey: string;
  clientInfo: ClientInfo;
  connectOpts: ConnectOpts;
  clientTls?: ClientTls;
  issuer: string;
}

export interface Permission {
  allow: string[];
  deny: string[];
}

export interface ResponsePermission {
  maxMessages: number;
  ttlMs: bigint;
}

export interface TimeWindow {
  start: string;
  end: string;
}

export interface Limits {
  subs?: bigint;
  data?: bigint;
  payload?: bigint;
  sourceCidrs: string[];
  times: TimeWindow[];
  timesLocation?: string;
}

export type ConnectionType =
  | 'standard'
  | 'websocket'
  | 'leafnode'
  | 'leafnode-websocket'
  | 'mqtt'
  | 'mqtt-websocket'
  | 'in-process';

/** The WIT `grant` record, as built by {@link Grant}. */
export interface GrantRecord {
  account: string;
  name?: string;
  publish: Permission;
  subscribe: Permission;
  responses?: ResponsePermission;
  expiresInSecs?: bigint;
  tags: string[];
  limits: Limits;
  connectionTypes: ConnectionType[];
}

/** The policy's answer. */
export type Decision = { tag: 'allow'; val: GrantRecord } | { tag: 'deny'; val: string };

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** One connection attempt: the request's fields (merged in from `AuthRequest`), plus accessors. */
export interface Request extends AuthRequest {}
export class Request {
  constructor(raw: AuthRequest);
  /** The token the client sent (`nats://token@host`). */
  token(): string | undefined;
  /** The user name and password the client sent, if it sent both. */
  userAndPassword(): { user: string; password: string } | undefined;
  /** The user name the client sent. */
  user(): string | undefined;
  /** The client's nkey (in config mode the server has not checked its signature: compare `connectOpts.sig`). */
  nkey(): string | undefined;
  /** The user JWT the client sent. */
  jwt(): string | undefined;
  /** The client's IP address. */
  clientHost(): string | undefined;
  /** The client's connection name (from CONNECT, else from the server's view). */
  connectionName(): string | undefined;
  /** The leaf certificate of the client's first verified TLS chain (else its first certificate), as PEM. */
  clientCertificate(): string | undefined;
  /** A request as a plain client connecting to a local server would send it, with no credentials; for unit tests. */
  static forTest(): Request;
  /** The same request with a token, as the server sends it. */
  withToken(token: string): Request;
  /** The same request with a user name and password. */
  withUserAndPassword(user: string, password: string): Request;
  /** The same request coming from another address. */
  withClientHost(host: string): Request;
}

/** What a policy is: something that decides connection attempts. */
export interface Policy {
  authorize(request: Request): Decision;
}

/**
 * Exports a policy from the entry module (every call runs in a fresh copy of
 * the policy as `make` left it, unless the operator sets `calls_per_instance`
 * above 1; `Math.random` may be frozen in that copy: use `crypto.getRandomValues`):
 *
 * ```ts
 * export const { init, authorize } = definePolicy((settings) => new MyPolicy(JSON.parse(settings)));
 * ```
 *
 * `make` runs once, when the host loads the policy, with the policy's settings
 * (the `[policy.settings]` table of the host's configuration, as JSON text,
 * `{}` when there is none); throw to refuse them, and the host reports the
 * message. The host snapshots the initialized policy and runs every
 * `authorize` call in a fresh copy of it.
 */
export function definePolicy(make: (settings: string) => Policy): {
  init(settings: string): void;
  authorize(request: AuthRequest): Decision;
};

/** Builds the grant of an allow decision; every method chains. */
export class Grant {
  constructor(account: string);
  /** A grant into `account` (by name, such as `APP`), with the account's default permissions until you add some. */
  static to(account: string): Grant;
  /** The name shown for the user in monitoring. */
  named(name: string): this;
  /** Subjects the user may publish to. */
  publish(...subjects: (string | string[])[]): this;
  /** Subjects the user may not publish to. */
  denyPublish(...subjects: (string | string[])[]): this;
  /** Subjects the user may subscribe to. */
  subscribe(...subjects: (string | string[])[]): this;
  /** Subjects the user may not subscribe to. */
  denySubscribe(...subjects: (string | string[])[]): this;
  /** Lets the user reply to requests: up to `maxMessages` replies per request, within `ttlMs`. */
  allowResponses(maxMessages: number, ttlMs: number | bigint): this;
  /** How long the user stays connected, in seconds. */
  expiresIn(seconds: number | bigint): this;
  /** Tags recorded in the user JWT. */
  tags(...tags: (string | string[])[]): this;
  /**
   * Maximum number of subscriptions.
   * @deprecated nats-server does not apply per-user limits to auth callout users, so nats-callout denies a grant that sets one (other than -1): set max_subs in the account's limits instead.
   */
  maxSubscriptions(subs: number | bigint): this;
  /**
   * Maximum bytes the user may publish in total.
   * @deprecated nats-server does not apply per-user limits to auth callout users, so nats-callout denies a grant that sets one (other than -1): nats-server has no byte limit for them.
   */
  maxData(bytes: number | bigint): this;
  /**
   * Maximum size of one message.
   * @deprecated nats-server does not apply per-user limits to auth callout users, so nats-callout denies a grant that sets one (other than -1): set max_payload in the account's limits instead.
   */
  maxPayload(bytes: number | bigint): this;
  /** Networks the user may connect from, such as `10.0.0.0/8`. */
  fromNetworks(...cidrs: (string | string[])[]): this;
  /** A daily window (`HH:MM:SS` to `HH:MM:SS`) during which the user may be connected. Needs `inTimeZone`. */
  during(start: string, end: string): this;
  /** The IANA time zone of the windows given with `during`. */
  inTimeZone(location: string): this;
  /** The connection types the user may use. */
  connectionTypes(...types: (ConnectionType | ConnectionType[])[]): this;
  /** The grant record: the builder's own, handed over (do not keep building on it afterwards). */
  build(): GrantRecord;
  /** Admits the user with this grant. */
  allow(): Decision;
}

/** Refuses the user, with a reason for the operator's logs (never shown to the client). */
export function deny(reason: string): Decision;
/** Whether the decision admits the user. */
export function isAllow(decision: Decision): boolean;
/** The grant, when the decision admits the user. */
export function grantOf(decision: Decision): GrantRecord | undefined;
/** The reason, when the decision refuses the user. */
export function denyReason(decision: Decision): string | undefined;

/** Writes to the host's log, tagged with the policy's name (1 KiB a line, 64 lines a call). Never log secrets. */
export const log: {
  write(level: LogLevel, message: string): void;
  trace(message: string): void;
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
};

// Capabilities: checks the host does natively when the operator grants them
// in the policy's `[policy.capabilities]` (see docs/capabilities.md). A
// policy imports only those it calls, and the host refuses one importing a
// capability it was not granted. They answer in `authorize`, not in the
// settings factory. Natively (`nats-callout-js test`) they answer from the
// test doubles of `nats-callout-sdk/testing`.

/** A capability refused: `kind` is the WIT error case, `detail` its text. */
export class CapabilityError extends Error {
  readonly capability: 'kv' | 'oidc' | 'password' | 'nkey';
  readonly kind: string;
  readonly detail?: string;
}

/** The value of `key` in `bucket` (undefined when absent); throws `unavailable` when the host's copy may be stale, `not-granted` for another bucket. */
export function kvGet(bucket: string, key: string): Uint8Array | undefined;
/** The same, as UTF-8 text. */
export function kvGetText(bucket: string, key: string): string | undefined;

/** Whether `password` matches `hash`; throws `malformed-hash` or `too-cheap`. */
export function verifyPassword(password: string, hash: string): boolean;

export type NkeyKind = 'operator' | 'account' | 'user' | 'server' | 'cluster' | 'curve';
/** Checks `signature` (base64) is `key`'s signature of `message`; throws `invalid-key`, `malformed-signature` or `bad-signature`. */
export function verifyNkey(key: string, message: string | Uint8Array, signature: string): void;
/** What a public nkey names. */
export function nkeyKind(key: string): NkeyKind;
/** The client's nkey once its signature of the server's nonce verifies; undefined when it sent none; throws when nothing proves it. */
export function verifiedClientKey(request: Request): string | undefined;

/** A token that verified: its issuer and its claims as JSON text. */
export interface VerifiedToken {
  issuer: string;
  claims: string;
}
/** Verifies a token against the granted issuer its `iss` names; throws `expired`, `wrong-audience`, `bad-signature`... */
export function verifyToken(token: string): VerifiedToken;
