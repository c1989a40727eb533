//! Form encoding as PHP reads and writes it: `http_build_query` and `parse_str` with nested
//! names (`MESSAGES[0][user][id]=...`).

use serde_json::{Map, Value};

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1&b=2` into pairs, decoded.
pub fn parse_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// PHP-style form fields (`MESSAGES[0][user][id]=x`, `a[]=1`) into a JSON object. Objects
/// whose keys are 0..n become arrays.
pub fn form_to_json(body: &str) -> Value {
    fn insert(target: &mut Value, path: &[String], value: String) {
        let Value::Object(map) = target else { return };
        let (head, rest) = match path.split_first() {
            Some(x) => x,
            None => return,
        };
        let key = if head.is_empty() {
            map.len().to_string()
        } else {
            head.clone()
        };
        if rest.is_empty() {
            map.insert(key, Value::String(value));
            return;
        }
        let child = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
        if !child.is_object() {
            *child = Value::Object(Map::new());
        }
        insert(child, rest, value);
    }
    fn arrays(v: Value) -> Value {
        match v {
            Value::Object(map) => {
                let n = map.len();
                let is_list = n > 0 && (0..n).all(|i| map.contains_key(&i.to_string()));
                if is_list {
                    let mut map = map;
                    Value::Array(
                        (0..n)
                            .map(|i| arrays(map.remove(&i.to_string()).unwrap_or(Value::Null)))
                            .collect(),
                    )
                } else {
                    Value::Object(map.into_iter().map(|(k, v)| (k, arrays(v))).collect())
                }
            }
            other => other,
        }
    }
    let mut root = Value::Object(Map::new());
    for (k, v) in parse_pairs(body) {
        let (base, mut rest) = match k.find('[') {
            Some(i) => (k[..i].to_owned(), &k[i..]),
            None => (k.clone(), ""),
        };
        let mut path = vec![base];
        while let Some(stripped) = rest.strip_prefix('[') {
            match stripped.find(']') {
                Some(end) => {
                    path.push(stripped[..end].to_owned());
                    rest = &stripped[end + 1..];
                }
                None => break,
            }
        }
        insert(&mut root, &path, v);
    }
    arrays(root)
}

/// Percent-encodes like PHP's `http_build_query` (RFC 3986 unreserved characters stay).
fn php_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A JSON object as PHP's `http_build_query` writes it: `data[MESSAGES][0][im][chat_id]=1`,
/// brackets encoded, booleans as 1/0, nulls left out.
pub fn php_form(v: &Value) -> String {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}[{k}]")
                    };
                    walk(&key, v, out);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), v, out);
                }
            }
            Value::Null => {}
            Value::Bool(b) => out.push(format!("{}={}", php_encode(prefix), u8::from(*b))),
            Value::Number(n) => out.push(format!("{}={}", php_encode(prefix), n)),
            Value::String(t) => out.push(format!("{}={}", php_encode(prefix), php_encode(t))),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn php_style_forms() {
        let v = form_to_json(
            "CONNECTOR=wa&LINE=7&MESSAGES%5B0%5D%5Buser%5D%5Bid%5D=u1\
             &MESSAGES[0][message][text]=hi+there%21&MESSAGES[1][chat][id]=c2&tags[]=a&tags[]=b",
        );
        assert_eq!(
            v,
            json!({
                "CONNECTOR": "wa",
                "LINE": "7",
                "MESSAGES": [
                    {"user": {"id": "u1"}, "message": {"text": "hi there!"}},
                    {"chat": {"id": "c2"}}
                ],
                "tags": ["a", "b"]
            })
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
