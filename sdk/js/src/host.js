// The host's log function, imported from the component's `nats:callout/host`
// interface. Native test builds (`nats-callout-js test`) replace this module
// with src/native-host.js.
export { log } from 'nats:callout/host@0.1.0';
