module github.com/nats-callout/nats-callout/sdk/go

go 1.27
