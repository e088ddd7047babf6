//! `agentwire-bench`: the load generator's binary (`cargo run --release -p agentwire-bench --
//! runs …`). The server binary `agentwire` does not link it.

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
