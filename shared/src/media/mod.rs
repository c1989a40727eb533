//! Media of inbound messages, for Bitrix24: signed, expiring links of our own that fetch from
//! Meta on each request. Nothing of a media body is stored by us.
//!
//! - [`MediaLinks`]: makes links `{public_base_url}/media/{token}` (the CRM sync's
//!   [`MediaLinker`](crate::crm_sync::MediaLinker)) and verifies them; the token format is in
//!   [`token`].
//! - [`MediaProxy`]: serves a link: verify (forged, altered, truncated or expired → error),
//!   check the tenant still owns the channel (a disconnected channel's links stop at once),
//!   decrypt the channel's access token, fetch from the Graph API (WhatsApp) or Meta's CDN
//!   (Instagram, only on Meta's hosts), and hand back the bytes with a safe content type.
//! - [`names`]: safe file names, `Content-Disposition` and content types for the response.

mod links;
pub mod names;
mod proxy;
pub mod token;

pub use links::{
    display_name, LinkConfigError, MediaLinks, DEFAULT_TTL, ENV_KEY, ENV_PREVIOUS_KEY,
    ENV_PUBLIC_BASE_URL, ENV_TTL_SECS, MAX_TTL, MEDIA_PATH_PREFIX,
};
pub use names::{content_disposition, safe_content_type, safe_filename};
pub use proxy::{MediaError, MediaProxy, MediaResponse, DEFAULT_MAX_BYTES};
pub use token::{KeyError, LinkError, MediaClaims, MediaLinkKey, MediaRef};
