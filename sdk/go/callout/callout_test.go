package callout

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/nats-callout/nats-callout/sdk/go/internal/registry"
)

func TestTheBuilderFillsEveryField(t *testing.T) {
	decision := GrantTo("APP").
		Named("alice").
		Publish("app.>").
		DenyPublish("app.secret").
		Subscribe("_INBOX.>").
		DenySubscribe("app.secret").
		AllowResponses(1, 30*time.Second).
		ExpiresIn(10*time.Minute).
		Tags("team:a").
		FromNetworks("10.0.0.0/8").
		During("08:00:00", "18:00:00").
		InTimeZone("Europe/Paris").
		ConnectionTypes(ConnectionStandard, ConnectionWebsocket).
		Allow()
	grant, ok := GrantOf(decision)
	if !ok || !IsAllow(decision) {
		t.Fatal("not an allow")
	}
	if grant.Account != "APP" || grant.Name.Some() != "alice" {
		t.Fatalf("account/name: %+v", grant)
	}
	if !reflect.DeepEqual(grant.Publish, Permission{Allow: []string{"app.>"}, Deny: []string{"app.secret"}}) ||
		!reflect.DeepEqual(grant.Subscribe, Permission{Allow: []string{"_INBOX.>"}, Deny: []string{"app.secret"}}) {
		t.Fatalf("permissions: %+v %+v", grant.Publish, grant.Subscribe)
	}
	if r := grant.Responses.Some(); r.MaxMessages != 1 || r.TtlMs != 30000 {
		t.Fatalf("responses: %+v", r)
	}
	if grant.ExpiresInSecs.Some() != 600 || !reflect.DeepEqual(grant.Tags, []string{"team:a"}) {
		t.Fatalf("expiry/tags: %+v", grant)
	}
	limits := grant.Limits
	if limits.Subs.IsSome() || limits.Data.IsSome() || limits.Payload.IsSome() ||
		limits.SourceCidrs[0] != "10.0.0.0/8" || limits.Times[0] != (TimeWindow{Start: "08:00:00", End: "18:00:00"}) ||
		limits.TimesLocation.Some() != "Europe/Paris" {
		t.Fatalf("limits: %+v", limits)
	}
	if !reflect.DeepEqual(grant.ConnectionTypes, []ConnectionType{ConnectionStandard, ConnectionWebsocket}) {
		t.Fatalf("connection types: %v", grant.ConnectionTypes)
	}
	if _, denied := DenyReason(decision); denied {
		t.Fatal("an allow has no deny reason")
	}
	if reason, _ := DenyReason(Deny("no")); reason != "no" {
		t.Fatalf("reason %q", reason)
	}
}

func TestAccessorsReadTheCredentialsAndWithCopies(t *testing.T) {
	base := TestRequest()
	if _, ok := base.Token(); ok {
		t.Fatal("no token expected")
	}
	token := base.WithToken("t")
	if value, _ := token.Token(); value != "t" || token.ClientInfo.User.Some() != "[REDACTED]" {
		t.Fatalf("token request: %+v", token.ConnectOpts)
	}
	if _, ok := base.Token(); ok {
		t.Fatal("the original changed")
	}
	user := base.WithUserAndPassword("u", "p").WithClientHost("10.0.0.1")
	if name, password, ok := user.UserAndPassword(); !ok || name != "u" || password != "p" {
		t.Fatal("user and password")
	}
	if host, _ := user.ClientHost(); host != "10.0.0.1" {
		t.Fatalf("host %q", host)
	}
	if _, ok := user.ClientCertificate(); ok {
		t.Fatal("no certificate expected")
	}
}

type denyWith string

func (d denyWith) Authorize(*Request) Decision { return Deny(string(d)) }

func TestExportRegistersTheInitFunction(t *testing.T) {
	Export(func(settings string) (Policy, error) {
		if settings == "bad" {
			return nil, errors.New("bad settings")
		}
		return denyWith(settings), nil
	})
	if _, err := registry.Init("bad"); err == nil || err.Error() != "bad settings" {
		t.Fatalf("refusal: %v", err)
	}
	policy, err := registry.Init(`{"a":1}`)
	if err != nil {
		t.Fatal(err)
	}
	request := TestRequest().AuthRequest
	if reason, _ := DenyReason(policy.Authorize(&request)); reason != `{"a":1}` {
		t.Fatalf("reason %q", reason)
	}
}
