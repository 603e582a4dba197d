package callout

import types "github.com/nats-callout/nats-callout/sdk/go/internal/witpkg/types"

// Request is one connection attempt: the AuthRequest fields, plus accessors
// for what policies usually look at.
type Request struct {
	AuthRequest
}

// Token returns the token the client sent (`nats://token@host`).
func (r *Request) Token() (string, bool) {
	return optional(r.ConnectOpts.AuthToken)
}

// UserAndPassword returns the user name and password the client sent, if it
// sent both.
func (r *Request) UserAndPassword() (user, password string, ok bool) {
	if r.ConnectOpts.User.IsNone() || r.ConnectOpts.Pass.IsNone() {
		return "", "", false
	}
	return r.ConnectOpts.User.Some(), r.ConnectOpts.Pass.Some(), true
}

// User returns the user name the client sent.
func (r *Request) User() (string, bool) { return optional(r.ConnectOpts.User) }

// Nkey returns the client's nkey, if it authenticated with one (in config
// mode the server has not checked its signature: compare ConnectOpts.Sig).
func (r *Request) Nkey() (string, bool) { return optional(r.ConnectOpts.Nkey) }

// JWT returns the user JWT the client sent.
func (r *Request) JWT() (string, bool) { return optional(r.ConnectOpts.Jwt) }

// ClientHost returns the client's IP address.
func (r *Request) ClientHost() (string, bool) { return optional(r.ClientInfo.Host) }

// ConnectionName returns the client's connection name (from CONNECT, else
// from the server's view).
func (r *Request) ConnectionName() (string, bool) {
	if name, ok := optional(r.ConnectOpts.Name); ok {
		return name, true
	}
	return optional(r.ClientInfo.Name)
}

// ClientCertificate returns the leaf certificate of the client's first
// verified TLS chain (else its first certificate), as PEM.
func (r *Request) ClientCertificate() (string, bool) {
	if r.ClientTls.IsNone() {
		return "", false
	}
	tls := r.ClientTls.Some()
	if len(tls.VerifiedChains) > 0 && len(tls.VerifiedChains[0]) > 0 {
		return tls.VerifiedChains[0][0], true
	}
	if len(tls.Certs) > 0 {
		return tls.Certs[0], true
	}
	return "", false
}

func optional(value Option[string]) (string, bool) {
	if value.IsNone() {
		return "", false
	}
	return value.Some(), true
}

// Option is the type of the optional fields of the generated types: test it
// with IsSome and read it with Some (or SomeOr).
type Option[T any] = types.Option[T]

// Some builds a present optional value.
func Some[T any](value T) Option[T] { return types.Some(value) }

// None is the absent value of an optional field.
func None[T any]() Option[T] { return types.None[T]() }

// TestRequest returns a request as a plain client connecting to a local
// server would send it, with no credentials: add them with the With methods.
// Use it to unit-test a policy natively with `go test`.
func TestRequest() *Request {
	return &Request{AuthRequest: AuthRequest{
		Server: ServerId{
			Name:    "test-server",
			Host:    "127.0.0.1",
			Id:      "NTESTSERVER",
			Version: Some("2.11.0"),
			Cluster: None[string](),
			Tags:    []string{},
			Xkey:    None[string](),
		},
		UserNkey: "UTESTUSER",
		ClientInfo: ClientInfo{
			Host:       Some("127.0.0.1"),
			Id:         Some[uint64](1),
			User:       None[string](),
			Name:       None[string](),
			Tags:       []string{},
			NameTag:    None[string](),
			Kind:       Some("Client"),
			ClientType: Some("nats"),
			MqttId:     None[string](),
			Nonce:      None[string](),
		},
		ConnectOpts: ConnectOpts{
			Jwt:       None[string](),
			Nkey:      None[string](),
			Sig:       None[string](),
			AuthToken: None[string](),
			User:      None[string](),
			Pass:      None[string](),
			Name:      None[string](),
			Lang:      Some("go"),
			Version:   Some("0.0.0"),
			Protocol:  1,
		},
		ClientTls: None[ClientTls](),
		Issuer:    "ATESTISSUER",
	}}
}

// WithToken returns the request with a token, as the server sends it.
func (r *Request) WithToken(token string) *Request {
	copied := *r
	copied.ConnectOpts.AuthToken = Some(token)
	copied.ClientInfo.User = Some("[REDACTED]")
	return &copied
}

// WithUserAndPassword returns the request with a user name and password.
func (r *Request) WithUserAndPassword(user, password string) *Request {
	copied := *r
	copied.ConnectOpts.User = Some(user)
	copied.ConnectOpts.Pass = Some(password)
	copied.ClientInfo.User = Some(user)
	return &copied
}

// WithClientHost returns the request coming from another address.
func (r *Request) WithClientHost(host string) *Request {
	copied := *r
	copied.ClientInfo.Host = Some(host)
	return &copied
}

// WithNkey returns the request of a client that answered the server's
// nonce with its nkey and signature.
func (r *Request) WithNkey(key, nonce, signature string) *Request {
	copied := *r
	copied.ConnectOpts.Nkey = Some(key)
	copied.ConnectOpts.Sig = Some(signature)
	copied.ClientInfo.Nonce = Some(nonce)
	copied.ClientInfo.User = Some(key)
	return &copied
}
