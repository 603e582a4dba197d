// Example policy: admits clients listed in a table in its settings, by token
// or by user name and password, and denies everyone else with a reason. It
// behaves exactly like the Rust example in plugins/token-table.
//
// Settings (the `[policy.settings]` table of the host's configuration):
//
//   [policy.settings.tokens.s3cr3t]
//   account = "APP"
//   publish = ["app.>"]
//   subscribe = ["app.>", "_INBOX.>"]
//
//   [policy.settings.users.alice]
//   password = "wonderland"
//   account = "APP"
//   publish = ["app.alice.>"]
//   expires_in_secs = 600
import { Decision, Grant, Policy, Request, definePolicy, deny } from 'nats-callout-sdk';

/** What a matching client gets. */
interface Entitlement {
  account: string;
  name?: string;
  publish: string[];
  subscribe: string[];
  expires_in_secs?: number;
}

interface UserEntry extends Entitlement {
  password: string;
}

const ENTITLEMENT_KEYS = ['account', 'name', 'publish', 'subscribe', 'expires_in_secs'];

/** Checks one table entry the way the Rust example's serde types do. */
function entitlement(where: string, value: unknown, extraKeys: string[] = []): Entitlement {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`invalid settings: ${where} is not a table`);
  }
  const entry = value as Record<string, unknown>;
  const unknown = Object.keys(entry).find((key) => ![...ENTITLEMENT_KEYS, ...extraKeys].includes(key));
  if (unknown !== undefined) throw new Error(`invalid settings: unknown field \`${unknown}\` in ${where}`);
  if (typeof entry.account !== 'string') throw new Error(`invalid settings: ${where} has no \`account\``);
  for (const list of ['publish', 'subscribe']) {
    const subjects = entry[list] ?? [];
    if (!Array.isArray(subjects) || subjects.some((s) => typeof s !== 'string')) {
      throw new Error(`invalid settings: \`${list}\` of ${where} is not a list of subjects`);
    }
  }
  const expires = entry.expires_in_secs;
  if (expires !== undefined && !(Number.isSafeInteger(expires) && (expires as number) >= 0)) {
    throw new Error(`invalid settings: \`expires_in_secs\` of ${where} is not a number of seconds`);
  }
  return {
    account: entry.account,
    name: typeof entry.name === 'string' ? entry.name : undefined,
    publish: (entry.publish as string[]) ?? [],
    subscribe: (entry.subscribe as string[]) ?? [],
    expires_in_secs: expires as number | undefined,
  };
}

function table(settings: Record<string, unknown>, key: string): Record<string, unknown> {
  const value = settings[key] ?? {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`invalid settings: \`${key}\` is not a table`);
  }
  return value as Record<string, unknown>;
}

function grant(entry: Entitlement, defaultName: string): Decision {
  const built = Grant.to(entry.account)
    .named(entry.name ?? defaultName)
    .publish(entry.publish)
    .subscribe(entry.subscribe);
  if (entry.expires_in_secs !== undefined) built.expiresIn(entry.expires_in_secs);
  return built.allow();
}

/** Compares secrets in time that does not depend on where they first differ. */
function sameSecret(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

export class TokenTable implements Policy {
  private tokens = new Map<string, Entitlement>();
  private users = new Map<string, UserEntry>();

  constructor(settingsJson: string) {
    let settings: unknown;
    try {
      settings = JSON.parse(settingsJson);
    } catch (error) {
      throw new Error(`invalid settings: ${(error as Error).message}`);
    }
    if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) {
      throw new Error('invalid settings: not a table');
    }
    const root = settings as Record<string, unknown>;
    const unknown = Object.keys(root).find((key) => key !== 'tokens' && key !== 'users');
    if (unknown !== undefined) throw new Error(`invalid settings: unknown field \`${unknown}\``);
    for (const [token, value] of Object.entries(table(root, 'tokens'))) {
      this.tokens.set(token, entitlement(`token entry`, value));
    }
    for (const [user, value] of Object.entries(table(root, 'users'))) {
      const entry = entitlement(`user ${JSON.stringify(user)}`, value, ['password']);
      const password = (value as Record<string, unknown>).password;
      if (typeof password !== 'string') {
        throw new Error(`invalid settings: user ${JSON.stringify(user)} has no \`password\``);
      }
      this.users.set(user, { ...entry, password });
    }
    if (this.tokens.size === 0 && this.users.size === 0) {
      throw new Error('invalid settings: no `tokens` and no `users`, so every client would be denied');
    }
  }

  authorize(request: Request): Decision {
    const token = request.token();
    if (token !== undefined) {
      for (const [known, entry] of this.tokens) {
        if (sameSecret(known, token)) return grant(entry, 'token');
      }
      return deny('unknown token');
    }
    const credentials = request.userAndPassword();
    if (credentials !== undefined) {
      const { user, password } = credentials;
      const entry = this.users.get(user);
      if (entry === undefined) return deny(`unknown user ${JSON.stringify(user)}`);
      if (!sameSecret(entry.password, password)) return deny(`wrong password for user ${JSON.stringify(user)}`);
      return grant(entry, user);
    }
    return deny('no token and no user name and password');
  }
}

export const { init, authorize } = definePolicy((settings) => new TokenTable(settings));
