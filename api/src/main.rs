use anyhow::Context;

// Allocation is a quarter of the API's CPU under load with glibc's allocator (perf); mimalloc
// halves that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init("api");
    let settings = api::configuration::Settings::from_env()?;
    if settings.auth.uses_dev_defaults() {
        tracing::warn!("using the local development API key / JWT secret: set API_KEYS and JWT_HS256_SECRET (or JWT_RS256_PUBLIC_KEY) in production");
    }
    let app = api::startup::Application::build(&settings)
        .await
        .context("building the API")?;
    tracing::info!(host = %settings.host, port = app.port(), "API listening");
    app.run_until_stopped(common::shutdown::signal()).await?;
    Ok(())
}
