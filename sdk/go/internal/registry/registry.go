// Package registry holds the policy a program registered with callout.Export,
// so the generated export glue can reach it without importing the public
// package (which imports the glue).
package registry

import types "github.com/nats-callout/nats-callout/sdk/go/internal/wit/imports/nats_callout_types"

// Authorizer is what callout.Policy is, seen from the glue.
type Authorizer interface {
	Authorize(request *types.AuthRequest) types.Decision
}

// Init builds the policy from its settings; set by callout.Export.
var Init func(settings string) (Authorizer, error)

// Policy is the policy Init built, once the host called init.
var Policy Authorizer
