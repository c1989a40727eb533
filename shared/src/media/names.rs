//! File names and content types that are safe to put in a response header: served from our
//! own domain, a media answer must never become an HTML page or a script, and a file name
//! from a customer must never break a header.

/// Longest file name kept (characters).
pub const MAX_FILENAME_CHARS: usize = 120;

/// The type served when the real one is missing or not on the allow-list.
pub const FALLBACK_CONTENT_TYPE: &str = "application/octet-stream";

/// A file name without directories, control characters, quotes or characters Windows
/// refuses, trimmed and cut to [`MAX_FILENAME_CHARS`]. None when nothing is left.
pub fn safe_filename(raw: &str) -> Option<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '<' | '>' | ':' | '|' | '?' | '*'))
        .take(MAX_FILENAME_CHARS)
        .collect();
    let trimmed = cleaned.trim().trim_matches('.').trim();
    if trimmed.is_empty() {
        None
    } else {
        Some(trimmed.to_owned())
    }
}

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>` (RFC 6266,
/// RFC 8187), for `name` made safe with [`safe_filename`], or `fallback`.
pub fn content_disposition(name: Option<&str>, fallback: &str) -> String {
    let name = name
        .and_then(safe_filename)
        .or_else(|| safe_filename(fallback))
        .unwrap_or_else(|| "file".to_owned());
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '%' | ';') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            );
        if keep {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 127
        && s.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(
                    b,
                    b'!' | b'#' | b'$' | b'&' | b'^' | b'_' | b'.' | b'+' | b'-'
                )
        })
}

/// The media type to serve for `raw` (a `Content-Type` as received, parameters dropped):
/// images (not SVG), audio, video, documents (`application/*` that browsers do not run) and
/// plain text pass; anything a browser could render as active content (HTML, XML, SVG,
/// scripts) or that is malformed becomes [`FALLBACK_CONTENT_TYPE`].
pub fn safe_content_type(raw: Option<&str>) -> String {
    let Some(raw) = raw else {
        return FALLBACK_CONTENT_TYPE.to_owned();
    };
    let essence = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((top, sub)) = essence.split_once('/') else {
        return FALLBACK_CONTENT_TYPE.to_owned();
    };
    if !is_token(top) || !is_token(sub) {
        return FALLBACK_CONTENT_TYPE.to_owned();
    }
    let active = [
        "xml",
        "html",
        "javascript",
        "ecmascript",
        "svg",
        "shockwave",
    ];
    let allowed = match top {
        "image" | "audio" | "video" => true,
        "application" => true,
        "text" => matches!(sub, "plain" | "csv" | "vcard" | "x-vcard" | "calendar"),
        _ => false,
    } && !active.iter().any(|a| sub.contains(a));
    if allowed {
        essence
    } else {
        FALLBACK_CONTENT_TYPE.to_owned()
    }
}

/// A file extension (with the dot) for a media type, for names of media that came without
/// one. None for types not listed.
pub fn extension_for(mime: &str) -> Option<&'static str> {
    let essence = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Some(match essence.as_str() {
        "image/jpeg" => ".jpg",
        "image/png" => ".png",
        "image/webp" => ".webp",
        "image/gif" => ".gif",
        "image/heic" => ".heic",
        "audio/ogg" => ".ogg",
        "audio/mpeg" => ".mp3",
        "audio/mp4" => ".m4a",
        "audio/aac" => ".aac",
        "audio/amr" => ".amr",
        "video/mp4" => ".mp4",
        "video/3gpp" => ".3gp",
        "video/quicktime" => ".mov",
        "application/pdf" => ".pdf",
        "application/msword" => ".doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => ".docx",
        "application/vnd.ms-excel" => ".xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => ".xlsx",
        "application/vnd.ms-powerpoint" => ".ppt",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => ".pptx",
        "application/zip" => ".zip",
        "text/plain" => ".txt",
        "text/csv" => ".csv",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_lose_paths_and_header_breakers() {
        assert_eq!(safe_filename("report.pdf").as_deref(), Some("report.pdf"));
        assert_eq!(safe_filename("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(safe_filename("C:\\x\\y.doc").as_deref(), Some("y.doc"));
        assert_eq!(
            safe_filename("a\"b\r\nSet-Cookie: x.txt").as_deref(),
            Some("abSet-Cookie x.txt")
        );
        assert_eq!(safe_filename(" .. "), None);
        assert_eq!(safe_filename(""), None);
        assert_eq!(
            safe_filename(&"é".repeat(500)).map(|s| s.chars().count()),
            Some(MAX_FILENAME_CHARS)
        );
    }

    #[test]
    fn disposition_has_ascii_and_utf8_forms() {
        assert_eq!(
            content_disposition(Some("Счёт 5%.pdf"), "file"),
            "attachment; filename=\"____ 5_.pdf\"; filename*=UTF-8''%D0%A1%D1%87%D1%91%D1%82%205%25.pdf"
        );
        assert_eq!(
            content_disposition(None, "image.jpg"),
            "attachment; filename=\"image.jpg\"; filename*=UTF-8''image.jpg"
        );
        let d = content_disposition(Some("x\";\r\n.pdf"), "f");
        assert!(!d.contains('\r') && !d.contains('\n'));
        assert_eq!(d.matches('"').count(), 2, "{d}");
    }

    #[test]
    fn active_content_is_never_served_as_such() {
        for (raw, want) in [
            (Some("image/jpeg"), "image/jpeg"),
            (Some("IMAGE/PNG; charset=binary"), "image/png"),
            (Some("audio/ogg; codecs=opus"), "audio/ogg"),
            (Some("video/mp4"), "video/mp4"),
            (Some("application/pdf"), "application/pdf"),
            (Some("text/plain"), "text/plain"),
            (Some("text/html"), FALLBACK_CONTENT_TYPE),
            (Some("image/svg+xml"), FALLBACK_CONTENT_TYPE),
            (Some("application/xhtml+xml"), FALLBACK_CONTENT_TYPE),
            (Some("application/javascript"), FALLBACK_CONTENT_TYPE),
            (Some("text/xml"), FALLBACK_CONTENT_TYPE),
            (Some("nonsense"), FALLBACK_CONTENT_TYPE),
            (Some("image/jp\"eg"), FALLBACK_CONTENT_TYPE),
            (None, FALLBACK_CONTENT_TYPE),
        ] {
            assert_eq!(safe_content_type(raw), want, "{raw:?}");
        }
        assert_eq!(extension_for("audio/ogg; codecs=opus"), Some(".ogg"));
        assert_eq!(extension_for("application/x-unknown"), None);
    }
}
