package callout

// Capabilities: checks the host does natively, when the operator grants
// them in the policy's [policy.capabilities] (a policy that calls one it was
// not granted does not load; only the capabilities a policy calls are
// imported). They answer in Authorize, not in the init function given to
// Export. In native builds (`go test`) they answer from the test doubles
// set with TestPutKV, TestAcceptToken, TestSetPasswordHash and
// TestAcceptSignature. See wit/policy.wit for every detail.

import "fmt"

// KVErrorKind says why a KV read could not answer.
type KVErrorKind int

const (
	// KVNotGranted: the bucket is not one the operator granted.
	KVNotGranted KVErrorKind = iota
	// KVUnavailable: the host's copy of the bucket may be stale (the bucket
	// does not exist, or NATS is down). Deny rather than decide from old data.
	KVUnavailable
)

// KVError is why KVGet failed.
type KVError struct {
	Kind   KVErrorKind
	Detail string
}

func (e *KVError) Error() string {
	if e.Kind == KVNotGranted {
		return fmt.Sprintf("bucket %q is not granted", e.Detail)
	}
	return "unavailable: " + e.Detail
}

// KVGet reads key in bucket from the host's mirror of the bucket (granted
// by `[policy.capabilities.kv] buckets = [...]`). found is false when the
// key is absent or deleted; err is a *KVError.
func KVGet(bucket, key string) (value []byte, found bool, err error) {
	return kvGet(bucket, key)
}

// PasswordErrorKind says why a hash could not be checked.
type PasswordErrorKind int

const (
	// PasswordMalformedHash: not a hash the host reads, or out of range.
	PasswordMalformedHash PasswordErrorKind = iota
	// PasswordTooCheap: the hash's cost is below the operator's floor.
	PasswordTooCheap
)

// PasswordError is why VerifyPassword failed.
type PasswordError struct {
	Kind   PasswordErrorKind
	Detail string
}

func (e *PasswordError) Error() string {
	if e.Kind == PasswordTooCheap {
		return "hash too cheap: " + e.Detail
	}
	return "malformed hash: " + e.Detail
}

// VerifyPassword says whether password matches hash (argon2id/i/d, scrypt,
// pbkdf2-sha256, bcrypt; granted by a `[policy.capabilities.password]`
// table), checked by the host in constant time; err is a *PasswordError.
func VerifyPassword(password, hash string) (bool, error) {
	return verifyPassword(password, hash)
}

// NkeyErrorKind says why a key or signature was refused.
type NkeyErrorKind int

const (
	// NkeyInvalidKey: not a public nkey.
	NkeyInvalidKey NkeyErrorKind = iota
	// NkeyMalformedSignature: not base64 of 64 bytes.
	NkeyMalformedSignature
	// NkeyBadSignature: not the key's signature of the message.
	NkeyBadSignature
)

// NkeyError is why VerifyNkey failed.
type NkeyError struct {
	Kind   NkeyErrorKind
	Detail string
}

func (e *NkeyError) Error() string {
	switch e.Kind {
	case NkeyInvalidKey:
		return "invalid nkey: " + e.Detail
	case NkeyMalformedSignature:
		return "malformed signature: " + e.Detail
	default:
		return "bad signature"
	}
}

// VerifyNkey checks that signature (base64) is key's signature of message
// (granted by `[policy.capabilities] nkey = true`); err is a *NkeyError.
func VerifyNkey(key string, message []byte, signature string) error {
	return verifyNkey(key, message, signature)
}

// VerifiedClientKey checks the client's signature of the server's nonce
// with its nkey (nats-server does not, for auth callout users): ok is false
// when the client sent no nkey; err when it sent one that nothing proves (no
// nonce from the server, no signature) or whose signature does not verify.
func (r *Request) VerifiedClientKey() (key string, ok bool, err error) {
	key, hasKey := r.Nkey()
	if !hasKey {
		return "", false, nil
	}
	nonce := r.ClientInfo.Nonce
	if nonce.IsNone() {
		return "", false, &NkeyError{NkeyMalformedSignature, "the server sent the client no nonce to sign (in config mode it sends one only when an nkey user is configured)"}
	}
	signature := r.ConnectOpts.Sig
	if signature.IsNone() {
		return "", false, &NkeyError{NkeyMalformedSignature, "the client sent an nkey without a signature"}
	}
	if err := VerifyNkey(key, []byte(nonce.Some()), signature.Some()); err != nil {
		return "", false, err
	}
	return key, true, nil
}

// TokenErrorKind says why a token was refused.
type TokenErrorKind int

const (
	TokenMalformed TokenErrorKind = iota
	TokenUnknownIssuer
	TokenAlgorithmRefused
	TokenUnknownKey
	TokenBadSignature
	TokenExpired
	TokenNotYetValid
	TokenWrongAudience
	TokenKeysUnavailable
)

var tokenErrorNames = [...]string{
	"malformed", "unknown issuer", "algorithm refused", "unknown key", "bad signature",
	"expired", "not yet valid", "wrong audience", "issuer keys unavailable",
}

// TokenError is why VerifyToken failed.
type TokenError struct {
	Kind   TokenErrorKind
	Detail string
}

func (e *TokenError) Error() string {
	name := "refused"
	if int(e.Kind) < len(tokenErrorNames) {
		name = tokenErrorNames[e.Kind]
	}
	if e.Detail == "" {
		return name
	}
	return name + ": " + e.Detail
}

// VerifiedToken is a token that verified: its issuer and its claims (JSON).
type VerifiedToken struct {
	Issuer string
	Claims string
}

// VerifyToken verifies an OIDC/JWT token against the granted issuer its
// `iss` names (granted by `[[policy.capabilities.oidc]]` tables); err is a
// *TokenError.
func VerifyToken(token string) (VerifiedToken, error) {
	return verifyToken(token)
}
