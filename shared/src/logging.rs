//! Structured JSON logs (tracing). Log lines carry ids, counts and error codes; never
//! message bodies, tokens, secrets or phone numbers.
//!
//! Every line a relay step logs carries its correlation ids (decision 0038) as the fields of
//! the step's span, which the JSON lines include (`span`): the tenant, our conversation and
//! message ids, the Bitrix24 chat and message ids when known, and `provider_ref`, the digest
//! of the provider's message id ([`provider_ref`]). A WhatsApp wamid is base64 of the
//! customer's phone number and more, so it is never logged itself.

use sha2::{Digest, Sha256};
use tracing_subscriber::fmt::MakeWriter;

/// The correlation id of a provider message id (a wamid, an Instagram mid): the first 16 hex
/// digits of its SHA-256. Support recomputes it from a wamid Meta or a customer gives them
/// (`printf %s "$WAMID" | sha256sum | cut -c1-16`) and finds the relay's lines; a line does
/// not give the wamid back (its random part is not guessable), hence not the phone number in
/// it. It is also the suffix of our message id (`MSG#<ms>#<provider_ref>`) of an inbound
/// message.
pub fn provider_ref(provider_message_id: &str) -> String {
    let digest = Sha256::digest(provider_message_id.as_bytes());
    hex::encode(&digest[..8])
}

fn filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// The Lambda functions' JSON log lines, written to `writer`, level `level`: one JSON object
/// per line with the current span's fields (the correlation ids). The functions log through
/// [`init_json`]; tests capture the same lines with their own writer.
pub fn json_subscriber<W>(writer: W, level: &str) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_current_span(true)
        .with_span_list(false)
        .without_time()
        .with_writer(writer)
        .finish()
}

/// JSON logs to stdout, level from `RUST_LOG` (default `info`). Safe to call twice.
pub fn init_json() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter())
        .with_current_span(true)
        .with_span_list(false)
        .without_time()
        .try_init();
}

/// Human-readable logs for the local server, on stderr: stdout is for what the server
/// prints for its user (where it listens), which scripts and tests read. The text format
/// shows the span's fields (the correlation ids) before each line.
pub fn init_text() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_ref_is_the_suffix_of_the_message_id_and_holds_no_digit_run_of_the_number() {
        let wamid = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ1NzgyQjE4Njg3RTZDRjhBNDgyRgA=";
        let r = provider_ref(wamid);
        assert_eq!(r.len(), 16);
        assert_eq!(
            r,
            hex::encode(Sha256::digest(wamid.as_bytes()))[..16].to_owned()
        );
        assert!(!r.contains("16505551234"));
    }
}
