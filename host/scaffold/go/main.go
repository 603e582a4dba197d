// {{name}}: a nats-callout policy. It admits the users listed in its
// settings, by user name and password, with their account and permissions,
// and denies everyone else.
//
// Settings (the [policy.settings] table of callout.toml):
//
//	[policy.settings.users.alice]
//	password = "wonderland"
//	account = "APP"
//	publish = ["app.alice.>"]
//	subscribe = ["app.>", "_INBOX.>"]
//
// Store password hashes rather than passwords in real settings: the
// password capability verifies them (callout.VerifyPassword).
package main

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-callout/nats-callout/sdk/go/callout"
)

type user struct {
	Password  *string  `json:"password"`
	Account   *string  `json:"account"`
	Publish   []string `json:"publish"`
	Subscribe []string `json:"subscribe"`
}

type settings struct {
	Users map[string]user `json:"users"`
}

type users struct {
	settings settings
}

// newUsers runs once, when the host loads the policy; an error refuses it.
func newUsers(text string) (callout.Policy, error) {
	var parsed settings
	decoder := json.NewDecoder(bytes.NewReader([]byte(text)))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&parsed); err != nil {
		return nil, fmt.Errorf("invalid settings: %w", err)
	}
	if len(parsed.Users) == 0 {
		return nil, errors.New("invalid settings: no users, so every client would be denied")
	}
	for name, entry := range parsed.Users {
		if entry.Password == nil || entry.Account == nil {
			return nil, fmt.Errorf("invalid settings: user %q needs `password` and `account`", name)
		}
		if *entry.Password == "" {
			return nil, fmt.Errorf("invalid settings: user %q has an empty password", name)
		}
	}
	return &users{settings: parsed}, nil
}

// Authorize runs for every connecting client, in a fresh sandbox.
func (u *users) Authorize(request *callout.Request) callout.Decision {
	name, password, ok := request.UserAndPassword()
	if !ok {
		return callout.Deny("no user name and password")
	}
	entry, known := u.settings.Users[name]
	// Compared in time that does not depend on where the secrets differ.
	if !known || subtle.ConstantTimeCompare([]byte(*entry.Password), []byte(password)) != 1 {
		return callout.Deny("unknown user or wrong password")
	}
	return callout.GrantTo(*entry.Account).
		Named(name).
		Publish(entry.Publish...).
		Subscribe(entry.Subscribe...).
		Allow()
}

func init() { callout.Export(newUsers) }

func main() {}
