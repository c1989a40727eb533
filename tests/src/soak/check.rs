//! What the soak expects, and the check of what reached the fakes against it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;
use wappline::meta::AccountRef;
use wappline::queue::platform;
use wappline::store::Table;

use super::world::{World, WORK_QUEUES};
use super::{Kind, SoakConfig};

/// What the driver did, in the order it was acknowledged.
#[derive(Default)]
pub(super) struct Ledger {
    /// Per conversation (customer, epoch): the portal and the message ids in order.
    inbound: Vec<((usize, u32), String, String)>,
    /// Per customer: the tags of replies and API sends, in order.
    outbound: Vec<(usize, String)>,
    /// Statuses sent for operator replies: their Bitrix24 message id, the status, and the
    /// tenant, account and Meta message id they named (to trace a lost one).
    statuses: Vec<(u64, &'static str, StatusOf)>,
    /// Operator replies: their Bitrix24 message id, tag, tenant and account, and their
    /// conversation (customer, epoch).
    replies: Vec<Reply>,
    /// Erased people: their tenant, their first delivery (to redeliver) and its message id.
    erased: Vec<(String, Vec<u8>, String)>,
    /// Conversations (customer, epoch) whose person was erased.
    erased_conversations: HashSet<(usize, u32)>,
    counts: HashMap<&'static str, usize>,
    /// Items of customers who write on Instagram.
    instagram_items: usize,
}

impl Ledger {
    pub(super) fn inbound(&mut self, domain: &str, customer: usize, epoch: u32, wamid: &str) {
        self.inbound
            .push(((customer, epoch), domain.to_owned(), wamid.to_owned()));
    }
    pub(super) fn outbound(&mut self, customer: usize, tag: &str) {
        self.outbound.push((customer, tag.to_owned()));
    }
    pub(super) fn status(&mut self, im_message: u64, status: &'static str, of: StatusOf) {
        self.statuses.push((im_message, status, of));
    }
    pub(super) fn reply(&mut self, reply: Reply) {
        self.replies.push(reply);
    }
    pub(super) fn erased(
        &mut self,
        tenant: &str,
        conversation: (usize, u32),
        delivery: Vec<u8>,
        wamid: &str,
    ) {
        self.erased
            .push((tenant.to_owned(), delivery, wamid.to_owned()));
        self.erased_conversations.insert(conversation);
    }
    pub(super) fn count(&mut self, kind: Kind, on_instagram: bool) {
        self.instagram_items += usize::from(on_instagram);
        let name = match kind {
            Kind::Inbound => "inbound",
            Kind::Status => "status",
            Kind::Reply => "reply",
            Kind::ApiSend => "api_send",
            Kind::Erasure => "erasure",
        };
        *self.counts.entry(name).or_insert(0) += 1;
    }
}

/// An operator reply the driver posted.
pub(super) struct Reply {
    pub im_message: u64,
    pub tag: String,
    pub tenant: String,
    /// The tenant's WhatsApp number or Instagram account the reply went out on.
    pub account: AccountRef,
    pub conversation: (usize, u32),
}

/// What a status named: the tenant, its account (channel and WhatsApp number or Instagram
/// account) and Meta's message id.
pub(super) struct StatusOf {
    pub tenant: String,
    pub account: AccountRef,
    pub wamid: String,
}

/// The soak's figures: what must be 0 is 0 in a good run, and a run's figures depend only
/// on its seed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SoakFigures {
    pub items: usize,
    pub inbound: usize,
    pub statuses: usize,
    pub replies: usize,
    pub api_sends: usize,
    pub erasures: usize,
    /// Items (of every kind) of the customers who write on Instagram.
    pub instagram_items: usize,
    /// Inbound messages acknowledged to Meta that never reached their portal.
    pub lost_at_bitrix: usize,
    /// Inbound messages posted to their portal more than once (extra posts), and any other
    /// repeated post the fake saw.
    pub duplicated_at_bitrix: usize,
    /// Extra posts of a conversation's first message whose earlier post's answer never
    /// reached a live process (the connection closed after Bitrix24 ran it, or the instance
    /// crashed before writing it): the Bitrix24 chat id needed to look the post up is in that
    /// answer, so a first post is at-least-once (decisions 0023, 0056). Not counted in
    /// `duplicated_at_bitrix`, which counts every other repeat.
    pub first_posts_repeated_after_lost_answer: usize,
    /// Replies and API sends accepted that Meta never got.
    pub lost_at_graph: usize,
    /// Extra sends of the same reply or API send by one process instance (a bug).
    pub duplicated_at_graph: usize,
    /// Extra sends of a reply or API send whose first send was made by an instance that
    /// then crashed before recording it: the next instance sends it again. The Cloud API has
    /// no idempotency key; the next instance waits for Meta's status carrying the attempt's
    /// tag and sends again only when none came within the reconcile window (decision 0055).
    pub resent_after_crash: usize,
    /// Statuses of operator replies that never reached the portal.
    pub statuses_lost: usize,
    /// Reads the driver reported of an Instagram reply's earlier copy: a copy sent by an
    /// instance that crashed before recording it, the reply then sent again (decision
    /// 0055). Instagram's Send API takes no tag of ours, so nothing ties that copy's `mid`
    /// to the message (decision 0111's residue, measured by the soak since decision 0114);
    /// since decision 0116 the read reads the thread up to its time, which reads the reply
    /// when it was recorded sent by then: counted here when it was not. Not counted in
    /// `statuses_lost` nor `replies_not_delivered`.
    pub instagram_reads_of_an_earlier_copy: usize,
    /// Instagram replies the driver did not read that ended `read` because the customer
    /// read a later reply in their thread (decision 0116).
    pub instagram_replies_read_with_their_thread: usize,
    /// Operator replies Meta accepted that did not end `delivered` (`read` when the driver
    /// reported it read): on the stored message, or with no such status post at their
    /// portal. Meta's `delivered` follows every accepted WhatsApp send (the Graph API fake
    /// sends it after `sent`), and may come before the send was recorded (decision 0074).
    /// Instagram reports reads only, so an unread Instagram reply ends `sent`.
    pub replies_not_delivered: usize,
    /// Status posts of an operator reply beyond what its statuses owe: more than two
    /// `imconnector.send.status.delivery` (our `sent` and Meta's `delivered`, which Bitrix24
    /// takes through the same method; one on Instagram, which reports no delivery) or more than
    /// one `...reading`, besides those of
    /// `status_posts_repeated_after_lost_answer`.
    pub status_posts_repeated: usize,
    /// Such extra posts whose earlier post's answer was lost on the wire or hidden by a
    /// crash: at-least-once, like a first post's (decision 0056).
    pub status_posts_repeated_after_lost_answer: usize,
    /// Messages in the dead-letter queues, and how many of them are the poison.
    pub dead_lettered: usize,
    pub poisoned: usize,
    /// Jobs that were dead-lettered during the run and redriven to go on.
    pub redriven: usize,
    /// Conversations whose messages reached the fake out of the order they were accepted.
    pub out_of_order: usize,
    /// Erased people's old deliveries Meta redelivered, and how many came back (stored or
    /// posted again).
    pub erased_redelivered: usize,
    pub erased_came_back: usize,
    /// Of those, redeliveries that reached the inbound worker past the queue's 5-minute
    /// deduplication window (as a Meta retry days later does): only the erasure's own
    /// check stops them (decision 0057).
    pub erased_past_window: usize,
}

/// The text of a send's body: a Cloud API send's `text.body`, an Instagram send's
/// `message.text`.
pub(crate) fn text_of(body: &Value) -> Option<&str> {
    body["text"]["body"]
        .as_str()
        .or_else(|| body["message"]["text"].as_str())
}

/// The tag (`soak-<n>`) at the end of a sent text.
fn tag_of(text: &str) -> Option<&str> {
    text.rfind("soak-").map(|i| &text[i..])
}

/// The tag of a forwarded Cloud API send body.
fn body_tag(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    text_of(&v).and_then(tag_of).map(str::to_owned)
}

/// The instances that sent Bitrix24 a request carrying the message id `wamid` (a post's
/// `MESSAGES[].message.id`; lookups name chats, not messages), in order, each once.
fn posting_instances(posts: &[(u64, hyper::body::Bytes)], wamid: &str) -> Vec<u64> {
    let mut instances: Vec<u64> = posts
        .iter()
        .filter(|(_, body)| carries(body, wamid))
        .map(|(i, _)| *i)
        .collect();
    instances.dedup();
    instances
}

/// True when a request body carries the message id `wamid` (kept as is by the client's
/// query encoding: letters, digits and dots).
fn carries(body: &[u8], wamid: &str) -> bool {
    body.windows(wamid.len()).any(|w| w == wamid.as_bytes())
}

/// True when `wamid` opened its conversation (customer, epoch): the post whose answer
/// carries the Bitrix24 chat id a repeat would be looked up in (decision 0023). After an
/// erasure the person's next message opens a new conversation, whose chat id we no longer
/// hold, though the portal files it in the chat it had (it keys chats by our external chat
/// id, which stays the same): so the portal's chat cannot tell a conversation's first post.
fn opened_conversation(ledger: &Ledger, conversation: (usize, u32), wamid: &str) -> bool {
    ledger
        .inbound
        .iter()
        .find(|(c, _, _)| *c == conversation)
        .is_some_and(|(_, _, first)| first == wamid)
}

/// True when `positions` (first arrival of each item, in acceptance order) only grow.
fn in_order(positions: &[Option<usize>]) -> bool {
    let arrived: Vec<usize> = positions.iter().flatten().copied().collect();
    arrived.windows(2).all(|w| w[0] < w[1])
}

pub(super) async fn verify(w: &mut World, ledger: &Ledger, config: &SoakConfig) -> SoakFigures {
    let mut f = SoakFigures {
        items: config.items,
        inbound: ledger.counts.get("inbound").copied().unwrap_or(0),
        statuses: ledger.counts.get("status").copied().unwrap_or(0),
        replies: ledger.counts.get("reply").copied().unwrap_or(0),
        api_sends: ledger.counts.get("api_send").copied().unwrap_or(0),
        erasures: ledger.counts.get("erasure").copied().unwrap_or(0),
        instagram_items: ledger.instagram_items,
        ..SoakFigures::default()
    };

    // Bitrix24: each acknowledged inbound message once, in order per conversation.
    let received = w.bitrix.messages_received();
    let bitrix_posts = w.bitrix_posts();
    let lost_answers = w.bitrix_lost_answers();
    let mut first_at: HashMap<(&str, &str), usize> = HashMap::new();
    let mut times: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, m) in received.iter().enumerate() {
        let k = (m.domain.as_str(), m.external_message_id.as_str());
        first_at.entry(k).or_insert(i);
        *times.entry(k).or_insert(0) += 1;
    }
    let mut conversations: HashMap<(usize, u32), Vec<Option<usize>>> = HashMap::new();
    for (conversation, domain, wamid) in &ledger.inbound {
        let k = (domain.as_str(), wamid.as_str());
        match times.get(&k) {
            None => {
                f.lost_at_bitrix += 1;
                eprintln!("soak: {wamid} never reached {domain}");
            }
            Some(n) => {
                let residue = if *n > 1 {
                    let instances = posting_instances(&bitrix_posts, wamid);
                    let lost = lost_answers
                        .iter()
                        .filter(|body| carries(body, wamid))
                        .count();
                    let first = opened_conversation(ledger, *conversation, wamid);
                    eprintln!(
                        "soak: {wamid} reached {domain} {n} times, from instances {instances:?}; answers lost: {lost}; first post of its conversation: {first}"
                    );
                    // Each repeat needs its own lost answer (or crash) to be the residue.
                    let explained = lost + instances.len().saturating_sub(1);
                    if first {
                        explained.min(n - 1)
                    } else {
                        0
                    }
                } else {
                    0
                };
                f.first_posts_repeated_after_lost_answer += residue;
                f.duplicated_at_bitrix += n - 1 - residue;
            }
        }
        conversations
            .entry(*conversation)
            .or_default()
            .push(first_at.get(&k).copied());
    }
    // Anything else the portal got twice (notes, updates).
    f.duplicated_at_bitrix = f.duplicated_at_bitrix.max(
        w.bitrix
            .duplicate_posts()
            .saturating_sub(f.first_posts_repeated_after_lost_answer),
    );
    f.out_of_order += conversations.values().filter(|p| !in_order(p)).count();

    // Statuses: each reached the portal, as a delivery or reading status of its message.
    let commands: Vec<String> = w
        .bitrix
        .batch_commands()
        .into_iter()
        .chain(w.bitrix.calls())
        .filter(|c| c.method.starts_with("imconnector.send.status."))
        .map(|c| format!("{} {}", c.method, c.params))
        .collect();
    // Replies whose read named an Instagram copy not on record (counted apart).
    let mut untied: HashSet<u64> = HashSet::new();
    let sent = w.graph.sent();
    for (im_message, status, of) in &ledger.statuses {
        let method = if *status == "read" {
            "imconnector.send.status.reading"
        } else {
            "imconnector.send.status.delivery"
        };
        let id = im_message.to_string();
        if !commands
            .iter()
            .any(|c| c.starts_with(method) && c.contains(&id))
        {
            // Where it stopped: the stored status tells whether the inbound worker moved it
            // (then the sync job never ran it) or never found the message.
            let stored = stored(w, of).await;
            if matches!(stored, Stored::NotRecorded)
                && earlier_instagram_copy(ledger, &sent, *im_message, of)
            {
                f.instagram_reads_of_an_earlier_copy += 1;
                untied.insert(*im_message);
                eprintln!(
                    "soak: the read of operator message {im_message} named an earlier Instagram copy (provider_ref {}), not on record",
                    wappline::logging::provider_ref(&of.wamid)
                );
                continue;
            }
            f.statuses_lost += 1;
            eprintln!(
                "soak: the {status} status of operator message {im_message} never reached its portal (provider_ref {}, stored status {})",
                wappline::logging::provider_ref(&of.wamid),
                stored.describe()
            );
        }
    }

    replies_delivered(w, ledger, &untied, &mut f).await;

    // Graph API: each accepted reply and send once, in order per customer.
    let posts = w.graph_proxy.posts();
    let answer_times = w.graph_proxy.answer_times();
    let mut sent_first: HashMap<String, usize> = HashMap::new();
    let mut sent_times: HashMap<String, usize> = HashMap::new();
    for (i, m) in sent.iter().enumerate() {
        if let Some(tag) = text_of(&m.body).and_then(tag_of) {
            sent_first.entry(tag.to_owned()).or_insert(i);
            *sent_times.entry(tag.to_owned()).or_insert(0) += 1;
        }
    }
    let mut per_customer: HashMap<usize, Vec<Option<usize>>> = HashMap::new();
    for (customer, tag) in &ledger.outbound {
        match sent_times.get(tag) {
            None => {
                f.lost_at_graph += 1;
                eprintln!("soak: {tag} for customer {customer} never reached the Graph API");
            }
            Some(n) if *n > 1 => {
                // Which instances sent it: one copy per instance is a resend after a crash.
                let instances: Vec<u64> = posts
                    .iter()
                    .filter(|(_, body)| body_tag(body).as_deref() == Some(tag.as_str()))
                    .map(|(i, _)| *i)
                    .collect();
                let mut distinct = instances.clone();
                distinct.dedup();
                f.resent_after_crash += distinct.len() - 1;
                f.duplicated_at_graph += n - distinct.len();
                // What traces each copy in the server's log (`SOAK_LOG=1`): its provider_ref,
                // and how long the Graph API fake took to answer it (the server's client
                // gives up after 2 s in the soak, `World`'s Graph API timeout).
                let refs: Vec<String> = sent
                    .iter()
                    .filter(|m| text_of(&m.body).and_then(tag_of) == Some(tag.as_str()))
                    .map(|m| wappline::logging::provider_ref(&m.id))
                    .collect();
                let answered_ms: Vec<u128> = answer_times
                    .iter()
                    .filter(|(body, _)| body_tag(body).as_deref() == Some(tag.as_str()))
                    .map(|(_, took)| took.as_millis())
                    .collect();
                eprintln!("soak: {tag} for customer {customer} reached the Graph API {n} times, from instances {instances:?}, provider_refs {refs:?}, answered in {answered_ms:?} ms");
            }
            Some(_) => {}
        }
        per_customer
            .entry(*customer)
            .or_default()
            .push(sent_first.get(tag).copied());
    }
    f.out_of_order += per_customer.values().filter(|p| !in_order(p)).count();
    if f.lost_at_graph > 0 {
        // Why a send was given up is in the note the operator got.
        let mut notes: Vec<String> = received
            .iter()
            .filter(|m| m.external_message_id.starts_with("note."))
            .filter_map(|m| m.text.clone())
            .collect();
        notes.sort();
        notes.dedup();
        for note in notes {
            eprintln!("soak: note to an operator: {note}");
        }
    }

    // Erased people: Meta redelivers their first message; nothing comes back.
    let messages_before = stored_messages(w).await;
    let posts_before = w.bitrix.messages_received().len();
    for (tenant, delivery, _) in &ledger.erased {
        w.webhook(delivery).await;
        f.erased_redelivered += 1;
        // Within the short run the queue deduplicates the webhook's job, so the worker
        // never sees it: the same delivery again, past the window.
        f.erased_past_window += past_dedupe_window(w, tenant, delivery).await;
    }
    w.drain(config.drain_within).await;
    let posts_after = w.bitrix.messages_received();
    for (_, _, wamid) in &ledger.erased {
        let again = posts_after[posts_before..]
            .iter()
            .filter(|m| &m.external_message_id == wamid)
            .count();
        f.erased_came_back += again;
    }
    let stored_again = stored_messages(w).await.saturating_sub(messages_before);
    f.erased_came_back += stored_again;

    // Dead letters: the poison, once its receives ran out, and nothing else.
    let started = std::time::Instant::now();
    while w.dead_letters(platform::INBOUND).await < config.poison
        && started.elapsed() < Duration::from_secs(120)
    {
        w.ensure_alive().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for q in WORK_QUEUES {
        f.dead_lettered += w.dead_letters(q).await;
    }
    f.poisoned = config.poison;
    f.redriven = w.redriven;
    f
}

/// Each operator reply Meta accepted ends `delivered` (or `read`, when the driver reported
/// it) on its message and at its portal, and no status of it is posted twice.
async fn replies_delivered(
    w: &mut World,
    ledger: &Ledger,
    untied: &HashSet<u64>,
    f: &mut SoakFigures,
) {
    use wappline::conversation::MessageStatus;
    // Status posts per (method, Bitrix24 message id); a batch command's parameters arrive
    // form-encoded (numbers as strings).
    let mut posts: HashMap<(String, u64), usize> = HashMap::new();
    for c in w
        .bitrix
        .batch_commands()
        .into_iter()
        .chain(w.bitrix.calls())
    {
        if !c.method.starts_with("imconnector.send.status.") {
            continue;
        }
        for m in c.params["MESSAGES"].as_array().into_iter().flatten() {
            let id = &m["im"]["message_id"];
            let id = id
                .as_u64()
                .or_else(|| id.as_str().and_then(|s| s.parse().ok()));
            if let Some(id) = id {
                *posts.entry((c.method.clone(), id)).or_insert(0) += 1;
            }
        }
    }
    let bitrix_posts = w.bitrix_posts();
    let lost_answers = w.bitrix_lost_answers();
    let sent = w.graph.sent();
    // The conversations in which the driver read a reply.
    let conversation_of: HashMap<u64, (usize, u32)> = ledger
        .replies
        .iter()
        .map(|r| (r.im_message, r.conversation))
        .collect();
    let read_in: HashSet<(usize, u32)> = ledger
        .statuses
        .iter()
        .filter(|(_, status, _)| *status == "read")
        .filter_map(|(im, _, _)| conversation_of.get(im).copied())
        .collect();
    for reply in &ledger.replies {
        // Meta's ids of its sends (more than one when a crash hid a send's outcome and it
        // was sent again, decision 0055): the message holds one of them.
        let wamids: Vec<String> = sent
            .iter()
            .filter(|m| text_of(&m.body).and_then(tag_of) == Some(reply.tag.as_str()))
            .map(|m| m.id.clone())
            .collect();
        if wamids.is_empty() {
            // Never sent: counted in `lost_at_graph`.
            continue;
        }
        let read = ledger
            .statuses
            .iter()
            .any(|(im, status, _)| *im == reply.im_message && *status == "read");
        let count = |method: &str| {
            posts
                .get(&(method.to_owned(), reply.im_message))
                .copied()
                .unwrap_or(0)
        };
        let delivery = count("imconnector.send.status.delivery");
        let reading = count("imconnector.send.status.reading");
        // Our `sent` and Meta's `delivered` each post a delivery status on WhatsApp;
        // Instagram reports no delivery, so only our `sent` does there.
        let instagram = matches!(reply.account, AccountRef::Instagram(_));
        let owed_deliveries = if instagram { 1 } else { 2 };
        let extra = delivery.saturating_sub(owed_deliveries) + reading.saturating_sub(1);
        if extra > 0 {
            // A status post is at-least-once like any post: its answer lost on the wire, or
            // a crash before it was recorded, and it is posted again (decision 0056).
            let id = reply.im_message.to_string();
            let of_reply = |body: &[u8]| carries(body, "send.status") && carries(body, &id);
            let mut instances: Vec<u64> = bitrix_posts
                .iter()
                .filter(|(_, body)| of_reply(body))
                .map(|(i, _)| *i)
                .collect();
            instances.dedup();
            let lost = lost_answers.iter().filter(|body| of_reply(body)).count();
            let explained = (lost + instances.len().saturating_sub(1)).min(extra);
            f.status_posts_repeated_after_lost_answer += explained;
            f.status_posts_repeated += extra - explained;
            eprintln!(
                "soak: operator reply {}: {delivery} delivery and {reading} reading posts, from instances {instances:?}; answers lost: {lost}",
                reply.im_message
            );
        }
        // A read of the Instagram thread reads every reply of ours before the one it names
        // (decision 0116): an unread reply in a thread read after it ends `read` when it was
        // recorded `sent` by the time that read came, `sent` when not (a race the driver
        // does not see): either is right.
        let read_with_thread = instagram && !read && read_in.contains(&reply.conversation);
        let mut expected = if read {
            MessageStatus::Read
        } else if instagram {
            MessageStatus::Sent
        } else {
            MessageStatus::Delivered
        };
        // An erased person's messages are gone: only the portal tells.
        let mut stored = None;
        if ledger.erased_conversations.contains(&reply.conversation) {
            stored = Some(expected);
        }
        for wamid in &wamids {
            if stored.is_some() {
                break;
            }
            let of = StatusOf {
                tenant: reply.tenant.clone(),
                account: reply.account.clone(),
                wamid: wamid.clone(),
            };
            stored = stored_message_status(w, &of).await;
        }
        if read_with_thread && stored == Some(MessageStatus::Read) {
            expected = MessageStatus::Read;
            f.instagram_replies_read_with_their_thread += 1;
        }
        let posted = if expected == MessageStatus::Read {
            reading
        } else {
            delivery
        };
        if (posted == 0 || stored != Some(expected)) && !untied.contains(&reply.im_message) {
            f.replies_not_delivered += 1;
            let refs: Vec<String> = wamids
                .iter()
                .map(|w| wappline::logging::provider_ref(w))
                .collect();
            eprintln!(
                "soak: operator reply {} (tag {}, provider_refs {refs:?}) ended {stored:?} where {expected:?} was due, {delivery} delivery and {reading} reading posts",
                reply.im_message, reply.tag
            );
        }
    }
}

/// Meta's redelivery of `delivery` past the inbound queue's 5-minute deduplication window
/// (Meta retries for 7 days): each event sealed into its job as the intake seals it, and
/// queued under a deduplication id the queue has not seen. Done without faults (the soak's
/// own doing). Returns the jobs queued.
async fn past_dedupe_window(w: &mut World, tenant: &str, delivery: &[u8]) -> usize {
    use wappline::queue::Queue;
    w.ensure_alive().await;
    w.plan.arm(false);
    let tenant_id = wappline::ids::TenantId::parse(tenant).expect("tenant id");
    let inbound = platform::name(platform::INBOUND);
    let batch = wappline::meta::split_webhook(delivery).expect("a delivery the soak made");
    let mut queued = 0;
    for event in batch.events {
        let job = wappline::inbound::InboundJob {
            tenant_id: tenant_id.clone(),
            event,
        };
        let platform = w.server().platform();
        let mut message = job
            .seal(platform.tenants.envelope(), &inbound)
            .await
            .expect("sealed");
        message.dedup_id = message.dedup_id.map(|d| format!("{d}-days-later"));
        w.server()
            .queue()
            .send_batch(&inbound, vec![message])
            .await
            .expect("queued");
        queued += 1;
    }
    w.plan.arm(true);
    queued
}

/// What the store holds for the message a status named, read without faults.
enum Stored {
    Status(Option<wappline::conversation::MessageStatus>),
    Gone,
    NotRecorded,
    Unreadable(String),
}

async fn stored(w: &mut World, of: &StatusOf) -> Stored {
    use wappline::conversation::Conversations;
    w.ensure_alive().await;
    w.plan.arm(false);
    let platform = w.server().platform();
    let conversations = Conversations::new(
        wappline::ids::TenantId::parse(&of.tenant).expect("tenant id"),
        platform.store.clone(),
        platform.envelope.clone(),
    );
    let found = match conversations.find_message(&of.account, &of.wamid).await {
        Ok(Some(at)) => match conversations.message(&at).await {
            Ok(Some(m)) => Stored::Status(m.status),
            Ok(None) => Stored::Gone,
            Err(e) => Stored::Unreadable(e.to_string()),
        },
        Ok(None) => Stored::NotRecorded,
        Err(e) => Stored::Unreadable(e.to_string()),
    };
    w.plan.arm(true);
    found
}

/// True when the status `of` named a copy of Instagram reply `im_message` that was sent
/// more than once, and not its last copy: an earlier copy, whose send a crash kept from
/// being recorded.
fn earlier_instagram_copy(
    ledger: &Ledger,
    sent: &[crate::fake_graph::SentMessage],
    im_message: u64,
    of: &StatusOf,
) -> bool {
    let Some(reply) = ledger.replies.iter().find(|r| r.im_message == im_message) else {
        return false;
    };
    let copies: Vec<&str> = sent
        .iter()
        .filter(|m| text_of(&m.body).and_then(tag_of) == Some(reply.tag.as_str()))
        .map(|m| m.id.as_str())
        .collect();
    matches!(reply.account, AccountRef::Instagram(_))
        && copies.len() > 1
        && copies.last() != Some(&of.wamid.as_str())
        && copies.contains(&of.wamid.as_str())
}

impl Stored {
    /// As text for a report.
    fn describe(&self) -> String {
        match self {
            Stored::Status(status) => format!("{status:?}"),
            Stored::Gone => "message gone".into(),
            Stored::NotRecorded => "send not recorded".into(),
            Stored::Unreadable(e) => format!("unreadable: {e}"),
        }
    }
}

/// The stored status of the message a status named (None: not found or no status).
async fn stored_message_status(
    w: &mut World,
    of: &StatusOf,
) -> Option<wappline::conversation::MessageStatus> {
    match stored(w, of).await {
        Stored::Status(status) => status,
        _ => None,
    }
}

/// Stored message items (all tenants), read without faults.
async fn stored_messages(w: &mut World) -> usize {
    w.ensure_alive().await;
    w.plan.arm(false);
    let n = count_messages(w).await;
    w.plan.arm(true);
    n
}

async fn count_messages(w: &World) -> usize {
    let store = &w.server().platform().store;
    let mut n = 0;
    let mut next = None;
    loop {
        let page = store
            .scan(Table::Data, next.as_ref(), 500)
            .await
            .expect("scan");
        n += page
            .items
            .iter()
            .filter(|i| i.get_s("sk").is_some_and(|sk| sk.starts_with("MSG#")))
            .count();
        match page.next {
            Some(k) => next = Some(k),
            None => return n,
        }
    }
}
