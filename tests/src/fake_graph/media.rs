//! Media: a media id's metadata, the lookaside download, and uploads (`multipart/form-data`).

use super::*;

pub(super) fn media_info(
    s: &mut State,
    media_id: &str,
    query: Option<&str>,
    bearer: Option<&str>,
) -> Answer {
    let Some(numbers) = bearer.and_then(|t| s.tokens.get(t)).cloned() else {
        return invalid_token();
    };
    let Some(media) = s.media.get(media_id).cloned() else {
        return no_such_object(media_id);
    };
    let pairs = query_pairs(query);
    let wrong_number = pairs
        .get("phone_number_id")
        .is_some_and(|p| *p != media.phone_number_id);
    if media.gone || wrong_number || !numbers.contains(&media.phone_number_id) {
        return no_such_object(media_id);
    }
    s.seq += 1;
    let hash = format!("h{:08}", s.seq);
    let expires = now_secs() + 300;
    s.lookaside
        .insert(hash.clone(), (media_id.to_owned(), expires));
    json_answer(
        200,
        &json!({
            "messaging_product": "whatsapp",
            "url": format!(
                "{}/lookaside/whatsapp_business/attachments/?mid={media_id}&ext={expires}&hash={hash}",
                s.base_url
            ),
            "mime_type": media.mime_type,
            "sha256": fake_sha256(&media.bytes),
            "file_size": media.bytes.len().to_string(),
            "id": media_id
        }),
    )
}

pub(super) fn lookaside(s: &mut State, query: Option<&str>, bearer: Option<&str>) -> Answer {
    let Some(numbers) = bearer.and_then(|t| s.tokens.get(t)).cloned() else {
        return invalid_token();
    };
    let pairs = query_pairs(query);
    let found = pairs
        .get("hash")
        .and_then(|h| s.lookaside.get(h))
        .filter(|(mid, exp)| Some(mid) == pairs.get("mid") && *exp >= now_secs())
        .and_then(|(mid, _)| s.media.get(mid))
        .filter(|m| !m.gone && numbers.contains(&m.phone_number_id));
    match found {
        Some(m) => bytes_answer(200, &m.mime_type, m.bytes.clone()),
        None => bytes_answer(404, "text/plain", b"Not Found".to_vec()),
    }
}

pub(super) fn invalid_parameter(details: &str) -> Answer {
    json_answer(
        400,
        &json!({"error": {
            "message": "(#100) Invalid parameter",
            "type": "OAuthException",
            "code": 100,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": "AfakeTraceId0123456789"
        }}),
    )
}

/// One part of a `multipart/form-data` body.
pub(super) struct FormPart {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

pub(super) fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

pub(super) fn param(header: &str, name: &str) -> Option<String> {
    header.split(';').map(str::trim).find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Parses a multipart body strictly enough to catch malformed uploads (RFC 7578).
pub(super) fn parse_multipart(content_type: &str, body: &[u8]) -> Option<Vec<FormPart>> {
    if !content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return None;
    }
    let boundary = param(content_type, "boundary")?;
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut pos = find(body, delimiter.as_bytes(), 0)?;
    loop {
        pos += delimiter.len();
        if body.get(pos..pos + 2)? == b"--" {
            return Some(parts);
        }
        if body.get(pos..pos + 2)? != b"\r\n" {
            return None;
        }
        pos += 2;
        let head_end = find(body, b"\r\n\r\n", pos)?;
        let head = std::str::from_utf8(&body[pos..head_end]).ok()?;
        let data_start = head_end + 4;
        let next = find(body, format!("\r\n{delimiter}").as_bytes(), data_start)?;
        let mut part = FormPart {
            name: String::new(),
            filename: None,
            content_type: None,
            data: body[data_start..next].to_vec(),
        };
        for line in head.split("\r\n") {
            let (k, v) = line.split_once(':')?;
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                part.name = param(v, "name")?;
                part.filename = param(v, "filename");
            } else if k.trim().eq_ignore_ascii_case("content-type") {
                part.content_type = Some(v.trim().to_owned());
            }
        }
        parts.push(part);
        pos = next + 2;
    }
}

pub(super) fn upload_media(
    s: &mut State,
    number: &str,
    bearer: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Answer {
    let Some(numbers) = bearer.and_then(|t| s.tokens.get(t)).cloned() else {
        return invalid_token();
    };
    if !numbers.iter().any(|n| n == number) {
        return no_such_object(number);
    }
    let Some(parts) = content_type.and_then(|ct| parse_multipart(ct, body)) else {
        return invalid_parameter("the body is not multipart/form-data");
    };
    let field = |name: &str| {
        parts
            .iter()
            .find(|p| p.name == name && p.filename.is_none())
            .map(|p| String::from_utf8_lossy(&p.data).into_owned())
    };
    let messaging_product = field("messaging_product");
    if messaging_product.as_deref() != Some("whatsapp") {
        return invalid_parameter("messaging_product must be whatsapp");
    }
    let Some(mime_type) = field("type") else {
        return invalid_parameter("type is required");
    };
    let Some(file) = parts.iter().find(|p| p.name == "file") else {
        return invalid_parameter("file is required");
    };
    if file.data.is_empty() {
        return code_answer(131053);
    }
    s.seq += 1;
    let media_id = format!("{}", 4_490_709_327_000_000u64 + s.seq);
    s.media.insert(
        media_id.clone(),
        FakeMedia {
            phone_number_id: number.to_owned(),
            mime_type: mime_type.clone(),
            bytes: file.data.clone(),
            gone: false,
        },
    );
    s.uploads.push(Upload {
        phone_number_id: number.to_owned(),
        media_id: media_id.clone(),
        mime_type,
        filename: file.filename.clone(),
        part_content_type: file.content_type.clone(),
        bytes: file.data.clone(),
        messaging_product,
    });
    json_answer(200, &json!({ "id": media_id }))
}
