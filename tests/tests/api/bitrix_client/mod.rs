//! The Bitrix24 REST client against the loopback fake portal: request bodies as Bitrix24
//! documents them, ids back from `imconnector.send.messages`, refresh-on-expiry with the new
//! pair stored before the single retry, typed errors, pacing, configuration rules, and no
//! token in any `Debug` output.

mod refresh;

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use e2e_tests::fake_bitrix::{
    FailKind, FakeBitrix, FakeTokens, FAKE_CLIENT_ID, FAKE_CLIENT_SECRET, FAKE_DOMAIN,
    FAKE_MEMBER_ID,
};
use serde_json::json;
use wappline::bitrix::imconnector::{
    SEND_MESSAGES, SEND_STATUS_DELIVERY, SEND_STATUS_READING, UPDATE_MESSAGES,
};
use wappline::bitrix::{
    BitrixClient, BitrixConfig, BitrixConfigError, BitrixError, ConnectorId, CrmChat, CrmFile,
    CrmUser, DeleteCrmMessage, ImRef, OpenLineId, OutgoingCrmMessage, PacingConfig, StatusUpdate,
    TokenPair, TokenStore, TokenStoreError,
};
use wappline::ids::{BitrixDomain, BitrixMemberId};
use wappline::tenant::Secret;

pub(crate) fn secret(s: &str) -> Secret {
    Secret::parse("test", s).unwrap()
}

pub(crate) fn config(fake: &FakeBitrix) -> BitrixConfig {
    BitrixConfig::new(FAKE_CLIENT_ID, secret(FAKE_CLIENT_SECRET))
        .unwrap()
        .with_oauth_url(&fake.oauth_url())
        .unwrap()
        .with_portal_base_url(&fake.base_url())
        .unwrap()
}

pub(crate) fn client(fake: &FakeBitrix) -> BitrixClient {
    BitrixClient::new(config(fake)).unwrap()
}

pub(crate) fn pair(t: &FakeTokens) -> TokenPair {
    TokenPair {
        member_id: Some(BitrixMemberId::parse(&t.member_id).unwrap()),
        ..TokenPair::new(secret(&t.access_token), secret(&t.refresh_token))
    }
}

pub(crate) fn portal() -> BitrixDomain {
    BitrixDomain::parse(FAKE_DOMAIN).unwrap()
}

pub(crate) fn connector() -> ConnectorId {
    ConnectorId::parse("wappline_whatsapp").unwrap()
}

pub(crate) fn line() -> OpenLineId {
    OpenLineId::new(107).unwrap()
}

/// Records what the client asks it to store.
#[derive(Default)]
pub(crate) struct MemoryStore {
    saved: Mutex<Vec<TokenPair>>,
    latest: Mutex<Option<TokenPair>>,
    fail: bool,
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn save(
        &self,
        _portal: &BitrixDomain,
        tokens: &TokenPair,
    ) -> Result<(), TokenStoreError> {
        if self.fail {
            return Err(TokenStoreError("disk full".into()));
        }
        self.saved.lock().unwrap().push(tokens.clone());
        *self.latest.lock().unwrap() = Some(tokens.clone());
        Ok(())
    }

    async fn latest(&self, _portal: &BitrixDomain) -> Result<Option<TokenPair>, TokenStoreError> {
        Ok(self.latest.lock().unwrap().clone())
    }
}

impl MemoryStore {
    pub(crate) fn saved(&self) -> Vec<TokenPair> {
        self.saved.lock().unwrap().clone()
    }
}

pub(crate) fn message(user: &str, chat: &str, id: &str, text: &str) -> OutgoingCrmMessage {
    OutgoingCrmMessage {
        user: CrmUser {
            id: user.into(),
            name: Some("Maria".into()),
            last_name: Some("Silva".into()),
            phone: Some("+5511987654321".into()),
            picture_url: Some("https://media.example.com/avatar/1.jpg".into()),
            profile_url: None,
            skip_phone_validate: true,
        },
        chat: CrmChat {
            id: chat.into(),
            name: Some("WhatsApp Maria Silva".into()),
            url: None,
        },
        message_id: id.into(),
        date: 1_773_265_993,
        text: Some(text.into()),
        files: Vec::new(),
        disable_crm: false,
    }
}

#[tokio::test]
async fn send_messages_returns_bitrix_ids_per_chat() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let store = MemoryStore::default();
    let mut tokens = pair(&fake.valid_tokens());
    let portal = portal();
    let mut first = message(
        "wa:5511987654321",
        "wa:106540352242922:5511987654321",
        "wamid.A",
        "Olá!",
    );
    first.files.push(CrmFile {
        url: "https://media.example.com/m/1?sig=abc".into(),
        name: Some("photo.jpg".into()),
    });
    let second = message(
        "wa:5511987654321",
        "wa:106540352242922:5511987654321",
        "wamid.B",
        "Tudo bem?",
    );
    let other = message(
        "ig:17841400000000001",
        "ig:17841405822304914:17841400000000001",
        "ig.C",
        "hi",
    );

    let mut session = client.session(&portal, &mut tokens, &store);
    let sent = session
        .send_messages(&connector(), line(), &[first, second, other])
        .await
        .unwrap();

    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|s| s.success));
    assert_eq!(sent[0].external_message_id.as_deref(), Some("wamid.A"));
    assert_eq!(
        sent[2].external_chat_id.as_deref(),
        Some("ig:17841405822304914:17841400000000001")
    );
    // One Bitrix24 chat and session per conversation, another for the other conversation.
    assert!(sent[0].chat_id.is_some() && sent[0].session_id.is_some());
    assert_eq!(sent[0].chat_id, sent[1].chat_id);
    assert_eq!(sent[0].session_id, sent[1].session_id);
    assert_ne!(sent[0].chat_id, sent[2].chat_id);
    assert_eq!(sent[0].bitrix_user_id, sent[1].bitrix_user_id);
    assert_ne!(sent[0].bitrix_user_id, sent[2].bitrix_user_id);

    let received = fake.messages_received();
    assert_eq!(received.len(), 3);
    assert_eq!(received[0].text.as_deref(), Some("Olá!"));
    assert_eq!(
        received[0].chat_id.to_string(),
        sent[0].chat_id.clone().unwrap()
    );
    assert_eq!(received[0].connector, "wappline_whatsapp");
    assert_eq!(received[0].line, "107");

    // One call, JSON, token in `auth`, body exactly as documented.
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, SEND_MESSAGES);
    assert!(!calls[0].form);
    assert_eq!(
        calls[0].auth.as_deref(),
        Some(fake.valid_tokens().access_token.as_str())
    );
    assert_eq!(calls[0].params["CONNECTOR"], json!("wappline_whatsapp"));
    assert_eq!(calls[0].params["LINE"], json!(107));
    assert_eq!(
        calls[0].params["MESSAGES"][0],
        json!({
            "user": {
                "id": "wa:5511987654321",
                "name": "Maria",
                "last_name": "Silva",
                "phone": "+5511987654321",
                "picture": {"url": "https://media.example.com/avatar/1.jpg"},
                "skip_phone_validate": "Y"
            },
            "message": {
                "id": "wamid.A",
                "date": 1_773_265_993,
                "text": "Olá!",
                "files": [{"url": "https://media.example.com/m/1?sig=abc", "name": "photo.jpg"}]
            },
            "chat": {"id": "wa:106540352242922:5511987654321", "name": "WhatsApp Maria Silva"}
        })
    );
    assert!(store.saved().is_empty(), "no refresh was needed");
}

/// A first post sent again (its answer lost) as Bitrix24's own code treats it (decision
/// 0068): the same user and chat, found by the external ids, and a second message — Open
/// Lines does not look `message.id` up before posting.
#[tokio::test]
async fn a_repeated_first_post_lands_in_its_chat_as_a_second_message() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let store = MemoryStore::default();
    let mut tokens = pair(&fake.valid_tokens());
    let portal = portal();
    let chat = "wa:106540352242922:5511987654321";
    let first = message("wa:5511987654321", chat, "wamid.A", "Olá!");

    let mut session = client.session(&portal, &mut tokens, &store);
    let once = session
        .send_messages(&connector(), line(), std::slice::from_ref(&first))
        .await
        .unwrap();
    let again = session
        .send_messages(&connector(), line(), &[first])
        .await
        .unwrap();

    assert!(once[0].success && again[0].success);
    assert!(once[0].chat_id.is_some());
    assert_eq!(again[0].chat_id, once[0].chat_id, "no second chat");
    assert_eq!(again[0].session_id, once[0].session_id);
    assert_eq!(again[0].bitrix_user_id, once[0].bitrix_user_id);
    assert_eq!(fake.posts_of(FAKE_DOMAIN, "wamid.A"), 2, "not deduplicated");
    assert_eq!(
        fake.messages_in_chat(FAKE_DOMAIN, chat),
        vec!["wamid.A", "wamid.A"]
    );
    let received = fake.messages_received();
    assert_ne!(received[0].message_id, received[1].message_id);
}
#[tokio::test]
async fn status_update_and_delete_bodies_are_as_documented() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let store = MemoryStore::default();
    let mut tokens = pair(&fake.valid_tokens());
    let portal = portal();
    let mut session = client.session(&portal, &mut tokens, &store);

    let status = StatusUpdate {
        im: ImRef {
            chat_id: 323,
            message_id: 85911,
        },
        message_ids: vec!["wamid.OUT1".into()],
        chat_id: "wa:106540352242922:5511987654321".into(),
        date: Some(1_738_065_600),
    };
    session
        .send_status_delivery(&connector(), line(), std::slice::from_ref(&status))
        .await
        .unwrap();
    let reading = StatusUpdate {
        date: None,
        ..status
    };
    session
        .send_status_reading(&connector(), line(), &[reading])
        .await
        .unwrap();
    let updated = session
        .update_messages(
            &connector(),
            line(),
            &[message("wa:1", "wa:chat", "wamid.A", "edited text")],
        )
        .await
        .unwrap();
    assert_eq!(updated.len(), 1);
    session
        .delete_messages(
            &connector(),
            line(),
            &[DeleteCrmMessage {
                user_id: "wa:1".into(),
                chat_id: "wa:chat".into(),
                message_id: "wamid.A".into(),
            }],
        )
        .await
        .unwrap();

    let calls = fake.calls();
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            SEND_STATUS_DELIVERY,
            SEND_STATUS_READING,
            UPDATE_MESSAGES,
            "imconnector.delete.messages"
        ]
    );
    assert_eq!(
        calls[0].params,
        json!({
            "CONNECTOR": "wappline_whatsapp",
            "LINE": 107,
            "MESSAGES": [{
                "im": {"chat_id": 323, "message_id": 85911},
                "message": {"id": ["wamid.OUT1"], "date": 1_738_065_600},
                "chat": {"id": "wa:106540352242922:5511987654321"}
            }]
        })
    );
    assert_eq!(
        calls[1].params["MESSAGES"],
        json!([{
            "im": {"chat_id": 323, "message_id": 85911},
            "message": {"id": ["wamid.OUT1"]},
            "chat": {"id": "wa:106540352242922:5511987654321"}
        }])
    );
    assert_eq!(
        calls[2].params["MESSAGES"][0]["message"]["text"],
        json!("edited text")
    );
    assert_eq!(
        calls[3].params["MESSAGES"],
        json!([{"user": {"id": "wa:1"}, "message": {"id": "wamid.A"}, "chat": {"id": "wa:chat"}}])
    );
    assert!(fake.messages_received().is_empty());
}

#[tokio::test]
async fn query_limit_is_rate_limited_and_not_retried() {
    let fake = FakeBitrix::start().await;
    let mut config = config(&fake);
    // A slow refill makes the local back-off deterministic.
    config.pacing = PacingConfig {
        rate_per_sec: 0.001,
        burst: 50.0,
        max_wait: Duration::ZERO,
    };
    let client = BitrixClient::new(config).unwrap();
    let store = MemoryStore::default();
    let mut tokens = pair(&fake.valid_tokens());
    let portal = portal();
    fake.fail_next(1, FailKind::QueryLimit);

    let err = client
        .session(&portal, &mut tokens, &store)
        .send_messages(&connector(), line(), &[message("u1", "c1", "m1", "hello")])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BitrixError::RateLimited { code, .. } if code == "QUERY_LIMIT_EXCEEDED"),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(!err.is_ambiguous(), "a limit refusal ran nothing");
    assert!(err.retry_after().is_some());
    assert_eq!(fake.calls().len(), 1, "the client must not retry in a loop");
    assert!(fake.messages_received().is_empty());

    // The portal said stop: this process backs off too, without calling.
    assert!(client.pacer().available(&portal) < 1.0);
    let err = client
        .call(
            &portal,
            &tokens.access_token,
            SEND_STATUS_DELIVERY,
            json!({}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BitrixError::RateLimited { code, .. } if code == "LOCAL_PACING"),
        "{err:?}"
    );
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test]
async fn operation_time_limit_is_rate_limited() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let tokens = fake.valid_tokens();
    fake.fail_next(1, FailKind::OperationTimeLimit);
    let err = client
        .call(
            &portal(),
            &secret(&tokens.access_token),
            SEND_MESSAGES,
            json!({}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BitrixError::RateLimited { code, .. } if code == "OPERATION_TIME_LIMIT"),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test]
async fn portal_down_is_unavailable_then_recovers() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let store = MemoryStore::default();
    let mut tokens = pair(&fake.valid_tokens());
    let portal = portal();
    fake.fail_next(1, FailKind::Down);
    fake.fail_next(1, FailKind::InternalError);
    let msg = [message("u1", "c1", "m1", "hello")];

    for expected_status in [503, 500] {
        let err = client
            .session(&portal, &mut tokens, &store)
            .send_messages(&connector(), line(), &msg)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BitrixError::Unavailable { status: Some(s), .. } if s == expected_status),
            "{err:?}"
        );
        assert!(err.is_retryable());
        // A 5xx that is not a limit error: the portal may have run the call.
        assert!(err.is_ambiguous());
    }
    assert!(fake.messages_received().is_empty());
    let sent = client
        .session(&portal, &mut tokens, &store)
        .send_messages(&connector(), line(), &msg)
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(fake.calls().len(), 3);
}

#[tokio::test]
async fn unreachable_portal_is_unavailable() {
    // Bind then drop a listener: nothing listens on that port any more.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = BitrixConfig::new(FAKE_CLIENT_ID, secret(FAKE_CLIENT_SECRET))
        .unwrap()
        .with_oauth_url(&format!("http://{addr}/oauth/token/"))
        .unwrap()
        .with_portal_base_url(&format!("http://{addr}"))
        .unwrap();
    let client = BitrixClient::new(config).unwrap();
    let err = client
        .call(&portal(), &secret("sometoken"), SEND_MESSAGES, json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BitrixError::Unavailable { status: None, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    // Nothing was sent: no doubt about whether it was executed.
    assert!(!err.is_ambiguous(), "{err:?}");
    let err = client.refresh(&secret("somerefresh")).await.unwrap_err();
    assert!(matches!(err, BitrixError::Unavailable { .. }), "{err:?}");
    assert!(!err.to_string().contains("somerefresh"));
    assert!(!err.to_string().contains(FAKE_CLIENT_SECRET));
}

#[tokio::test]
async fn pacing_refuses_past_the_burst_without_calling() {
    let fake = FakeBitrix::start().await;
    let mut config = config(&fake);
    config.pacing = PacingConfig {
        rate_per_sec: 0.001,
        burst: 2.0,
        max_wait: Duration::ZERO,
    };
    let client = BitrixClient::new(config).unwrap();
    let token = secret(&fake.valid_tokens().access_token);
    let portal = portal();
    for _ in 0..2 {
        client
            .call(
                &portal,
                &token,
                SEND_STATUS_DELIVERY,
                json!({"CONNECTOR": "c", "LINE": 1, "MESSAGES": []}),
            )
            .await
            .unwrap();
    }
    let err = client
        .call(&portal, &token, SEND_STATUS_DELIVERY, json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, BitrixError::RateLimited { .. }), "{err:?}");
    assert_eq!(fake.calls().len(), 2);
    // Another portal has its own bucket.
    let other_domain = "other.bitrix24.com";
    let other = fake.add_portal(other_domain, "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0");
    client
        .call(
            &BitrixDomain::parse(other_domain).unwrap(),
            &secret(&other.access_token),
            SEND_STATUS_DELIVERY,
            json!({"CONNECTOR": "c", "LINE": 1, "MESSAGES": []}),
        )
        .await
        .unwrap();
    assert_eq!(fake.calls().len(), 3);
    assert_eq!(fake.calls()[2].domain, other_domain);
}

#[tokio::test]
async fn rejected_and_invalid_requests_are_permanent() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let token = secret(&fake.valid_tokens().access_token);
    let err = client
        .call(&portal(), &token, "imconnector.no.such.method", json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BitrixError::Rejected { status: 404, code, .. } if code == "ERROR_METHOD_NOT_FOUND"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    let err = client
        .call(
            &portal(),
            &token,
            SEND_MESSAGES,
            json!({"CONNECTOR": "c", "LINE": 1}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BitrixError::Rejected { status: 400, code, .. } if code == "ERROR_ARGUMENT"),
        "{err:?}"
    );
    // Refused before sending.
    let before = fake.calls().len();
    for bad in ["../oauth/token/", "a b", ""] {
        let err = client
            .call(&portal(), &token, bad, json!({}))
            .await
            .unwrap_err();
        assert!(matches!(err, BitrixError::InvalidRequest(_)));
    }
    let err = client
        .call(
            &portal(),
            &token,
            SEND_MESSAGES,
            json!(["not", "an", "object"]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BitrixError::InvalidRequest(_)));
    assert_eq!(fake.calls().len(), before);
}

#[tokio::test]
async fn the_fake_accepts_form_bodies_like_bitrix24() {
    let fake = FakeBitrix::start().await;
    let token = fake.valid_tokens().access_token;
    let body = format!(
        "CONNECTOR=wa&LINE=107&MESSAGES%5B0%5D%5Buser%5D%5Bid%5D=u1\
         &MESSAGES%5B0%5D%5Bmessage%5D%5Bid%5D=m1&MESSAGES%5B0%5D%5Bmessage%5D%5Btext%5D=hi+there\
         &MESSAGES%5B0%5D%5Bchat%5D%5Bid%5D=c1&auth={token}"
    );
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "{}/{FAKE_DOMAIN}/rest/imconnector.send.messages",
            fake.base_url()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["result"]["DATA"]["RESULT"][0]["SUCCESS"],
        json!(true)
    );
    assert!(answer["time"]["operating_reset_at"].is_u64());
    let calls = fake.calls();
    assert!(calls[0].form);
    assert_eq!(
        calls[0].params["MESSAGES"][0]["message"]["text"],
        json!("hi there")
    );
    assert_eq!(
        fake.messages_received()[0].text.as_deref(),
        Some("hi there")
    );
}

#[test]
fn plain_http_only_for_loopback() {
    let base = || BitrixConfig::new(FAKE_CLIENT_ID, secret(FAKE_CLIENT_SECRET)).unwrap();
    for bad in [
        "http://example.com",
        "http://10.1.2.3:8080",
        "http://portal.bitrix24.com/",
    ] {
        let err = base().with_portal_base_url(bad).unwrap_err();
        assert!(
            matches!(
                err,
                BitrixConfigError::InsecureUrl {
                    field: "portal_base_url",
                    ..
                }
            ),
            "{bad}"
        );
        assert!(err.to_string().contains("loopback"), "{err}");
        let err = base().with_oauth_url(bad).unwrap_err();
        assert!(
            matches!(
                err,
                BitrixConfigError::InsecureUrl {
                    field: "oauth_url",
                    ..
                }
            ),
            "{bad}"
        );
    }
    for ok in [
        "http://127.0.0.1:9",
        "http://localhost:8080/fake",
        "http://[::1]:9",
        "https://portal-proxy.example.com",
    ] {
        assert!(base().with_portal_base_url(ok).is_ok(), "{ok}");
    }
    assert!(matches!(
        base().with_portal_base_url("ftp://127.0.0.1"),
        Err(BitrixConfigError::InvalidUrl { .. })
    ));
    assert_eq!(
        base().oauth_url.as_str(),
        "https://oauth.bitrix.info/oauth/token/"
    );
    assert_eq!(
        base().rest_root(&portal()),
        "https://example.bitrix24.com/rest/"
    );
    // The production set-up (https, the system trust store, aws-lc-rs) builds.
    BitrixClient::new(base()).expect("TLS with the system trust store");
}

#[tokio::test]
async fn tokens_never_show_in_debug_output() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let store = MemoryStore::default();
    let t = fake.valid_tokens();
    let mut tokens = pair(&t);
    fake.expire_token();
    client
        .call_with_refresh(
            &portal(),
            &mut tokens,
            &store,
            SEND_STATUS_DELIVERY,
            json!({}),
        )
        .await
        .ok();
    let fresh = fake.valid_tokens();
    let outputs = [
        format!("{tokens:?}"),
        format!("{:?}", store.saved()),
        format!("{client:?}"),
        format!("{:?}", config(&fake)),
        format!("{:?}", pair(&t)),
    ];
    for out in &outputs {
        for secret in [
            t.access_token.as_str(),
            t.refresh_token.as_str(),
            fresh.access_token.as_str(),
            fresh.refresh_token.as_str(),
            FAKE_CLIENT_SECRET,
        ] {
            assert!(!out.contains(secret), "{out}");
        }
    }
}
