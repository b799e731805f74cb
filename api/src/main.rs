use anyhow::Context;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init("api");
    let settings = api::configuration::Settings::from_env()?;
    let app = api::startup::Application::build(&settings).context("building the API")?;
    tracing::info!(host = %settings.host, port = app.port(), "API listening");
    app.run_until_stopped(common::shutdown::signal()).await?;
    Ok(())
}
