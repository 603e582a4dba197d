package main

import (
	"strings"
	"testing"

	"github.com/nats-callout/nats-callout/sdk/go/callout"
)

const testSettings = `{
	"tokens": {"s3cr3t": {"account": "APP", "publish": ["app.>"], "subscribe": ["_INBOX.>"]}},
	"users": {"alice": {"password": "wonderland", "account": "APP", "expires_in_secs": 60}}
}`

func policy(t *testing.T) callout.Policy {
	t.Helper()
	p, err := newTokenTable(testSettings)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAKnownTokenGetsItsGrant(t *testing.T) {
	grant, ok := callout.GrantOf(policy(t).Authorize(callout.TestRequest().WithToken("s3cr3t")))
	if !ok {
		t.Fatal("denied")
	}
	if grant.Account != "APP" || grant.Publish.Allow[0] != "app.>" || grant.Subscribe.Allow[0] != "_INBOX.>" {
		t.Fatalf("wrong grant %+v", grant)
	}
}

func TestAnUnknownTokenIsDenied(t *testing.T) {
	reason, _ := callout.DenyReason(policy(t).Authorize(callout.TestRequest().WithToken("guess")))
	if reason != "unknown token" {
		t.Fatalf("reason %q", reason)
	}
}

func TestUsersNeedTheRightPassword(t *testing.T) {
	grant, ok := callout.GrantOf(policy(t).Authorize(callout.TestRequest().WithUserAndPassword("alice", "wonderland")))
	if !ok || grant.ExpiresInSecs.Some() != 60 || grant.Name.Some() != "alice" {
		t.Fatalf("wrong grant %+v", grant)
	}
	if reason, _ := callout.DenyReason(policy(t).Authorize(callout.TestRequest().WithUserAndPassword("alice", "x"))); reason != `wrong password for user "alice"` {
		t.Fatalf("reason %q", reason)
	}
	if reason, _ := callout.DenyReason(policy(t).Authorize(callout.TestRequest().WithUserAndPassword("bob", "x"))); reason != `unknown user "bob"` {
		t.Fatalf("reason %q", reason)
	}
}

func TestAnonymousClientsAreDenied(t *testing.T) {
	if callout.IsAllow(policy(t).Authorize(callout.TestRequest())) {
		t.Fatal("allowed")
	}
}

func TestBadSettingsAreRefused(t *testing.T) {
	for settings, want := range map[string]string{
		`{}`:             "no `tokens`",
		`{"tokens": 3}`:  "invalid settings",
		`{"tokenz": {}}`: "tokenz",
	} {
		if _, err := newTokenTable(settings); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("settings %s: error %v, want %q", settings, err, want)
		}
	}
}
