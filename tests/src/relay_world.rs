//! The local server wired to loopback fakes of Bitrix24 and the Graph API, as the relay tests
//! (outbound relay, suspension, usage quotas) use it: a tenant whose portal is installed the
//! way a customer installs it, a customer who writes, an operator who answers in the Open Line.

use std::time::Duration;

use local_server::LocalConfig;
use reqwest::StatusCode;
use serde_json::json;
use wappline::queue::platform;

use crate::fake_bitrix::{EventBody, EventMessage, FakeBitrix, FAKE_DOMAIN};
use crate::fake_graph::FakeGraph;
use crate::harness::{Harness, WA_NUMBER};

/// How long each queue may take to drain.
pub const DRAIN: Duration = Duration::from_secs(30);
/// The Open Line the portal is connected on.
pub const LINE: u64 = 7;
/// The application token Bitrix24 delivers with ONAPPINSTALL.
pub const APP_TOKEN: &str = "831c76b092f9f135d9b6b36c3a720757";
/// The WhatsApp access token of [`Harness::tenant_with_channels`], known to the fake Graph API.
pub use crate::harness::{IG_TOKEN, WA_TOKEN};

pub struct RelayWorld {
    pub h: Harness,
    pub bitrix: FakeBitrix,
    pub graph: FakeGraph,
}

impl RelayWorld {
    pub async fn start() -> RelayWorld {
        RelayWorld::start_with(|_| {}).await
    }

    /// Like [`RelayWorld::start`]; `configure` may change the server's configuration after
    /// the fakes are wired in.
    pub async fn start_with(configure: impl FnOnce(&mut LocalConfig)) -> RelayWorld {
        let bitrix = FakeBitrix::start().await;
        let h = Harness::start(|c| {
            bitrix.wire_into(c);
            c.retry_base_ms = 30;
            configure(c);
        })
        .await;
        let graph = h.graph.clone();
        graph.add_token(WA_TOKEN, WA_NUMBER);
        RelayWorld { h, bitrix, graph }
    }

    /// Waits until the inbound, sync and outbound queues are empty, three rounds (each stage
    /// may feed the next).
    pub async fn drain(&self) {
        for _ in 0..3 {
            for q in [platform::INBOUND, platform::SYNC, platform::OUTBOUND] {
                self.h.drain(q, DRAIN).await;
            }
        }
    }

    /// A tenant with the sample channels whose Bitrix24 portal is installed through a
    /// connection code, with the application token delivered by ONAPPINSTALL; its id.
    pub async fn installed_tenant(&self) -> String {
        let tenant = self.h.tenant_with_channels().await;
        let code = self
            .h
            .admin(
                "POST",
                &format!("/admin/tenants/{tenant}/bitrix24/connection-codes"),
                json!({"line_id": LINE}),
            )
            .await;
        let install_url = code["install_url"].as_str().unwrap().to_owned();
        assert!(install_url.starts_with(&self.h.base), "{install_url}");
        let resp = self
            .h
            .http
            .post(&install_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(EventBody::install_wizard(&self.bitrix, FAKE_DOMAIN))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{}",
            resp.text().await.unwrap()
        );
        let app_install =
            EventBody::for_portal(&self.bitrix, FAKE_DOMAIN, Some(APP_TOKEN)).app_install();
        let (s, body) = self.event(app_install).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        tenant
    }

    /// A Bitrix24 event (`POST /bitrix/events`); status and answer.
    pub async fn event(&self, form: String) -> (StatusCode, String) {
        let resp = self
            .h
            .http
            .post(format!("{}/bitrix/events", self.h.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    /// The customer writes; returns our chat id for them, as the portal saw it.
    pub async fn customer_writes(&self, body: &[u8]) -> String {
        let (s, t) = self.h.post_signed(body).await;
        assert_eq!(s, StatusCode::OK, "{t}");
        self.drain().await;
        self.bitrix
            .messages_received()
            .last()
            .expect("the customer's message reached the portal")
            .external_chat_id
            .clone()
    }

    /// The operator answers `text` in `chat` on WhatsApp: the ONIMCONNECTORMESSAGEADD event
    /// the portal sends, with application token `token`.
    pub fn reply(&self, chat: &str, im_message_id: u64, text: &str, token: &str) -> String {
        EventBody::for_portal(&self.bitrix, FAKE_DOMAIN, Some(token)).message_add(
            "wappline_whatsapp",
            LINE,
            &[EventMessage {
                im_chat_id: 901,
                im_message_id,
                chat_id: chat.to_owned(),
                user_id: 1,
                text: Some(text.to_owned()),
                ..EventMessage::default()
            }],
        )
    }

    /// The texts of the notes (system messages for the operator) the portal received.
    pub fn notes(&self) -> Vec<String> {
        self.bitrix
            .messages_received()
            .iter()
            .filter(|m| m.external_message_id.starts_with("note."))
            .filter_map(|m| m.text.clone())
            .collect()
    }
}
