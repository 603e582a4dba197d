// Conformance echo policy (Go): denies every request with the request
// rendered as JSON, in the format of tests/conformance/README.md, so the kit
// can check that every field reached the policy intact.
//
// The user `sandbox-probe` instead gets what the policy could reach of the
// filesystem, environment, arguments and network (the `sandbox` kit expects
// nothing): `file=false dir=false env=0 args=0 net=false`. The user
// `sandbox-loop` never returns, and `sandbox-alloc` allocates 1 GiB: the
// host's deadline and memory cap must stop them.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/nats-callout/nats-callout/sdk/go/callout"
)

// opt renders an optional string as the string or null.
func opt(value interface {
	IsSome() bool
	Some() string
}) any {
	if value.IsSome() {
		return value.Some()
	}
	return nil
}

type echo struct{}

// sink keeps the busy loop from being optimized away.
var sink int

// probe reports what the sandbox lets the policy reach.
func probe() string {
	_, fileErr := os.ReadFile("/etc/hostname")
	_, dirErr := os.ReadDir("/")
	conn, netErr := net.Dial("tcp", "127.0.0.1:4222")
	if conn != nil {
		conn.Close()
	}
	return fmt.Sprintf("file=%t dir=%t env=%d args=%d net=%t",
		fileErr == nil, dirErr == nil, len(os.Environ()), len(os.Args), netErr == nil)
}

func (echo) Authorize(r *callout.Request) callout.Decision {
	if user, ok := r.User(); ok {
		switch user {
		case "sandbox-probe":
			return callout.Deny(probe())
		case "sandbox-loop":
			for spins := 0; ; spins++ {
				sink = spins
			}
		case "sandbox-alloc":
			block := make([]byte, 1<<30)
			block[len(block)-1] = 1
			return callout.Deny(fmt.Sprintf("allocated %d bytes", len(block)))
		}
	}
	var id any
	if r.ClientInfo.Id.IsSome() {
		id = strconv.FormatUint(r.ClientInfo.Id.Some(), 10)
	}
	var tls any
	if r.ClientTls.IsSome() {
		t := r.ClientTls.Some()
		tls = map[string]any{
			"version": opt(t.Version), "cipher": opt(t.Cipher),
			"certs": t.Certs, "verified_chains": t.VerifiedChains,
		}
	}
	value := map[string]any{
		"server": map[string]any{
			"name": r.Server.Name, "host": r.Server.Host, "id": r.Server.Id,
			"version": opt(r.Server.Version), "cluster": opt(r.Server.Cluster),
			"tags": r.Server.Tags, "xkey": opt(r.Server.Xkey),
		},
		"user_nkey": r.UserNkey,
		"client_info": map[string]any{
			"host": opt(r.ClientInfo.Host), "id": id, "user": opt(r.ClientInfo.User),
			"name": opt(r.ClientInfo.Name), "tags": r.ClientInfo.Tags, "name_tag": opt(r.ClientInfo.NameTag),
			"kind": opt(r.ClientInfo.Kind), "client_type": opt(r.ClientInfo.ClientType),
			"mqtt_id": opt(r.ClientInfo.MqttId), "nonce": opt(r.ClientInfo.Nonce),
		},
		"connect_opts": map[string]any{
			"jwt": opt(r.ConnectOpts.Jwt), "nkey": opt(r.ConnectOpts.Nkey), "sig": opt(r.ConnectOpts.Sig),
			"auth_token": opt(r.ConnectOpts.AuthToken), "user": opt(r.ConnectOpts.User),
			"pass": opt(r.ConnectOpts.Pass), "name": opt(r.ConnectOpts.Name), "lang": opt(r.ConnectOpts.Lang),
			"version": opt(r.ConnectOpts.Version), "protocol": r.ConnectOpts.Protocol,
		},
		"client_tls": tls,
		"issuer":     r.Issuer,
	}
	text, err := json.Marshal(value)
	if err != nil {
		return callout.Deny("cannot render the request: " + err.Error())
	}
	return callout.Deny(string(text))
}

func init() {
	callout.Export(func(string) (callout.Policy, error) { return echo{}, nil })
}

func main() {}
