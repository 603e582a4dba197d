package main

import (
	"strings"
	"testing"

	"github.com/nats-callout/nats-callout/sdk/go/callout"
)

const userKey = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"

func policy(t *testing.T) callout.Policy {
	t.Helper()
	callout.TestResetCapabilities()
	p, err := load(`{"bucket": "users"}`)
	if err != nil {
		t.Fatal(err)
	}
	callout.TestPutKV("users", "alice", []byte(`{"password_hash": "$argon2id$alice", "account": "APP", "publish": ["orders.>"], "expires_in_secs": 60}`))
	callout.TestSetPasswordHash("$argon2id$alice", "wonderland")
	callout.TestPutKV("users", userKey, []byte(`{"account": "OTHER", "subscribe": ["telemetry.>"]}`))
	callout.TestAcceptSignature(userKey, []byte("nonce-1"), "good-signature")
	return p
}

func denied(t *testing.T, decision callout.Decision, want string) {
	t.Helper()
	reason, isDeny := callout.DenyReason(decision)
	if !isDeny || !strings.Contains(reason, want) {
		t.Fatalf("want a deny with %q, got %q (deny %v)", want, reason, isDeny)
	}
}

func TestAUserWithTheRightPasswordGetsTheRecordsGrant(t *testing.T) {
	grant, ok := callout.GrantOf(policy(t).Authorize(callout.TestRequest().WithUserAndPassword("alice", "wonderland")))
	if !ok {
		t.Fatal("denied")
	}
	if grant.Account != "APP" || grant.Publish.Allow[0] != "orders.>" || grant.ExpiresInSecs.Some() != 60 {
		t.Fatalf("wrong grant %+v", grant)
	}
}

func TestWrongPasswordsUnknownUsersAndStaleRecordsAreDenied(t *testing.T) {
	p := policy(t)
	denied(t, p.Authorize(callout.TestRequest().WithUserAndPassword("alice", "guess")), "wrong password")
	denied(t, p.Authorize(callout.TestRequest().WithUserAndPassword("bob", "x")), `no user "bob"`)
	denied(t, p.Authorize(callout.TestRequest()), "no credentials")
	callout.TestDeleteKV("users", "alice")
	denied(t, p.Authorize(callout.TestRequest().WithUserAndPassword("alice", "wonderland")), `no user "alice"`)
	callout.TestMakeKVUnavailable("users")
	denied(t, p.Authorize(callout.TestRequest().WithUserAndPassword("alice", "wonderland")), "unavailable")
}

func TestAnNkeyUserIsAdmittedOnlyWithItsSignature(t *testing.T) {
	p := policy(t)
	grant, ok := callout.GrantOf(p.Authorize(callout.TestRequest().WithNkey(userKey, "nonce-1", "good-signature")))
	if !ok || grant.Account != "OTHER" {
		t.Fatalf("want OTHER, got %+v (allowed %v)", grant, ok)
	}
	denied(t, p.Authorize(callout.TestRequest().WithNkey(userKey, "nonce-1", "forged")), "nkey refused: bad signature")
	// An nkey user has no password: its record does not admit by name.
	denied(t, p.Authorize(callout.TestRequest().WithUserAndPassword(userKey, "x")), "has no password_hash")
}

func TestSettingsNeedABucket(t *testing.T) {
	if _, err := load(`{}`); err == nil || !strings.Contains(err.Error(), "settings.bucket") {
		t.Fatalf("got %v", err)
	}
}
