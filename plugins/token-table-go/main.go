// Example policy: admits clients listed in a table in its settings, by token
// or by user name and password, and denies everyone else with a reason. It
// behaves exactly like the Rust example in plugins/token-table.
//
// Settings (the `[policy.settings]` table of the host's configuration):
//
//	[policy.settings.tokens.s3cr3t]
//	account = "APP"
//	publish = ["app.>"]
//	subscribe = ["app.>", "_INBOX.>"]
//
//	[policy.settings.users.alice]
//	password = "wonderland"
//	account = "APP"
//	publish = ["app.alice.>"]
//	expires_in_secs = 600
package main

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-callout/nats-callout/sdk/go/callout"
)

// entitlement is what a matching client gets.
type entitlement struct {
	Account       *string  `json:"account"`
	Name          *string  `json:"name"`
	Publish       []string `json:"publish"`
	Subscribe     []string `json:"subscribe"`
	ExpiresInSecs *uint64  `json:"expires_in_secs"`
}

type userEntry struct {
	Password *string `json:"password"`
	entitlement
}

type settings struct {
	Tokens map[string]entitlement `json:"tokens"`
	Users  map[string]userEntry   `json:"users"`
}

type tokenTable struct {
	settings settings
}

func (e *entitlement) grant(defaultName string) callout.Decision {
	name := defaultName
	if e.Name != nil {
		name = *e.Name
	}
	grant := callout.GrantTo(*e.Account).
		Named(name).
		Publish(e.Publish...).
		Subscribe(e.Subscribe...)
	if e.ExpiresInSecs != nil {
		grant.ExpiresIn(time.Duration(*e.ExpiresInSecs) * time.Second)
	}
	return grant.Allow()
}

// sameSecret compares secrets in time that does not depend on where they
// first differ.
func sameSecret(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func newTokenTable(text string) (callout.Policy, error) {
	var parsed settings
	decoder := json.NewDecoder(bytes.NewReader([]byte(text)))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&parsed); err != nil {
		return nil, fmt.Errorf("invalid settings: %w", err)
	}
	for _, entry := range parsed.Tokens {
		if entry.Account == nil {
			// Never name the token: it is a secret, and this message is logged.
			return nil, errors.New("invalid settings: a token entry has no `account`")
		}
	}
	for user, entry := range parsed.Users {
		if entry.Account == nil || entry.Password == nil {
			return nil, fmt.Errorf("invalid settings: user %q needs `password` and `account`", user)
		}
	}
	if len(parsed.Tokens) == 0 && len(parsed.Users) == 0 {
		return nil, errors.New("invalid settings: no `tokens` and no `users`, so every client would be denied")
	}
	return &tokenTable{settings: parsed}, nil
}

func (t *tokenTable) Authorize(request *callout.Request) callout.Decision {
	if token, ok := request.Token(); ok {
		for known, entry := range t.settings.Tokens {
			if sameSecret(known, token) {
				return entry.grant("token")
			}
		}
		return callout.Deny("unknown token")
	}
	if user, password, ok := request.UserAndPassword(); ok {
		entry, known := t.settings.Users[user]
		switch {
		case !known:
			return callout.Deny(fmt.Sprintf("unknown user %q", user))
		case !sameSecret(*entry.Password, password):
			return callout.Deny(fmt.Sprintf("wrong password for user %q", user))
		default:
			return entry.grant(user)
		}
	}
	return callout.Deny("no token and no user name and password")
}

func init() { callout.Export(newTokenTable) }

func main() {}
