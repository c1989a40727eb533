//! `local-server`: runs Wappline locally. See `--help`.

use std::io::Write;

use clap::Parser;
use local_server::{LocalConfig, LocalServer};

/// The local server allocates with mimalloc (decision 0109).
#[global_allocator]
static ALLOCATOR: local_server::Allocator = local_server::Allocator;

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
    // Tests and scripts read the first line to learn the port. A reader that goes away after
    // it (a closed pipe) must not take the server down: write errors are ignored.
    let mut banner = format!(
        "Wappline local server listening on http://{addr}\n  admin API:  http://{addr}/admin/tenants\n  console:    http://{addr}/app\n  sign-in:    http://{addr}/auth/sign-in\n  Meta webhook: http://{addr}/webhooks/meta\n  data dir:   {}\n  account email (invitations, resets): {}\n",
        server.data_dir().display(),
        server.data_dir().join("outbox").display(),
        addr = server.addr(),
    );
    if let Some(path) = server.generated_token_file() {
        banner.push_str(&format!(
            "  admin token: generated, stored in {}\n",
            path.display()
        ));
    }
    say(&banner);
    let _ = tokio::signal::ctrl_c().await;
    say("shutting down\n");
    server.shutdown().await;
}

/// Writes to stdout, ignoring a closed pipe.
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
