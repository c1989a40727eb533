//! One operation of the property: what it does at the local server, and what the model expects of
//! every tenant afterwards.

use super::*;

pub(super) async fn step(h: &Harness, m: &mut Model, op: &Op) -> Result<(), String> {
    m.ops += 1;
    match *op {
        Op::Connect { t, by, salt } => {
            let n = m.next();
            let phone = format!("7{n:08}{salt:05}1");
            let waba = format!("8{n:08}{salt:05}3");
            let secret = format!("EAAisolation{n}x{salt}secret");
            let path = format!("/admin/tenants/{}/channels/whatsapp", m.tenants[t].id);
            let body = json!({"phone_number_id": phone, "waba_id": waba, "access_token": secret});
            h.graph.add_whatsapp_business(&secret, &waba, &phone);
            m.secrets.push(secret);
            let r = as_tenant(h, m, t, by, "POST", &path, Some(body)).await?;
            expect(&r, StatusCode::CREATED, "connect")?;
            same("connected id", r.body["id"].as_str(), Some(phone.as_str()))?;
            let me = &mut m.tenants[t];
            me.channels.insert(phone.clone(), waba.clone());
            me.channels_ever.insert(phone, waba);
        }
        Op::Disconnect { t, by, pick: p } => {
            let Some(phone) = pick(m.tenants[t].channels.keys().cloned(), p) else {
                return Ok(());
            };
            let path = format!(
                "/admin/tenants/{}/channels/whatsapp/{phone}",
                m.tenants[t].id
            );
            let r = as_tenant(h, m, t, by, "DELETE", &path, None).await?;
            expect(&r, StatusCode::NO_CONTENT, "disconnect")?;
            m.tenants[t].channels.remove(&phone);
        }
        Op::CreateKey { t, by, salt } => {
            let n = m.next();
            let name = format!("{} key {n}x{salt}", m.tenants[t].slug);
            // The name is the tenant's from here on (it is in the request, so no false leak).
            m.tenants[t].key_names.insert(name.clone());
            let path = format!("/admin/tenants/{}/api-keys", m.tenants[t].id);
            let r = as_tenant(h, m, t, by, "POST", &path, Some(json!({"name": name}))).await?;
            expect(&r, StatusCode::CREATED, "create key")?;
            let id = r.body["id"].as_str().ok_or("key without id")?.to_owned();
            let key = r.body["key"]
                .as_str()
                .ok_or("key without secret")?
                .to_owned();
            m.tenants[t].keys.insert(id, false);
            m.secrets.push(key);
        }
        Op::RevokeKey { t, by, pick: p } => {
            let Some(id) = pick(m.tenants[t].keys.keys().cloned(), p) else {
                return Ok(());
            };
            let path = format!("/admin/tenants/{}/api-keys/{id}", m.tenants[t].id);
            let r = as_tenant(h, m, t, by, "DELETE", &path, None).await?;
            expect(&r, StatusCode::NO_CONTENT, "revoke key")?;
            m.tenants[t].keys.insert(id, true);
        }
        Op::Invite { t, by, role, salt } => {
            let n = m.next();
            let email = format!("invitee{n}x{salt}@{}.isolation.test", m.tenants[t].slug);
            m.tenants[t].invited.insert(email.clone());
            let path = format!("/admin/tenants/{}/invitations", m.tenants[t].id);
            let body = json!({"email": email, "role": ROLES[role]});
            let r = as_tenant(h, m, t, by, "POST", &path, Some(body)).await?;
            expect(&r, StatusCode::CREATED, "invite")?;
            same(
                "invited email",
                r.body["email"].as_str(),
                Some(email.as_str()),
            )?;
            let token = r.body["token"].as_str().ok_or("invitation without token")?;
            m.secrets.push(token.to_owned());
        }
        Op::Retention { t, by, days } => {
            let path = format!("/admin/tenants/{}/settings", m.tenants[t].id);
            let body = json!({"retention_days": days});
            let r = as_tenant(h, m, t, by, "PATCH", &path, Some(body)).await?;
            expect(&r, StatusCode::OK, "retention")?;
            m.tenants[t].retention = days;
            check_settings(&m.tenants[t], &r.body)?;
        }
        Op::SetPlan { t, outbound } => {
            let path = format!("/admin/tenants/{}/plan", m.tenants[t].id);
            let body = json!({"monthly_outbound": outbound, "monthly_inbound": null});
            let r = as_tenant(h, m, t, Actor::Platform, "PUT", &path, Some(body)).await?;
            expect(&r, StatusCode::OK, "set plan")?;
            m.tenants[t].plan = Some(outbound);
        }
        Op::ClearPlan { t } => {
            let path = format!("/admin/tenants/{}/plan", m.tenants[t].id);
            let r = as_tenant(h, m, t, Actor::Platform, "DELETE", &path, None).await?;
            expect(&r, StatusCode::OK, "clear plan")?;
            m.tenants[t].plan = None;
        }
        Op::Export { t, by } => {
            let path = format!("/admin/tenants/{}/exports", m.tenants[t].id);
            let body = json!({"scope": "tenant"});
            let r = as_tenant(h, m, t, by, "POST", &path, Some(body)).await?;
            expect(&r, StatusCode::ACCEPTED, "export")?;
            let id = r.body["id"].as_str().ok_or("export without id")?;
            let texts = m.tenants[t].texts.clone();
            m.tenants[t].exports.insert(id.to_owned(), texts);
        }
        Op::Inbound { t, pick: p, salt } => {
            let Some((phone, waba)) = pick(m.tenants[t].channels.clone(), p) else {
                return Ok(());
            };
            let n = m.next();
            let slug = m.tenants[t].slug;
            let customer = format!("1555{n:07}");
            let name = format!("Customer {slug} {n}x{salt}");
            let text = format!("isolation {slug} message {n}x{salt}");
            let wamid = format!("wamid.ISO{n}X{salt}");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let payload = json!({
                "object": "whatsapp_business_account",
                "entry": [{"id": waba, "changes": [{"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone},
                    "contacts": [{"profile": {"name": name}, "wa_id": customer}],
                    "messages": [{"from": customer, "id": wamid, "timestamp": now.to_string(),
                        "type": "text", "text": {"body": text}}]
                }}]}]
            });
            let me = &mut m.tenants[t];
            me.customers.extend([
                ("customer number", customer),
                ("customer name", name),
                ("message text", text.clone()),
                ("message id", wamid),
            ]);
            let (status, body) = h.post_signed(payload.to_string().as_bytes()).await;
            if status != StatusCode::OK {
                return Err(format!("webhook: {status} {body}"));
            }
            h.drain(platform::INBOUND, Duration::from_secs(30)).await;
            me.texts.push(text);
            me.inbound += 1;
        }
        Op::Download { t, pick: p, file } => {
            // Preferably an export that should hold messages, so the search means something.
            let exports = &m.tenants[t].exports;
            let with: Vec<String> = exports
                .iter()
                .filter(|(_, texts)| !texts.is_empty())
                .map(|(id, _)| id.clone())
                .collect();
            let any = if with.is_empty() {
                pick(exports.keys().cloned(), p)
            } else {
                pick(with, p)
            };
            let Some(id) = any else {
                return Ok(());
            };
            wait_completed(h, m, t, &id).await?;
            let path = format!("/admin/tenants/{}/exports/{id}/links", m.tenants[t].id);
            let body = json!({"file": FILES[file]});
            let r = as_tenant(h, m, t, Actor::Owner, "POST", &path, Some(body)).await?;
            expect(&r, StatusCode::CREATED, "export link")?;
            let url = r.body["url"].as_str().ok_or("link without url")?;
            let resp = h.http.get(url).send().await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let text = resp.text().await.map_err(|e| e.to_string())?;
            if status != StatusCode::OK {
                return Err(format!("download {}: {status} {text}", FILES[file]));
            }
            let found = leaks(m, t, "", &text);
            if !found.is_empty() {
                return Err(format!(
                    "tenant {t}'s export {id} {} holds {}: {text}",
                    FILES[file],
                    found.join(", ")
                ));
            }
            if matches!(FILES[file], "export.json" | "messages.csv") {
                let had = &m.tenants[t].exports[&id];
                m.files_with_messages += u64::from(!had.is_empty());
                if let Some(missing) = had.iter().find(|x| !text.contains(x.as_str())) {
                    return Err(format!(
                        "tenant {t}'s export {id} {} lacks its message {missing:?}: {text}",
                        FILES[file]
                    ));
                }
            }
            if FILES[file].ends_with(".json") && !text.contains(m.tenants[t].id.as_str()) {
                return Err(format!(
                    "tenant {t}'s export {id} {} does not name the tenant: {text}",
                    FILES[file]
                ));
            }
        }
        Op::Read { t, by, what } => read(h, m, t, by, what).await?,
        Op::CrossPath { t, by, other, what } => {
            let j = (t + other) % TENANTS;
            m.cross += 1;
            let them = &m.tenants[j];
            let n = m.seq + 1;
            let key = pick(them.keys.keys().cloned(), what).unwrap_or("0123456789abcdef".into());
            let export =
                pick(them.exports.keys().cloned(), what).unwrap_or("ex_0000000000000000".into());
            let user = pick(them.users.keys().cloned(), what).unwrap();
            let phone =
                pick(them.channels.keys().cloned(), what).unwrap_or("7000000000000001".into());
            let attempts: Vec<(&str, String, Option<Value>)> = vec![
                ("GET", String::new(), None),
                ("GET", "/api-keys".into(), None),
                ("GET", "/users".into(), None),
                ("GET", "/audit".into(), None),
                ("GET", "/usage".into(), None),
                ("GET", "/exports".into(), None),
                ("GET", format!("/exports/{export}"), None),
                (
                    "POST",
                    format!("/exports/{export}/links"),
                    Some(json!({"file": "export.json"})),
                ),
                ("POST", "/exports".into(), Some(json!({"scope": "tenant"}))),
                (
                    "PATCH",
                    "/settings".into(),
                    Some(json!({"retention_days": 1})),
                ),
                ("POST", "/api-keys".into(), Some(json!({"name": "steal"}))),
                ("DELETE", format!("/api-keys/{key}"), None),
                (
                    "POST",
                    "/channels/whatsapp".into(),
                    Some(
                        json!({"phone_number_id": format!("6{n:013}1"), "waba_id": "9", "access_token": "EAAsteal"}),
                    ),
                ),
                ("DELETE", format!("/channels/whatsapp/{phone}"), None),
                (
                    "POST",
                    "/invitations".into(),
                    Some(json!({"email": "spy@spy.test", "role": "owner"})),
                ),
                (
                    "PATCH",
                    format!("/users/{user}"),
                    Some(json!({"role": "viewer"})),
                ),
                ("DELETE", format!("/users/{user}"), None),
                (
                    "PUT",
                    "/plan".into(),
                    Some(json!({"monthly_outbound": 1, "monthly_inbound": 1})),
                ),
                ("GET", "/erasure".into(), None),
                ("POST", "/erasure/contacts".into(), Some(json!({}))),
            ];
            let (method, rest, body) = attempts[what % attempts.len()].clone();
            let path = format!("/admin/tenants/{}{rest}", them.id);
            let r = as_tenant(h, m, t, by, method, &path, body.clone()).await?;
            if r.status != StatusCode::NOT_FOUND || r.body != generic_404() {
                return Err(format!(
                    "tenant {t}'s {by:?} {method} {path} (tenant {j}'s): {} {}",
                    r.status, r.text
                ));
            }
            // Exactly what naming a tenant that does not exist gets.
            let nowhere = format!("/admin/tenants/{}{rest}", fake_of(&them.id));
            let r2 = as_tenant(h, m, t, by, method, &nowhere, body).await?;
            if (r2.status, &r2.text) != (r.status, &r.text) {
                return Err(format!(
                    "{method} {path} (tenant {j}'s) answers {} {}, but {nowhere} {} {}",
                    r.status, r.text, r2.status, r2.text
                ));
            }
            verify_tenant(h, m, j).await?;
        }
        Op::CrossId { t, by, other, what } => {
            let j = (t + other) % TENANTS;
            m.cross += 1;
            let them = &m.tenants[j];
            let mine = format!("/admin/tenants/{}", m.tenants[t].id);
            let mut attempts: Vec<(&str, String, String, Option<Value>)> = vec![];
            if let Some(k) = pick(them.keys.keys().cloned(), what) {
                attempts.push(("DELETE", k.clone(), format!("{mine}/api-keys/{k}"), None));
            }
            if let Some(x) = pick(them.exports.keys().cloned(), what) {
                attempts.push(("GET", x.clone(), format!("{mine}/exports/{x}"), None));
                attempts.push((
                    "POST",
                    x.clone(),
                    format!("{mine}/exports/{x}/links"),
                    Some(json!({"file": "export.json"})),
                ));
            }
            let u = pick(them.users.keys().cloned(), what).unwrap();
            attempts.push((
                "PATCH",
                u.clone(),
                format!("{mine}/users/{u}"),
                Some(json!({"role": "viewer"})),
            ));
            attempts.push(("DELETE", u.clone(), format!("{mine}/users/{u}"), None));
            if let Some(p) = pick(them.channels.keys().cloned(), what) {
                attempts.push((
                    "DELETE",
                    p.clone(),
                    format!("{mine}/channels/whatsapp/{p}"),
                    None,
                ));
            }
            let (method, id, path, body) = attempts[what % attempts.len()].clone();
            let r = as_tenant(h, m, t, by, method, &path, body.clone()).await?;
            if r.status != StatusCode::NOT_FOUND {
                return Err(format!(
                    "tenant {t}'s {by:?} {method} {path} (tenant {j}'s id): {} {}",
                    r.status, r.text
                ));
            }
            let fake = fake_of(&id);
            let r2 = as_tenant(h, m, t, by, method, &path.replace(&id, &fake), body).await?;
            let a = r.text.replace(&id, "{id}");
            let b = r2.text.replace(&fake, "{id}");
            if (r.status, &a) != (r2.status, &b) {
                return Err(format!(
                    "{method} {path} (tenant {j}'s id) answers {} {}, an id that does not exist {} {}",
                    r.status, r.text, r2.status, r2.text
                ));
            }
            verify_tenant(h, m, j).await?;
        }
        Op::ClaimForeign {
            t,
            by,
            other,
            pick: p,
        } => {
            let j = (t + other) % TENANTS;
            m.cross += 1;
            let Some(phone) = pick(m.tenants[j].channels.keys().cloned(), p) else {
                return Ok(());
            };
            let n = m.next();
            let secret = format!("EAAclaim{n}secret");
            let path = format!("/admin/tenants/{}/channels/whatsapp", m.tenants[t].id);
            let waba = format!("5{n:013}1");
            let body = json!({"phone_number_id": phone, "waba_id": waba, "access_token": secret});
            m.secrets.push(secret.clone());
            m.tenants[t].claimed.insert(phone.clone());
            let r = as_tenant(h, m, t, by, "POST", &path, Some(body)).await?;
            // The token proves nothing: refused before the number's route is even looked
            // at, with the very answer a number nobody holds gets (decision 0032).
            expect(
                &r,
                StatusCode::UNPROCESSABLE_ENTITY,
                "claiming another tenant's number without its token",
            )?;
            let free = fake_of(&phone);
            m.tenants[t].claimed.insert(free.clone());
            let body = json!({"phone_number_id": free, "waba_id": waba, "access_token": secret});
            let r2 = as_tenant(h, m, t, by, "POST", &path, Some(body)).await?;
            if (r.status, &r.text) != (r2.status, &r2.text) {
                return Err(format!(
                    "a claim on tenant {j}'s number answers {} {}, on a free number {} {}",
                    r.status, r.text, r2.status, r2.text
                ));
            }
            verify_tenant(h, m, j).await?;
            verify_tenant(h, m, t).await?;
        }
    }
    Ok(())
}
