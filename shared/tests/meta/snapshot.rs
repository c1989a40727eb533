//! The exact events (and ignored counts) of every sample in `events/meta-webhook/` and of a
//! set of odd bodies, pinned as text: a parser change that alters any field of any event
//! fails here. So are the bytes each event becomes in its queue job (`snapshots/jobs/`):
//! the webhook and the inbound worker of another deploy read them, so a change of the
//! split's types or of their serialisation must not move a byte. Regenerate deliberately
//! with `UPDATE_SNAPSHOTS=1 cargo test -p wappline --test meta snapshot` and review the diff.

use std::path::Path;

use wappline::meta::{split_webhook, split_webhook_borrowed, InboundEvent};

use super::samples_dir;

/// Bodies no sample covers: junk items next to good ones, numbers where strings belong,
/// unknown shapes. Each is pinned like a sample.
const ODD_BODIES: &[(&str, &str)] = &[
    (
        "odd-junk-items",
        r#"{"object":"whatsapp_business_account","entry":[7,{"id":"1","changes":[null,"x",
        {"field":"messages","value":{"metadata":{"phone_number_id":"106540352242922"},
        "contacts":[1,{"wa_id":"16505551234","profile":{"name":["n"]}}],
        "messages":[[],{"id":"wamid.A","from":"16505551234","type":"image","image":"oops"},
        {"id":"wamid.B","from":"16505551234","type":"text","text":{"body":"b"},"timestamp":[1]},
        {"id":"wamid.C","from":"16505551234","type":"contacts","contacts":[1,{"name":{"first_name":"A"},"phones":[2,{"phone":3}]}]},
        {"id":"wamid.D","from":"16505551234","type":"order","order":{"product_items":[{"quantity":"2","item_price":"x"},{"quantity":-1,"item_price":1.50}]}},
        {"id":"wamid.E","from":"16505551234","type":"location","location":{"latitude":"1.5","longitude":true}}],
        "statuses":[{"id":"wamid.S","status":"failed","errors":[{"code":"131026"},5],"pricing":{"billable":"yes"}},
        {"id":"wamid.T","status":"sent","pricing":{"billable":true,"category":"service"},"conversation":{"id":"c","expiration_timestamp":"17","origin":{"type":"service"}}}],
        "errors":[{"code":1.5,"title":"t"},"e"]}}]}]}"#,
    ),
    (
        "odd-numbers-for-strings",
        r#"{"object":"whatsapp_business_account","entry":[{"id":102290129340398,"changes":[
        {"field":"messages","value":{"metadata":{"phone_number_id":106540352242922},
        "contacts":[{"wa_id":16505551234}],
        "messages":[{"id":12345,"from":16505551234,"type":"text","text":{"body":"x"},"timestamp":"1767261600"},
        {"id":"wamid.NT","from":"16505551234","type":7,"text":{"body":"y"},"timestamp":1767261600},
        {"id":"wamid.NB","from":"16505551234","type":"text","text":{"body":5}},
        {"id":"wamid.NF","from":"16505551234","type":"text","text":{"body":"f"},"timestamp":1.7e9,
         "context":{"forwarded":"true","id":99}}]}}]}]}"#,
    ),
    (
        "odd-echoes-and-edits",
        r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[
        {"field":"smb_message_echoes","value":{"metadata":{"phone_number_id":"106540352242922"},
        "message_echoes":[{"id":"wamid.E1","from":"15550783881","to":"16505551234","type":"text","text":{"body":"e"},"timestamp":"1767261600"},
        {"id":"wamid.E2","to":"16505551234","type":"edit","edit":{"original_message_id":"wamid.E1","message":{"type":"text","text":{"body":"e2"}}}},
        {"id":"wamid.E3","to":"16505551234","type":"revoke","revoke":{}},
        {"id":"wamid.E4","to":"16505551234","type":"reaction","reaction":{"message_id":"wamid.E1","emoji":""}},
        {"id":"wamid.E5","to":"16505551234","type":"image","image":{"id":1,"voice":"true","animated":1}},
        {"to":"16505551234","type":"text"},"junk"]}}]}]}"#,
    ),
    (
        "odd-instagram",
        r#"{"object":"instagram","entry":[{"id":"17841405822304914","time":"1767261600623","messaging":[
        {"sender":{"id":"1254459154682919"},"recipient":{"id":"17841405822304914"},"timestamp":"1767261600123","message":{"mid":"m.1","attachments":"x"}},
        {"sender":{"id":1254459154682919},"recipient":{"id":"17841405822304914"},"message":{"mid":"m.2","attachments":[3,{"type":"image","payload":{"url":"u","sticker_id":5}},{"type":"audio"},{"type":"weird thing"}]}},
        {"sender":{"id":"1254459154682919"},"recipient":{"id":"17841405822304914"},"timestamp":1767261600123,"reaction":{"mid":"m.1","action":"react","reaction":"love"}},
        {"sender":{"id":"1254459154682919"},"recipient":{"id":"17841405822304914"},"timestamp":1767261600123,"read":{"watermark":"1767261600000"}},
        {"sender":{"id":"1254459154682919"},"recipient":{"id":"17841405822304914"},"timestamp":1767261600123,"read":{}},
        {"sender":{"id":"1254459154682919"},"recipient":{"id":"17841405822304914"},"timestamp":1767261600123,"postback":{"title":"t","payload":"p"}},
        {"sender":{"id":"1254459154682919"},"recipient":{"id":"17841405822304914"},"timestamp":1767261600123,"message_edit":{"mid":"m.1","num_edit":"2"}},
        {"sender":{"id":"1254459154682919"},"recipient":{"id":"17841405822304914"},"timestamp":1767261600123,"message":{"mid":"m.3","is_deleted":"true"}},
        {"sender":{"id":"1254459154682919"},"recipient":{"id":"17841405822304914"},"timestamp":1767261600123,"optin":{}},
        {"sender":{"id":"1254459154682919"},"recipient":{"id":"17841405822304914"},"timestamp":1767261600123},
        {"sender":{"id":"1254459154682919"},"recipient":{"id":"17841405822304914"},"message":{"mid":"m.4","reply_to":{"story":{"id":7,"url":"s"}},"referral":{"ref":"r","ads_context_data":{"ad_title":"a"}},"quick_reply":{"payload":"q"},"text":"t"}},
        "junk"],"standby":"x","changes":[{"field":7},{"value":1}]},
        {"id":"17841405822304914","messaging":{"not":"an array"}}]}"#,
    ),
];

fn check(name: &str, body: &[u8], failures: &mut Vec<String>) {
    let text = format!("{:#?}\n", split_webhook(body));
    compare(&format!("{name}.txt"), &text, "events", failures);
    let jobs = job_lines(body);
    compare(&format!("jobs/{name}.jsonl"), &jobs, "job bytes", failures);
    // The intake seals the events borrowed from the body (decision 0103): the same bytes,
    // so the same as pinned; and the same batch, field for field.
    if borrowed_job_lines(body) != jobs {
        failures.push(format!("{name}: the borrowed events' job bytes differ"));
    }
    if format!("{:#?}\n", split_webhook_borrowed(body)) != text {
        failures.push(format!(
            "{name}: the borrowed batch differs from the owned one"
        ));
    }
}

/// As [`job_lines`], for the events borrowed from the body: what the intake seals.
fn borrowed_job_lines(body: &[u8]) -> String {
    match split_webhook_borrowed(body) {
        Ok(batch) => event_lines(&batch.events, |_, _| {}),
        Err(_) => "refused\n".into(),
    }
}

/// What the intake seals for each event of `body` (the event's JSON, as `InboundJob::seal`
/// writes it), one line per event; and the worker must read each back as the same event.
fn job_lines(body: &[u8]) -> String {
    match split_webhook(body) {
        Ok(batch) => event_lines(&batch.events, |event, json| {
            let back: InboundEvent = serde_json::from_slice(json).unwrap();
            assert_eq!(&back, event, "a job must open to the event sealed into it");
        }),
        Err(_) => "refused\n".into(),
    }
}

/// Each event's JSON on a line of its own, after `check` has seen it.
fn event_lines<E: serde::Serialize>(events: &[E], check: impl Fn(&E, &[u8])) -> String {
    let mut lines = String::new();
    for event in events {
        let json = serde_json::to_vec(event).unwrap();
        check(event, &json);
        lines.push_str(std::str::from_utf8(&json).unwrap());
        lines.push('\n');
    }
    lines
}

fn compare(file: &str, text: &str, what: &str, failures: &mut Vec<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/meta/snapshots")
        .join(file);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    match std::fs::read_to_string(&path) {
        Ok(pinned) if pinned == text => {}
        Ok(_) => failures.push(format!("{file}: {what} differ from the snapshot")),
        Err(e) => failures.push(format!("{file}: no snapshot ({e})")),
    }
}

#[test]
fn every_sample_and_odd_body_gives_its_pinned_events() {
    let dir = samples_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 36, "samples: {}", names.len());
    let mut failures = Vec::new();
    for name in &names {
        let body = std::fs::read(Path::new(&dir).join(name)).unwrap();
        check(name.trim_end_matches(".json"), &body, &mut failures);
    }
    for (name, body) in ODD_BODIES {
        check(name, body.as_bytes(), &mut failures);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
