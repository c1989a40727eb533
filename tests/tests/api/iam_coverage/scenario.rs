//! The scenario the IAM coverage records: every function's flows, each through the handler
//! its `main.rs` builds, with the function's own role (decision 0038).

use super::*;
use wappline::app::Services;
use wappline::consumer::RecordHandler;

/// One queue's consumer as its function runs: drains the queue into the handler, with the
/// function's role.
struct Consumer<'a> {
    function: &'static str,
    services: &'a Services,
    handler: &'a dyn RecordHandler,
    queue: &'static str,
}

impl<'a> Consumer<'a> {
    fn new(
        function: &'static str,
        services: &'a Services,
        handler: &'a dyn RecordHandler,
        queue: &'static str,
    ) -> Self {
        Consumer {
            function,
            services,
            handler,
            queue,
        }
    }

    /// Handles what is in the queue now; the number of messages handled.
    async fn drain(&self, d: &Deployment) -> usize {
        d.consume(self.function, self.services, self.handler, self.queue)
            .await
    }
}

/// Every function's flows, each through the handler its `main.rs` builds. Returns the
/// secrets it made (an invitation token, a password, an API key).
pub(super) async fn scenario(d: &Deployment) -> Vec<String> {
    let admin_services = d.services("AdminApiFunction");
    let admin_api = admin_api::AdminApi::from_services(&admin_services).unwrap();
    let meta_services = d.services("MetaWebhookFunction");
    let meta = meta_webhook::MetaWebhook::from_services(&meta_services).unwrap();
    let bitrix_services = d.services("BitrixWebhookFunction");
    let bitrix = bitrix_webhook::BitrixWebhook::from_services(&bitrix_services).unwrap();
    let inbound = d.services("InboundWorkerFunction");
    let inbound_worker = inbound.inbound_worker().unwrap();
    let sync = d.services("SyncWorkerFunction");
    let (sync_worker, probe) = (sync.sync_worker().unwrap(), sync.portal_probe().unwrap());
    let outbound = d.services("OutboundWorkerFunction");
    let outbound_worker = outbound.outbound_worker().unwrap();
    let public_services = d.services("PublicApiFunction");
    let public = public_api::PublicApi::from_services(&public_services).unwrap();
    let media_services = d.services("MediaProxyFunction");
    let media = media_proxy::MediaProxyFunction::from_services(&media_services).unwrap();
    let deletion_services = d.services("DataDeletionFunction");
    let deletion = data_deletion::DataDeletion::from_services(&deletion_services).unwrap();
    let export = d.services("ExportWorkerFunction");
    let export_worker = export.export_worker().unwrap();
    let erasure = d.services("ErasureWorkerFunction");
    let (erasure_worker, sweep) = (
        erasure.erasure_worker().unwrap(),
        erasure.tenant_erasure().unwrap(),
    );
    let console_services = d.services("ConsoleFunction");
    let console = console::Console::from_services(&console_services).unwrap();
    let retention_services = d.services("RetentionFunction");
    let retention_run = retention_services.retention();
    let inbound_queue = Consumer::new(
        "InboundWorkerFunction",
        &inbound,
        &inbound_worker,
        platform::INBOUND,
    );
    let sync_queue = Consumer::new("SyncWorkerFunction", &sync, &sync_worker, platform::SYNC);
    let outbound_queue = Consumer::new(
        "OutboundWorkerFunction",
        &outbound,
        &outbound_worker,
        platform::OUTBOUND,
    );
    let export_queue = Consumer::new(
        "ExportWorkerFunction",
        &export,
        &export_worker,
        platform::EXPORTS,
    );
    let erasure_queue = Consumer::new(
        "ErasureWorkerFunction",
        &erasure,
        &erasure_worker,
        platform::ERASURE,
    );

    // admin-api: a tenant, its WhatsApp number, an owner invited by email, a failed sign-in
    // (the throttle's counter), an API key and a Bitrix24 connection code.
    let tenant = admin(
        &admin_api,
        "POST",
        "/admin/tenants",
        json!({"name": "Acme"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = format!("/admin/tenants/{tenant}");
    // The connect proves ownership with the token first (decision 0032), then reads the
    // WABA's message templates (decision 0050).
    d.graph
        .add_whatsapp_business(WA_TOKEN, "102290129340398", WA_NUMBER);
    d.graph.set_templates(
        "102290129340398",
        vec![e2e_tests::fake_graph::template(
            "order_confirmation",
            "en_US",
            "UTILITY",
            json!([{"type": "BODY", "text": "Hi {{1}}, your order ships today."}]),
        )],
    );
    admin(
        &admin_api,
        "POST",
        &format!("{t}/channels/whatsapp"),
        json!({"phone_number_id": WA_NUMBER, "waba_id": "102290129340398", "access_token": WA_TOKEN}),
    )
    .await;
    d.graph.add_token(WA_TOKEN, WA_NUMBER);
    admin(
        &admin_api,
        "POST",
        &format!("{t}/invitations"),
        json!({"email": "owner@acme.test", "role": "owner"}),
    )
    .await;
    // The owner accepts an invitation (its token from the test's own, unrecorded access):
    // account erasure emails the owners.
    let setup = d.setup_services("AdminApiFunction").accounts().unwrap();
    let invitation = setup
        .invite(
            &wappline::ids::TenantId::parse(&tenant).unwrap(),
            &wappline::accounts::Principal::Platform,
            wappline::accounts::Email::parse("boss@acme.test").unwrap(),
            wappline::accounts::Role::Owner,
        )
        .await
        .unwrap();
    let token = invitation.token;
    let (headers, body) = json_body(&json!({"token": token, "password": "correct horse battery"}));
    let (status, v) = call(
        &admin_api,
        "POST",
        "/auth/invitations/accept",
        &headers,
        body,
    )
    .await;
    assert!((200..300).contains(&status), "{status} {v}");
    let (headers, body) =
        json_body(&json!({"account_id": tenant, "email": "owner@acme.test", "password": "wrong"}));
    let (status, v) = call(&admin_api, "POST", "/auth/sign-in", &headers, body).await;
    assert_eq!(status, 401, "{v}");
    let key = admin(
        &admin_api,
        "POST",
        &format!("{t}/api-keys"),
        json!({"name": "CRM bridge", "scope": "send"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = admin(
        &admin_api,
        "POST",
        &format!("{t}/bitrix24/connection-codes"),
        json!({"line_id": LINE}),
    )
    .await;
    let install_url = code["install_url"].as_str().unwrap();
    let install_path = &install_url[install_url.find("/bitrix/").unwrap()..];

    // bitrix-webhook: the portal installs the application and sends its token.
    let (s, v) = form(
        &bitrix,
        install_path,
        EventBody::install_wizard(&d.bitrix, FAKE_DOMAIN),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let app_install = EventBody::for_portal(&d.bitrix, FAKE_DOMAIN, Some(APP_TOKEN)).app_install();
    let (s, v) = form(&bitrix, "/bitrix/events", app_install).await;
    assert_eq!(s, 200, "{v}");

    // meta-webhook: a customer's text and image.
    d.graph.add_media(
        "1106677706454703",
        WA_NUMBER,
        "image/jpeg",
        b"\xff\xd8 jpeg",
    );
    for name in ["whatsapp-text.json", "whatsapp-image.json"] {
        deliver(&meta, name).await;
    }

    // inbound-worker, then sync-worker into the portal; the probe of parked portals.
    assert_eq!(inbound_queue.drain(d).await, 2);
    assert!(sync_queue.drain(d).await >= 2);
    probe.run_once().await.unwrap();
    let received = d.bitrix.messages_received();
    // Both messages, then the note that the portal could not download the image (decision
    // 0066): no server answers the image's link in this world.
    assert_eq!(
        received.len(),
        3,
        "both messages and the note reached the portal"
    );
    assert!(
        received[2].external_message_id.starts_with("note.files."),
        "{received:?}"
    );
    let chat = received[0].external_chat_id.clone();

    // media-proxy: Bitrix24 downloads the image through its signed link (the link the fake
    // tried while the post ran: no server answers it in this world, so the fake did not keep
    // the file with the message, as Bitrix24 does not).
    let url = d
        .bitrix
        .file_downloads()
        .into_iter()
        .map(|f| f.url)
        .next()
        .expect("the image's link");
    let media_path = &url[url.find(media_proxy::PATH_PREFIX).unwrap()..];
    let (s, _) = call(&media, "GET", media_path, &[], None).await;
    assert_eq!(s, 200);

    // bitrix-webhook: the operator answers; public-api: the tenant's system sends.
    let reply = EventBody::for_portal(&d.bitrix, FAKE_DOMAIN, Some(APP_TOKEN)).message_add(
        "wappline_whatsapp",
        LINE,
        &[EventMessage {
            im_chat_id: 901,
            im_message_id: 5001,
            chat_id: chat.clone(),
            user_id: 1,
            text: Some("Thanks, on its way".into()),
            ..EventMessage::default()
        }],
    );
    let (s, v) = form(&bitrix, "/bitrix/events", reply).await;
    assert_eq!(s, 200, "{v}");
    // bitrix-webhook: a CRM robot sends a template through the number's message provider
    // (decision 0050).
    let (_, robot) = d.bitrix.provider_call(
        FAKE_DOMAIN,
        &format!("wappline_wa_{WA_NUMBER}"),
        "16505551234",
        "order_confirmation Ann",
        APP_TOKEN,
    );
    let (s, v) = form(&bitrix, "/bitrix/messageservice", robot).await;
    assert_eq!(s, 200, "{v}");
    let (mut headers, body) = json_body(&json!({
        "channel": "whatsapp", "account_id": WA_NUMBER,
        "to": "US.13491208655302741918", "text": "Your order has shipped"
    }));
    headers.push(bearer(&key));
    let (s, v) = call(&public, "POST", public_api::MESSAGES_PATH, &headers, body).await;
    assert!((200..300).contains(&s), "{s} {v}");
    // The health route reads the routes table with the function's role (decision 0038).
    let (s, v) = call(&public, "GET", public_api::HEALTH_PATH, &[], None).await;
    assert_eq!(
        (s, &v["checks"]["routes_table"]),
        (200, &json!("ok")),
        "{v}"
    );

    // outbound-worker sends the three; their statuses go to the portal (the robot's with
    // messageservice.message.status.update).
    assert_eq!(outbound_queue.drain(d).await, 3);
    assert_eq!(d.graph.sent().len(), 3);
    sync_queue.drain(d).await;
    assert_eq!(
        d.bitrix
            .calls_to("messageservice.message.status.update")
            .len(),
        1
    );
    // meta-webhook: Meta's template webhooks update the tenant's copy (a known template) or
    // make the account due for a re-read (an unknown one).
    for name in [
        "whatsapp-template-status-update.json",
        "whatsapp-template-category-update.json",
    ] {
        deliver(&meta, name).await;
    }

    // A suspended tenant's delivery is held by meta-webhook; resuming (admin-api) releases it
    // to the inbound queue.
    let suspension = format!("{t}/suspension");
    admin(
        &admin_api,
        "POST",
        &suspension,
        json!({"reason": "unpaid invoice"}),
    )
    .await;
    deliver(&meta, "whatsapp-audio.json").await;
    let resumed = admin(&admin_api, "DELETE", &suspension, Value::Null).await;
    assert_eq!(resumed["released"], 1, "{resumed}");
    assert_eq!(inbound_queue.drain(d).await, 1);
    sync_queue.drain(d).await;

    // Coexistence (decision 0052): admin-api turns the history import on and names the echo
    // author; Meta's history and contact sync reach the workers; the sync worker's schedule
    // imports the history; bitrix-webhook recognises the echo author; turning the import
    // off drops what waits.
    let coexistence = format!("{t}/channels/whatsapp/{WA_NUMBER}/coexistence");
    admin(
        &admin_api,
        "PUT",
        &coexistence,
        json!({"history_import": true, "echo_author_id": 42}),
    )
    .await;
    for name in ["whatsapp-history.json", "whatsapp-smb-app-state-sync.json"] {
        deliver(&meta, name).await;
    }
    inbound_queue.drain(d).await;
    let imported = sync.history_import().unwrap().run_once().await.unwrap();
    assert_eq!(imported.queued, 4, "{imported:?}");
    // The same schedule shows restrictions that ended without an event (decision 0066).
    sync.restriction_ends()
        .expect("the sync worker has the Bitrix24 application")
        .run_due(wappline::clock::now_secs(), 10)
        .await
        .unwrap();
    sync_queue.drain(d).await;
    let echo_back = EventBody::for_portal(&d.bitrix, FAKE_DOMAIN, Some(APP_TOKEN)).message_add(
        "wappline_whatsapp",
        LINE,
        &[EventMessage {
            im_chat_id: 901,
            im_message_id: 5002,
            chat_id: chat.clone(),
            user_id: 42,
            text: Some("Yes, sizes S to XL.".into()),
            ..EventMessage::default()
        }],
    );
    let (s, v) = form(&bitrix, "/bitrix/events", echo_back).await;
    assert_eq!((s, &v["skipped"]), (200, &json!(1)), "{v}");
    admin(
        &admin_api,
        "PUT",
        &coexistence,
        json!({"history_import": false, "echo_author_id": null}),
    )
    .await;

    // retention: a shorter retention, re-stamped by the scheduled run.
    admin(
        &admin_api,
        "PATCH",
        &format!("{t}/settings"),
        json!({"retention_days": 30}),
    )
    .await;
    let budget = retention::budget(
        SystemTime::now() + Duration::from_secs(300),
        retention_services.settings.retention_max_items,
    );
    retention::handle(&retention_run, budget).await.unwrap();

    // export-worker writes the tenant's export; admin-api links and serves its download.
    let export_id = admin(
        &admin_api,
        "POST",
        &format!("{t}/exports"),
        json!({"scope": "tenant"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(export_queue.drain(d).await, 1);
    let state = admin(
        &admin_api,
        "GET",
        &format!("{t}/exports/{export_id}"),
        Value::Null,
    )
    .await;
    let file = state["files"][0]["name"]
        .as_str()
        .or_else(|| state["files"][0].as_str())
        .unwrap_or_else(|| panic!("an export file: {state}"))
        .to_owned();
    let link = admin(
        &admin_api,
        "POST",
        &format!("{t}/exports/{export_id}/links"),
        json!({"file": file}),
    )
    .await;
    let link = link["url"].as_str().expect("a download link");
    let (s, _) = call(
        &admin_api,
        "GET",
        &link[link.find("/exports/download/").unwrap()..],
        &[],
        None,
    )
    .await;
    assert!((300..400).contains(&s), "a redirect to S3: {s}");

    // data-deletion: Meta's callback for a user, then its status page.
    let signed = e2e_tests::harness::signed_deletion_request("1234567890");
    let (s, v) = form(
        &deletion,
        data_deletion::PATH,
        format!("signed_request={signed}"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let status_url = v["url"].as_str().expect("a status URL");
    let status_path = &status_url[status_url.find(data_deletion::STATUS).unwrap()..];
    let (s, _) = call(&deletion, "GET", status_path, &[], None).await;
    assert_eq!(s, 200);

    // A second number of the WABA is disconnected while Meta is down (admin-api records the
    // revocation, pending); the sync worker's schedule retries it later (decision 0036).
    d.graph
        .add_whatsapp_business(WA_TOKEN, "102290129340398", SECOND_NUMBER);
    admin(
        &admin_api,
        "POST",
        &format!("{t}/channels/whatsapp"),
        json!({"phone_number_id": SECOND_NUMBER, "waba_id": "102290129340398", "access_token": WA_TOKEN}),
    )
    .await;
    d.graph
        .fail_next(1, e2e_tests::fake_graph::GraphFailure::Down);
    admin(
        &admin_api,
        "DELETE",
        &format!("{t}/channels/whatsapp/{SECOND_NUMBER}"),
        Value::Null,
    )
    .await;
    let later = wappline::clock::now_secs() + 3600;
    let revoked = sync
        .revocations()
        .unwrap()
        .run_due_as_of(later, 100)
        .await
        .unwrap();
    assert_eq!((revoked.attempted, revoked.finished), (1, 1), "{revoked:?}");

    // admin-api: a number through Embedded Signup, an account through Instagram Login
    // (decision 0040); then the erasure worker's schedule renews the account's token when it
    // is due, and emails the owners when renewing fails.
    let code = d
        .graph
        .issue_signup_code("EAAGsignupTOKEN", "102290129340555", SIGNUP_NUMBER);
    admin(
        &admin_api,
        "POST",
        &format!("{t}/onboarding/whatsapp"),
        json!({"event": "FINISH", "code": code, "waba_id": "102290129340555", "phone_number_id": SIGNUP_NUMBER}),
    )
    .await;
    d.graph.set_instagram_login(
        LOGIN_ACCOUNT,
        "instagram_business_basic,instagram_business_manage_messages",
    );
    let authorization = admin(
        &admin_api,
        "POST",
        &format!("{t}/onboarding/instagram/authorize"),
        json!({}),
    )
    .await;
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(authorization["authorize_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    let code = location
        .split(['?', '&', '#'])
        .find_map(|p| p.strip_prefix("code="))
        .unwrap()
        .to_owned();
    admin(
        &admin_api,
        "POST",
        &format!("{t}/onboarding/instagram/complete"),
        json!({"code": code, "state": authorization["state"]}),
    )
    .await;
    let refresh = erasure.token_refresh().unwrap();
    let setup = d.setup_services("ErasureWorkerFunction");
    let scope = setup
        .platform
        .tenants
        .scope(&wappline::ids::TenantId::parse(&tenant).unwrap())
        .await
        .unwrap()
        .unwrap();
    let channel = wappline::tenant::ChannelRef::Instagram(
        wappline::ids::InstagramAccountId::parse(LOGIN_ACCOUNT).unwrap(),
    );
    let now = wappline::clock::now_secs();
    let later = now + 50 * 86_400;
    wappline::onboarding::TokenRefresh::track(&scope, &channel, now + 55 * 86_400, now)
        .await
        .unwrap();
    let renewed = refresh.run_due(later, 10).await.unwrap();
    assert_eq!(renewed.refreshed, 1, "{renewed:?}");
    // The same schedule re-reads the WABAs whose copies are due (decision 0050).
    let templates = erasure
        .template_sync()
        .unwrap()
        .run_due(later, 10)
        .await
        .unwrap();
    assert!(templates.synced >= 1, "{templates:?}");
    d.graph.fail_instagram_refresh(true);
    let failed = refresh
        .run_due(later + 60 * 86_400 - 30 * 86_400, 10)
        .await
        .unwrap();
    assert_eq!(failed.failed, 1, "{failed:?}");
    // erasure-worker's schedule: the changed privacy policy is mailed to each user once
    // (decision 0047), reading them under the tenant's session.
    let policy = erasure.policy_mailing().run(100).await.unwrap();
    assert!(policy.mailed >= 1 && policy.complete, "{policy:?}");
    // The same schedule checks the webhook subscriptions (decision 0051): the numbers the
    // admin API connected were never subscribed, so the check subscribes their WABA.
    let subscriptions = erasure
        .subscription_check()
        .unwrap()
        .run_due(now + 2 * 86_400, 100)
        .await
        .unwrap();
    assert!(subscriptions.resubscribed >= 1, "{subscriptions:?}");
    // meta-webhook routes account events from the WABA to its numbers; the inbound worker
    // records them on the channel and emails the owners when Meta bans the number and when
    // it reinstates it (decision 0051).
    for name in [
        "whatsapp-account-disabled.json",
        "whatsapp-account-reinstated.json",
    ] {
        deliver(&meta, name).await;
    }
    assert!(inbound_queue.drain(d).await >= 3);
    // console: the owner signs in (after a refused attempt), reads the channels, changes
    // retention, asks for an export and its file, erases a contact, disconnects a number,
    // and asks for the account's deletion, then cancels it.
    let mut browser = console_flows::Session::new(&console);
    let r = browser
        .submit(
            "/app/sign-in",
            "/app/sign-in",
            &[
                ("account_id", &tenant),
                ("email", "boss@acme.test"),
                ("password", "wrong"),
            ],
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = browser
        .submit(
            "/app/sign-in",
            "/app/sign-in",
            &[
                ("account_id", &tenant),
                ("email", "boss@acme.test"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(browser.get("/app/channels").await.status, 200);
    // console: the owner gives the number an Open Line of its own (decision 0072); Meta then
    // restricts the number until a date: the inbound worker shows it on that line and puts
    // the number on the restriction-end index (decision 0066).
    let r = browser
        .submit(
            "/app/bitrix24",
            "/app/bitrix24/lines/attach",
            &[("kind", "whatsapp"), ("id", WA_NUMBER), ("line", "3")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let restriction = String::from_utf8(sample("whatsapp-account-restriction.json"))
        .unwrap()
        .replace("2026-01-31T10:00:00+0000", "2099-01-31T10:00:00+0000");
    deliver_body(&meta, "a restriction until 2099", restriction.as_bytes()).await;
    assert!(inbound_queue.drain(d).await >= 1);
    let ends = d
        .setup_services("InboundWorkerFunction")
        .platform
        .store
        .query(
            wappline::store::Table::Routes,
            &wappline::store::Query::partition(
                wappline::portal::restriction_ends::RESTRICTION_ENDS,
            ),
        )
        .await
        .unwrap();
    assert!(
        ends.items
            .iter()
            .any(|i| i.get_s("tenant_id") == Some(tenant.as_str())),
        "the number is on the restriction-end index: {:?}",
        ends.items
    );
    let r = browser
        .submit(
            "/app/retention",
            "/app/retention",
            &[("retention_days", "30")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = browser.submit("/app/exports", "/app/exports", &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(export_queue.drain(d).await, 1);
    let page = browser.get("/app/exports").await.body;
    let href = &page[page
        .find("/app/exports/download?")
        .expect("a download link")..];
    let href = href[..href.find('"').unwrap()]
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    let r = browser.get(&href).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.location.contains("/exports/download/"));
    let channel = format!("whatsapp:{WA_NUMBER}");
    let r = browser
        .submit(
            "/app/erasure",
            "/app/erasure",
            &[("channel", &channel), ("customer", "+16505559876")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    d.graph
        .add_whatsapp_business(WA_TOKEN, "102290129340398", THIRD_NUMBER);
    admin(
        &admin_api,
        "POST",
        &format!("{t}/channels/whatsapp"),
        json!({"phone_number_id": THIRD_NUMBER, "waba_id": "102290129340398", "access_token": WA_TOKEN}),
    )
    .await;
    let r = browser
        .submit(
            "/app/channels",
            "/app/channels/disconnect",
            &[("kind", "whatsapp"), ("id", THIRD_NUMBER)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    // A number connected through the console's Embedded Signup route (decision 0046): the
    // code exchange and proof with the Meta app's secret the console now reads.
    let code = d
        .graph
        .issue_signup_code("EAAGconsoleTOKEN", "102290129340666", CONSOLE_NUMBER);
    let event = [
        ("event", "FINISH"),
        ("code", code.as_str()),
        ("waba_id", "102290129340666"),
        ("phone_number_id", CONSOLE_NUMBER),
    ];
    let r = browser
        .submit("/app/channels", "/app/onboarding/whatsapp", &event)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = browser
        .submit("/app/account", "/app/account/name", &[("name", "Acme Ltd")])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    // The user's own data (decision 0047): name, policy acknowledgement, an email change link.
    for (path, field, value) in [
        ("/app/account/profile", "name", "The Boss"),
        ("/app/policy/acknowledge", "version", "2026-12-01"),
        ("/app/account/email", "email", "chief@acme.test"),
    ] {
        let r = browser
            .submit("/app/account", path, &[(field, value)])
            .await;
        assert_eq!(r.status, 303, "{path}: {}", r.body);
    }
    let r = browser
        .submit("/app/bitrix24", "/app/bitrix24", &[("line_id", "2")])
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = browser
        .submit("/app/account", "/app/account/deletion", &[])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = browser
        .submit("/app/account", "/app/account/deletion/cancel", &[])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let rest = console_flows::Rest {
        d,
        tenant: &tenant,
        number: WA_NUMBER,
        instagram: CONSOLE_INSTAGRAM,
    };
    console_flows::every_page_and_form(&mut browser, rest).await;

    // erasure-worker: the customer's erasure and Meta's request, then the account erasure
    // (grace 0) by the schedule's sweep: keys shredded, owners emailed.
    admin(
        &admin_api,
        "POST",
        &format!("{t}/erasure/contacts"),
        json!({"channel": "whatsapp", "account_id": WA_NUMBER, "customer": "+16505551234"}),
    )
    .await;
    assert_eq!(erasure_queue.drain(d).await, 3);
    admin(
        &admin_api,
        "POST",
        &format!("{t}/erasure"),
        json!({"grace_days": 0}),
    )
    .await;
    // The sweep disconnects the channels and revokes at the providers (decision 0047); the
    // erasure worker has no Bitrix24 application, so the portal's steps wait for the sync
    // worker's schedule, and the sweep for them.
    let report = sweep.run_due(5_000).await.unwrap();
    assert_eq!(report.tenants_waiting, 1, "{report:?}");
    let later = wappline::clock::now_secs() + 3600;
    let revoked = sync
        .revocations()
        .unwrap()
        .run_due_as_of(later, 100)
        .await
        .unwrap();
    assert!(revoked.finished >= 1, "{revoked:?}");
    let report = sweep.run_due(5_000).await.unwrap();
    assert_eq!(report.tenants_completed, 1, "{report:?}");
    vec![token, "correct horse battery".to_owned(), key]
}
