//! The `nats-callout` binary: everything it does is in the library's `cli`.

fn main() -> anyhow::Result<()> {
    nats_callout::cli::main()
}
