//go:build !wasip1

package callout

import "sync"

// The test doubles of the capabilities, for `go test`: the host is not
// there, so tell them what it would answer. Shared by the whole test
// binary; TestResetCapabilities clears them.
var doubles = struct {
	sync.Mutex
	kv          map[string]map[string][]byte
	unavailable map[string]bool
	tokens      map[string]VerifiedToken
	refused     map[string]*TokenError
	hashes      map[string]string
	signatures  map[[3]string]bool
}{}

// TestResetCapabilities forgets everything the doubles were told.
func TestResetCapabilities() {
	doubles.Lock()
	defer doubles.Unlock()
	doubles.kv = nil
	doubles.unavailable = nil
	doubles.tokens = nil
	doubles.refused = nil
	doubles.hashes = nil
	doubles.signatures = nil
}

// TestPutKV puts key = value in bucket (which counts as granted from then on).
func TestPutKV(bucket, key string, value []byte) {
	doubles.Lock()
	defer doubles.Unlock()
	if doubles.kv == nil {
		doubles.kv = map[string]map[string][]byte{}
	}
	if doubles.kv[bucket] == nil {
		doubles.kv[bucket] = map[string][]byte{}
	}
	doubles.kv[bucket][key] = append([]byte(nil), value...)
}

// TestDeleteKV deletes key from bucket.
func TestDeleteKV(bucket, key string) {
	doubles.Lock()
	defer doubles.Unlock()
	delete(doubles.kv[bucket], key)
}

// TestMakeKVUnavailable makes reads of bucket fail as when the host's copy
// may be stale (the bucket counts as granted from then on).
func TestMakeKVUnavailable(bucket string) {
	doubles.Lock()
	defer doubles.Unlock()
	if doubles.unavailable == nil {
		doubles.unavailable = map[string]bool{}
	}
	doubles.unavailable[bucket] = true
	if doubles.kv == nil {
		doubles.kv = map[string]map[string][]byte{}
	}
	if doubles.kv[bucket] == nil {
		doubles.kv[bucket] = map[string][]byte{}
	}
}

// TestAcceptToken makes token verify, from issuer, with claims (JSON).
func TestAcceptToken(token, issuer, claims string) {
	doubles.Lock()
	defer doubles.Unlock()
	if doubles.tokens == nil {
		doubles.tokens = map[string]VerifiedToken{}
	}
	doubles.tokens[token] = VerifiedToken{Issuer: issuer, Claims: claims}
}

// TestRefuseToken makes token fail with kind (other unknown tokens fail as
// TokenBadSignature).
func TestRefuseToken(token string, kind TokenErrorKind) {
	doubles.Lock()
	defer doubles.Unlock()
	if doubles.refused == nil {
		doubles.refused = map[string]*TokenError{}
	}
	doubles.refused[token] = &TokenError{Kind: kind, Detail: "(test double)"}
}

// TestSetPasswordHash makes hash the hash of password (other hashes are malformed).
func TestSetPasswordHash(hash, password string) {
	doubles.Lock()
	defer doubles.Unlock()
	if doubles.hashes == nil {
		doubles.hashes = map[string]string{}
	}
	doubles.hashes[hash] = password
}

// TestAcceptSignature makes signature a valid signature of message by key.
func TestAcceptSignature(key string, message []byte, signature string) {
	doubles.Lock()
	defer doubles.Unlock()
	if doubles.signatures == nil {
		doubles.signatures = map[[3]string]bool{}
	}
	doubles.signatures[[3]string{key, string(message), signature}] = true
}

func kvGet(bucket, key string) ([]byte, bool, error) {
	doubles.Lock()
	defer doubles.Unlock()
	entries, granted := doubles.kv[bucket]
	if !granted {
		return nil, false, &KVError{KVNotGranted, bucket}
	}
	if doubles.unavailable[bucket] {
		return nil, false, &KVError{KVUnavailable, "(test double)"}
	}
	value, found := entries[key]
	return value, found, nil
}

func verifyPassword(password, hash string) (bool, error) {
	doubles.Lock()
	defer doubles.Unlock()
	known, ok := doubles.hashes[hash]
	if !ok {
		return false, &PasswordError{PasswordMalformedHash, "not a hash the test doubles know (TestSetPasswordHash)"}
	}
	return known == password, nil
}

func verifyNkey(key string, message []byte, signature string) error {
	if len(key) != 56 {
		return &NkeyError{NkeyInvalidKey, "not 56 characters"}
	}
	doubles.Lock()
	defer doubles.Unlock()
	if doubles.signatures[[3]string{key, string(message), signature}] {
		return nil
	}
	return &NkeyError{Kind: NkeyBadSignature}
}

func verifyToken(token string) (VerifiedToken, error) {
	doubles.Lock()
	defer doubles.Unlock()
	if verified, ok := doubles.tokens[token]; ok {
		return verified, nil
	}
	if refused, ok := doubles.refused[token]; ok {
		return VerifiedToken{}, refused
	}
	return VerifiedToken{}, &TokenError{Kind: TokenBadSignature}
}
