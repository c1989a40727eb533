//! Exports on real adapters (embedded: files and redb in a temp dir; AWS: DynamoDB, KMS and S3
//! on moto): the JSON round-trips every message decrypted, the CSVs parse back with the same
//! counts, a contact export holds only its customer, another tenant's data never appears,
//! links expire and cannot be forged, and a large export reads page by page.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use wappline::audit::AuditLog;
use wappline::clock::now_secs;
use wappline::conversation::{ConversationId, Conversations, Direction, NewMessage, Origin};
use wappline::crypto::{CachePolicy, Envelope};
use wappline::export::{
    object_key, tenant_prefix, ExportError, ExportFile, ExportLinkError, ExportLinkKey,
    ExportScope, ExportState, Exports,
};
use wappline::faults::hooked::{Answer, HookedStore, StoreCall, StoreHook};
use wappline::ids::{PhoneNumberId, TenantId};
use wappline::meta::{
    AccountRef, Content, CustomerId, CustomerRef, Media, MediaKind, WhatsAppUserId,
};
use wappline::objects::embedded::EmbeddedObjects;
use wappline::objects::s3::{provision_bucket, S3Objects};
use wappline::objects::ObjectStore;
use wappline::store::{Key, StoreError, Table, TableStore, Update};
use wappline::tenant::{RetentionDays, TenantDirectory, TenantName};

use crate::backends::Backend;
use crate::on_both_backends;
use crate::support::{aws_config, unique};

/// Counts the message pages the export reads, and the largest one.
#[derive(Default)]
struct MessagePages {
    message_queries: AtomicUsize,
    largest_page: AtomicUsize,
}

#[async_trait]
impl StoreHook for MessagePages {
    fn answered(&self, call: &StoreCall<'_>, answer: Result<Answer<'_>, &StoreError>) {
        let (StoreCall::Query { .. }, Ok(Answer::Page(page))) = (call, answer) else {
            return;
        };
        if page
            .items
            .first()
            .and_then(|i| i.key())
            .is_some_and(|k| k.pk.contains("#CONV#") && k.sk.starts_with("MSG#"))
        {
            self.message_queries.fetch_add(1, Ordering::Relaxed);
            self.largest_page
                .fetch_max(page.items.len(), Ordering::Relaxed);
        }
    }
}

struct World {
    store: Arc<HookedStore<MessagePages>>,
    envelope: Arc<Envelope>,
    objects: Arc<dyn ObjectStore>,
    key: ExportLinkKey,
    _backend: Backend,
}

impl World {
    async fn new(b: Backend) -> World {
        let objects: Arc<dyn ObjectStore> = match &b._dir {
            Some(dir) => Arc::new(EmbeddedObjects::open(dir.path()).unwrap()),
            None => {
                let config = aws_config().await;
                let client = aws_sdk_s3::Client::from_conf(
                    aws_sdk_s3::config::Builder::from(&config)
                        .force_path_style(true)
                        .build(),
                );
                let bucket = unique("exp").to_lowercase();
                provision_bucket(&client, &bucket).await.unwrap();
                Arc::new(S3Objects::new(client, bucket))
            }
        };
        let store = Arc::new(HookedStore::new(b.store.clone(), MessagePages::default()));
        let envelope = Arc::new(Envelope::new(
            store.clone(),
            b.vault.clone(),
            CachePolicy::default(),
        ));
        World {
            store,
            envelope,
            objects,
            key: ExportLinkKey::generate().unwrap(),
            _backend: b,
        }
    }

    fn exports(&self, page: usize) -> Exports {
        Exports::new(
            self.store.clone(),
            self.envelope.clone(),
            self.objects.clone(),
            self.key.clone(),
            "https://api.example.test/exports/download/",
        )
        .with_page_size(page)
    }

    async fn tenant(&self, name: &str) -> TenantId {
        TenantDirectory::new(self.store.clone(), self.envelope.clone())
            .create(TenantName::parse(name).unwrap(), RetentionDays::default())
            .await
            .unwrap()
            .id
    }

    fn conversations(&self, t: &TenantId) -> Conversations {
        Conversations::new(t.clone(), self.store.clone(), self.envelope.clone())
    }

    async fn read(&self, t: &TenantId, id: &wappline::export::ExportId, f: ExportFile) -> String {
        let body = self
            .objects
            .get(&object_key(t, id, f), None)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{} missing", f.name()));
        String::from_utf8(body.read_all().await.unwrap()).unwrap()
    }

    /// Every byte of every export object of `t`.
    async fn all_files(&self, t: &TenantId) -> String {
        let mut out = String::new();
        let page = self
            .objects
            .list(&tenant_prefix(t), None, 1000)
            .await
            .unwrap();
        for o in page.objects {
            let body = self.objects.get(&o.key, None).await.unwrap().unwrap();
            out.push_str(&String::from_utf8(body.read_all().await.unwrap()).unwrap());
        }
        out
    }
}

fn account() -> AccountRef {
    AccountRef::WhatsApp(PhoneNumberId::parse("106540352242922").unwrap())
}

fn customer(n: u32, name: &str) -> CustomerRef {
    let mut c = CustomerRef::new(CustomerId::WhatsAppUser(
        WhatsAppUserId::parse(&format!("US.1349120865530274{n:04}")).unwrap(),
    ));
    c.name = Some(name.to_owned());
    c
}

fn message(id: &str, direction: Direction, content: Content, at_ms: i64) -> NewMessage {
    NewMessage {
        provider_message_id: id.into(),
        direction,
        origin: match direction {
            Direction::Inbound => Origin::Customer,
            Direction::Outbound => Origin::Operator,
        },
        content,
        at_ms,
        reply_to: None,
        crm_im: None,
        template: None,
        written_with: Default::default(),
    }
}

fn text(body: &str) -> Content {
    Content::Text { body: body.into() }
}

/// A minimal RFC 4180 reader, independent of the writer: rows of cells.
fn parse_csv(s: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut cell) = (Vec::new(), String::new());
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => quoted = false,
                _ => cell.push(c),
            }
            continue;
        }
        match c {
            '"' if cell.is_empty() => quoted = true,
            ',' => row.push(std::mem::take(&mut cell)),
            '\r' if chars.peek() == Some(&'\n') => {
                chars.next();
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            _ => cell.push(c),
        }
    }
    assert!(!quoted, "unterminated quoted cell");
    assert!(cell.is_empty() && row.is_empty(), "last row without CRLF");
    rows
}

struct Seeded {
    tenant: TenantId,
    other: TenantId,
    /// Every message body that must appear decrypted.
    bodies: Vec<String>,
    messages: usize,
    alice: CustomerRef,
}

async fn seed(w: &World) -> Seeded {
    let (tenant, other) = (w.tenant("Exporting Co").await, w.tenant("Bystander").await);
    let c = w.conversations(&tenant);
    let alice = customer(1, "Alice, \"the\" customer");
    let bob = customer(2, "=HYPERLINK(\"http://evil\",\"x\")");
    let carol = customer(3, "Carol\nNewline");
    let mut bodies = Vec::new();
    let mut messages = 0;
    for (i, who) in [&alice, &bob, &carol].into_iter().enumerate() {
        let conv = c
            .record_customer(&account(), who, Some(100), 30)
            .await
            .unwrap();
        let base = (i as i64 + 1) * 1_000_000;
        for (j, (dir, body)) in [
            (
                Direction::Inbound,
                format!("hello from customer {i}, with a comma"),
            ),
            (
                Direction::Outbound,
                format!("operator answer {i}: \"quoted\""),
            ),
            (Direction::Inbound, format!("-{i} starts with minus")),
        ]
        .into_iter()
        .enumerate()
        {
            c.store_message(
                &account(),
                &conv,
                message(&format!("wamid.{i}.{j}"), dir, text(&body), base + j as i64),
                30,
            )
            .await
            .unwrap();
            bodies.push(body);
            messages += 1;
        }
        let mut media = Media::new(MediaKind::Image);
        media.caption = Some(format!("photo caption {i}"));
        media.media_id = Some(format!("media-{i}"));
        c.store_message(
            &account(),
            &conv,
            message(
                &format!("wamid.{i}.media"),
                Direction::Inbound,
                Content::Media(media),
                base + 10,
            ),
            30,
        )
        .await
        .unwrap();
        bodies.push(format!("photo caption {i}"));
        messages += 1;
        let (deleted, _) = c
            .store_message(
                &account(),
                &conv,
                message(
                    &format!("wamid.{i}.deleted"),
                    Direction::Inbound,
                    text("this was unsent"),
                    base + 20,
                ),
                30,
            )
            .await
            .unwrap();
        assert!(c.mark_deleted(&deleted).await.unwrap());
        messages += 1;
    }
    // The other tenant, with the same customer on the same account number.
    let o = w.conversations(&other);
    let conv = o
        .record_customer(&account(), &customer(1, "Other Tenant Person"), Some(1), 30)
        .await
        .unwrap();
    o.store_message(
        &account(),
        &conv,
        message(
            "wamid.other",
            Direction::Inbound,
            text("tenant-b-secret"),
            5,
        ),
        30,
    )
    .await
    .unwrap();
    Seeded {
        tenant,
        other,
        bodies,
        messages,
        alice,
    }
}

async fn tenant_export_round_trips(b: Backend) {
    let w = World::new(b).await;
    let s = seed(&w).await;
    let exports = w.exports(2);
    let id = exports
        .request(&s.tenant, ExportScope::Tenant, "platform_admin")
        .await
        .unwrap();
    assert_eq!(
        exports.get(&s.tenant, &id).await.unwrap().unwrap().state,
        ExportState::Requested
    );
    // Not downloadable before it ran; not visible to another tenant.
    assert!(matches!(
        exports
            .link(&s.tenant, &id, ExportFile::ExportJson, None)
            .await,
        Err(ExportError::NotReady)
    ));
    assert!(exports.get(&s.other, &id).await.unwrap().is_none());
    assert!(matches!(
        exports.run(&s.other, &id).await,
        Err(ExportError::NotFound)
    ));

    let record = exports.run(&s.tenant, &id).await.unwrap();
    assert_eq!(record.state, ExportState::Completed);
    assert_eq!(record.files.len(), ExportFile::ALL.len());
    assert!(record.files.iter().all(|f| f.size > 0));

    // JSON: every message, decrypted, with its structure.
    let json: serde_json::Value =
        serde_json::from_str(&w.read(&s.tenant, &id, ExportFile::ExportJson).await).unwrap();
    assert_eq!(json["format"], "wappline-export");
    assert_eq!(json["tenant_id"], s.tenant.as_str());
    assert_eq!(json["settings"]["name"], "Exporting Co");
    let conversations = json["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 3);
    let all: Vec<&serde_json::Value> = conversations
        .iter()
        .flat_map(|c| c["messages"].as_array().unwrap())
        .collect();
    assert_eq!(all.len(), s.messages);
    let texts: Vec<&str> = all.iter().filter_map(|m| m["text"].as_str()).collect();
    for body in &s.bodies {
        assert!(texts.contains(&body.as_str()), "{body:?} missing from JSON");
    }
    let deleted: Vec<_> = all.iter().filter(|m| m["deleted"] == true).collect();
    assert_eq!(deleted.len(), 3);
    assert!(deleted.iter().all(|m| m.get("content").is_none()));
    let media: Vec<_> = all
        .iter()
        .filter(|m| m["content"]["type"] == "media")
        .collect();
    assert_eq!(media.len(), 3);
    assert_eq!(media[0]["content"]["kind"], "image");
    assert!(all
        .iter()
        .any(|m| m["direction"] == "outbound" && m["origin"] == "operator"));
    let names: Vec<&str> = conversations
        .iter()
        .filter_map(|c| c["customer"]["name"].as_str())
        .collect();
    assert!(names.contains(&"Alice, \"the\" customer"));

    // CSVs: the same counts, cells back as written (formula cells neutralised).
    let messages = parse_csv(&w.read(&s.tenant, &id, ExportFile::MessagesCsv).await);
    assert_eq!(messages[0][0], "conversation_id");
    assert_eq!(messages.len() - 1, s.messages);
    assert!(messages.iter().all(|r| r.len() == messages[0].len()));
    let text_col = messages[0].iter().position(|h| h == "text").unwrap();
    let csv_texts: Vec<&str> = messages.iter().map(|r| r[text_col].as_str()).collect();
    assert!(csv_texts.contains(&"operator answer 0: \"quoted\""));
    assert!(csv_texts.contains(&"'-1 starts with minus"));
    let conversations_csv = parse_csv(&w.read(&s.tenant, &id, ExportFile::ConversationsCsv).await);
    assert_eq!(conversations_csv.len() - 1, 3);
    let contacts = parse_csv(&w.read(&s.tenant, &id, ExportFile::ContactsCsv).await);
    assert_eq!(contacts.len() - 1, 3);
    let contact_names: Vec<&str> = contacts.iter().map(|r| r[2].as_str()).collect();
    assert!(contact_names.contains(&"'=HYPERLINK(\"http://evil\",\"x\")"));
    assert!(contact_names.contains(&"Carol\nNewline"));
    let settings: serde_json::Value =
        serde_json::from_str(&w.read(&s.tenant, &id, ExportFile::SettingsJson).await).unwrap();
    assert_eq!(settings["id"], s.tenant.as_str());

    // Nothing of the other tenant anywhere; nothing written under its prefix.
    let everything = w.all_files(&s.tenant).await;
    assert!(!everything.contains("tenant-b-secret"));
    assert!(!everything.contains("Other Tenant Person"));
    assert!(!everything.contains(s.other.as_str()));
    assert!(w
        .objects
        .list(&tenant_prefix(&s.other), None, 10)
        .await
        .unwrap()
        .objects
        .is_empty());

    // Running again changes nothing and audits once.
    let again = exports.run(&s.tenant, &id).await.unwrap();
    assert_eq!(again, record);
    let audit = AuditLog::new(w.store.clone())
        .read(&s.tenant, None, 50)
        .await
        .unwrap();
    let actions: Vec<&str> = audit.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "export_completed").count(),
        1
    );
    assert!(actions.contains(&"export_requested"));
    assert_eq!(exports.list(&s.tenant).await.unwrap().len(), 1);
    assert!(exports.list(&s.other).await.unwrap().is_empty());

    // Erasure's clean-up: every export of the tenant goes, another tenant's stay.
    let theirs = exports
        .request(&s.other, ExportScope::Tenant, "platform_admin")
        .await
        .unwrap();
    exports.run(&s.other, &theirs).await.unwrap();
    assert_eq!(exports.delete_all(&s.tenant).await.unwrap(), 1);
    assert!(w.all_files(&s.tenant).await.is_empty());
    assert!(exports.get(&s.tenant, &id).await.unwrap().is_none());
    assert!(w.all_files(&s.other).await.contains("tenant-b-secret"));
    assert_eq!(exports.list(&s.other).await.unwrap().len(), 1);
}

async fn contact_export_holds_only_that_customer(b: Backend) {
    let w = World::new(b).await;
    let s = seed(&w).await;
    let exports = w.exports(50);
    let id = exports
        .request(
            &s.tenant,
            ExportScope::Contact {
                account: account(),
                customer: s.alice.id.clone(),
            },
            "api_key:k1",
        )
        .await
        .unwrap();
    let record = exports.run(&s.tenant, &id).await.unwrap();
    assert_eq!(record.scope, "contact");
    let json: serde_json::Value =
        serde_json::from_str(&w.read(&s.tenant, &id, ExportFile::ExportJson).await).unwrap();
    let conversations = json["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 1);
    assert_eq!(
        conversations[0]["id"],
        ConversationId::derive(&w.envelope, &s.tenant, &account(), &s.alice.id)
            .await
            .unwrap()
            .as_str()
    );
    assert_eq!(conversations[0]["messages"].as_array().unwrap().len(), 5);
    let everything = w.all_files(&s.tenant).await;
    for absent in [
        "HYPERLINK",
        "Carol",
        "customer 1,",
        "customer 2,",
        "tenant-b-secret",
        "Exporting Co",
    ] {
        assert!(
            !everything.contains(absent),
            "{absent:?} in a contact export"
        );
    }
    assert!(everything.contains("hello from customer 0, with a comma"));
    let contacts = parse_csv(&w.read(&s.tenant, &id, ExportFile::ContactsCsv).await);
    assert_eq!(contacts.len() - 1, 1);
    let messages = parse_csv(&w.read(&s.tenant, &id, ExportFile::MessagesCsv).await);
    assert_eq!(messages.len() - 1, 5);
}

async fn links_expire_and_cannot_be_forged(b: Backend) {
    let w = World::new(b).await;
    let s = seed(&w).await;
    let exports = w.exports(50);
    let id = exports
        .request(&s.tenant, ExportScope::Tenant, "platform_admin")
        .await
        .unwrap();
    exports.run(&s.tenant, &id).await.unwrap();
    let link = exports
        .link(&s.tenant, &id, ExportFile::MessagesCsv, None)
        .await
        .unwrap();
    let now = now_secs();
    assert!(link.expires_at > now + 14 * 60 && link.expires_at <= now + 15 * 60 + 1);
    let token = link
        .url
        .strip_prefix("https://api.example.test/exports/download/")
        .unwrap();
    let download = exports.open(token).await.unwrap();
    assert_eq!(download.file, ExportFile::MessagesCsv);
    assert_eq!(download.tenant, s.tenant);
    assert!(download.content_type.starts_with("text/csv"));
    let bytes = download.body.read_all().await.unwrap();
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        w.read(&s.tenant, &id, ExportFile::MessagesCsv).await
    );
    // In AWS the download redirects to a short presigned S3 URL; locally it streams.
    let redirect = exports.redirect(token).await.unwrap();
    match &w._backend._dir {
        Some(_) => assert_eq!(redirect, None),
        None => {
            let url = redirect.expect("S3 presigns");
            assert!(url.contains("X-Amz-Signature=") && url.contains("X-Amz-Expires=60"));
            assert!(url.contains(&format!("{}/messages.csv", id)));
        }
    }
    assert!(matches!(
        exports.redirect("forged.token").await,
        Err(ExportError::Link(_))
    ));
    // Expired.
    assert!(matches!(
        exports.open_at(token, link.expires_at).await,
        Err(ExportError::Link(ExportLinkError::Expired))
    ));
    // A short ttl is honoured.
    let short = exports
        .link(
            &s.tenant,
            &id,
            ExportFile::ExportJson,
            Some(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert!(short.expires_at <= now_secs() + 61);
    // Forged: altered payload (another file or tenant), altered signature, another key.
    let (payload, signature) = token.split_once('.').unwrap();
    let mut altered = payload.to_owned().into_bytes();
    altered[5] = if altered[5] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    assert!(matches!(
        exports.open(&format!("{altered}.{signature}")).await,
        Err(ExportError::Link(_))
    ));
    let mut sig = signature.to_owned().into_bytes();
    sig[0] = if sig[0] == b'A' { b'B' } else { b'A' };
    assert!(matches!(
        exports
            .open(&format!("{payload}.{}", String::from_utf8(sig).unwrap()))
            .await,
        Err(ExportError::Link(ExportLinkError::BadSignature))
    ));
    let stranger = Exports::new(
        w.store.clone(),
        w.envelope.clone(),
        w.objects.clone(),
        ExportLinkKey::generate().unwrap(),
        "https://x",
    );
    assert!(matches!(
        stranger.open(token).await,
        Err(ExportError::Link(ExportLinkError::BadSignature))
    ));
    for junk in ["", "abc", "a.b.c", "x".repeat(5000).as_str()] {
        assert!(matches!(
            exports.open(junk).await,
            Err(ExportError::Link(_))
        ));
    }
    // The key being retired still opens its links.
    let rotated = Exports::new(
        w.store.clone(),
        w.envelope.clone(),
        w.objects.clone(),
        ExportLinkKey::generate().unwrap(),
        "https://x",
    )
    .with_previous_key(w.key.clone());
    assert!(rotated.open(token).await.is_ok());
    // A deleted export is gone, links included.
    exports.delete(&s.tenant, &id).await.unwrap();
    assert!(matches!(
        exports.open(token).await,
        Err(ExportError::NotFound)
    ));
    assert!(w.all_files(&s.tenant).await.is_empty());
}

async fn large_export_reads_page_by_page(b: Backend) {
    // 2,000 messages on the embedded adapters; on moto, whose transactional writes take
    // ~70 ms each, 400 in pages of 25 prove the same paging in a reasonable time.
    let (n, page): (usize, usize) = if b._dir.is_some() {
        (2000, 100)
    } else {
        (400, 25)
    };
    let w = World::new(b).await;
    let t = w.tenant("Busy").await;
    let c = w.conversations(&t);
    let conv = c
        .record_customer(&account(), &customer(9, "Busy Customer"), Some(1), 30)
        .await
        .unwrap();
    for i in 0..n {
        c.store_message(
            &account(),
            &conv,
            message(
                &format!("wamid.bulk.{i}"),
                Direction::Inbound,
                text(&format!("bulk message number {i}")),
                1_000 + i as i64,
            ),
            30,
        )
        .await
        .unwrap();
    }
    let exports = w.exports(page);
    let id = exports
        .request(&t, ExportScope::Tenant, "platform_admin")
        .await
        .unwrap();
    w.store.hook().message_queries.store(0, Ordering::Relaxed);
    exports.run(&t, &id).await.unwrap();
    // Two passes read messages (JSON and messages.csv), each in pages of at most `page`.
    assert!(w.store.hook().largest_page.load(Ordering::Relaxed) <= page);
    assert!(w.store.hook().message_queries.load(Ordering::Relaxed) >= 2 * n / page);
    let json: serde_json::Value =
        serde_json::from_str(&w.read(&t, &id, ExportFile::ExportJson).await).unwrap();
    let all = json["conversations"][0]["messages"].as_array().unwrap();
    assert_eq!(all.len(), n);
    assert_eq!(all[0]["text"], "bulk message number 0");
    assert_eq!(all[n - 1]["text"], format!("bulk message number {}", n - 1));
    let rows = parse_csv(&w.read(&t, &id, ExportFile::MessagesCsv).await);
    assert_eq!(rows.len() - 1, n);
}

/// A run that stopped after some files resumes: finished files are kept, the rest written.
async fn interrupted_run_resumes(b: Backend) {
    let w = World::new(b).await;
    let s = seed(&w).await;
    let exports = w.exports(3);
    let id = exports
        .request(&s.tenant, ExportScope::Tenant, "platform_admin")
        .await
        .unwrap();
    exports.run(&s.tenant, &id).await.unwrap();
    // Simulate a crash after the first file: drop the later files and their sizes, and the
    // completed state.
    let key = Key::new(s.tenant.sub_partition("EXPORTS"), id.as_str());
    let mut update = Update::new().set("state", "running").remove("completed_at");
    for f in &ExportFile::ALL[1..] {
        update = update.remove(&format!("size_{}", f.name().replace('.', "_")));
        w.objects
            .delete(&object_key(&s.tenant, &id, *f))
            .await
            .unwrap();
    }
    w.store
        .update(Table::Data, &key, update, None)
        .await
        .unwrap();
    let before = w.read(&s.tenant, &id, ExportFile::ExportJson).await;
    let record = exports.run(&s.tenant, &id).await.unwrap();
    assert_eq!(record.state, ExportState::Completed);
    assert_eq!(record.files.len(), ExportFile::ALL.len());
    // The finished file was kept as it was.
    assert_eq!(w.read(&s.tenant, &id, ExportFile::ExportJson).await, before);
    let rows = parse_csv(&w.read(&s.tenant, &id, ExportFile::MessagesCsv).await);
    assert_eq!(rows.len() - 1, s.messages);
}

on_both_backends!(
    tenant_export_round_trips,
    contact_export_holds_only_that_customer,
    links_expire_and_cannot_be_forged,
    large_export_reads_page_by_page,
    interrupted_run_resumes,
);
