use std::net::TcpListener;

use anyhow::Context;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init("schema-registry");
    let settings = schema_registry::Settings::from_env()?;
    let host = common::config::env_or("REGISTRY_HOST", "127.0.0.1");
    let port: u16 = common::config::env_parse("REGISTRY_PORT", 8081)?;
    let listener = TcpListener::bind((host.as_str(), port))
        .with_context(|| format!("binding {host}:{port}"))?;
    schema_registry::run(settings, listener, common::shutdown::signal()).await?;
    Ok(())
}
