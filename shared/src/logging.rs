//! Structured JSON logs (tracing). Log lines carry ids, counts and error codes; never
//! message bodies, tokens or secrets.

/// JSON logs to stdout, level from `RUST_LOG` (default `info`). Safe to call twice.
pub fn init_json() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .without_time()
        .try_init();
}

/// Human-readable logs for the local server, on stderr: stdout is for what the server
/// prints for its user (where it listens), which scripts and tests read.
pub fn init_text() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}
