//go:build wasip1

package callout

import (
	"github.com/nats-callout/nats-callout/sdk/go/internal/wit/imports/nats_callout_kv"
	"github.com/nats-callout/nats-callout/sdk/go/internal/wit/imports/nats_callout_nkey"
	"github.com/nats-callout/nats-callout/sdk/go/internal/wit/imports/nats_callout_oidc"
	"github.com/nats-callout/nats-callout/sdk/go/internal/wit/imports/nats_callout_password"
)

func kvGet(bucket, key string) ([]byte, bool, error) {
	result := nats_callout_kv.Get(bucket, key)
	if result.IsErr() {
		failure := result.Err()
		if failure.Tag() == nats_callout_kv.KvError_NotGranted {
			return nil, false, &KVError{KVNotGranted, failure.NotGranted()}
		}
		return nil, false, &KVError{KVUnavailable, failure.Unavailable()}
	}
	value := result.Ok()
	if value.IsNone() {
		return nil, false, nil
	}
	return value.Some(), true, nil
}

func verifyPassword(password, hash string) (bool, error) {
	result := nats_callout_password.Verify(password, hash)
	if result.IsErr() {
		failure := result.Err()
		if failure.Tag() == nats_callout_password.PasswordError_TooCheap {
			return false, &PasswordError{PasswordTooCheap, failure.TooCheap()}
		}
		return false, &PasswordError{PasswordMalformedHash, failure.MalformedHash()}
	}
	return result.Ok(), nil
}

func verifyNkey(key string, message []byte, signature string) error {
	result := nats_callout_nkey.Verify(key, message, signature)
	if !result.IsErr() {
		return nil
	}
	failure := result.Err()
	switch failure.Tag() {
	case nats_callout_nkey.NkeyError_InvalidKey:
		return &NkeyError{NkeyInvalidKey, failure.InvalidKey()}
	case nats_callout_nkey.NkeyError_MalformedSignature:
		return &NkeyError{NkeyMalformedSignature, failure.MalformedSignature()}
	default:
		return &NkeyError{NkeyBadSignature, ""}
	}
}

func verifyToken(token string) (VerifiedToken, error) {
	result := nats_callout_oidc.Verify(token)
	if !result.IsErr() {
		verified := result.Ok()
		return VerifiedToken{Issuer: verified.Issuer, Claims: verified.Claims}, nil
	}
	failure := result.Err()
	kind := TokenErrorKind(failure.Tag())
	detail := ""
	switch failure.Tag() {
	case nats_callout_oidc.TokenError_Malformed:
		detail = failure.Malformed()
	case nats_callout_oidc.TokenError_UnknownIssuer:
		detail = failure.UnknownIssuer()
	case nats_callout_oidc.TokenError_AlgorithmRefused:
		detail = failure.AlgorithmRefused()
	case nats_callout_oidc.TokenError_UnknownKey:
		detail = failure.UnknownKey()
	case nats_callout_oidc.TokenError_KeysUnavailable:
		detail = failure.KeysUnavailable()
	}
	return VerifiedToken{}, &TokenError{kind, detail}
}
