//! `batch`, the chat lookup (`im.dialog.messages.get`) and ambiguous failures, with the client
//! against the loopback fake: commands encoded so that Bitrix24 decodes exactly what a call
//! alone would carry, one request per batch, per-command results and errors, `halt`,
//! refresh-on-expiry, and the fake's portal faults (lost answers, hangs, outages, the leaky
//! bucket) as the client classifies them.

use std::time::Duration;

use e2e_tests::fake_bitrix::{FailKind, FakeBitrix, FAKE_DOMAIN};
use serde_json::{json, Value};
use wappline::bitrix::im::{parse_recent_messages, recent_messages_call};
use wappline::bitrix::imconnector::{
    self, parse_sent_messages, parse_success, SEND_MESSAGES, SEND_STATUS_DELIVERY,
};
use wappline::bitrix::{
    BatchCommand, BitrixClient, BitrixError, ImRef, StatusUpdate, MAX_BATCH_COMMANDS,
};
use wappline::ids::BitrixDomain;

use super::bitrix_client::{
    client, config, connector, line, message, pair, portal, secret, MemoryStore,
};

/// Every scalar as a string: what a query string carries.
fn stringified(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), stringified(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(stringified).collect()),
        Value::Number(n) => Value::String(n.to_string()),
        other => other.clone(),
    }
}

/// POSTs `body` as JSON; the status and the JSON answer.
async fn post(http: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let r = http.post(url).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

const CHAT_A: &str = "wa:106540352242922:5511987654321";
const CHAT_B: &str = "ig:17841405822304914:17841400000000001";

#[tokio::test]
async fn a_batch_is_one_request_with_a_result_per_command() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let store = MemoryStore::default();
    let mut tokens = pair(&fake.valid_tokens());
    let portal = portal();
    // Text that would break a query string that is not encoded, and one that is encoded
    // twice or not decoded.
    let tricky = "a&b=c+d %41 ?x#y [0] ção 🚀 $";
    let first = message("wa:5511987654321", CHAT_A, "wamid.A", tricky);
    let second = message("wa:5511987654321", CHAT_A, "wamid.B", "second");
    let other = message("ig:17841400000000001", CHAT_B, "ig.C", "hi");
    let send_a = imconnector::send_messages_call(&connector(), line(), &[first, second]).unwrap();
    let send_b = imconnector::send_messages_call(&connector(), line(), &[other]).unwrap();
    let sent_params = send_a.params.clone();
    let status = StatusUpdate {
        im: ImRef {
            chat_id: 323,
            message_id: 85911,
        },
        message_ids: vec!["wamid.OUT1".into()],
        chat_id: CHAT_A.into(),
        date: Some(1_738_065_600),
    };
    let delivery = imconnector::status_delivery_call(&connector(), line(), &[status]).unwrap();
    let commands = [
        BatchCommand::from_call("send_a", send_a),
        BatchCommand::from_call("send_b", send_b),
        BatchCommand::from_call("delivered", delivery),
        // Refused by the portal (no LINE): reported for its key, the others still run.
        BatchCommand::new(
            "bad",
            SEND_MESSAGES,
            json!({"CONNECTOR": "wappline_whatsapp", "MESSAGES": [{"user": {"id": "u"}}]}),
        ),
    ];

    let answer = client
        .session(&portal, &mut tokens, &store)
        .batch(&commands, false)
        .await
        .unwrap();

    let a = parse_sent_messages(SEND_MESSAGES, answer.result("send_a").unwrap()).unwrap();
    let b = parse_sent_messages(SEND_MESSAGES, answer.result("send_b").unwrap()).unwrap();
    assert_eq!(a.len(), 2);
    assert!(a.iter().chain(&b).all(|s| s.success));
    assert_eq!(a[0].external_message_id.as_deref(), Some("wamid.A"));
    assert_eq!(a[0].chat_id, a[1].chat_id);
    assert_ne!(a[0].chat_id, b[0].chat_id);
    parse_success(SEND_STATUS_DELIVERY, answer.result("delivered").unwrap()).unwrap();
    let bad = answer.result("bad").unwrap_err();
    assert!(
        matches!(&bad, BitrixError::Rejected { status: 200, code, .. } if code == "ERROR_ARGUMENT"),
        "{bad:?}"
    );
    assert_eq!(answer.errors().len(), 1);

    // ONE request: the rate limit and the calls see one batch.
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "batch");
    assert!(!calls[0].form);
    assert_eq!(calls[0].params["halt"], json!(0));
    assert_eq!(
        calls[0].auth.as_deref(),
        Some(fake.valid_tokens().access_token.as_str())
    );
    // Sent as a list, in our order: the portal's keys are positions. Each command ran with
    // the batch's auth and decoded to exactly what a call alone carries (as strings, like
    // any query string).
    assert_eq!(calls[0].params["cmd"].as_array().map(Vec::len), Some(4));
    let commands = fake.batch_commands();
    let keys: Vec<_> = commands
        .iter()
        .map(|c| c.batch_key.clone().unwrap())
        .collect();
    assert_eq!(keys, ["0", "1", "2", "3"]);
    let methods: Vec<_> = commands.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            SEND_MESSAGES,
            SEND_MESSAGES,
            SEND_STATUS_DELIVERY,
            SEND_MESSAGES
        ]
    );
    assert_eq!(commands[0].params, stringified(&sent_params));
    assert_eq!(commands[3].status, 400);
    assert!(commands
        .iter()
        .all(|c| c.auth.as_deref() == calls[0].auth.as_deref()));

    // The messages arrived, the tricky text intact, each once, in order per conversation.
    let received = fake.messages_received();
    assert_eq!(received.len(), 3);
    assert_eq!(received[0].text.as_deref(), Some(tricky));
    assert_eq!(
        fake.messages_in_chat(FAKE_DOMAIN, CHAT_A),
        ["wamid.A", "wamid.B"]
    );
    assert_eq!(fake.messages_in_chat(FAKE_DOMAIN, CHAT_B), ["ig.C"]);
    assert_eq!(fake.duplicate_posts(), 0);
}

#[tokio::test]
async fn halt_stops_at_the_first_failed_command() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let store = MemoryStore::default();
    let mut tokens = pair(&fake.valid_tokens());
    let portal = portal();
    let send = |id: &str| {
        BatchCommand::from_call(
            id,
            imconnector::send_messages_call(&connector(), line(), &[message("u1", "c1", id, id)])
                .unwrap(),
        )
    };
    let commands = [
        send("m1"),
        BatchCommand::new("nope", "imconnector.no.such.method", Value::Null),
        send("m2"),
    ];
    let answer = client
        .session(&portal, &mut tokens, &store)
        .batch(&commands, true)
        .await
        .unwrap();
    assert!(answer.result("m1").is_ok());
    assert!(matches!(
        answer.result("nope"),
        Err(BitrixError::Rejected { code, .. }) if code == "ERROR_METHOD_NOT_FOUND"
    ));
    // Not executed: no answer for it, and no message.
    assert!(!answer.answered("m2"));
    assert!(matches!(answer.result("m2"), Err(BitrixError::Protocol(_))));
    assert_eq!(fake.messages_in_chat(FAKE_DOMAIN, "c1"), ["m1"]);
    assert_eq!(fake.calls()[0].params["halt"], json!(1));

    // Without halt the third runs.
    fake.clear_records();
    let answer = client
        .session(&portal, &mut tokens, &store)
        .batch(&[send("m3"), commands[1].clone(), send("m4")], false)
        .await
        .unwrap();
    assert!(answer.result("m4").is_ok());
    assert_eq!(fake.messages_in_chat(FAKE_DOMAIN, "c1"), ["m3", "m4"]);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_for_the_whole_batch() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let store = MemoryStore::default();
    let mut tokens = pair(&fake.valid_tokens());
    let portal = portal();
    fake.expire_token();
    let call =
        imconnector::send_messages_call(&connector(), line(), &[message("u1", "c1", "m1", "x")])
            .unwrap();
    let answer = client
        .session(&portal, &mut tokens, &store)
        .batch(&[BatchCommand::from_call("m1", call)], false)
        .await
        .unwrap();
    assert!(answer.result("m1").is_ok());
    assert_eq!(fake.oauth_requests().len(), 1);
    assert_eq!(store.saved().len(), 1);
    let statuses: Vec<u16> = fake.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [401, 200]);
    assert_eq!(
        tokens.access_token.expose(),
        fake.valid_tokens().access_token
    );
    assert_eq!(fake.messages_received().len(), 1);
}

#[tokio::test]
async fn batches_the_portal_would_refuse_are_not_sent() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let store = MemoryStore::default();
    let mut tokens = pair(&fake.valid_tokens());
    let portal = portal();
    let mut session = client.session(&portal, &mut tokens, &store);
    let many: Vec<BatchCommand> = (0..=MAX_BATCH_COMMANDS)
        .map(|i| BatchCommand::new(format!("k{i}"), "app.info", Value::Null))
        .collect();
    for commands in [&many[..], &[]] {
        let err = session.batch(commands, false).await.unwrap_err();
        assert!(matches!(err, BitrixError::InvalidRequest(_)), "{err:?}");
    }
    assert!(fake.calls().is_empty());
    // Fifty is allowed, and is still one request.
    let answer = session
        .batch(&many[..MAX_BATCH_COMMANDS], false)
        .await
        .unwrap();
    assert_eq!(answer.results().len(), MAX_BATCH_COMMANDS);
    assert_eq!(fake.calls().len(), 1);
    assert_eq!(fake.batch_commands().len(), MAX_BATCH_COMMANDS);
}

#[tokio::test]
async fn recent_messages_show_which_of_ours_arrived() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let store = MemoryStore::default();
    let mut tokens = pair(&fake.valid_tokens());
    let portal = portal();
    let mut session = client.session(&portal, &mut tokens, &store);
    let msgs: Vec<_> = ["m1", "m2", "m3"]
        .iter()
        .map(|id| message("u1", CHAT_A, id, "text"))
        .collect();
    let sent = session
        .send_messages(&connector(), line(), &msgs)
        .await
        .unwrap();
    session
        .send_messages(&connector(), line(), &[message("u2", CHAT_B, "x1", "t")])
        .await
        .unwrap();
    let chat_id = sent[0].chat_id.clone().unwrap();

    let recent = session.recent_messages(&chat_id, 2).await.unwrap();
    let mids: Vec<_> = recent.iter().map(|m| m.connector_mids.clone()).collect();
    assert_eq!(mids, [vec!["m3".to_owned()], vec!["m2".to_owned()]]);
    assert!(recent[0].id > recent[1].id, "newest first");
    let all = session.recent_messages(&chat_id, 50).await.unwrap();
    assert_eq!(all.len(), 3, "only this chat's messages");
    let call = fake.calls_to("im.dialog.messages.get")[0].clone();
    assert_eq!(
        call.params,
        json!({"DIALOG_ID": format!("chat{chat_id}"), "LIMIT": 2})
    );

    // LAST_ID: older than; FIRST_ID: newer than (as documented).
    let older = session
        .call(
            "im.dialog.messages.get",
            json!({"DIALOG_ID": format!("chat{chat_id}"), "LAST_ID": all[0].id}),
        )
        .await
        .unwrap();
    let older = parse_recent_messages(&older).unwrap();
    assert_eq!(older.len(), 2);
    assert_eq!(older[0].connector_mids, ["m2"]);
    let newer = session
        .call(
            "im.dialog.messages.get",
            json!({"DIALOG_ID": format!("chat{chat_id}"), "FIRST_ID": all[2].id, "LIMIT": 1}),
        )
        .await
        .unwrap();
    assert_eq!(
        parse_recent_messages(&newer).unwrap()[0].connector_mids,
        ["m2"]
    );

    // In a batch, after the send: the lookup sees the message sent before it.
    let send = imconnector::send_messages_call(
        &connector(),
        line(),
        &[message("u1", CHAT_A, "m4", "text")],
    )
    .unwrap();
    let answer = session
        .batch(
            &[
                BatchCommand::from_call("send", send),
                BatchCommand::from_call("look", recent_messages_call(&chat_id, 1)),
            ],
            true,
        )
        .await
        .unwrap();
    let look = parse_recent_messages(answer.result("look").unwrap()).unwrap();
    assert_eq!(look[0].connector_mids, ["m4"]);

    // A chat the portal does not have.
    let err = session.recent_messages("999999", 5).await.unwrap_err();
    assert!(
        matches!(&err, BitrixError::Rejected { code, .. } if code == "ACCESS_ERROR"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_lost_answer_is_ambiguous_and_the_lookup_finds_the_message() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let store = MemoryStore::default();
    let mut tokens = pair(&fake.valid_tokens());
    let portal = portal();
    let mut session = client.session(&portal, &mut tokens, &store);
    let first = [message("u1", CHAT_A, "m1", "first")];
    let sent = session
        .send_messages(&connector(), line(), &first)
        .await
        .unwrap();
    let chat_id = sent[0].chat_id.clone().unwrap();

    fake.lose_answers(FAKE_DOMAIN, 1);
    let lost = [message("u1", CHAT_A, "m2", "second")];
    let err = session
        .send_messages(&connector(), line(), &lost)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BitrixError::Unavailable { status: None, .. }),
        "{err:?}"
    );
    assert!(err.is_ambiguous(), "{err:?}");
    assert!(err.is_retryable());
    // The portal did run it, once (the client did not repeat it by itself).
    assert_eq!(fake.messages_in_chat(FAKE_DOMAIN, CHAT_A), ["m1", "m2"]);
    assert_eq!(fake.calls().len(), 2);

    // A lost batch answer is just as ambiguous.
    let call =
        imconnector::send_messages_call(&connector(), line(), &[message("u1", CHAT_A, "m3", "t")])
            .unwrap();
    let err = session
        .batch(&[BatchCommand::from_call("m3", call)], false)
        .await
        .unwrap_err();
    assert!(err.is_ambiguous(), "{err:?}");

    fake.lose_answers(FAKE_DOMAIN, 0);
    let recent = session.recent_messages(&chat_id, 20).await.unwrap();
    let arrived: Vec<&str> = recent
        .iter()
        .flat_map(|m| m.connector_mids.iter().map(String::as_str))
        .collect();
    assert_eq!(arrived, ["m3", "m2", "m1"]);
    assert_eq!(fake.duplicate_posts(), 0);

    // Posting again blindly is what the counter catches.
    session
        .send_messages(&connector(), line(), &lost)
        .await
        .unwrap();
    assert_eq!(fake.duplicate_posts(), 1);

    // Every second answer lost: the first call is answered, the second is not.
    fake.lose_answers(FAKE_DOMAIN, 2);
    assert!(session.recent_messages(&chat_id, 1).await.is_ok());
    let err = session.recent_messages(&chat_id, 1).await.unwrap_err();
    assert!(err.is_ambiguous(), "{err:?}");
    assert!(session.recent_messages(&chat_id, 1).await.is_ok());
}

#[tokio::test]
async fn a_hung_answer_times_out_after_the_effect() {
    let fake = FakeBitrix::start().await;
    let mut config = config(&fake);
    config.request_timeout = Duration::from_millis(300);
    let client = BitrixClient::new(config).unwrap();
    let store = MemoryStore::default();
    let mut tokens = pair(&fake.valid_tokens());
    let portal = portal();
    let mut session = client.session(&portal, &mut tokens, &store);

    fake.hang(FAKE_DOMAIN, Duration::from_secs(3));
    let err = session
        .send_messages(&connector(), line(), &[message("u1", "c1", "m1", "t")])
        .await
        .unwrap_err();
    assert!(err.is_ambiguous(), "{err:?}");
    assert_eq!(
        fake.messages_in_chat(FAKE_DOMAIN, "c1"),
        ["m1"],
        "executed although the client timed out"
    );
    fake.hang(FAKE_DOMAIN, Duration::ZERO);

    // A slow portal (delay before the effect): the client times out before anything ran.
    fake.delay_portal(FAKE_DOMAIN, Duration::from_secs(3));
    let err = session
        .send_messages(&connector(), line(), &[message("u1", "c2", "m2", "t")])
        .await
        .unwrap_err();
    assert!(err.is_ambiguous(), "a timeout cannot tell: {err:?}");
    assert!(fake.messages_in_chat(FAKE_DOMAIN, "c2").is_empty());
    fake.delay_portal(FAKE_DOMAIN, Duration::ZERO);
    session
        .send_messages(&connector(), line(), &[message("u1", "c3", "m3", "t")])
        .await
        .unwrap();
}

#[tokio::test]
async fn outages_are_per_portal_and_classified() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let token = secret(&fake.valid_tokens().access_token);
    let other_domain = "other.bitrix24.com";
    let other = fake.add_portal(other_domain, "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0");
    let other_portal = BitrixDomain::parse(other_domain).unwrap();
    let other_token = secret(&other.access_token);

    for (kind, ambiguous) in [
        (FailKind::InternalError, true),
        (FailKind::Down, true),
        (FailKind::QueryLimit, false),
        (FailKind::OperationTimeLimit, false),
    ] {
        fake.outage(FAKE_DOMAIN, kind);
        for _ in 0..3 {
            let err = client
                .call(&portal(), &token, "app.info", Value::Null)
                .await
                .unwrap_err();
            assert!(err.is_retryable(), "{kind:?}: {err:?}");
            assert_eq!(err.is_ambiguous(), ambiguous, "{kind:?}: {err:?}");
            if kind == FailKind::QueryLimit {
                // Our pacer backs off after the portal's limit; start afresh.
                break;
            }
        }
        // The other portal is unaffected.
        client
            .call(&other_portal, &other_token, "app.info", Value::Null)
            .await
            .unwrap();
        fake.end_outage(FAKE_DOMAIN);
    }
    client
        .call(&portal(), &token, "app.info", Value::Null)
        .await
        .unwrap();
    assert_eq!(fake.rate_limited_count(), 0, "an outage is not the bucket");
}

#[tokio::test]
async fn the_leaky_bucket_counts_requests_not_commands() {
    let fake = FakeBitrix::start().await;
    let token = fake.valid_tokens().access_token;
    let url = format!("{}/{FAKE_DOMAIN}/rest/app.info", fake.base_url());
    let http = reqwest::Client::new();
    let body = json!({ "auth": token });
    let get = || post(&http, &url, &body);
    // Off by default.
    for _ in 0..60 {
        assert_eq!(get().await.0, 200);
    }
    fake.limit_rate(FAKE_DOMAIN, 2.0, 3);
    for _ in 0..3 {
        assert_eq!(get().await.0, 200);
    }
    let (status, body) = get().await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"})
    );
    assert_eq!(fake.rate_limited_count(), 1);
    // The counter drains at 2 per second: after 0.6 s one more passes, not two.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(get().await.0, 200);
    assert_eq!(get().await.0, 503);
    assert_eq!(fake.rate_limited_count(), 2);

    // A batch of many commands is one request for the bucket.
    fake.limit_rate(FAKE_DOMAIN, 0.001, 1);
    let client = client(&fake);
    let store = MemoryStore::default();
    let mut tokens = pair(&fake.valid_tokens());
    let portal = portal();
    let commands: Vec<BatchCommand> = (0..20)
        .map(|i| BatchCommand::new(format!("k{i}"), "app.info", Value::Null))
        .collect();
    let answer = client
        .session(&portal, &mut tokens, &store)
        .batch(&commands, false)
        .await
        .unwrap();
    assert_eq!(answer.results().len(), 20);
    let err = client
        .session(&portal, &mut tokens, &store)
        .batch(&commands, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BitrixError::RateLimited { code, .. } if code == "QUERY_LIMIT_EXCEEDED"),
        "{err:?}"
    );
    assert!(!err.is_ambiguous());
    assert_eq!(fake.rate_limited_count(), 3);
    fake.end_rate_limit(FAKE_DOMAIN);
}

#[tokio::test]
async fn the_fake_takes_a_form_encoded_batch_like_bitrix24() {
    // apidocs "Data Encoding": in a form, each command is encoded twice.
    let fake = FakeBitrix::start().await;
    let token = fake.valid_tokens().access_token;
    let url = format!("{}/{FAKE_DOMAIN}/rest/batch", fake.base_url());
    let body = format!(
        "auth={token}&halt=0\
         &cmd%5Bsend%5D=imconnector.send.messages%3FCONNECTOR%3Dwa%26LINE%3D107\
         %26MESSAGES%255B0%255D%255Buser%255D%255Bid%255D%3Du1\
         %26MESSAGES%255B0%255D%255Bmessage%255D%255Bid%255D%3Dm1\
         %26MESSAGES%255B0%255D%255Bmessage%255D%255Btext%255D%3DJohn%2526Martin\
         %26MESSAGES%255B0%255D%255Bchat%255D%255Bid%255D%3Dc1\
         &cmd%5Binner%5D=batch%3Fcmd%255Bx%255D%3Dapp.info"
    );
    let http = reqwest::Client::new();
    let answer: Value = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let result = &answer["result"];
    assert_eq!(
        result["result"]["send"]["DATA"]["RESULT"][0]["SUCCESS"],
        json!(true)
    );
    assert_eq!(
        result["result_error"]["inner"]["error"],
        json!("ERROR_BATCH_METHOD_NOT_ALLOWED")
    );
    assert!(result["result_time"]["send"]["duration"].is_number());
    assert_eq!(result["result_total"], json!([]));
    assert_eq!(
        fake.messages_received()[0].text.as_deref(),
        Some("John&Martin")
    );
    assert!(fake.calls()[0].form);

    // More than 50 commands: the batch itself is refused.
    let cmd: serde_json::Map<String, Value> = (0..51)
        .map(|i| (format!("k{i}"), json!("app.info")))
        .collect();
    let r = http
        .post(&url)
        .json(&json!({"auth": token, "cmd": cmd}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], json!("ERROR_BATCH_LENGTH_EXCEEDED"));
    // With nothing to run, every part is PHP's empty array.
    let body: Value = http
        .post(&url)
        .json(&json!({"auth": token, "cmd": {}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["result"],
        json!({"result": [], "result_error": [], "result_total": [], "result_next": [], "result_time": []})
    );
}
