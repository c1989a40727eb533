//! A thin, typed client for Meta's Graph API (no Meta crate: formats follow Meta's developer
//! documentation, cited where they are used).
//!
//! - [`GraphConfig`]: where the Graph API is (`https://graph.facebook.com` by default; plain
//!   http only on loopback, for fakes), which version, timeouts.
//! - [`GraphClient`]: [`GraphClient::get_json`] / [`GraphClient::post_json`] for any call,
//!   and the WhatsApp Cloud API media calls: [`GraphClient::media_info`] (the short-lived
//!   download URL of a media id) and [`GraphClient::download`] (that URL, with the same token);
//!   [`GraphClient::download_public`] for Meta CDN URLs that need no token (Instagram
//!   attachments).
//! - Sending: [`GraphClient::send_whatsapp`] and [`GraphClient::upload_whatsapp_media`]
//!   (WhatsApp Cloud API), [`GraphClient::send_instagram`] (Instagram Send API).
//! - Ownership: [`GraphClient::debug_token`], [`GraphClient::waba_phone_numbers`],
//!   [`GraphClient::instagram_me`], [`GraphClient::page_instagram_account`]: what a token
//!   says about itself and the accounts it reaches.
//! - Onboarding: [`GraphClient::exchange_business_code`], [`GraphClient::subscribe_app`],
//!   [`GraphClient::register_number`] (Embedded Signup), [`GraphClient::instagram_exchange_code`],
//!   [`GraphClient::instagram_long_lived`], [`GraphClient::instagram_refresh`],
//!   [`GraphClient::instagram_subscribe`] (Instagram Login).
//! - Revocation: [`GraphClient::unsubscribe_app`], [`GraphClient::revoke_permissions`].
//! - [`HostPolicy`]: the only hosts media is fetched from (Meta's CDNs, loopback for tests),
//!   so neither a token nor a request can be sent anywhere else.
//! - [`GraphError`]: Meta's error JSON, typed by what to do next
//!   ([`GraphError::is_retryable`]).

mod client;
mod config;
mod error;
mod hosts;
mod instagram;
mod mentions;
mod onboarding;
mod ownership;
mod private_reply;
mod revoke;
mod sender_actions;
pub mod subscriptions;
mod templates;
mod upload;
pub mod versions;
mod whatsapp;

pub use client::{Downloaded, GraphClient, MediaInfo, MAX_JSON_BYTES, MAX_REDIRECTS};
pub use config::{
    GraphConfig, GraphConfigError, DEFAULT_BASE_URL, DEFAULT_VERSION, ENV_BASE_URL, ENV_TIMEOUT_MS,
    ENV_VERSION,
};
pub use error::{GraphApiError, GraphError, RATE_LIMIT_CODES};
pub use hosts::{HostPolicy, META_MEDIA_DOMAINS};
pub use instagram::{
    InstagramAttachmentType, InstagramContent, InstagramMessage, InstagramSender, InstagramSent,
    InstagramTiming, InstagramUserProfile, INSTAGRAM_TEXT_MAX_BYTES,
};
pub use mentions::{
    mentioned_comment_fields, mentioned_media_fields, MentionedComment, MentionedCommentMedia,
    MentionedMedia,
};
pub use onboarding::IssuedToken;
pub use ownership::{
    BusinessPhoneNumber, GranularScope, InstagramMe, TokenError, TokenInfo, MAX_PHONE_PAGES,
    WHATSAPP_MANAGEMENT, WHATSAPP_MESSAGING,
};
pub use private_reply::InstagramPrivateReply;
pub use sender_actions::InstagramSenderAction;
pub use templates::{MessageTemplate, MAX_TEMPLATE_PAGES};
pub use upload::{multipart_body, MediaUpload};
pub use whatsapp::{
    SentContact, SentMessage, TemplateMessage, WhatsAppContent, WhatsAppMediaType, WhatsAppMessage,
    WhatsAppRecipient, WhatsAppSent, MAX_CALLBACK_DATA, WHATSAPP_CAPTION_MAX_CHARS,
    WHATSAPP_TEXT_MAX_CHARS,
};
