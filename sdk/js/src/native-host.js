// Stands in for the host's `log` when a policy runs natively, under
// `nats-callout-js test`: lines go to standard error.
export function log(level, message) {
  process.stderr.write(`${level.toUpperCase()} ${message}\n`);
}
