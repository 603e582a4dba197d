module github.com/nats-callout/nats-callout/plugins/kv-users

go 1.27

require github.com/nats-callout/nats-callout/sdk/go v0.0.0

replace github.com/nats-callout/nats-callout/sdk/go => ../../sdk/go
