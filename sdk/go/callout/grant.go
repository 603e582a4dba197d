package callout

import (
	"time"

	types "github.com/nats-callout/nats-callout/sdk/go/internal/wit/imports/nats_callout_types"
)

// The connection types a grant may restrict the user to.
const (
	ConnectionStandard          = types.ConnectionType_Standard
	ConnectionWebsocket         = types.ConnectionType_Websocket
	ConnectionLeafnode          = types.ConnectionType_Leafnode
	ConnectionLeafnodeWebsocket = types.ConnectionType_LeafnodeWebsocket
	ConnectionMqtt              = types.ConnectionType_Mqtt
	ConnectionMqttWebsocket     = types.ConnectionType_MqttWebsocket
	ConnectionInProcess         = types.ConnectionType_InProcess
)

// The severities of Log.
const (
	LevelTrace = types.LogLevel_Trace
	LevelDebug = types.LogLevel_Debug
	LevelInfo  = types.LogLevel_Info
	LevelWarn  = types.LogLevel_Warn
	LevelError = types.LogLevel_Error
)

// GrantBuilder builds the Grant of an allow decision. Its methods add to the
// grant and return the builder, so they chain.
type GrantBuilder struct {
	grant Grant
}

// GrantTo starts a grant into account (by name, such as `APP`), with the
// account's default permissions until you add some.
func GrantTo(account string) *GrantBuilder {
	return &GrantBuilder{grant: Grant{
		Account:       account,
		Name:          None[string](),
		Publish:       Permission{Allow: []string{}, Deny: []string{}},
		Subscribe:     Permission{Allow: []string{}, Deny: []string{}},
		Responses:     None[ResponsePermission](),
		ExpiresInSecs: None[uint64](),
		Tags:          []string{},
		Limits: Limits{
			Subs:          None[int64](),
			Data:          None[int64](),
			Payload:       None[int64](),
			SourceCidrs:   []string{},
			Times:         []TimeWindow{},
			TimesLocation: None[string](),
		},
		ConnectionTypes: []ConnectionType{},
	}}
}

// Named sets the name shown for the user in monitoring.
func (b *GrantBuilder) Named(name string) *GrantBuilder {
	b.grant.Name = Some(name)
	return b
}

// Publish adds subjects the user may publish to.
func (b *GrantBuilder) Publish(subjects ...string) *GrantBuilder {
	b.grant.Publish.Allow = append(b.grant.Publish.Allow, subjects...)
	return b
}

// DenyPublish adds subjects the user may not publish to.
func (b *GrantBuilder) DenyPublish(subjects ...string) *GrantBuilder {
	b.grant.Publish.Deny = append(b.grant.Publish.Deny, subjects...)
	return b
}

// Subscribe adds subjects the user may subscribe to.
func (b *GrantBuilder) Subscribe(subjects ...string) *GrantBuilder {
	b.grant.Subscribe.Allow = append(b.grant.Subscribe.Allow, subjects...)
	return b
}

// DenySubscribe adds subjects the user may not subscribe to.
func (b *GrantBuilder) DenySubscribe(subjects ...string) *GrantBuilder {
	b.grant.Subscribe.Deny = append(b.grant.Subscribe.Deny, subjects...)
	return b
}

// AllowResponses lets the user reply to requests it receives: up to
// maxMessages replies per request, within ttl.
func (b *GrantBuilder) AllowResponses(maxMessages uint32, ttl time.Duration) *GrantBuilder {
	b.grant.Responses = Some(ResponsePermission{MaxMessages: maxMessages, TtlMs: uint64(ttl.Milliseconds())})
	return b
}

// ExpiresIn sets how long the user stays connected before the server
// disconnects it.
func (b *GrantBuilder) ExpiresIn(lifetime time.Duration) *GrantBuilder {
	b.grant.ExpiresInSecs = Some(uint64(lifetime / time.Second))
	return b
}

// Tags adds tags recorded in the user JWT.
func (b *GrantBuilder) Tags(tags ...string) *GrantBuilder {
	b.grant.Tags = append(b.grant.Tags, tags...)
	return b
}

// MaxSubscriptions limits the number of subscriptions.
//
// Deprecated: nats-server does not apply per-user limits to auth callout users, so nats-callout denies a grant that sets one (other than -1): set max_subs in the account's limits instead.
func (b *GrantBuilder) MaxSubscriptions(subs int64) *GrantBuilder {
	b.grant.Limits.Subs = Some(subs)
	return b
}

// MaxData limits the bytes the user may publish in total.
//
// Deprecated: nats-server does not apply per-user limits to auth callout users, so nats-callout denies a grant that sets one (other than -1): nats-server has no byte limit for them.
func (b *GrantBuilder) MaxData(bytes int64) *GrantBuilder {
	b.grant.Limits.Data = Some(bytes)
	return b
}

// MaxPayload limits the size of one message.
//
// Deprecated: nats-server does not apply per-user limits to auth callout users, so nats-callout denies a grant that sets one (other than -1): set max_payload in the account's limits instead.
func (b *GrantBuilder) MaxPayload(bytes int64) *GrantBuilder {
	b.grant.Limits.Payload = Some(bytes)
	return b
}

// FromNetworks adds networks the user may connect from, such as `10.0.0.0/8`.
func (b *GrantBuilder) FromNetworks(cidrs ...string) *GrantBuilder {
	b.grant.Limits.SourceCidrs = append(b.grant.Limits.SourceCidrs, cidrs...)
	return b
}

// During adds a daily window (`HH:MM:SS` to `HH:MM:SS`) during which the user
// may be connected. It needs InTimeZone.
func (b *GrantBuilder) During(start, end string) *GrantBuilder {
	b.grant.Limits.Times = append(b.grant.Limits.Times, TimeWindow{Start: start, End: end})
	return b
}

// InTimeZone sets the IANA time zone of the windows given with During.
func (b *GrantBuilder) InTimeZone(location string) *GrantBuilder {
	b.grant.Limits.TimesLocation = Some(location)
	return b
}

// ConnectionTypes restricts the connection types the user may use.
func (b *GrantBuilder) ConnectionTypes(connectionTypes ...ConnectionType) *GrantBuilder {
	b.grant.ConnectionTypes = append(b.grant.ConnectionTypes, connectionTypes...)
	return b
}

// Build returns the grant.
func (b *GrantBuilder) Build() Grant { return b.grant }

// Allow admits the user with this grant.
func (b *GrantBuilder) Allow() Decision { return types.MakeDecisionAllow(b.grant) }

// Deny refuses the user, with a reason for the operator's logs (never shown
// to the client).
func Deny(reason string) Decision { return types.MakeDecisionDeny(reason) }

// IsAllow reports whether the decision admits the user.
func IsAllow(decision Decision) bool { return decision.Tag() == types.Decision_Allow }

// GrantOf returns the grant of a decision that admits the user.
func GrantOf(decision Decision) (Grant, bool) {
	if !IsAllow(decision) {
		return Grant{}, false
	}
	return decision.Allow(), true
}

// DenyReason returns the reason of a decision that refuses the user.
func DenyReason(decision Decision) (string, bool) {
	if IsAllow(decision) {
		return "", false
	}
	return decision.Deny(), true
}

// LogDebug, LogInfo, LogWarn and LogError call Log at their level.
func LogDebug(message string) { Log(LevelDebug, message) }

// LogInfo logs at info level.
func LogInfo(message string) { Log(LevelInfo, message) }

// LogWarn logs at warn level.
func LogWarn(message string) { Log(LevelWarn, message) }

// LogError logs at error level.
func LogError(message string) { Log(LevelError, message) }
