// TEMP STUB
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxConfig {
    #[arg(long)]
    pub x: Option<String>,
}
pub async fn run(_c: SandboxConfig) -> anyhow::Result<()> {
    Ok(())
}
