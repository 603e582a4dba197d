//go:build wasip1

package callout

import (
	// Linking the generated glue exports the component's init and authorize.
	_ "github.com/nats-callout/nats-callout/sdk/go/internal/wit/exports/wit_exports"
	"github.com/nats-callout/nats-callout/sdk/go/internal/wit/imports/nats_callout_host"
)

// Log writes a line to the host's log, tagged with the policy's name. Lines
// are truncated to 1 KiB and limited in number per call. Never log secrets.
func Log(level LogLevel, message string) { nats_callout_host.Log(level, message) }
