//! `local-server`: runs Wappline locally. See `--help`.

use clap::Parser;
use local_server::{LocalConfig, LocalServer};

#[tokio::main]
async fn main() {
    wappline::logging::init_text();
    let config = LocalConfig::parse();
    let server = match LocalServer::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("local-server: {e}");
            std::process::exit(1);
        }
    };
    // Tests and scripts read this line to learn the port.
    println!(
        "Wappline local server listening on http://{}",
        server.addr()
    );
    println!("  admin API:  http://{}/admin/tenants", server.addr());
    println!("  sign-in:    http://{}/auth/sign-in", server.addr());
    println!("  Meta webhook: http://{}/webhooks/meta", server.addr());
    println!("  data dir:   {}", server.data_dir().display());
    println!(
        "  account email (invitations, resets): {}",
        server.data_dir().join("outbox").display()
    );
    if let Some(path) = server.generated_token_file() {
        println!("  admin token: generated, stored in {}", path.display());
    }
    let _ = tokio::signal::ctrl_c().await;
    println!("shutting down");
    server.shutdown().await;
}
