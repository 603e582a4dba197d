module {{name}}

go 1.27

require github.com/nats-callout/nats-callout/sdk/go v0.0.0

// The SDK from a nats-callout checkout (or an unpacked release).
replace github.com/nats-callout/nats-callout/sdk/go => {{sdk}}/go
