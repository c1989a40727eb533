//! Meta webhooks (WhatsApp Cloud API and Instagram Messaging), as pure domain code:
//!
//! 1. [`verify_signature`]: `X-Hub-Signature-256` over the exact raw body, before anything
//!    is parsed;
//! 2. [`split_webhook`]: the body, parsed once, into every [`InboundEvent`] it holds (Meta
//!    batches entries, changes, messages, statuses and echoes in one delivery);
//! 3. each [`InboundEvent`] is one inbound queue message; the worker routes it by
//!    [`InboundEvent::account`] and dedupes it by [`InboundEvent::provider_event_id`].
//!
//! [`whatsapp`] and [`instagram`] hold tolerant serde models of the payloads as Meta
//! documents them; samples of every shape live in `events/meta-webhook/`.

pub mod account;
pub mod coexistence;
mod content;
mod event;
mod ids;
pub mod instagram;
mod item;
mod lenient;
pub mod routing;
mod signature;
mod split;
pub mod whatsapp;

pub use event::{
    AccountParseError, AccountRef, Billing, Content, CustomerId, CustomerRef, DeliveryStatus,
    EventKind, InboundEvent, Location, Media, MediaKind, MetaError, Order, OrderItem, Party,
    Referral, ReferredProduct, ReplyTo, SharedContact, SharedPhone, EVENT_SCHEMA_VERSION,
};
pub use ids::{InstagramUserId, MessageId, WhatsAppPhone, WhatsAppUserId};
pub use item::Item;
pub use signature::{
    verify_signature, verify_signature_any, AppSecret, InvalidAppSecret, SignatureError,
    SIGNATURE_HEADER,
};
pub use split::{
    split_webhook, split_webhook_borrowed, Ignored, WebhookBatch, WebhookParseError,
    INSTAGRAM_OBJECT, MAX_EVENTS, MAX_ITEMS, WHATSAPP_OBJECT,
};

#[cfg(test)]
mod tests;
