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

/** Checks the settings the way the Rust example's serde types do. */
function parseSettings(text: string): { tokenFrom: TokenFrom; rules: Rule[] } {
  let settings: { token_from?: unknown; rules?: unknown };
  try {
    settings = JSON.parse(text);
  } catch (error) {
    throw new Error(`invalid settings: ${(error as Error).message}`);
  }
  const tokenFrom = settings.token_from ?? 'either';
  if (tokenFrom !== 'token' && tokenFrom !== 'password' && tokenFrom !== 'either') {
    throw new Error('invalid settings: token_from is not "token", "password" or "either"');
  }
  if (!Array.isArray(settings.rules)) throw new Error('invalid settings: missing field `rules`');
  if (settings.rules.length === 0) throw new Error('settings.rules is empty: no token would ever be admitted');
  const rules = settings.rules.map((value: Record<string, unknown>, index: number) => {
    const unknown = Object.keys(value).find((key) => !RULE_KEYS.includes(key));
    if (unknown !== undefined) throw new Error(`invalid settings: unknown field \`${unknown}\` in rules[${index}]`);
    if (typeof value.account !== 'string') throw new Error(`invalid settings: rules[${index}] has no \`account\``);
    if (value.value !== undefined && value.claim === undefined) throw new Error(`rules[${index}] has a value but no claim`);
    return { publish: [], subscribe: [], ...value } as unknown as Rule;
  });
  return { tokenFrom, rules };
}

/** The claim at a dotted `path`. */
function claim(claims: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((value, key) => (value as Record<string, unknown> | undefined)?.[key], claims);
}

/** A claim as text, if it is a string or a number. */
function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
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
      throw error;
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
    let left = Math.max(1, Math.floor(claims.exp) - Math.floor(Date.now() / 1000));
    if (rule.max_lifetime_secs !== undefined) left = Math.min(left, rule.max_lifetime_secs);
    grant = grant.expiresIn(left);
  }
  return grant.allow();
}

export const { init, authorize } = definePolicy((settings) => new OidcBroker(settings));
