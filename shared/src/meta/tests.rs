//! Edge cases of the splitter. Every sample payload in `events/meta-webhook/` is tested by
//! the `meta` integration test.

use serde_json::{json, Value};

use super::*;

const PNID: &str = "106540352242922";
const WABA: &str = "102290129340398";
const BSUID: &str = "US.13491208655302741918";
const PHONE: &str = "16505551234";
const IG_ACCOUNT: &str = "17841405822304914";
const IGSID: &str = "1254459154682919";

fn split(v: &Value) -> WebhookBatch {
    split_webhook(v.to_string().as_bytes()).expect("splits")
}

fn wa_value(value: Value) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [
        {"field": "messages", "value": value}
    ]}]})
}

fn metadata() -> Value {
    json!({"display_phone_number": "15550783881", "phone_number_id": PNID})
}

fn text_msg(id: &str, body: &str) -> Value {
    json!({"from": PHONE, "from_user_id": BSUID, "id": id, "timestamp": "1749416383",
        "type": "text", "text": {"body": body}})
}

fn contact() -> Value {
    json!({"profile": {"name": "Sheena Nelson"}, "wa_id": PHONE, "user_id": BSUID})
}

fn ids(batch: &WebhookBatch) -> Vec<&str> {
    batch
        .events
        .iter()
        .map(|e| e.provider_event_id.as_str())
        .collect()
}

#[test]
fn malformed_json_and_non_webhooks_are_errors() {
    for body in [&b""[..], b"{", b"not json", b"{\"object\":\"instagram\",}"] {
        let err = split_webhook(body).unwrap_err();
        assert!(
            matches!(err, WebhookParseError::MalformedJson(_)),
            "{err:?}"
        );
        assert!(!err.is_ignorable());
    }
    for body in [
        json!("text"),
        json!(42),
        json!({}),
        json!({"object": 1, "entry": []}),
        json!({"object": "instagram"}),
        json!({"object": "whatsapp_business_account", "entry": {}}),
        json!([]),
    ] {
        let err = split_webhook(body.to_string().as_bytes()).unwrap_err();
        assert!(
            matches!(err, WebhookParseError::NotAWebhook(_)),
            "{body}: {err:?}"
        );
    }
}

#[test]
fn malformed_json_error_never_quotes_the_body() {
    let err = split_webhook(b"{\"secret message\": tru}").unwrap_err();
    assert!(!err.to_string().contains("secret"), "{err}");
}

#[test]
fn unknown_object_is_ignorable() {
    let err = split_webhook(br#"{"object":"page","entry":[{"id":"1"}]}"#).unwrap_err();
    assert_eq!(err, WebhookParseError::UnsupportedObject("page".into()));
    assert!(err.is_ignorable());
    let err = split_webhook(br#"{"object":"Weird Object\n<script>","entry":[]}"#).unwrap_err();
    assert_eq!(
        err,
        WebhookParseError::UnsupportedObject("weird_object__script_".into())
    );
}

#[test]
fn empty_entries_and_changes_give_empty_batches() {
    for body in [
        json!({"object": "whatsapp_business_account", "entry": []}),
        json!({"object": "instagram", "entry": []}),
        json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": []}]}),
        json!({"object": "whatsapp_business_account", "entry": [{"id": WABA}]}),
        json!({"object": "instagram", "entry": [{"id": IG_ACCOUNT, "time": 1, "messaging": []}]}),
        wa_value(json!({"messaging_product": "whatsapp", "metadata": metadata()})),
        wa_value(json!({"metadata": metadata(), "messages": [], "statuses": [], "contacts": []})),
    ] {
        let b = split(&body);
        assert!(b.events.is_empty(), "{body}");
        assert!(b.ignored.is_empty(), "{body}: {:?}", b.ignored);
    }
}

#[test]
fn missing_metadata_skips_the_change_and_counts_its_items() {
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [
        {"field": "messages", "value": {"contacts": [contact()],
            "messages": [text_msg("wamid.A", "a"), text_msg("wamid.B", "b")],
            "statuses": [{"id": "wamid.C", "status": "read", "recipient_id": PHONE}]}},
        {"field": "messages", "value": {"metadata": {"phone_number_id": "not-digits"},
            "messages": [text_msg("wamid.D", "d")]}},
        {"field": "messages", "value": {"metadata": metadata(), "contacts": [contact()],
            "messages": [text_msg("wamid.E", "e")]}}
    ]}]});
    let b = split(&body);
    assert_eq!(ids(&b), ["wa:msg:wamid.E"], "later changes still processed");
    assert_eq!(b.ignored.get("whatsapp:missing_phone_number_id"), 4);
}

#[test]
fn huge_batch_keeps_every_event_in_order() {
    let entries: Vec<Value> = (0..3)
        .map(|e| {
            let messages: Vec<Value> = (0..50)
                .map(|m| text_msg(&format!("wamid.E{e}M{m}"), &format!("{e}/{m}")))
                .collect();
            json!({"id": WABA, "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp", "metadata": metadata(),
                "contacts": [contact()], "messages": messages}}]})
        })
        .collect();
    let b = split(&json!({"object": "whatsapp_business_account", "entry": entries}));
    assert_eq!(b.events.len(), 150);
    let expected: Vec<String> = (0..3)
        .flat_map(|e| (0..50).map(move |m| format!("wa:msg:wamid.E{e}M{m}")))
        .collect();
    assert_eq!(ids(&b), expected);
    assert!(b.ignored.is_empty());
    for ev in &b.events {
        assert_eq!(ev.account.id(), PNID);
        assert_eq!(ev.customer().unwrap().id.as_str(), BSUID);
    }
}

#[test]
fn statuses_and_messages_in_the_same_change() {
    let b = split(&wa_value(
        json!({"metadata": metadata(), "contacts": [contact()],
        "statuses": [
            {"id": "wamid.S1", "status": "delivered", "timestamp": "1750030073",
             "recipient_id": PHONE, "recipient_user_id": BSUID},
            {"id": "wamid.S1", "status": "read", "timestamp": "1750030080",
             "recipient_id": PHONE, "recipient_user_id": BSUID}
        ],
        "messages": [text_msg("wamid.M1", "hello"), text_msg("wamid.M2", "again")]}),
    ));
    assert_eq!(
        ids(&b),
        [
            "wa:msg:wamid.M1",
            "wa:msg:wamid.M2",
            "wa:status:wamid.S1:delivered",
            "wa:status:wamid.S1:read"
        ]
    );
}

#[test]
fn duplicate_ids_are_kept_for_the_worker_to_dedupe() {
    let b = split(&wa_value(
        json!({"metadata": metadata(), "contacts": [contact()],
        "messages": [text_msg("wamid.DUP", "one"), text_msg("wamid.DUP", "one")]}),
    ));
    assert_eq!(ids(&b), ["wa:msg:wamid.DUP", "wa:msg:wamid.DUP"]);
    // A redelivered body yields identical events, hence identical keys.
    let again = split(&wa_value(
        json!({"metadata": metadata(), "contacts": [contact()],
        "messages": [text_msg("wamid.DUP", "one")]}),
    ));
    assert_eq!(again.events[0], b.events[0]);
}

#[test]
fn one_bad_item_does_not_cost_the_others() {
    let b = split(&wa_value(
        json!({"metadata": metadata(), "contacts": [contact()],
        "messages": [
            "not an object",
            {"from": PHONE, "type": "text", "text": {"body": "no id"}},
            {"from": PHONE, "id": "wamid.BADIMG", "type": "image", "image": "oops"},
            {"id": "wamid.NOBODY", "type": "text", "text": {"body": "x"}, "from": "abc"},
            text_msg("wamid.GOOD", "fine")
        ],
        "statuses": [42, {"id": "wamid.X", "status": "deleted", "recipient_id": PHONE}]}),
    ));
    // The image whose object is junk is kept as unsupported; the one without a usable
    // sender is attributed to the change's only contact.
    assert_eq!(
        ids(&b),
        [
            "wa:msg:wamid.BADIMG",
            "wa:msg:wamid.NOBODY",
            "wa:msg:wamid.GOOD"
        ]
    );
    match &b.events[0].kind {
        EventKind::CustomerMessage { content, .. } => assert_eq!(
            content,
            &Content::Unsupported {
                type_name: "image".into(),
                errors: vec![]
            }
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.ignored.get("whatsapp:malformed_message"), 2);
    assert_eq!(b.ignored.get("whatsapp:malformed_status"), 1);
    assert_eq!(b.ignored.get("whatsapp:status:deleted"), 1);
}

#[test]
fn unknown_message_types_and_fields() {
    let b = split(
        &json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [
            {"field": "messages", "value": {"metadata": metadata(), "contacts": [contact()],
                "messages": [{"from": PHONE, "id": "wamid.P", "timestamp": "1", "type": "poll_v9",
                    "poll_v9": {"q": "?"}}]}},
            {"field": "history", "value": {"metadata": metadata(), "history": []}},
            {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}},
            {"value": {}}
        ]}]}),
    );
    assert_eq!(ids(&b), ["wa:msg:wamid.P"]);
    match &b.events[0].kind {
        EventKind::CustomerMessage { content, .. } => {
            assert_eq!(content.text_for_crm(), "[unsupported: poll_v9]")
        }
        other => panic!("{other:?}"),
    }
    // `history` is read (Coexistence); an empty one holds nothing.
    assert_eq!(b.ignored.get("whatsapp:field:history"), 0);
    assert_eq!(b.ignored.get("whatsapp:field:none"), 1);
    // An account event is not ignored: it is the intake's to route from the WABA.
    assert_eq!(b.ignored.get("whatsapp:field:account_update"), 0);
    assert_eq!(b.account_updates.len(), 1);
}

#[test]
fn customer_identity_prefers_bsuid_and_keeps_phone_optional() {
    // Phone only (payloads before the BSUID rollout).
    let b = split(&wa_value(json!({"metadata": metadata(),
        "contacts": [{"profile": {"name": "Old"}, "wa_id": PHONE}],
        "messages": [{"from": PHONE, "id": "wamid.1", "timestamp": "1", "type": "text",
            "text": {"body": "x"}}]})));
    let c = b.events[0].customer().unwrap();
    assert_eq!(c.id.key(), format!("phone:{PHONE}"));
    assert_eq!(c.name.as_deref(), Some("Old"));
    // BSUID only: the identity; no phone.
    let b = split(&wa_value(json!({"metadata": metadata(),
        "contacts": [{"profile": {"name": "New", "username": "@new"}, "user_id": BSUID}],
        "messages": [{"from_user_id": BSUID, "id": "wamid.2", "timestamp": "1", "type": "text",
            "text": {"body": "x"}}]})));
    let c = b.events[0].customer().unwrap();
    assert_eq!(c.id.key(), format!("bsuid:{BSUID}"));
    assert_eq!(c.phone, None);
    assert_eq!(c.username.as_deref(), Some("@new"));
    // Several contacts: each message gets its own sender's profile.
    let b = split(&wa_value(json!({"metadata": metadata(),
    "contacts": [
        {"profile": {"name": "Ann"}, "wa_id": "16505550001", "user_id": "US.1"},
        {"profile": {"name": "Bob"}, "wa_id": "16505550002", "user_id": "US.2"}
    ],
    "messages": [
        {"from": "16505550002", "from_user_id": "US.2", "id": "wamid.b", "timestamp": "1",
         "type": "text", "text": {"body": "x"}},
        {"from": "16505550001", "id": "wamid.a", "timestamp": "1", "type": "text",
         "text": {"body": "y"}},
        {"from": "16505550003", "id": "wamid.c", "timestamp": "1", "type": "text",
         "text": {"body": "z"}}
    ]})));
    let names: Vec<_> = b
        .events
        .iter()
        .map(|e| e.customer().unwrap().name.clone())
        .collect();
    assert_eq!(names, [Some("Bob".into()), Some("Ann".into()), None]);
    assert_eq!(b.events[1].customer().unwrap().id.as_str(), "US.1");
    assert_eq!(b.events[2].customer().unwrap().id.as_str(), "16505550003");
    // A contact that contradicts the sender is not borrowed.
    let b = split(&wa_value(json!({"metadata": metadata(),
        "contacts": [{"profile": {"name": "Other"}, "wa_id": "16505550009"}],
        "messages": [{"from": PHONE, "id": "wamid.3", "timestamp": "1", "type": "text",
            "text": {"body": "x"}}]})));
    assert_eq!(b.events[0].customer().unwrap().name, None);
    // Nothing identifies the sender: counted, not guessed.
    let b = split(&wa_value(json!({"metadata": metadata(),
        "messages": [{"id": "wamid.4", "timestamp": "1", "type": "text", "text": {"body": "x"}}]})));
    assert!(b.events.is_empty());
    assert_eq!(b.ignored.get("whatsapp:unidentified_customer"), 1);
}

#[test]
fn group_messages_are_counted_not_relayed() {
    let mut m = text_msg("wamid.G", "hi all");
    m["group_id"] = json!("120363025246125888");
    let b = split(&wa_value(
        json!({"metadata": metadata(), "contacts": [contact()],
        "messages": [m]}),
    ));
    assert!(b.events.is_empty());
    assert_eq!(b.ignored.get("whatsapp:group_message"), 1);
}

#[test]
fn numeric_timestamps_and_ids_are_tolerated() {
    let b = split(&wa_value(
        json!({"metadata": {"phone_number_id": 106540352242922u64},
        "contacts": [{"wa_id": 16505551234u64}],
        "messages": [{"from": 16505551234u64, "id": "wamid.N", "timestamp": 1749416383,
            "type": "text", "text": {"body": "x"}, "unexpected": {"nested": [1, 2]}}]}),
    ));
    assert_eq!(b.events[0].timestamp, Some(1749416383));
    assert_eq!(b.events[0].account.id(), PNID);
    assert_eq!(b.events[0].customer().unwrap().id.as_str(), PHONE);
}

#[test]
fn instagram_direction_and_routing() {
    let body = json!({"object": "instagram", "entry": [{"id": IG_ACCOUNT, "time": 1569262486134u64,
    "messaging": [
        {"sender": {"id": IGSID}, "recipient": {"id": IG_ACCOUNT}, "timestamp": 1569262485349u64,
         "message": {"mid": "mid.in", "text": "hi"}},
        {"sender": {"id": IG_ACCOUNT}, "recipient": {"id": IGSID}, "timestamp": 1569262485999u64,
         "message": {"mid": "mid.echo", "text": "hello", "is_echo": true}},
        {"sender": {"id": IG_ACCOUNT}, "recipient": {"id": IGSID}, "timestamp": 1569262486000u64,
         "read": {"mid": "mid.in"}}
    ]}]});
    let b = split(&body);
    assert_eq!(ids(&b), ["ig:msg:mid.in", "ig:echo:mid.echo"]);
    assert_eq!(b.ignored.get("instagram:read_by_business"), 1);
    for ev in &b.events {
        assert_eq!(ev.account.id(), IG_ACCOUNT);
        assert_eq!(ev.customer().unwrap().id.key(), format!("igsid:{IGSID}"));
        assert_eq!(ev.timestamp, Some(1569262485));
    }
    // entry.id unusable: routed by the business side of each item.
    let body = json!({"object": "instagram", "entry": [{"id": "x", "messaging": [
        {"sender": {"id": IGSID}, "recipient": {"id": IG_ACCOUNT}, "timestamp": 1,
         "message": {"mid": "mid.1", "text": "a"}},
        {"sender": {"id": IG_ACCOUNT}, "recipient": {"id": IGSID}, "timestamp": 2,
         "message": {"mid": "mid.2", "text": "b", "is_echo": true}},
        {"sender": {"id": IGSID}, "recipient": {"id": "nope"}, "timestamp": 3,
         "message": {"mid": "mid.3", "text": "c"}}
    ]}]});
    let b = split(&body);
    assert_eq!(ids(&b), ["ig:msg:mid.1", "ig:echo:mid.2"]);
    assert!(b.events.iter().all(|e| e.account.id() == IG_ACCOUNT));
    assert_eq!(b.ignored.get("instagram:missing_account"), 1);
}

#[test]
fn instagram_other_items_are_counted() {
    let body = json!({"object": "instagram", "entry": [{"id": IG_ACCOUNT, "time": 1,
        "messaging": [
            {"sender": {"id": IGSID}, "recipient": {"id": IG_ACCOUNT}, "timestamp": 1,
             "referral": {"ref": "summer", "source": "SHORTLINK", "type": "OPEN_THREAD"}},
            {"sender": {"id": IGSID}, "recipient": {"id": IG_ACCOUNT}, "timestamp": 1,
             "message": {"text": "no mid"}},
            {"sender": {"id": "not-an-id"}, "recipient": {"id": IG_ACCOUNT}, "timestamp": 1,
             "message": {"mid": "mid.x", "text": "x"}},
            {"sender": {"id": IGSID}, "recipient": {"id": IG_ACCOUNT}, "timestamp": 1,
             "message": {"mid": "mid.bad", "text": {"not": "a string"}}}
        ],
        "standby": [{"sender": {"id": IGSID}, "recipient": {"id": IG_ACCOUNT},
                     "message": {"mid": "mid.s", "text": "s"}}],
        "changes": [{"field": "comments", "value": {"id": "1"}}]}]});
    let b = split(&body);
    // The message whose text is junk is kept as unsupported rather than lost; the standby
    // message (another app holds the conversation) is relayed too.
    assert_eq!(ids(&b), ["ig:msg:mid.bad", "ig:msg:mid.s"]);
    assert_eq!(b.ignored.get("instagram:referral"), 1);
    assert_eq!(b.ignored.get("instagram:malformed_message"), 1);
    assert_eq!(b.ignored.get("instagram:unidentified_customer"), 1);
    // A comment without a commenter cannot be relayed (decision 0062).
    assert_eq!(b.ignored.get("instagram:malformed_comment"), 1);
    assert_eq!(b.ignored.total(), 4);
    // Safe to log as structured data: reasons and counts only.
    let logged = serde_json::to_value(&b.ignored).unwrap();
    assert_eq!(logged["instagram:referral"], 1);
}

#[test]
fn top_level_arrays_are_tolerated() {
    let one = json!({"object": "instagram", "entry": [{"id": IG_ACCOUNT, "messaging": [
        {"sender": {"id": IGSID}, "recipient": {"id": IG_ACCOUNT}, "timestamp": 1,
         "message": {"mid": "mid.arr", "text": "a"}}]}]});
    let b = split(&json!([one, {"object": "page", "entry": []}]));
    assert_eq!(ids(&b), ["ig:msg:mid.arr"]);
    assert_eq!(b.ignored.get("object:page"), 1);
    let err = split_webhook(br#"[{"object":"page","entry":[]}]"#).unwrap_err();
    assert!(err.is_ignorable());
}

#[test]
fn every_event_round_trips_through_json() {
    let body = wa_value(json!({"metadata": metadata(), "contacts": [contact()],
        "messages": [
            text_msg("wamid.T", "t"),
            {"from": PHONE, "id": "wamid.L", "timestamp": "1", "type": "location",
             "location": {"latitude": 37.483307, "longitude": -122.148981, "name": "Philz"}},
            {"from": PHONE, "id": "wamid.O", "timestamp": "1", "type": "order",
             "order": {"catalog_id": "194836987003835", "product_items": [
                {"product_retailer_id": "di9ozbzfi4", "quantity": 2, "item_price": 7.99,
                 "currency": "USD"}]}}
        ],
        "statuses": [{"id": "wamid.F", "status": "failed", "timestamp": "1",
            "recipient_id": PHONE, "errors": [{"code": 131049, "title": "t",
            "error_data": {"details": "d"}}]}],
        "errors": [{"code": 131000, "title": "Something went wrong"}]}));
    let b = split(&body);
    assert_eq!(b.events.len(), 5);
    for ev in &b.events {
        let json = serde_json::to_string(ev).unwrap();
        let back: InboundEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, ev, "{json}");
    }
    // Exact price survives the queue.
    let json = serde_json::to_string(&b.events[2]).unwrap();
    assert!(json.contains("\"item_price\":7.99"), "{json}");
}

#[test]
fn account_errors_key_is_stable_and_content_based() {
    let errs = |code: i64| {
        wa_value(json!({"metadata": metadata(), "errors": [{"code": code, "title": "x"}]}))
    };
    let a = split(&errs(131000));
    let a2 = split(&errs(131000));
    let b = split(&errs(131005));
    assert_eq!(
        a.events[0].provider_event_id,
        a2.events[0].provider_event_id
    );
    assert_ne!(a.events[0].provider_event_id, b.events[0].provider_event_id);
    assert!(a.events[0].provider_event_id.starts_with("wa:errors:"));
    assert_eq!(a.events[0].timestamp, None);
}

#[test]
fn duplicate_keys_refuse_the_delivery_at_any_depth_we_read() {
    let top = br#"{"object":"page","object":"instagram","entry":[]}"#;
    assert!(matches!(
        split_webhook(top),
        Err(WebhookParseError::DuplicateKey(_))
    ));
    let in_message = wa_value(json!({"metadata": metadata(), "contacts": [contact()],
        "messages": [text_msg("wamid.A", "a")]}))
    .to_string()
    .replace(r#""id":"wamid.A""#, r#""id":"wamid.A","id":"wamid.B""#);
    assert!(in_message.contains("wamid.B"));
    let err = split_webhook(in_message.as_bytes()).unwrap_err();
    assert!(matches!(err, WebhookParseError::DuplicateKey(_)), "{err:?}");
    assert!(!err.is_ignorable());
    // Also when a neighbour sends the parse down the lenient path first.
    let lenient = in_message.replace(r#""messages":["#, r#""messages":["junk","#);
    assert!(matches!(
        split_webhook(lenient.as_bytes()),
        Err(WebhookParseError::DuplicateKey(_))
    ));
    // Keys we do not read may repeat.
    let unknown = wa_value(json!({"metadata": metadata(), "contacts": [contact()],
        "messages": [text_msg("wamid.A", "a")]}))
    .to_string()
    .replace(r#""id":"wamid.A""#, r#""id":"wamid.A","x":1,"x":2"#);
    assert_eq!(
        ids(&split_webhook(unknown.as_bytes()).unwrap()),
        ["wa:msg:wamid.A"]
    );
}

#[test]
fn more_than_a_thousand_events_refuse_the_delivery() {
    let body = |n: usize| {
        let messages: Vec<Value> = (0..n)
            .map(|i| text_msg(&format!("wamid.{i}"), "x"))
            .collect();
        wa_value(json!({"metadata": metadata(), "contacts": [contact()], "messages": messages}))
    };
    assert_eq!(split(&body(MAX_EVENTS as usize)).events.len(), 1000);
    let err = split_webhook(body(MAX_EVENTS as usize + 1).to_string().as_bytes()).unwrap_err();
    assert!(matches!(err, WebhookParseError::TooManyItems(_)), "{err:?}");
    // Elements of any array count too: 30,000 empty contacts.
    let contacts: Vec<Value> = (0..30_000).map(|_| json!({})).collect();
    let err = split_webhook(
        wa_value(json!({"metadata": metadata(), "contacts": contacts}))
            .to_string()
            .as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(err, WebhookParseError::TooManyItems(_)), "{err:?}");
}

#[test]
fn numeric_ids_and_types_are_kept_as_unsupported_and_counted() {
    let b = split(&wa_value(
        json!({"metadata": metadata(), "contacts": [contact()],
        "messages": [
            {"id": 12345, "from": PHONE, "type": "text", "text": {"body": "x"}},
            {"id": "wamid.T", "from": PHONE, "type": 7, "text": {"body": "x"}}
        ]}),
    ));
    // A numeric id is an id Meta sent unquoted: the message is kept (the operator sees that
    // something arrived), as unsupported since its typed read failed; a numeric type is no
    // type at all.
    assert_eq!(ids(&b), ["wa:msg:12345", "wa:msg:wamid.T"]);
    let types: Vec<String> = b
        .events
        .iter()
        .map(|e| match &e.kind {
            EventKind::CustomerMessage { content, .. } => content.text_for_crm(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(types, ["[unsupported: text]", "[unsupported: malformed]"]);
    assert_eq!(b.malformed.get("whatsapp:message:text"), 1);
    assert_eq!(b.malformed.get("whatsapp:message:malformed"), 1);
    assert!(b.ignored.is_empty());
}

#[test]
fn implausible_timestamps_are_replaced_by_the_receipt_time() {
    let now = 1_767_261_600;
    let msg = |id: &str, ts: Value| json!({"from": PHONE, "id": id, "timestamp": ts, "type": "text", "text": {"body": "x"}});
    let mut b = split(&wa_value(
        json!({"metadata": metadata(), "contacts": [contact()],
        "messages": [
            msg("wamid.NEG", json!("-99999999999")),
            msg("wamid.OLD", json!(1_000_000_000)),
            msg("wamid.FUT", json!(now + 2 * 86_400)),
            msg("wamid.OK", json!(now - 60)),
            msg("wamid.SKEW", json!(now + 600))
        ],
        "errors": [{"code": 1}]}),
    ));
    assert_eq!(b.clamp_timestamps(now), 3);
    let times: Vec<Option<i64>> = b.events.iter().map(|e| e.timestamp).collect();
    assert_eq!(
        times,
        [
            Some(now),
            Some(now),
            Some(now),
            Some(now - 60),
            Some(now + 600),
            None
        ]
    );
}

/// The models' strings borrow from the body (decision 0060): serde's derive would allocate
/// every `Option<Cow<str>>` without `lenient::opt_str`.
#[test]
fn model_strings_borrow_from_the_body() {
    use std::borrow::Cow;
    fn borrowed(s: &Option<Cow<'_, str>>) -> bool {
        matches!(s, Some(Cow::Borrowed(_)))
    }
    let body = text_msg("wamid.B", "hello").to_string();
    let m: whatsapp::Message = serde_json::from_str(&body).unwrap();
    assert!(borrowed(&m.id) && borrowed(&m.from_user_id) && borrowed(&m.kind));
    assert!(borrowed(&m.text.as_ref().unwrap().body));
    let body = contact().to_string();
    let c: whatsapp::Contact = serde_json::from_str(&body).unwrap();
    assert!(borrowed(&c.user_id) && borrowed(&c.profile.as_ref().unwrap().name));
    let body = json!({"id": "wamid.S", "status": "read", "recipient_user_id": BSUID,
        "pricing": {"category": "service"}})
    .to_string();
    let s: whatsapp::Status = serde_json::from_str(&body).unwrap();
    assert!(borrowed(&s.id) && borrowed(&s.status) && borrowed(&s.recipient_user_id));
    assert!(borrowed(&s.pricing.as_ref().unwrap().category));
    let body = json!({"mid": "m.1", "text": "hi", "attachments": [{"type": "image",
        "payload": {"url": "https://x"}}]})
    .to_string();
    let m: instagram::Message = serde_json::from_str(&body).unwrap();
    assert!(borrowed(&m.mid) && borrowed(&m.text));
    let a = m.attachments[0].ok().unwrap();
    assert!(borrowed(&a.kind) && borrowed(&a.payload.as_ref().unwrap().url));
}
