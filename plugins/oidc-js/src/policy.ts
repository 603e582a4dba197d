// Example policy: the OIDC identity broker of plugins/oidc (Rust), in
// TypeScript, with the SDK's `verifyToken` (capability `oidc`). It passes the
// same conformance kit (tests/conformance/oidc).
//
// Settings: `token_from` ("token", "password" or "either", the default) and
// `rules`, the first of which whose `issuer` and `claim`/`value` match the
// verified token places the user, with `{{claim}}` templates in `publish`,
// `subscribe` and `name`. See plugins/oidc/src/lib.rs for the whole story.
import {
  CapabilityError,
  Decision,
  Grant,
  Policy,
  Request,
  definePolicy,
  deny,
  verifyToken,
} from 'nats-callout-sdk';

interface Rule {
  issuer?: string;
  claim?: string;
  value?: string;
  account: string;
  name?: string;
  publish: string[];
  subscribe: string[];
  max_lifetime_secs?: number;
}

type TokenFrom = 'token' | 'password' | 'either';

const RULE_KEYS = ['issuer', 'claim', 'value', 'account', 'name', 'publish', 'subscribe', 'max_lifetime_secs'];

/** Checks the settings as strictly as the Rust example's serde types: unknown keys and wrong types refuse them, null is absent. */
function parseSettings(text: string): { tokenFrom: TokenFrom; rules: Rule[] } {
  let settings: unknown;
  try {
    settings = JSON.parse(text);
  } catch (error) {
    throw new Error(`invalid settings: ${(error as Error).message}`);
  }
  if (!isObject(settings)) throw new Error('invalid settings: not a table');
  const unknown = Object.keys(settings).find((key) => key !== 'token_from' && key !== 'rules');
  if (unknown !== undefined) throw new Error(`invalid settings: unknown field \`${unknown}\``);
  const tokenFrom = settings.token_from ?? 'either';
  if (tokenFrom !== 'token' && tokenFrom !== 'password' && tokenFrom !== 'either') {
    throw new Error('invalid settings: token_from is not "token", "password" or "either"');
  }
  if (!Array.isArray(settings.rules)) throw new Error('invalid settings: missing field `rules`');
  if (settings.rules.length === 0) throw new Error('settings.rules is empty: no token would ever be admitted');
  const rules = settings.rules.map((value: unknown, index: number) => parseRule(value, `rules[${index}]`));
  return { tokenFrom, rules };
}

function parseRule(value: unknown, where: string): Rule {
  if (!isObject(value)) throw new Error(`invalid settings: ${where} is not a table`);
  const unknown = Object.keys(value).find((key) => !RULE_KEYS.includes(key));
  if (unknown !== undefined) throw new Error(`invalid settings: unknown field \`${unknown}\` in ${where}`);
  const text = (key: string): string | undefined => {
    const field = value[key] ?? undefined;
    if (field !== undefined && typeof field !== 'string') throw new Error(`invalid settings: ${where}.${key} is not a string`);
    return field;
  };
  const subjects = (key: string): string[] => {
    const field = value[key] ?? [];
    if (!Array.isArray(field) || field.some((s) => typeof s !== 'string')) {
      throw new Error(`invalid settings: ${where}.${key} is not a list of subjects`);
    }
    return field;
  };
  const account = text('account');
  if (account === undefined) throw new Error(`invalid settings: ${where} has no \`account\``);
  const maxLifetime = value.max_lifetime_secs ?? undefined;
  if (maxLifetime !== undefined && !(Number.isSafeInteger(maxLifetime) && (maxLifetime as number) >= 0)) {
    throw new Error(`invalid settings: ${where}.max_lifetime_secs is not a number of seconds`);
  }
  const rule: Rule = {
    issuer: text('issuer'),
    claim: text('claim'),
    value: text('value'),
    account,
    name: text('name'),
    publish: subjects('publish'),
    subscribe: subjects('subscribe'),
    max_lifetime_secs: maxLifetime as number | undefined,
  };
  if (rule.value !== undefined && rule.claim === undefined) throw new Error(`${where} has a value but no claim`);
  return rule;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The claim at a dotted `path`: own fields of objects only (no array index, no inherited property). */
function claim(claims: unknown, path: string): unknown {
  let value: unknown = claims;
  for (const key of path.split('.')) {
    if (!isObject(value) || !Object.hasOwn(value, key)) return undefined;
    value = value[key];
  }
  return value;
}

/** A claim as text, if it is a string or a number (an integer JavaScript holds exactly: a larger one may have been rounded into another user's). */
function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && (!Number.isInteger(value) || Number.isSafeInteger(value))) return String(value);
  return undefined;
}

// Control characters spelled out: the component's engine has no Unicode
// property classes.
const SUBJECT_TOKEN = (value: string) => value !== '' && !/[.*>\s\u0000-\u001f\u007f-\u009f]/.test(value);
const NAME = (value: string) => !/[\u0000-\u001f\u007f-\u009f]/.test(value);

/** `pattern` with each `{{claim}}` replaced by the claim's value, when `acceptable`. */
function substitute(pattern: string, claims: unknown, what: string, acceptable: (value: string) => boolean): string {
  let filled = '';
  let rest = pattern;
  for (let start = rest.indexOf('{{'); start >= 0; start = rest.indexOf('{{')) {
    const length = rest.slice(start).indexOf('}}');
    if (length < 0) throw new Error(`template ${JSON.stringify(pattern)} has an unclosed {{`);
    const name = rest.slice(start + 2, start + length).trim();
    const value = text(claim(claims, name));
    if (value === undefined) {
      throw new Error(`the token has no text claim ${JSON.stringify(name)} for ${JSON.stringify(pattern)}`);
    }
    if (!acceptable(value)) {
      throw new Error(`the claim ${JSON.stringify(name)} is not ${what}; refused rather than substituted`);
    }
    filled += rest.slice(0, start) + value;
    rest = rest.slice(start + length + 2);
  }
  return filled + rest;
}

export class OidcBroker implements Policy {
  private readonly tokenFrom: TokenFrom;
  private readonly rules: Rule[];

  constructor(settings: string) {
    ({ tokenFrom: this.tokenFrom, rules: this.rules } = parseSettings(settings));
  }

  authorize(request: Request): Decision {
    const token = this.token(request);
    if (token === undefined) {
      return deny("no token: connect with the identity provider's token as the NATS token or password");
    }
    let issuer: string;
    let claims: Record<string, unknown>;
    try {
      const verified = verifyToken(token);
      issuer = verified.issuer;
      claims = JSON.parse(verified.claims);
    } catch (error) {
      if (error instanceof CapabilityError) return deny(`token refused: ${error.message}`);
      return deny("the token's claims are not JSON");
    }
    const rule = this.rules.find((rule) => matches(rule, issuer, claims));
    if (rule === undefined) return deny("no rule matches the token's claims");
    try {
      return grant(rule, claims);
    } catch (error) {
      return deny((error as Error).message);
    }
  }

  private token(request: Request): string | undefined {
    const password = request.connectOpts.pass;
    if (this.tokenFrom === 'token') return request.token();
    if (this.tokenFrom === 'password') return password;
    return request.token() ?? password;
  }
}

function matches(rule: Rule, issuer: string, claims: unknown): boolean {
  if (rule.issuer !== undefined && rule.issuer !== issuer) return false;
  if (rule.claim === undefined) return true;
  const found = claim(claims, rule.claim);
  if (found === undefined) return false;
  if (rule.value === undefined) return true;
  if (Array.isArray(found)) return found.some((item) => text(item) === rule.value);
  return text(found) === rule.value;
}

function grant(rule: Rule, claims: Record<string, unknown>): Decision {
  let grant = Grant.to(rule.account)
    .publish(rule.publish.map((p) => substitute(p, claims, 'a single subject token', SUBJECT_TOKEN)))
    .subscribe(rule.subscribe.map((p) => substitute(p, claims, 'a single subject token', SUBJECT_TOKEN)));
  if (rule.name !== undefined) {
    grant = grant.named(substitute(rule.name, claims, 'a name (it has control characters)', NAME));
  }
  // The connection ends when the token does.
  if (typeof claims.exp === 'number') {
    const expires = Math.min(Math.floor(claims.exp), Number.MAX_SAFE_INTEGER);
    let left = Math.max(1, expires - Math.floor(Date.now() / 1000));
    if (rule.max_lifetime_secs !== undefined) left = Math.min(left, rule.max_lifetime_secs);
    grant = grant.expiresIn(left);
  }
  return grant.allow();
}

export const { init, authorize } = definePolicy((settings) => new OidcBroker(settings));
