// Package callout is the Go SDK for nats-callout authorization policies.
//
// A policy is a type with an Authorize method, exported from package main
// with one call:
//
//	package main
//
//	import (
//		"time"
//
//		"github.com/nats-callout/nats-callout/sdk/go/callout"
//	)
//
//	type onlyAlice struct{}
//
//	func (onlyAlice) Authorize(request *callout.Request) callout.Decision {
//		if user, password, ok := request.UserAndPassword(); ok && user == "alice" && password == "wonderland" {
//			return callout.GrantTo("APP").
//				Publish("app.>").
//				Subscribe("app.>", "_INBOX.>").
//				ExpiresIn(10 * time.Minute).
//				Allow()
//		}
//		return callout.Deny("unknown user")
//	}
//
//	func init() {
//		callout.Export(func(settings string) (callout.Policy, error) { return onlyAlice{}, nil })
//	}
//
//	func main() {}
//
// Build it with `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared
// -ldflags=-checklinkname=0 -o policy.core.wasm .`, then turn the module into
// a component with `nats-callout componentize policy.core.wasm -o policy.wasm`.
// The same code unit-tests natively with `go test`: build requests with
// TestRequest.
//
// The init function passed to Export runs once, when the host loads the
// policy; the host then snapshots the initialized policy and runs every
// Authorize call in a fresh copy of it, so whatever init parsed is ready on
// every call and nothing leaks between calls — unless the operator sets
// `calls_per_instance` above 1, in which case globals persist across the
// calls one instance serves. Package-level random generators (math/rand) may be
// frozen in the snapshot: draw from crypto/rand, which reads the host's
// random source on every call.
package callout

import (
	"github.com/nats-callout/nats-callout/sdk/go/internal/registry"
	types "github.com/nats-callout/nats-callout/sdk/go/internal/wit/imports/nats_callout_types"
)

// The request and decision types, generated from wit/policy.wit; see that
// file for what every field means.
type (
	AuthRequest        = types.AuthRequest
	ServerId           = types.ServerId
	ClientInfo         = types.ClientInfo
	ConnectOpts        = types.ConnectOpts
	ClientTls          = types.ClientTls
	Decision           = types.Decision
	Grant              = types.Grant
	Permission         = types.Permission
	ResponsePermission = types.ResponsePermission
	Limits             = types.Limits
	TimeWindow         = types.TimeWindow
	ConnectionType     = types.ConnectionType
	LogLevel           = types.LogLevel
)

// Policy decides connection attempts. The host calls Authorize once per
// connecting client, each time in a fresh copy of the policy as Export's init
// function left it.
type Policy interface {
	Authorize(request *Request) Decision
}

// Export registers the policy. init receives the policy's settings (the
// `[policy.settings]` table of the host's configuration, as JSON text, `{}`
// when there is none) and returns the policy, or an error to refuse the
// settings: the host then does not load the policy and reports the error's
// text. Call Export once, from an init function of package main.
func Export(init func(settings string) (Policy, error)) {
	registry.Init = func(settings string) (registry.Authorizer, error) {
		policy, err := init(settings)
		if err != nil || policy == nil {
			return nil, err
		}
		return authorizer{policy}, nil
	}
}

// authorizer adapts a Policy to the glue's view of it.
type authorizer struct{ policy Policy }

func (a authorizer) Authorize(request *types.AuthRequest) types.Decision {
	return a.policy.Authorize(&Request{AuthRequest: *request})
}
