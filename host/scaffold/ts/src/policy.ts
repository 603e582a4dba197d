// {{name}}: a nats-callout policy. It admits the users listed in its
// settings, by user name and password, with their account and permissions,
// and denies everyone else.
//
// Settings (the [policy.settings] table of callout.toml):
//
//   [policy.settings.users.alice]
//   password = "wonderland"
//   account = "APP"
//   publish = ["app.alice.>"]
//   subscribe = ["app.>", "_INBOX.>"]
//
// Store password hashes rather than passwords in real settings: the
// password capability verifies them (verifyPassword).
import { Decision, Grant, Request, definePolicy, deny } from 'nats-callout-sdk';

interface User {
  password: string;
  account: string;
  publish: string[];
  subscribe: string[];
}

const USER_KEYS = ['password', 'account', 'publish', 'subscribe'];

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function subjects(name: string, key: string, value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((s) => typeof s !== 'string')) {
    throw new Error(`invalid settings: \`${key}\` of user "${name}" is not a list of subjects`);
  }
  return value as string[];
}

/** Compares secrets in time that does not depend on where they first differ. */
function sameSecret(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let differ = 0;
  for (let i = 0; i < a.length; i++) differ |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return differ === 0;
}

export class Users {
  private users = new Map<string, User>();

  /** Runs once, when the host loads the policy; throwing refuses it. */
  constructor(settings: string) {
    const parsed: unknown = JSON.parse(settings);
    if (!isTable(parsed) || !isTable(parsed.users)) {
      throw new Error('invalid settings: `users` is not a table');
    }
    const unknownKey = Object.keys(parsed).find((key) => key !== 'users');
    if (unknownKey !== undefined) throw new Error(`invalid settings: unknown field \`${unknownKey}\``);
    for (const [name, entry] of Object.entries(parsed.users)) {
      if (!isTable(entry)) throw new Error(`invalid settings: user "${name}" is not a table`);
      const unknown = Object.keys(entry).find((key) => !USER_KEYS.includes(key));
      if (unknown !== undefined) throw new Error(`invalid settings: unknown field \`${unknown}\` in user "${name}"`);
      if (typeof entry.password !== 'string' || typeof entry.account !== 'string') {
        throw new Error(`invalid settings: user "${name}" needs \`password\` and \`account\``);
      }
      if (entry.password === '') throw new Error(`invalid settings: user "${name}" has an empty password`);
      this.users.set(name, {
        password: entry.password,
        account: entry.account,
        publish: subjects(name, 'publish', entry.publish),
        subscribe: subjects(name, 'subscribe', entry.subscribe),
      });
    }
    if (this.users.size === 0) throw new Error('invalid settings: no users, so every client would be denied');
  }

  /** Runs for every connecting client, in a fresh sandbox. */
  authorize(request: Request): Decision {
    const credentials = request.userAndPassword();
    if (credentials === undefined) return deny('no user name and password');
    const user = this.users.get(credentials.user);
    if (user === undefined || !sameSecret(user.password, credentials.password)) {
      return deny('unknown user or wrong password');
    }
    return Grant.to(user.account).named(credentials.user).publish(user.publish).subscribe(user.subscribe).allow();
  }
}

export const { init, authorize } = definePolicy((settings) => new Users(settings));
