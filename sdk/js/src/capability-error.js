// Errors of the capabilities (kv, oidc, password, nkey): what the host
// answered, as a CapabilityError with the WIT variant's tag as `kind`.

// Each case in words, as every SDK words it (for deny reasons).
const WORDS = {
  'too-cheap': 'hash too cheap',
  'invalid-key': 'invalid nkey',
  'keys-unavailable': 'issuer keys unavailable',
};

function message(kind, detail) {
  if (kind === 'not-granted') return `bucket "${detail}" is not granted`;
  const words = WORDS[kind] ?? kind.replaceAll('-', ' ');
  return detail ? `${words}: ${detail}` : words;
}

/** A capability refused: `kind` is the WIT error case (`unavailable`, `expired`...). */
export class CapabilityError extends Error {
  constructor(capability, kind, detail) {
    super(message(kind, detail));
    this.name = 'CapabilityError';
    this.capability = capability;
    this.kind = kind;
    this.detail = detail;
  }
}

// Calls `call`, turning the host's error (a ComponentError whose payload is
// the WIT variant `{tag, val}`) into a CapabilityError.
export function calling(capability, call) {
  try {
    return call();
  } catch (error) {
    const payload = error?.payload;
    if (payload && typeof payload.tag === 'string') {
      throw new CapabilityError(capability, payload.tag, payload.val);
    }
    throw error;
  }
}
