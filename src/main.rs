use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    patchbay::telemetry::init();
    let cli = patchbay::cli::Cli::parse();
    match patchbay::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
