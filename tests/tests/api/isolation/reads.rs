//! What each tenant can read, checked against the model: settings, channels, keys, users, the
//! audit log, usage, exports.

use super::*;

/// Reads one thing as tenant `t`'s user and checks it against the model.
pub(super) async fn read(
    h: &Harness,
    m: &Model,
    t: usize,
    by: Actor,
    what: Read,
) -> Result<(), String> {
    let me = &m.tenants[t];
    let base = format!("/admin/tenants/{}", me.id);
    match what {
        Read::Settings => {
            let r = as_tenant(h, m, t, by, "GET", &base, None).await?;
            expect(&r, StatusCode::OK, "settings")?;
            check_settings(me, &r.body)
        }
        Read::ApiKeys => {
            let r = as_tenant(h, m, t, by, "GET", &format!("{base}/api-keys"), None).await?;
            expect(&r, StatusCode::OK, "api keys")?;
            let got: BTreeMap<String, bool> = r.body["api_keys"]
                .as_array()
                .ok_or_else(|| format!("api keys: {}", r.text))?
                .iter()
                .map(|k| {
                    (
                        k["id"].as_str().unwrap_or_default().to_owned(),
                        k["revoked"].as_bool().unwrap_or_default(),
                    )
                })
                .collect();
            same("api keys (id → revoked)", &got, &me.keys)
        }
        Read::Users => {
            let r = as_tenant(h, m, t, by, "GET", &format!("{base}/users"), None).await?;
            expect(&r, StatusCode::OK, "users")?;
            let got: BTreeMap<String, String> = r.body["users"]
                .as_array()
                .ok_or_else(|| format!("users: {}", r.text))?
                .iter()
                .map(|u| {
                    (
                        u["id"].as_str().unwrap_or_default().to_owned(),
                        u["email"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            same("users (id → email)", &got, &me.users)
        }
        Read::Audit => check_audit(h, m, t, by).await,
        Read::Usage => {
            let r = as_tenant(h, m, t, by, "GET", &format!("{base}/usage"), None).await?;
            expect(&r, StatusCode::OK, "usage")?;
            same(
                "usage inbound whatsapp",
                r.body["inbound"]["whatsapp"].as_u64(),
                Some(me.inbound),
            )?;
            match me.plan {
                None => same("usage default_plan", &r.body["default_plan"], &json!(true)),
                Some(outbound) => {
                    same("usage default_plan", &r.body["default_plan"], &json!(false))?;
                    same(
                        "usage plan",
                        &r.body["plan"],
                        &json!({"monthly_outbound": outbound, "monthly_inbound": null}),
                    )
                }
            }
        }
        Read::Exports => {
            let r = as_tenant(h, m, t, by, "GET", &format!("{base}/exports"), None).await?;
            expect(&r, StatusCode::OK, "exports")?;
            let got: BTreeSet<String> = r.body["exports"]
                .as_array()
                .ok_or_else(|| format!("exports: {}", r.text))?
                .iter()
                .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
                .collect();
            same("export ids", &got, &me.exports.keys().cloned().collect())
        }
    }
}

pub(super) fn check_settings(me: &Tenant, body: &Value) -> Result<(), String> {
    same("settings id", body["id"].as_str(), Some(me.id.as_str()))?;
    same(
        "settings name",
        body["name"].as_str(),
        Some(me.name.as_str()),
    )?;
    same(
        "settings retention_days",
        body["retention_days"].as_u64(),
        Some(u64::from(me.retention)),
    )?;
    let got: BTreeMap<String, String> = body["channels"]
        .as_array()
        .ok_or_else(|| format!("settings without channels: {body}"))?
        .iter()
        .map(|c| {
            (
                format!(
                    "{}:{}",
                    c["kind"].as_str().unwrap_or("?"),
                    c["id"].as_str().unwrap_or("?")
                ),
                c["details"]["waba_id"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    let want: BTreeMap<String, String> = me
        .channels
        .iter()
        .map(|(p, w)| (format!("whatsapp:{p}"), w.clone()))
        .collect();
    same("settings channels (kind:id → waba)", &got, &want)
}

/// Every page of the audit log: actors and every id in the details are the tenant's own,
/// and the keys created and channels connected are exactly the model's.
async fn check_audit(h: &Harness, m: &Model, t: usize, by: Actor) -> Result<(), String> {
    let me = &m.tenants[t];
    let mut entries = vec![];
    let mut before: Option<String> = None;
    loop {
        let mut path = format!("/admin/tenants/{}/audit?limit=200", me.id);
        if let Some(b) = &before {
            path.push_str(&format!("&before={b}"));
        }
        let r = as_tenant(h, m, t, by, "GET", &path, None).await?;
        expect(&r, StatusCode::OK, "audit")?;
        entries.extend(r.body["entries"].as_array().cloned().unwrap_or_default());
        match r.body["next"].as_str() {
            Some(n) => before = Some(n.to_owned()),
            None => break,
        }
    }
    let users = me.user_ids();
    let mut created = BTreeSet::new();
    let mut connected = BTreeSet::new();
    for e in &entries {
        let actor = e["actor"].as_str().unwrap_or_default();
        let ours = actor == "platform_admin"
            || actor == "system"
            || actor.starts_with("system:")
            || actor
                .strip_prefix("user:")
                .is_some_and(|u| users.contains(u));
        if !ours {
            return Err(format!("audit entry by someone not of tenant {t}: {e}"));
        }
        let detail = |k: &str| e["details"][k].as_str().map(str::to_owned);
        if let Some(k) = detail("key_id") {
            if !me.keys.contains_key(&k) {
                return Err(format!("audit names a key not of tenant {t}: {e}"));
            }
            if e["action"] == "api_key_created" {
                created.insert(k);
            }
        }
        if let Some(c) = detail("channel") {
            let refused_claim = e["action"] == "channel_connect_refused" && me.claimed.contains(&c);
            if !me.channels_ever.contains_key(&c) && !refused_claim {
                return Err(format!("audit names a channel not of tenant {t}: {e}"));
            }
            if e["action"] == "channel_connected" {
                connected.insert(c);
            }
        }
        if let Some(x) = detail("export_id") {
            if !me.exports.contains_key(&x) {
                return Err(format!("audit names an export not of tenant {t}: {e}"));
            }
        }
        if let Some(u) = detail("user_id") {
            if !users.contains(&u) {
                return Err(format!("audit names a user not of tenant {t}: {e}"));
            }
        }
    }
    same(
        "audit: keys created",
        &created,
        &me.keys.keys().cloned().collect(),
    )?;
    same(
        "audit: channels connected",
        &connected,
        &me.channels_ever.keys().cloned().collect(),
    )
}

/// Everything tenant `t` can read matches the model.
pub(super) async fn verify_tenant(h: &Harness, m: &Model, t: usize) -> Result<(), String> {
    for what in READS {
        read(h, m, t, Actor::Owner, what)
            .await
            .map_err(|e| format!("tenant {t} {what:?}: {e}"))?;
    }
    Ok(())
}
