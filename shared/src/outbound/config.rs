//! Settings of the send worker: retry delays, pacing, file limits, and the Graph API clients
//! it sends through.

use std::time::Duration;

use super::files::FileFetcher;
use crate::graph::{GraphClient, GraphConfig, GraphConfigError};
use crate::pacing::PacingConfig;

/// Where the Instagram API with Instagram Login is (`graph.instagram.com`); read by
/// [`instagram_config`].
pub const ENV_INSTAGRAM_BASE_URL: &str = "INSTAGRAM_API_BASE_URL";
pub const DEFAULT_INSTAGRAM_BASE_URL: &str = "https://graph.instagram.com";
/// Messages per second of a Coexistence number.
pub const COEXISTENCE_MPS: u32 = 20;

/// Messages per second per WhatsApp business number (Meta's default throughput is 80; 1,000
/// after an upgrade); read by [`OutboundConfig::from_lookup`].
pub const ENV_WHATSAPP_MPS: &str = "WHATSAPP_MESSAGES_PER_SECOND";
/// Largest operator file downloaded for sending, in bytes; read by
/// [`OutboundConfig::from_lookup`].
pub const ENV_MAX_FILE_BYTES: &str = "SEND_MAX_FILE_BYTES";

/// How long a job waits before its next attempt. The delays grow with the job's own failed
/// attempts (decision 0069), so they also decide how long Meta may be unavailable before a
/// job reaches the dead-letter queue (after [`OutboundRetryPolicy::max_attempts`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboundRetryPolicy {
    /// Meta unavailable (HTTP 5xx, network, temporary codes): `base` × 4^(receives − 1).
    pub base: Duration,
    /// Upper bound of every delay.
    pub max: Duration,
    /// Throughput limits (130429, 80007, 4, 17, 32, 613, HTTP 429) without a `Retry-After`:
    /// `rate_limited` × 4^(receives − 1).
    pub rate_limited: Duration,
    /// The pair rate limit (131056, one recipient): `pair_rate` × 2^(receives − 1).
    pub pair_rate: Duration,
    /// Failed attempts (outages and Meta's limits; not our own pacing) before the operator is
    /// told and the job goes to the dead-letter queue.
    pub max_attempts: u32,
}

impl Default for OutboundRetryPolicy {
    /// 15 s, 1 min, 4 min, 16 min for outages (about 21 minutes before the dead-letter
    /// queue); 30 s, 2 min, 8 min, 30 min for throughput limits; 10 s doubling for the pair
    /// rate (Meta allows about one message every 6 seconds to one recipient).
    fn default() -> Self {
        OutboundRetryPolicy {
            base: Duration::from_secs(15),
            max: Duration::from_secs(30 * 60),
            rate_limited: Duration::from_secs(30),
            pair_rate: Duration::from_secs(10),
            max_attempts: crate::own_attempts::MAX_ATTEMPTS,
        }
    }
}

fn grow(base: Duration, factor: u32, attempts: u32, max: Duration) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    base.saturating_mul(factor.saturating_pow(exp)).min(max)
}

impl OutboundRetryPolicy {
    /// Delay after an outage on the job's `attempts`-th failed attempt.
    pub fn transient(&self, attempts: u32) -> Duration {
        grow(self.base, 4, attempts, self.max)
    }

    /// Delay after a throughput limit; Meta's `Retry-After` wins when it is longer.
    pub fn rate_limited(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        let ours = grow(self.rate_limited, 4, attempts, self.max);
        retry_after.map_or(ours, |r| r.max(ours).min(self.max))
    }

    /// Delay after the pair rate limit.
    pub fn pair_rate(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        let ours = grow(self.pair_rate, 2, attempts, self.max);
        retry_after.map_or(ours, |r| r.max(ours).min(self.max))
    }

    /// Delays of a few milliseconds, for tests.
    pub fn immediate() -> Self {
        OutboundRetryPolicy {
            base: Duration::from_millis(1),
            max: Duration::from_millis(10),
            rate_limited: Duration::from_millis(1),
            pair_rate: Duration::from_millis(1),
            max_attempts: crate::own_attempts::MAX_ATTEMPTS,
        }
    }
}

/// In-process pacing (token buckets; see [`crate::pacing`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutboundPacing {
    /// Per WhatsApp business number: Meta's default throughput, 80 messages per second.
    pub whatsapp_number: PacingConfig,
    /// Per WhatsApp number shared with the WhatsApp Business app (Coexistence): Meta fixes
    /// its throughput at 20 messages per second ("Onboarding WhatsApp Business app users",
    /// Limitations), whatever `WHATSAPP_MESSAGES_PER_SECOND` says.
    pub whatsapp_coexistence: PacingConfig,
    /// Per Instagram account: the Send API's 300 calls per second for text.
    pub instagram_account: PacingConfig,
    /// Per Instagram account, audio and video attachments: 10 per second.
    pub instagram_media: PacingConfig,
    /// Per recipient (one conversation): WhatsApp's pair rate, about one message every 6
    /// seconds with bursts (Meta lets a burst of up to 45 borrow against later quota). Never
    /// waited for in the handler: an empty bucket means "retry later".
    pub recipient: PacingConfig,
}

impl Default for OutboundPacing {
    fn default() -> Self {
        OutboundPacing {
            whatsapp_number: PacingConfig {
                rate_per_sec: 80.0,
                burst: 80.0,
                max_wait: Duration::from_secs(1),
            },
            whatsapp_coexistence: PacingConfig {
                rate_per_sec: f64::from(COEXISTENCE_MPS),
                burst: f64::from(COEXISTENCE_MPS),
                max_wait: Duration::from_secs(1),
            },
            instagram_account: PacingConfig {
                rate_per_sec: 300.0,
                burst: 300.0,
                max_wait: Duration::from_secs(1),
            },
            instagram_media: PacingConfig {
                rate_per_sec: 10.0,
                burst: 10.0,
                max_wait: Duration::from_secs(1),
            },
            recipient: PacingConfig {
                rate_per_sec: 1.0 / 6.0,
                burst: 45.0,
                max_wait: Duration::ZERO,
            },
        }
    }
}

/// Everything configurable about sending.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutboundConfig {
    pub retry: OutboundRetryPolicy,
    pub pacing: OutboundPacing,
    /// Largest operator file downloaded (Meta's own limits per media type apply too: the
    /// largest is 100 MB for WhatsApp documents).
    pub max_file_bytes: usize,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            retry: OutboundRetryPolicy::default(),
            pacing: OutboundPacing::default(),
            max_file_bytes: 100 * 1024 * 1024,
        }
    }
}

/// A setting was refused; the message names it and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct OutboundConfigError {
    pub field: &'static str,
    pub reason: String,
}

impl OutboundConfig {
    /// Defaults, with [`ENV_WHATSAPP_MPS`] (1 to 1000) and [`ENV_MAX_FILE_BYTES`] (1 KiB to
    /// 100 MiB) when set.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, OutboundConfigError> {
        let mut config = OutboundConfig::default();
        let non_empty = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        if let Some(v) = non_empty(ENV_WHATSAPP_MPS) {
            let mps: u32 = v
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| OutboundConfigError {
                    field: ENV_WHATSAPP_MPS,
                    reason: "must be a whole number from 1 to 1000".into(),
                })?;
            config.pacing.whatsapp_number.rate_per_sec = f64::from(mps);
            config.pacing.whatsapp_number.burst = f64::from(mps);
        }
        if let Some(v) = non_empty(ENV_MAX_FILE_BYTES) {
            config.max_file_bytes = v
                .trim()
                .parse()
                .ok()
                .filter(|n| (1024..=100 * 1024 * 1024).contains(n))
                .ok_or_else(|| OutboundConfigError {
                    field: ENV_MAX_FILE_BYTES,
                    reason: "must be a number of bytes from 1024 to 104857600".into(),
                })?;
        }
        Ok(config)
    }
}

/// The HTTP clients the worker sends through. Cheap to clone.
#[derive(Clone, Debug)]
pub struct OutboundClients {
    /// `graph.facebook.com`: WhatsApp, and Instagram accounts connected through a Page.
    pub graph: GraphClient,
    /// `graph.instagram.com`: Instagram accounts connected with Instagram Login.
    pub instagram: GraphClient,
    /// Downloads operator files from Bitrix24.
    pub files: FileFetcher,
}

impl OutboundClients {
    /// The client whose host fits `sender`: `graph.instagram.com` for Instagram Login
    /// accounts (`me`), `graph.facebook.com` for accounts linked to a Page.
    pub fn for_instagram(&self, sender: &crate::graph::InstagramSender) -> &GraphClient {
        match sender {
            crate::graph::InstagramSender::Me => &self.instagram,
            crate::graph::InstagramSender::Page(_) => &self.graph,
        }
    }

    /// Clients for the two Graph hosts. Operator files may come from loopback hosts only
    /// when the Graph API itself is a loopback fake (tests, the local server).
    pub fn new(graph: GraphConfig, instagram: GraphConfig) -> Result<Self, GraphConfigError> {
        let loopback = graph.is_loopback();
        Ok(OutboundClients {
            graph: GraphClient::new(graph)?,
            instagram: GraphClient::new(instagram)?,
            files: FileFetcher::new(loopback).map_err(|e| GraphConfigError::Tls(e.to_string()))?,
        })
    }

    /// Allows (or not) operator files on loopback hosts: for a local server whose Bitrix24
    /// portal is a loopback fake while the Graph API is real.
    pub fn with_loopback_files(mut self, allow: bool) -> Self {
        self.files = self.files.with_loopback(allow);
        self
    }
}

/// Where Instagram-Login accounts are reached: [`ENV_INSTAGRAM_BASE_URL`] when `configured`,
/// else `https://graph.instagram.com`, or the Graph base URL when that is a loopback fake;
/// with the Graph settings' version and policy.
pub fn instagram_config(
    graph: &GraphConfig,
    configured: Option<&str>,
) -> Result<GraphConfig, GraphConfigError> {
    let url = configured.map(str::to_owned).unwrap_or_else(|| {
        if graph.is_loopback() {
            graph.base_url().to_owned()
        } else {
            DEFAULT_INSTAGRAM_BASE_URL.to_owned()
        }
    });
    graph.clone().with_base_url(&url).map_err(|e| match e {
        GraphConfigError::Invalid { reason, .. } => GraphConfigError::Invalid {
            field: ENV_INSTAGRAM_BASE_URL,
            reason,
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_bounded() {
        let r = OutboundRetryPolicy::default();
        assert_eq!(r.transient(1), Duration::from_secs(15));
        assert_eq!(r.transient(2), Duration::from_secs(60));
        assert_eq!(r.transient(4), Duration::from_secs(960));
        assert_eq!(r.transient(9), Duration::from_secs(1800));
        assert_eq!(r.rate_limited(1, None), Duration::from_secs(30));
        assert_eq!(
            r.rate_limited(1, Some(Duration::from_secs(90))),
            Duration::from_secs(90)
        );
        assert_eq!(r.pair_rate(3, None), Duration::from_secs(40));
    }

    #[test]
    fn settings_from_the_environment() {
        let c = OutboundConfig::from_lookup(|k| match k {
            ENV_WHATSAPP_MPS => Some("1000".into()),
            ENV_MAX_FILE_BYTES => Some("2048".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.pacing.whatsapp_number.rate_per_sec, 1000.0);
        assert_eq!(c.max_file_bytes, 2048);
        assert!(
            OutboundConfig::from_lookup(|k| (k == ENV_WHATSAPP_MPS).then(|| "0".into())).is_err()
        );
        assert!(OutboundConfig::from_lookup(|_| None).is_ok());
    }

    #[test]
    fn instagram_host_follows_a_loopback_graph() {
        let loopback = GraphConfig::default()
            .with_base_url("http://127.0.0.1:9/")
            .unwrap();
        let c = instagram_config(&loopback, None).unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:9");
        let public = GraphConfig::default();
        assert_eq!(
            instagram_config(&public, None).unwrap().base_url(),
            DEFAULT_INSTAGRAM_BASE_URL
        );
        let e = instagram_config(&public, Some("http://example.com")).unwrap_err();
        assert!(e.to_string().starts_with(ENV_INSTAGRAM_BASE_URL), "{e}");
    }
}
