//! `agentwire-bench`: the load generator as its own binary (same as `agentwire bench`).

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "agentwire-bench",
    version,
    about = "Load generator for agentwire."
)]
struct Cli {
    #[command(flatten)]
    args: agentwire_bench::BenchArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    agentwire_bench::main(Cli::parse().args).await
}
