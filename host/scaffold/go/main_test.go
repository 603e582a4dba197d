package main

import (
	"strings"
	"testing"

	"github.com/nats-callout/nats-callout/sdk/go/callout"
)

const testSettings = `{"users": {"alice": {
	"password": "wonderland", "account": "APP", "publish": ["app.alice.>"]
}}}`

func policy(t *testing.T) callout.Policy {
	t.Helper()
	p, err := newUsers(testSettings)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAUserWithTheRightPasswordGetsAGrant(t *testing.T) {
	request := callout.TestRequest().WithUserAndPassword("alice", "wonderland")
	grant, ok := callout.GrantOf(policy(t).Authorize(request))
	if !ok {
		t.Fatal("denied")
	}
	if grant.Account != "APP" || len(grant.Publish.Allow) != 1 || grant.Publish.Allow[0] != "app.alice.>" {
		t.Fatalf("wrong grant %+v", grant)
	}
}

func TestAWrongPasswordIsDenied(t *testing.T) {
	request := callout.TestRequest().WithUserAndPassword("alice", "guess")
	reason, _ := callout.DenyReason(policy(t).Authorize(request))
	if reason != "unknown user or wrong password" {
		t.Fatalf("reason %q", reason)
	}
}

func TestSettingsWithoutUsersAreRefused(t *testing.T) {
	_, err := newUsers(`{"users": {}}`)
	if err == nil || !strings.Contains(err.Error(), "no users") {
		t.Fatalf("error %v", err)
	}
}
