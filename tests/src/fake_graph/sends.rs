//! Sends: `POST /{id}/messages` for WhatsApp and Instagram, checked against the documented
//! bodies.

use super::*;

pub(super) const WHATSAPP_MEDIA_TYPES: &[&str] =
    &["image", "audio", "video", "document", "sticker"];

pub(super) fn send_message(
    s: &mut State,
    path: &str,
    owner: &str,
    bearer: Option<&str>,
    body: &[u8],
) -> Answer {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return invalid_parameter("the body is not JSON");
    };
    if body.get("status").is_some() {
        sender_actions::whatsapp_read(s, path, owner, bearer, &body)
    } else if body.get("sender_action").is_some() {
        sender_actions::instagram_action(s, path, owner, bearer, &body)
    } else if body.get("messaging_product").is_some() {
        send_whatsapp(s, path, owner, bearer, body)
    } else {
        send_instagram(s, path, owner, bearer, body)
    }
}

pub(super) fn send_whatsapp(
    s: &mut State,
    path: &str,
    number: &str,
    bearer: Option<&str>,
    body: Value,
) -> Answer {
    let Some(numbers) = bearer.and_then(|t| s.tokens.get(t)).cloned() else {
        return invalid_token();
    };
    if !numbers.iter().any(|n| n == number) {
        return no_such_object(number);
    }
    if body["messaging_product"] != "whatsapp" {
        return invalid_parameter("messaging_product must be whatsapp");
    }
    if body
        .get("recipient_type")
        .is_some_and(|r| r != "individual")
    {
        return invalid_parameter("recipient_type must be individual");
    }
    let to = body.get("to").and_then(Value::as_str);
    let recipient = body.get("recipient").and_then(Value::as_str);
    let input = match (to, recipient) {
        (Some(to), _) => to,
        (None, Some(r)) => r,
        (None, None) => return invalid_parameter("to or recipient is required"),
    };
    let Some(kind) = body.get("type").and_then(Value::as_str) else {
        return invalid_parameter("type is required");
    };
    let Some(object) = body.get(kind).filter(|o| o.is_object()) else {
        return invalid_parameter("the object named by type is required");
    };
    match kind {
        "text" => {
            let ok = object["body"]
                .as_str()
                .is_some_and(|b| !b.is_empty() && b.chars().count() <= 4096);
            if !ok {
                return invalid_parameter("text.body must be 1 to 4096 characters");
            }
        }
        k if WHATSAPP_MEDIA_TYPES.contains(&k) => {
            let Some(id) = object["id"].as_str() else {
                return invalid_parameter("media objects need an id here");
            };
            let known = s
                .media
                .get(id)
                .is_some_and(|m| m.phone_number_id == number && !m.gone);
            if !known {
                return code_answer(131053);
            }
        }
        "template" => {
            if object["name"].as_str().is_none() || object["language"]["code"].as_str().is_none() {
                return invalid_parameter("template needs name and language.code");
            }
        }
        "reaction" => {
            if object["message_id"].as_str().is_none() {
                return invalid_parameter("reaction.message_id is required");
            }
        }
        _ => return code_answer(131051),
    }
    s.seq += 1;
    let id = format!("wamid.FAKE{:012}", s.seq);
    s.sent.push(SentMessage {
        product: "whatsapp",
        path: path.to_owned(),
        bearer: bearer.map(str::to_owned),
        body: body.clone(),
        id: id.clone(),
    });
    statuses::sent(s, number, input, &id, &body);
    let contact = if to.is_some() {
        json!({"input": input, "wa_id": input.trim_start_matches('+')})
    } else {
        json!({"input": input, "user_id": input})
    };
    json_answer(
        200,
        &json!({
            "messaging_product": "whatsapp",
            "contacts": [contact],
            "messages": [{"id": id, "message_status": "accepted"}]
        }),
    )
}

pub(super) fn send_instagram(
    s: &mut State,
    path: &str,
    owner: &str,
    bearer: Option<&str>,
    body: Value,
) -> Answer {
    let Some((account, page)) = bearer.and_then(|t| s.instagram_tokens.get(t)).cloned() else {
        return invalid_token();
    };
    let owner_ok = owner == "me" || owner == account || page.as_deref() == Some(owner);
    if !owner_ok {
        return no_such_object(owner);
    }
    if body["recipient"].get("comment_id").is_some() {
        return comments::private_reply(s, path, &account, bearer, body);
    }
    let Some(recipient) = body["recipient"]["id"].as_str().map(str::to_owned) else {
        return invalid_parameter("recipient.id is required");
    };
    if let Err(why) = check_reply_to(&body) {
        return invalid_parameter(why);
    }
    match body["messaging_type"].as_str() {
        Some("RESPONSE") | Some("UPDATE") | None => {}
        Some("MESSAGE_TAG") => {
            if body["tag"].as_str() != Some("HUMAN_AGENT") {
                return invalid_parameter("MESSAGE_TAG needs a tag");
            }
        }
        Some(_) => return invalid_parameter("unknown messaging_type"),
    }
    let message = &body["message"];
    if let Some(text) = message["text"].as_str() {
        if text.is_empty() || text.len() > 1000 {
            return invalid_parameter("message.text must be 1 to 1000 bytes");
        }
    } else {
        let a = &message["attachment"];
        let kind_ok = a["type"]
            .as_str()
            .is_some_and(|t| ["image", "audio", "video", "file"].contains(&t));
        if !kind_ok || a["payload"]["url"].as_str().is_none() {
            return invalid_parameter("message needs text or an attachment with a url");
        }
    }
    s.seq += 1;
    let id = format!("aWdfZAG1faXRlbToxOkZBS0U{:012}", s.seq);
    s.sent.push(SentMessage {
        product: "instagram",
        path: path.to_owned(),
        bearer: bearer.map(str::to_owned),
        body: body.clone(),
        id: id.clone(),
    });
    json_answer(200, &json!({"recipient_id": recipient, "message_id": id}))
}

/// A reply to one of the customer's messages: `"reply_to": {"mid": "<MID>"}` at the top of
/// the body, beside `recipient` (Graph API reference, "Page Messages": `reply_to` is an
/// object parameter of the messages edge next to `recipient`, `message` and
/// `messaging_type`; its `mid` is the id a customer's reply carries in
/// `message.reply_to.mid`); never inside `message`, never anything but a non-empty `mid`.
pub(super) fn check_reply_to(body: &Value) -> Result<(), &'static str> {
    if body["message"].get("reply_to").is_some() {
        return Err("reply_to belongs beside recipient, not in message");
    }
    match body.get("reply_to") {
        None => Ok(()),
        Some(r) => {
            let mid_only = r.as_object().is_some_and(|o| o.len() == 1)
                && r["mid"].as_str().is_some_and(|m| !m.is_empty());
            if mid_only {
                Ok(())
            } else {
                Err("reply_to must be {\"mid\": \"<MID>\"}")
            }
        }
    }
}
