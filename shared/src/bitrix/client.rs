//! The client: REST calls, token refresh, pacing.
//!
//! A REST call is a POST of a JSON object to `{rest root}{method}` with the access token in
//! the body as `auth` (apidocs' "cURL (OAuth)" examples: `-d '{..., "auth":
//! "**put_access_token_here**"}' https://{portal}/rest/{method}`). Success is HTTP 200 with
//! `{"result": ..., "time": {...}}`; failure is `{"error": ..., "error_description": ...}`.
//!
//! A refresh is a GET of `{oauth_url}?grant_type=refresh_token&client_id=..&client_secret=..
//! &refresh_token=..` (apidocs "Automatic Renewal of OAuth 2.0 Tokens").
//!
//! Logs carry the portal, the method, the HTTP status, the error code and the duration; never
//! tokens, URLs with secrets, parameters or answers (they hold message text).

use std::sync::Arc;
use std::time::Instant;

use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::{Map, Value};

use crate::ids::BitrixDomain;
use crate::secret::Secret;

use super::batch::{batch_params, BatchAnswer, BatchCommand, BATCH};
use super::config::{BitrixConfig, BitrixConfigError};
use super::error::{classify, BitrixError};
use super::im::{self, ChatMessage};
use super::imconnector::{
    self, ConnectorId, DeleteCrmMessage, MethodCall, OpenLineId, OutgoingCrmMessage,
    SentCrmMessage, StatusUpdate,
};
use super::pacing::Pacer;
use super::tokens::{TokenPair, TokenStore};
use super::transport::{HttpAnswer, Transport, TransportError};

/// The Bitrix24 REST client. Cheap to clone: clones share one connection pool and one set of
/// per-portal pacing buckets. Build it once per process (Lambda init).
#[derive(Clone)]
pub struct BitrixClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: BitrixConfig,
    transport: Transport,
    pacer: Pacer,
}

impl std::fmt::Debug for BitrixClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BitrixClient")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// `event.bind`.
pub const EVENT_BIND: &str = "event.bind";

/// `event.unbind`.
pub const EVENT_UNBIND: &str = "event.unbind";
pub const PLACEMENT_BIND: &str = "placement.bind";
pub const PLACEMENT_UNBIND: &str = "placement.unbind";

/// `imconnector.unregister`.
pub const UNREGISTER_CONNECTOR: &str = "imconnector.unregister";
/// `app.info`: the application's status on the portal (`INSTALLED`...).
pub const APP_INFO: &str = "app.info";

/// REST method names: `imconnector.send.messages`, `batch`, `event.bind`...
pub(crate) fn check_method(method: &str) -> Result<(), BitrixError> {
    let ok = !method.is_empty()
        && method.len() <= 128
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
        && !method.starts_with('.')
        && !method.contains("..");
    if ok {
        Ok(())
    } else {
        Err(BitrixError::InvalidRequest(
            "method name must be letters, digits, '.' and '_'".into(),
        ))
    }
}

/// False only when both pairs name a portal and the portals differ.
fn same_portal(a: &TokenPair, b: &TokenPair) -> bool {
    match (&a.member_id, &b.member_id) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn transport_error(e: TransportError) -> BitrixError {
    BitrixError::Unavailable {
        status: None,
        maybe_executed: e.maybe_sent(),
        detail: e.to_string(),
    }
}

fn parse_json(answer: &HttpAnswer) -> Option<Value> {
    serde_json::from_slice(&answer.body).ok()
}

impl BitrixClient {
    /// Builds the client (TLS set-up, connection pool). Fails on a configuration the client
    /// cannot work with.
    pub fn new(config: BitrixConfig) -> Result<Self, BitrixConfigError> {
        let transport = Transport::new(&config)?;
        let pacer = Pacer::new(config.pacing);
        Ok(BitrixClient {
            inner: Arc::new(Inner {
                config,
                transport,
                pacer,
            }),
        })
    }

    pub fn config(&self) -> &BitrixConfig {
        &self.inner.config
    }

    /// The per-portal pacing buckets.
    pub fn pacer(&self) -> &Pacer {
        &self.inner.pacer
    }

    /// Calls `method` on `portal` with `params` (a JSON object, or null for none) and returns
    /// the answer's `result`. Waits for the portal's pacing at most `pacing.max_wait`, else
    /// returns [`BitrixError::RateLimited`] without calling. Never retries by itself.
    pub async fn call(
        &self,
        portal: &BitrixDomain,
        access_token: &Secret,
        method: &str,
        params: Value,
    ) -> Result<Value, BitrixError> {
        check_method(method)?;
        let mut body = match params {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            _ => {
                return Err(BitrixError::InvalidRequest(
                    "params must be a JSON object".into(),
                ))
            }
        };
        body.insert(
            "auth".into(),
            Value::String(access_token.expose().to_owned()),
        );
        let body = serde_json::to_vec(&body)
            .map_err(|e| BitrixError::InvalidRequest(format!("params: {e}")))?;
        let url = format!("{}{method}", self.inner.config.rest_root(portal));
        let request = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| {
                BitrixError::InvalidRequest("portal or method makes no valid URL".into())
            })?;

        if let Err(retry_after) = self.inner.pacer.acquire(portal).await {
            tracing::info!(portal = %portal, method, retry_after_ms = retry_after.as_millis() as u64,
                "bitrix call deferred by local pacing");
            return Err(BitrixError::RateLimited {
                code: "LOCAL_PACING".into(),
                retry_after,
            });
        }

        let started = Instant::now();
        let answer = self.inner.transport.send(request).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                let err = transport_error(e);
                tracing::warn!(portal = %portal, method, elapsed_ms, error = %err, "bitrix call failed");
                return Err(err);
            }
        };
        let json = parse_json(&answer);
        let outcome = match &json {
            Some(Value::Object(o))
                if (200..300).contains(&answer.status)
                    && o.contains_key("result")
                    && !o.contains_key("error") =>
            {
                Ok(o.get("result").cloned().unwrap_or(Value::Null))
            }
            _ => Err(classify(answer.status, json.as_ref(), answer.retry_after)),
        };
        match &outcome {
            Ok(_) => {
                tracing::info!(portal = %portal, method, status = answer.status, elapsed_ms, "bitrix call")
            }
            Err(e) => {
                if e.code() == Some("QUERY_LIMIT_EXCEEDED") {
                    self.inner.pacer.penalize(portal);
                }
                tracing::warn!(portal = %portal, method, status = answer.status, elapsed_ms,
                    kind = e.kind(), code = e.code().unwrap_or(""), "bitrix call failed");
            }
        }
        outcome
    }

    /// Exchanges `refresh_token` for a new pair at the OAuth server. `invalid_grant` (used,
    /// revoked or unknown refresh token), `invalid_client`, `PAYMENT_REQUIRED`... are
    /// [`BitrixError::Unauthorized`]: permanent.
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenPair, BitrixError> {
        let config = &self.inner.config;
        let url = format!(
            "{}?grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}",
            config.oauth_url.as_str(),
            encode(&config.client_id),
            encode(config.client_secret.expose()),
            encode(refresh_token.expose()),
        );
        let request = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|_| BitrixError::InvalidRequest("OAuth URL is not valid".into()))?;
        let started = Instant::now();
        let answer = self.inner.transport.send(request).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                let err = transport_error(e);
                tracing::warn!(elapsed_ms, error = %err, "bitrix token refresh failed");
                return Err(err);
            }
        };
        let json = parse_json(&answer);
        let outcome = match &json {
            Some(v @ Value::Object(o))
                if (200..300).contains(&answer.status) && !o.contains_key("error") =>
            {
                TokenPair::from_oauth_answer(v)
            }
            _ => Err(classify(answer.status, json.as_ref(), answer.retry_after)),
        };
        match &outcome {
            Ok(p) => tracing::info!(
                status = answer.status,
                elapsed_ms,
                member_id = p.member_id.as_ref().map(|m| m.as_str()).unwrap_or(""),
                "bitrix token refreshed"
            ),
            Err(e) => tracing::warn!(
                status = answer.status,
                elapsed_ms,
                kind = e.kind(),
                code = e.code().unwrap_or(""),
                "bitrix token refresh failed"
            ),
        }
        outcome
    }

    /// [`BitrixClient::call`] that survives an expired access token. On `expired_token`:
    /// if `store` holds a newer pair for the portal (another worker refreshed meanwhile), that
    /// pair is used; otherwise the pair is refreshed and saved through `store` first. Either
    /// way `tokens` receives the pair and the call is repeated exactly once. Any other error,
    /// and any error of the repeated call, is returned as is.
    pub async fn call_with_refresh(
        &self,
        portal: &BitrixDomain,
        tokens: &mut TokenPair,
        store: &dyn TokenStore,
        method: &str,
        params: Value,
    ) -> Result<Value, BitrixError> {
        match self
            .call(portal, &tokens.access_token, method, params.clone())
            .await
        {
            Err(BitrixError::ExpiredToken) => {}
            other => return other,
        }
        self.renew(portal, tokens, store).await?;
        self.call(portal, &tokens.access_token, method, params)
            .await
    }

    /// Puts a working pair into `tokens`: the store's newer one, or a refreshed and stored one.
    async fn renew(
        &self,
        portal: &BitrixDomain,
        tokens: &mut TokenPair,
        store: &dyn TokenStore,
    ) -> Result<(), BitrixError> {
        let latest = store
            .latest(portal)
            .await
            .map_err(|e| BitrixError::TokenStore(e.0))?
            .filter(|l| same_portal(l, tokens));
        if let Some(latest) = latest {
            if latest.access_token != tokens.access_token {
                tracing::info!(portal = %portal, "using bitrix tokens refreshed by another worker");
                *tokens = latest;
                return Ok(());
            }
            // Same access token; the store may still hold a newer refresh token.
            tokens.refresh_token = latest.refresh_token;
        }
        let mut fresh = self.refresh(&tokens.refresh_token).await?;
        if !same_portal(&fresh, tokens) {
            tracing::error!(portal = %portal, "bitrix refresh answered for another portal");
            return Err(BitrixError::Protocol(
                "token refresh answered for another portal (member_id differs)".into(),
            ));
        }
        if fresh.member_id.is_none() {
            fresh.member_id = tokens.member_id.clone();
        }
        *tokens = fresh;
        store.save(portal, tokens).await.map_err(|e| {
            tracing::error!(portal = %portal, "refreshed bitrix tokens could not be stored");
            BitrixError::TokenStore(e.0)
        })
    }

    /// A handle for one portal whose calls refresh the tokens when needed.
    pub fn session<'a>(
        &'a self,
        portal: &'a BitrixDomain,
        tokens: &'a mut TokenPair,
        store: &'a dyn TokenStore,
    ) -> PortalSession<'a> {
        PortalSession {
            client: self,
            portal,
            tokens,
            store,
        }
    }
}

/// One portal, its tokens and their store: typed `imconnector` calls, `batch` and the chat
/// lookup, each with refresh-on-expiry (see [`BitrixClient::call_with_refresh`]).
pub struct PortalSession<'a> {
    client: &'a BitrixClient,
    portal: &'a BitrixDomain,
    tokens: &'a mut TokenPair,
    store: &'a dyn TokenStore,
}

impl PortalSession<'_> {
    /// The current pair (refreshed if a call had to).
    pub fn tokens(&self) -> &TokenPair {
        self.tokens
    }

    pub fn portal(&self) -> &BitrixDomain {
        self.portal
    }

    /// Any method, with refresh-on-expiry.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, BitrixError> {
        self.client
            .call_with_refresh(self.portal, self.tokens, self.store, method, params)
            .await
    }

    /// A built call, alone.
    async fn run(&mut self, call: MethodCall) -> Result<Value, BitrixError> {
        self.call(call.method, call.params).await
    }

    /// `batch` of `commands` (1 to 50, distinct keys; refused before sending otherwise) as
    /// ONE request, with refresh-on-expiry like any call. `halt`: Bitrix24 stops at the first
    /// command that fails. `Err` when the batch as a whole failed (HTTP status, token,
    /// transport; see [`BitrixError::is_ambiguous`]); each command's outcome is in the
    /// [`BatchAnswer`].
    pub async fn batch(
        &mut self,
        commands: &[BatchCommand],
        halt: bool,
    ) -> Result<BatchAnswer, BitrixError> {
        let params = batch_params(commands, halt)?;
        let result = self.call(BATCH, params).await?;
        BatchAnswer::parse(&result, commands)
    }

    /// `im.dialog.messages.get`: the `limit` (at most 50) newest messages of Bitrix24's
    /// chat `chat_id` (`session.CHAT_ID` of a send), newest first.
    pub async fn recent_messages(
        &mut self,
        chat_id: &str,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, BitrixError> {
        let result = self.run(im::recent_messages_call(chat_id, limit)).await?;
        im::parse_recent_messages(&result)
    }

    /// `imconnector.send.messages`: one result per message, in order.
    pub async fn send_messages(
        &mut self,
        connector: &ConnectorId,
        line: OpenLineId,
        messages: &[OutgoingCrmMessage],
    ) -> Result<Vec<SentCrmMessage>, BitrixError> {
        let call = imconnector::send_messages_call(connector, line, messages)?;
        let result = self.run(call).await?;
        imconnector::parse_sent_messages(imconnector::SEND_MESSAGES, &result)
    }

    /// `imconnector.register`.
    pub async fn register_connector(
        &mut self,
        registration: &imconnector::ConnectorRegistration,
    ) -> Result<(), BitrixError> {
        let result = self
            .call(imconnector::REGISTER, registration.to_params()?)
            .await?;
        imconnector::parse_true(imconnector::REGISTER, &result)
    }

    /// `imconnector.activate` (`ACTIVE` 1 or 0) for one line.
    pub async fn activate_connector(
        &mut self,
        connector: &ConnectorId,
        line: OpenLineId,
        active: bool,
    ) -> Result<(), BitrixError> {
        let params = imconnector::activate_params(connector, line, active);
        let result = self.call(imconnector::ACTIVATE, params).await?;
        imconnector::parse_true(imconnector::ACTIVATE, &result)
    }

    /// `imconnector.connector.data.set` for one line.
    pub async fn set_connector_data(
        &mut self,
        connector: &ConnectorId,
        line: OpenLineId,
        data: &imconnector::ConnectorData,
    ) -> Result<(), BitrixError> {
        let params = data.to_params(connector, line)?;
        let result = self.call(imconnector::CONNECTOR_DATA_SET, params).await?;
        imconnector::parse_true(imconnector::CONNECTOR_DATA_SET, &result)
    }

    /// `event.bind` of `handler` for `event` (apidocs "Register a new event handler
    /// event.bind": `event`, `handler`, optional `auth_type`, `event_type` online|offline;
    /// answers `{"result": true}`). Binding the same handler again is refused by Bitrix24 with
    /// `ERROR_CORE` "Handler already binded"; that counts as bound (`Ok(false)`).
    pub async fn bind_event(&mut self, event: &str, handler: &str) -> Result<bool, BitrixError> {
        let params = serde_json::json!({ "event": event, "handler": handler });
        match self.call(EVENT_BIND, params).await {
            Ok(result) => imconnector::parse_true(EVENT_BIND, &result).map(|()| true),
            Err(BitrixError::Rejected { description, .. })
                if description.to_ascii_lowercase().contains("already bind") =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// `imconnector.unregister` of our connector `ID` (apidocs "Unregister the Connector
    /// imconnector.unregister": one parameter, `ID`; the page documents no success answer, so
    /// any answer that is not an error counts, except an explicit `false`).
    pub async fn unregister_connector(
        &mut self,
        connector: &ConnectorId,
    ) -> Result<(), BitrixError> {
        let params = serde_json::json!({ "ID": connector.as_str() });
        match self.call(UNREGISTER_CONNECTOR, params).await? {
            Value::Bool(false) => Err(BitrixError::Protocol(format!(
                "{UNREGISTER_CONNECTOR} answered false"
            ))),
            _ => Ok(()),
        }
    }

    /// `event.unbind` of `handler` for `event` (apidocs "Unbind Registered Event Handler
    /// event.unbind": `event`, `handler`; answers `{"result": {"count": n}}`, the number of
    /// handlers removed, 0 when none was bound). Returns that count.
    pub async fn unbind_event(&mut self, event: &str, handler: &str) -> Result<u64, BitrixError> {
        let params = serde_json::json!({ "event": event, "handler": handler });
        let result = self.call(EVENT_UNBIND, params).await?;
        result
            .get("count")
            .and_then(|c| {
                c.as_u64()
                    .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
            })
            .ok_or_else(|| {
                BitrixError::Protocol(format!("{EVENT_UNBIND} answered without a count"))
            })
    }

    /// `placement.bind` (apidocs api-reference/widgets/placement-bind.md: `PLACEMENT`,
    /// `HANDLER`, `TITLE`, `LANG_ALL`, `OPTIONS`; administrators only; answers `true`).
    pub async fn bind_placement(&mut self, params: Value) -> Result<(), BitrixError> {
        let result = self.call(PLACEMENT_BIND, params).await?;
        match result {
            Value::Bool(true) => Ok(()),
            other => Err(BitrixError::Protocol(format!(
                "{PLACEMENT_BIND} answered {other}"
            ))),
        }
    }

    /// `placement.unbind` of `handler` for `placement` (api-reference/widgets/
    /// placement-unbind.md: `PLACEMENT`, `HANDLER`; answers `{"count": n}`, 0 when nothing
    /// was bound); the number removed.
    pub async fn unbind_placement(
        &mut self,
        placement: &str,
        handler: &str,
    ) -> Result<u64, BitrixError> {
        let params = serde_json::json!({ "PLACEMENT": placement, "HANDLER": handler });
        let result = self.call(PLACEMENT_UNBIND, params).await?;
        result
            .get("count")
            .and_then(|c| {
                c.as_u64()
                    .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
            })
            .ok_or_else(|| {
                BitrixError::Protocol(format!("{PLACEMENT_UNBIND} answered without a count"))
            })
    }

    /// `imconnector.update.messages` (same ids as when sent).
    pub async fn update_messages(
        &mut self,
        connector: &ConnectorId,
        line: OpenLineId,
        messages: &[OutgoingCrmMessage],
    ) -> Result<Vec<SentCrmMessage>, BitrixError> {
        let call = imconnector::update_messages_call(connector, line, messages)?;
        let result = self.run(call).await?;
        imconnector::parse_sent_messages(imconnector::UPDATE_MESSAGES, &result)
    }

    /// `imconnector.delete.messages`.
    pub async fn delete_messages(
        &mut self,
        connector: &ConnectorId,
        line: OpenLineId,
        messages: &[DeleteCrmMessage],
    ) -> Result<(), BitrixError> {
        let call = imconnector::delete_messages_call(connector, line, messages)?;
        let result = self.run(call).await?;
        imconnector::parse_success(imconnector::DELETE_MESSAGES, &result)
    }

    /// `imconnector.send.status.delivery` for operator messages (also marks them read).
    pub async fn send_status_delivery(
        &mut self,
        connector: &ConnectorId,
        line: OpenLineId,
        statuses: &[StatusUpdate],
    ) -> Result<(), BitrixError> {
        let call = imconnector::status_delivery_call(connector, line, statuses)?;
        let result = self.run(call).await?;
        imconnector::parse_success(imconnector::SEND_STATUS_DELIVERY, &result)
    }

    /// `imconnector.send.status.reading` for operator messages.
    pub async fn send_status_reading(
        &mut self,
        connector: &ConnectorId,
        line: OpenLineId,
        statuses: &[StatusUpdate],
    ) -> Result<(), BitrixError> {
        let call = imconnector::status_reading_call(connector, line, statuses)?;
        let result = self.run(call).await?;
        imconnector::parse_success(imconnector::SEND_STATUS_READING, &result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names() {
        for ok in [
            "imconnector.send.messages",
            "batch",
            "event.bind",
            "crm.lead.add",
        ] {
            assert!(check_method(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../oauth", "a/b", "a?b", "a b", ".x", "a..b", "a%2e"] {
            assert!(check_method(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_encoding() {
        assert_eq!(encode("local.5f0c.123"), "local.5f0c.123");
        assert_eq!(encode("a&b=c d+/"), "a%26b%3Dc%20d%2B%2F");
    }
}
