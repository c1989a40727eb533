//! Structured JSON logs (tracing). Log lines carry ids, counts and error codes; never
//! message bodies, tokens, secrets or phone numbers.
//!
//! Every line a relay step logs carries its correlation ids (decision 0038) as the fields of
//! the step's span, which the JSON lines include (`span`): the tenant, our conversation and
//! message ids, the Bitrix24 chat and message ids when known, and `provider_ref`, the digest
//! of the provider's message id ([`provider_ref`]). A WhatsApp wamid is base64 of the
//! customer's phone number and more, so it is never logged itself.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

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

/// Log lines kept in memory, as [`json_subscriber`] writes them: for tests that read what the
/// code logs (no body, token or phone number on any line; which span a line carries). Every
/// clone writes to the same buffer, and each event is one write, so the buffer always ends at
/// a line boundary.
#[derive(Clone, Default)]
pub struct MemoryLog(Arc<Mutex<Vec<u8>>>);

impl MemoryLog {
    /// The process's log from the first call on, in the functions' JSON format at `level` (the
    /// first call's level), through the global subscriber, installed once. A thread-scoped
    /// subscriber misses the events whose call sites another thread reached first without it
    /// (tracing caches them as disabled), so a test binary whose tests run on several threads
    /// captures globally and picks its own lines out of everyone's.
    ///
    /// # Panics
    /// If another global subscriber was installed before.
    pub fn global(level: &str) -> MemoryLog {
        static GLOBAL: OnceLock<MemoryLog> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                let log = MemoryLog::default();
                tracing::subscriber::set_global_default(json_subscriber(log.clone(), level))
                    .expect("no other global subscriber in this process");
                log
            })
            .clone()
    }

    fn bytes(&self) -> MutexGuard<'_, Vec<u8>> {
        // A writer that panicked mid-line cannot have left half a line: each write is whole.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bytes kept so far: a mark for [`MemoryLog::text_from`].
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    /// Whether nothing was logged yet.
    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    /// Every line kept, as text.
    pub fn text(&self) -> String {
        self.text_from(0)
    }

    /// The lines kept from the mark `start` on, as text.
    pub fn text_from(&self, start: usize) -> String {
        String::from_utf8_lossy(&self.bytes()[start..]).into_owned()
    }

    /// Every line kept, parsed. A line that is not JSON is a `Value::String` of itself, so an
    /// assertion on the lines still sees it.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| l.into()))
            .collect()
    }
}

impl std::io::Write for MemoryLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for MemoryLog {
    type Writer = MemoryLog;

    fn make_writer(&'a self) -> MemoryLog {
        self.clone()
    }
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
