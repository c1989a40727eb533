//! A thin, typed client for the Bitrix24 REST API, as an OAuth application (no Bitrix24 crate:
//! formats follow apidocs.bitrix24.com, cited where they are used).
//!
//! - [`BitrixConfig`]: the application's credentials, the OAuth server, and where portals are
//!   reached (`https://{domain}/rest/`, or `{portal_base_url}/{domain}/rest/` for loopback
//!   fakes; plain http only on loopback).
//! - [`BitrixClient`]: [`BitrixClient::call`] for any method, [`BitrixClient::refresh`] for a
//!   new token pair, [`BitrixClient::call_with_refresh`] and [`PortalSession`] for calls that
//!   refresh an expired token once, store the new pair through a [`TokenStore`], and repeat.
//! - [`imconnector`]: typed `imconnector.*` requests and answers for the Open Lines connector;
//!   each message method also as a [`MethodCall`] (method and parameters, unsent).
//! - [`BatchCommand`], [`BatchAnswer`], [`PortalSession::batch`]: up to 50 calls in one
//!   request (`batch`).
//! - [`im`]: `im.dialog.messages.get`, to see which of our messages a chat holds
//!   (`CONNECTOR_MID`), e.g. after a send whose answer was lost.
//! - [`users`]: `user.current`, `user.admin`, `app.info` with a user's own token (who opened
//!   an application page, and may they change settings).
//! - [`BitrixError`]: what went wrong, by what to do next ([`BitrixError::is_retryable`],
//!   [`BitrixError::is_ambiguous`] when the request may have been executed anyway).
//! - [`Pacer`]: per-portal token buckets (2 requests/s, burst 50 by default) that wait briefly
//!   or refuse with a retry time, never spin.

mod batch;
pub mod bbcode;
mod client;
mod config;
pub mod dialogs;
mod error;
pub mod events;
pub mod im;
pub mod imconnector;
pub mod openlines;
mod pacing;
pub mod quote;
mod tokens;
mod transport;
pub mod users;

pub use batch::{batch_params, php_query, BatchAnswer, BatchCommand, BATCH, MAX_BATCH_COMMANDS};
pub use client::{
    BitrixClient, PortalSession, APP_INFO, EVENT_BIND, EVENT_UNBIND, PLACEMENT_BIND,
    PLACEMENT_UNBIND, UNREGISTER_CONNECTOR,
};
pub use config::{
    is_loopback_host, BitrixConfig, BitrixConfigError, EndpointUrl, DEFAULT_OAUTH_URL,
    ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_OAUTH_URL, ENV_PORTAL_BASE_URL, ENV_TIMEOUT_MS,
};
pub use error::{BitrixError, OPERATION_LIMIT_RETRY_AFTER, QUERY_LIMIT_RETRY_AFTER};
pub use im::ChatMessage;
pub use imconnector::{
    ConnectorData, ConnectorId, ConnectorRegistration, CrmChat, CrmFile, CrmUser, DeleteCrmMessage,
    ImRef, MethodCall, OpenLineId, OutgoingCrmMessage, SentCrmMessage, StatusUpdate,
};
pub use pacing::{Pacer, PacingConfig, TokenBucket};
pub use tokens::{TokenPair, TokenStore, TokenStoreError};
pub use users::{AppInfo, CurrentUser, USER_ADMIN, USER_CURRENT};
