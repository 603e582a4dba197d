// Example policy, in Go: users kept in a NATS KV bucket that an admin edits
// at run time (`nats kv put users alice '{...}'`), each a JSON record with
// the account and permissions the user gets and how the user proves who
// they are — a password hash, or an nkey whose signature of the server's
// nonce the host checks.
//
// Host configuration:
//
//	[policy.capabilities]
//	nkey = true
//	[policy.capabilities.password]   # OWASP's floors by default
//	[policy.capabilities.kv]
//	buckets = ["users"]
//
//	[policy.settings]
//	bucket = "users"
//
// A record, at the user's name (user/password clients) or at the user's
// public nkey (nkey clients):
//
//	{"password_hash": "$argon2id$v=19$m=19456,t=2,p=1$...",
//	 "account": "APP", "publish": ["orders.>"], "subscribe": ["_INBOX.>"],
//	 "expires_in_secs": 3600}
//
// A user is admitted within milliseconds of a put, refused after a delete,
// and every client is refused while the host's copy of the bucket may be
// stale.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-callout/nats-callout/sdk/go/callout"
)

type settings struct {
	Bucket string `json:"bucket"`
}

// record is a user's entry in the bucket.
type record struct {
	PasswordHash  string   `json:"password_hash"`
	Account       string   `json:"account"`
	Name          string   `json:"name"`
	Publish       []string `json:"publish"`
	Subscribe     []string `json:"subscribe"`
	ExpiresInSecs uint64   `json:"expires_in_secs"`
}

type kvUsers struct {
	bucket string
}

func (p kvUsers) Authorize(request *callout.Request) callout.Decision {
	key, hasKey, err := request.VerifiedClientKey()
	if err != nil {
		return callout.Deny("nkey refused: " + err.Error())
	}
	if hasKey {
		entry, refused := p.lookup(key)
		if entry == nil {
			return callout.Deny(refused)
		}
		return entry.grant()
	}
	user, password, ok := request.UserAndPassword()
	if !ok {
		return callout.Deny("no credentials: connect with a user and password, or an nkey")
	}
	entry, refused := p.lookup(user)
	if entry == nil {
		return callout.Deny(refused)
	}
	if entry.PasswordHash == "" {
		return callout.Deny(fmt.Sprintf("user %q has no password_hash: it signs in with its nkey", user))
	}
	matched, err := callout.VerifyPassword(password, entry.PasswordHash)
	if err != nil {
		return callout.Deny(fmt.Sprintf("user %q: %v", user, err))
	}
	if !matched {
		return callout.Deny(fmt.Sprintf("user %q: wrong password", user))
	}
	return entry.grant()
}

// lookup reads the record at key, or says why there is none.
func (p kvUsers) lookup(key string) (*record, string) {
	value, found, err := callout.KVGet(p.bucket, key)
	if err != nil {
		return nil, "user records " + err.Error()
	}
	if !found {
		return nil, fmt.Sprintf("no user %q in bucket %q", key, p.bucket)
	}
	var entry record
	if err := json.Unmarshal(value, &entry); err != nil {
		return nil, fmt.Sprintf("the record of %q is not valid JSON: %v", key, err)
	}
	if entry.Account == "" {
		return nil, fmt.Sprintf("the record of %q names no account", key)
	}
	return &entry, ""
}

func (r *record) grant() callout.Decision {
	grant := callout.GrantTo(r.Account).Publish(r.Publish...).Subscribe(r.Subscribe...)
	if r.Name != "" {
		grant = grant.Named(r.Name)
	}
	if r.ExpiresInSecs > 0 {
		// The host shortens what is above its maximum; avoid overflowing here.
		secs := min(r.ExpiresInSecs, uint64(math.MaxInt64/int64(time.Second)))
		grant = grant.ExpiresIn(time.Duration(secs) * time.Second)
	}
	return grant.Allow()
}

func load(raw string) (callout.Policy, error) {
	var s settings
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return nil, fmt.Errorf("invalid settings: %w", err)
	}
	if s.Bucket == "" {
		return nil, errors.New("settings.bucket is missing: the KV bucket holding the user records")
	}
	return kvUsers{bucket: s.Bucket}, nil
}

func init() { callout.Export(load) }

func main() {}
