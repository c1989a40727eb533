//! The console's flows in the IAM-coverage scenario, through the handler its `main.rs`
//! builds: a refused and a successful sign-in, the channels page, a retention change, an
//! export request and its download link, a contact erasure, a disconnect, and an account
//! deletion cancelled within its grace period.

use lambda_http::Body;
use wappline::app::HttpFunction;

use super::world::call_raw;

/// One browser's cookies against the console function.
pub struct Session<'a> {
    console: &'a dyn HttpFunction,
    cookies: Vec<(String, String)>,
}

pub struct Answer {
    pub status: u16,
    pub location: String,
    pub body: String,
}

impl<'a> Session<'a> {
    pub fn new(console: &'a dyn HttpFunction) -> Self {
        Session {
            console,
            cookies: Vec::new(),
        }
    }

    async fn send(&mut self, method: &str, path: &str, form: Option<String>) -> Answer {
        let mut headers = vec![(
            "cookie",
            self.cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )];
        if form.is_some() {
            headers.push((
                "content-type",
                "application/x-www-form-urlencoded".to_owned(),
            ));
        }
        let resp = call_raw(
            self.console,
            method,
            path,
            &headers,
            form.map(String::into_bytes),
        )
        .await;
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let status = resp.status().as_u16();
        let body = match resp.into_body() {
            Body::Text(t) => t,
            Body::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
            _ => String::new(),
        };
        Answer {
            status,
            location,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, None).await
    }

    /// Posts `fields` with the form token of the page at `from`.
    pub async fn submit(&mut self, from: &str, path: &str, fields: &[(&str, &str)]) -> Answer {
        let page = self.get(from).await;
        assert_eq!(page.status, 200, "{from}: {}", page.body);
        let marker = "name=\"csrf\" value=\"";
        let start = page.body.find(marker).expect("a form token") + marker.len();
        let token = &page.body[start..start + page.body[start..].find('"').unwrap()];
        let mut form = format!("csrf={token}");
        for (k, v) in fields {
            form.push_str(&format!(
                "&{k}={}",
                v.replace('+', "%2B").replace('@', "%40")
            ));
        }
        self.send("POST", path, Some(form)).await
    }
}
