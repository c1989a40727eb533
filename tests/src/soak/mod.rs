//! The fault soak of the whole pipeline (issue 17, decision 0053): seeded faults on every
//! port and on the Graph API and Bitrix24 transports, crashes that restart the instance on
//! the same data, and a seeded mix of items across tenants: inbound messages, delivery and
//! read statuses, operator replies, public API sends and contact erasures, plus a few
//! deliberately poisoned queue messages. [`run`] drives them, then checks what reached each
//! fake: nothing lost, nothing twice, order kept per conversation, nothing dead-lettered but
//! the poison, and nothing of an erased person back after Meta redelivers it.

mod check;
mod deliveries;
pub mod world;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use wappline::faults::{FaultPlan, FaultRates, SeededRng};
use wappline::metrics::names::EARLY_STATUSES;
use wappline::queue::{platform, OutgoingMessage, Queue};

use crate::fake_bitrix::{EventBody, EventMessage};
use crate::fake_graph::SentMessage;
use deliveries::{instagram_read_delivery, instagram_text_delivery, status_delivery};
use world::{SoakTenant, World, LINE};

pub use check::SoakFigures;
pub use deliveries::text_delivery;

/// What to run.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    pub items: usize,
    pub seed: u64,
    pub tenants: usize,
    /// Customers per tenant.
    pub customers: usize,
    /// Of each tenant's customers, how many write on Instagram (the last ones); the others
    /// write on WhatsApp. With none, no Instagram account is connected.
    pub instagram_customers: usize,
    /// Garbage jobs put straight into the inbound queue: they must be dead-lettered.
    pub poison: usize,
    pub rates: FaultRates,
    /// The rates on the Graph API and Bitrix24 transports.
    pub http_rates: FaultRates,
    /// How long the queues may take to drain at the end.
    pub drain_within: Duration,
    /// How long the driver waits for one step to show at a fake (a customer's first message
    /// at the portal, a reply at the Graph API) before it stops the run. 90 s on a quiet
    /// machine; a run starved of CPU needs more, since every lease it loses delays the jobs
    /// queued behind it.
    pub step_within: Duration,
}

impl SoakConfig {
    pub fn new(items: usize, seed: u64) -> Self {
        SoakConfig {
            items,
            seed,
            tenants: 5,
            customers: 4,
            instagram_customers: 1,
            poison: 3,
            rates: FaultRates::SOAK,
            http_rates: FaultRates::SOAK_HTTP,
            drain_within: Duration::from_secs(600),
            step_within: Duration::from_secs(90),
        }
    }
}

/// What a run did and found.
#[derive(Clone, Debug)]
pub struct SoakReport {
    pub figures: SoakFigures,
    /// Instances restarted after an injected crash.
    pub restarts: usize,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Port and transport calls the plan saw while armed.
    pub calls: u64,
    /// Meta's statuses that came before their send was recorded: kept on the send's
    /// progress, and moved onto the message by the send worker (decision 0074; the
    /// `EarlyStatuses` metric). They depend on how the crashes fall, not only on the seed.
    pub early_statuses_held: u64,
    pub early_statuses_applied: u64,
    pub elapsed: Duration,
}

/// The channel a customer writes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Channel {
    WhatsApp,
    Instagram,
}

impl Channel {
    /// The name the admin and public APIs take.
    fn name(self) -> &'static str {
        match self {
            Channel::WhatsApp => "whatsapp",
            Channel::Instagram => "instagram",
        }
    }
}

/// One customer of one tenant, as the driver knows them.
#[derive(Clone, Debug)]
struct Customer {
    tenant: usize,
    channel: Channel,
    /// Their phone on WhatsApp, their Instagram-scoped id on Instagram.
    id: String,
    /// Bumped by an erasure: what the person writes afterwards is a new conversation.
    epoch: u32,
    /// Their messages of this epoch (Meta's ids), in the order Meta got its 200.
    wamids: Vec<String>,
    /// The first delivery of this epoch, kept to be redelivered after an erasure.
    first_delivery: Option<Vec<u8>>,
    /// Our chat id for them, as the portal saw it (this epoch).
    chat: Option<String>,
    /// The last operator reply (its tag and Bitrix24 message id) that has no status yet.
    unstated_reply: Option<(String, u64)>,
}

/// The item kinds, by weight per 1,000.
const WEIGHTS: [(Kind, u64); 5] = [
    (Kind::Inbound, 495),
    (Kind::Status, 100),
    (Kind::Reply, 200),
    (Kind::ApiSend, 200),
    (Kind::Erasure, 5),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Inbound,
    Status,
    Reply,
    ApiSend,
    Erasure,
}

fn pick_kind(rng: &mut SeededRng) -> Kind {
    let mut draw = rng.below(1000);
    for (kind, weight) in WEIGHTS {
        if draw < weight {
            return kind;
        }
        draw -= weight;
    }
    Kind::Inbound
}

/// Runs the soak.
pub async fn run(config: SoakConfig) -> SoakReport {
    let started = Instant::now();
    let plan =
        Arc::new(FaultPlan::new(config.seed, config.rates).with_http_rates(config.http_rates));
    let mut w = World::start(plan.clone()).await;
    // Meta follows every accepted send with its `sent` and `delivered` statuses, carrying
    // the send's `biz_opaque_callback_data`: what settles a send whose outcome we lost
    // (decision 0055), and a status that may come before the send is recorded (0074).
    w.graph.send_statuses_to(
        &format!("{}/webhooks/meta", w.base()),
        crate::fake_graph::FAKE_APP_SECRET,
    );
    let mut customers: Vec<Customer> = (0..config.tenants * config.customers)
        .map(|i| {
            let instagram = i % config.customers >= config.customers - config.instagram_customers;
            Customer {
                tenant: i / config.customers,
                channel: if instagram {
                    Channel::Instagram
                } else {
                    Channel::WhatsApp
                },
                id: if instagram {
                    format!("12544591546{:05}", 10_000 + i)
                } else {
                    format!("1650555{:04}", 1000 + i)
                },
                epoch: 0,
                wamids: Vec::new(),
                first_delivery: None,
                chat: None,
                unstated_reply: None,
            }
        })
        .collect();
    let mut tenants = Vec::new();
    for i in 0..config.tenants {
        let mut t = w.tenant(i).await;
        let on_instagram: Vec<String> = customers
            .iter()
            .filter(|c| c.tenant == i && c.channel == Channel::Instagram)
            .map(|c| c.id.clone())
            .collect();
        if !on_instagram.is_empty() {
            w.connect_instagram(&mut t, i, &on_instagram).await;
        }
        tenants.push(t);
    }
    let mut ledger = check::Ledger::default();
    let mut rng = SeededRng::new(config.seed);
    plan.arm(true);
    // The poison: jobs no worker can open, straight into the inbound queue.
    for i in 0..config.poison {
        w.server()
            .queue()
            .send_batch(
                &platform::name(platform::INBOUND),
                vec![
                    OutgoingMessage::new(format!("poison {i}: not a sealed job"))
                        .grouped(format!("poison-{i}"), format!("poison-{i}")),
                ],
            )
            .await
            .expect("poison sent");
    }
    let mut next_im_message = 900_000u64;
    for seq in 0..config.items {
        let c = rng.below(customers.len() as u64) as usize;
        let mut kind = pick_kind(&mut rng);
        // What an item needs first: a reply or a send needs the customer to have written,
        // a status needs a reply without one.
        let has_written = !customers[c].wamids.is_empty();
        kind = match kind {
            Kind::Reply | Kind::ApiSend | Kind::Erasure if !has_written => Kind::Inbound,
            Kind::Status if customers[c].unstated_reply.is_none() => Kind::Inbound,
            k => k,
        };
        let t = tenants[customers[c].tenant].clone();
        match kind {
            Kind::Inbound => {
                let cu = &customers[c];
                let text = format!("soak message {seq}");
                let (wamid, body) = match cu.channel {
                    Channel::WhatsApp => {
                        let wamid = format!("wamid.SOAK{}E{}N{seq}", cu.id, cu.epoch);
                        let body = text_delivery(&t, &cu.id, &wamid, &text);
                        (wamid, body)
                    }
                    Channel::Instagram => {
                        // An Instagram `mid` is an opaque base64 text (`aWdf…`, "ig_…").
                        let mid = format!("aWdfSOAK{}E{}N{seq}", cu.id, cu.epoch);
                        let body =
                            instagram_text_delivery(account(&t, cu.channel), &cu.id, &mid, &text);
                        (mid, body)
                    }
                };
                w.webhook(&body).await;
                let cu = &mut customers[c];
                if cu.first_delivery.is_none() {
                    cu.first_delivery = Some(body);
                }
                cu.wamids.push(wamid.clone());
                ledger.inbound(&t.domain, c, cu.epoch, &wamid);
            }
            Kind::Reply => {
                let chat = chat_of(&mut w, &mut customers[c], &t, config.step_within).await;
                next_im_message += 1;
                let tag = format!("soak-{seq}");
                let form = EventBody::for_portal(&w.bitrix, &t.domain, Some(&t.app_token))
                    .message_add(
                        &format!("wappline_{}", customers[c].channel.name()),
                        LINE,
                        &[EventMessage {
                            im_chat_id: 901,
                            im_message_id: next_im_message,
                            chat_id: chat,
                            user_id: 1,
                            text: Some(format!("operator reply {tag}")),
                            ..EventMessage::default()
                        }],
                    );
                w.bitrix_event(form).await;
                customers[c].unstated_reply = Some((tag.clone(), next_im_message));
                ledger.outbound(c, &tag);
                ledger.reply(check::Reply {
                    im_message: next_im_message,
                    tag,
                    tenant: t.id.clone(),
                    account: account_ref(&t, customers[c].channel),
                    conversation: (c, customers[c].epoch),
                });
            }
            Kind::ApiSend => {
                // A business answers what it has seen: the customer's message is in (its
                // 24-hour window is open) once the portal shows it.
                chat_of(&mut w, &mut customers[c], &t, config.step_within).await;
                let tag = format!("soak-{seq}");
                let cu = &customers[c];
                let body = json!({"channel": cu.channel.name(),
                    "account_id": account(&t, cu.channel),
                    "to": customer_address(cu), "text": format!("api send {tag}")});
                let key = t.api_key.clone();
                w.until_ok("public API send", |http, base| {
                    http.post(format!("{base}/v1/messages"))
                        .bearer_auth(&key)
                        .header("Idempotency-Key", &tag)
                        .json(&body)
                })
                .await;
                ledger.outbound(c, &tag);
            }
            Kind::Status => {
                let (tag, im_message) = customers[c].unstated_reply.take().expect("checked");
                let sent = sent_message(&mut w, &tag, config.step_within).await;
                let cu = &customers[c];
                // Instagram reports reads only (no delivery of a message).
                let status = if rng.below(2) == 0 && cu.channel == Channel::WhatsApp {
                    "delivered"
                } else {
                    "read"
                };
                let body = match cu.channel {
                    Channel::WhatsApp => status_delivery(&t, &cu.id, &sent, status),
                    Channel::Instagram => {
                        instagram_read_delivery(account(&t, cu.channel), &cu.id, &sent)
                    }
                };
                w.webhook(&body).await;
                ledger.status(
                    im_message,
                    status,
                    check::StatusOf {
                        tenant: t.id.clone(),
                        account: account_ref(&t, cu.channel),
                        wamid: sent.id,
                    },
                );
            }
            Kind::Erasure => {
                // What was written so far reaches the portal first; then the person is
                // erased, and what they write next is a new conversation.
                w.drain(config.drain_within).await;
                erase(&mut w, &t, &customers[c]).await;
                let cu = &mut customers[c];
                ledger.erased(
                    &t.id,
                    (c, cu.epoch),
                    cu.first_delivery.take().expect("has written"),
                    &cu.wamids[0],
                );
                cu.epoch += 1;
                cu.wamids.clear();
                cu.chat = None;
                cu.unstated_reply = None;
            }
        }
        ledger.count(kind, customers[c].channel == Channel::Instagram);
    }
    w.drain(config.drain_within).await;
    let figures = check::verify(&mut w, &ledger, &config).await;
    plan.arm(false);
    let report = SoakReport {
        figures,
        restarts: w.restarts,
        faults: plan.injected_by_kind(),
        calls: plan.calls(),
        early_statuses_held: w.counted(EARLY_STATUSES, "Step", "held"),
        early_statuses_applied: w.counted(EARLY_STATUSES, "Step", "applied"),
        elapsed: started.elapsed(),
    };
    w.stop().await;
    report
}

/// Our chat id for the customer, as the portal saw it with their first message of this
/// epoch (waiting for it to arrive, through faults and restarts).
async fn chat_of(w: &mut World, cu: &mut Customer, t: &SoakTenant, within: Duration) -> String {
    if let Some(chat) = &cu.chat {
        return chat.clone();
    }
    let first = cu.wamids[0].clone();
    let started = Instant::now();
    while started.elapsed() < within {
        if let Some(m) = w
            .bitrix
            .messages_received()
            .into_iter()
            .find(|m| m.domain == t.domain && m.external_message_id == first)
        {
            cu.chat = Some(m.external_chat_id.clone());
            return m.external_chat_id;
        }
        w.ensure_alive().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let queues = w.queue_report().await;
    w.keep_data_if_asked();
    panic!(
        "the customer's first message of this conversation ({first}, {}) never reached the \
         portal in {} s; {queues}",
        t.domain,
        within.as_secs()
    );
}

/// The message id the Graph API fake gave the send carrying `tag` (waiting for it).
async fn sent_message(w: &mut World, tag: &str, within: Duration) -> SentMessage {
    let started = Instant::now();
    while started.elapsed() < within {
        if let Some(m) = w
            .graph
            .sent()
            .into_iter()
            .find(|m| check::text_of(&m.body).is_some_and(|t| t.ends_with(tag)))
        {
            return m;
        }
        w.ensure_alive().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let queues = w.queue_report().await;
    w.keep_data_if_asked();
    panic!(
        "the reply {tag} was not sent within {} s; {queues}",
        within.as_secs()
    );
}

/// The tenant's account on `channel`: its WhatsApp number or its Instagram account.
fn account(t: &SoakTenant, channel: Channel) -> &str {
    match channel {
        Channel::WhatsApp => &t.number,
        Channel::Instagram => t.instagram.as_deref().expect("connected for its customers"),
    }
}

/// [`account`], typed.
fn account_ref(t: &SoakTenant, channel: Channel) -> wappline::meta::AccountRef {
    wappline::meta::AccountRef::parse(channel.name(), account(t, channel)).expect("an account")
}

/// The customer as the public and admin APIs name them: `+<phone>`, or the IGSID.
fn customer_address(cu: &Customer) -> String {
    match cu.channel {
        Channel::WhatsApp => format!("+{}", cu.id),
        Channel::Instagram => cu.id.clone(),
    }
}

/// Asks for the contact's erasure and waits until it completed.
async fn erase(w: &mut World, t: &SoakTenant, cu: &Customer) {
    let v = w
        .admin(
            "POST",
            &format!("/admin/tenants/{}/erasure/contacts", t.id),
            json!({"channel": cu.channel.name(), "account_id": account(t, cu.channel),
                "customer": customer_address(cu)}),
        )
        .await;
    let id = v["request_id"].as_str().expect("request id").to_owned();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(300) {
        // An erasure job that ran out of receives is redriven, as the runbook says
        // (decision 0024), and counted: the soak's figures show it.
        if w.dead_letters(platform::ERASURE).await > 0 {
            let moved = wappline::queue::redrive::redrive(
                w.server().queue(),
                &platform::name(platform::ERASURE),
                &wappline::queue::redrive::RedriveOptions::default(),
            )
            .await
            .expect("redrive");
            w.redriven += moved.messages.len();
        }
        let v = w
            .admin(
                "GET",
                &format!("/admin/tenants/{}/erasure/contacts/{id}", t.id),
                serde_json::Value::Null,
            )
            .await;
        // What the person writes from now on is a new conversation, even in the second
        // the erasure completed (its cut is before that second, decision 0057).
        if v["state"] == "completed" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the erasure did not complete");
}
