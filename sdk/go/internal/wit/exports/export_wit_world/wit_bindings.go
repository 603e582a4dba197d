// Package export_wit_world implements the world's exports by handing them to
// the policy registered with callout.Export. (wit-bindgen generates a stub
// here; this file replaces it.)
package export_wit_world

import (
	"errors"

	"github.com/nats-callout/nats-callout/sdk/go/internal/registry"
	types "github.com/nats-callout/nats-callout/sdk/go/internal/wit/imports/nats_callout_types"
	witTypes "github.com/nats-callout/nats-callout/sdk/go/internal/witpkg/types"
)

// Init builds the policy from its settings, once, when the host loads it.
func Init(settings string) (result witTypes.Result[witTypes.Unit, string]) {
	if registry.Init == nil {
		return witTypes.Err[witTypes.Unit, string]("no policy registered: call callout.Export in an init function")
	}
	defer func() {
		if panicked := recover(); panicked != nil {
			result = witTypes.Err[witTypes.Unit, string](panicMessage(panicked))
		}
	}()
	policy, err := registry.Init(settings)
	if err == nil && policy == nil {
		err = errors.New("the init function returned no policy")
	}
	if err != nil {
		return witTypes.Err[witTypes.Unit, string](err.Error())
	}
	registry.Policy = policy
	return witTypes.Ok[witTypes.Unit, string](witTypes.Unit{})
}

// Authorize decides one connection attempt with the registered policy.
func Authorize(request types.AuthRequest) types.Decision {
	if registry.Policy == nil {
		return types.MakeDecisionDeny("policy was not initialized")
	}
	return registry.Policy.Authorize(&request)
}

func panicMessage(value any) string {
	if err, ok := value.(error); ok {
		return "init panicked: " + err.Error()
	}
	if text, ok := value.(string); ok {
		return "init panicked: " + text
	}
	return "init panicked"
}
