//! The console's flows in the IAM-coverage scenario, through the handler its `main.rs`
//! builds: a refused and a successful sign-in, the channels page, a retention change, an
//! export request and its download link, a contact erasure, a disconnect, and an account
//! deletion cancelled within its grace period; then ([`every_page_and_form`]) every other
//! page and form, a renewed session and signing out. The pages and forms act for the
//! session's tenant (decision 0037): their calls are checked against the tenant-data role,
//! the sign-in and session checks against the console's own.

use lambda_http::Body;
use wappline::accounts::{Email, Password, Principal, Role};
use wappline::app::HttpFunction;
use wappline::ids::TenantId;

use super::world::{call_raw, Deployment};

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

impl Session<'_> {
    /// Forgets a cookie, as a browser does when it expires.
    pub fn forget(&mut self, name: &str) {
        self.cookies.retain(|(k, _)| k != name);
    }
}

/// The value of the first hidden input `name` after `after` in `page`.
fn hidden(page: &str, after: &str, name: &str) -> String {
    let from = page
        .find(after)
        .unwrap_or_else(|| panic!("{after} in the page"));
    let marker = format!("name=\"{name}\" value=\"");
    let start = from + page[from..].find(&marker).expect("the input") + marker.len();
    page[start..start + page[start..].find('"').unwrap()].to_owned()
}

/// What the console's remaining pages and forms need from the scenario.
pub struct Rest<'a> {
    pub d: &'a Deployment,
    pub tenant: &'a str,
    /// The WhatsApp number whose history import is turned on and off.
    pub number: &'a str,
    /// An Instagram account connected through the console's Instagram Login.
    pub instagram: &'a str,
}

/// Every page of the console, and the forms the scenario's first part did not post: users
/// (invite, change a role, remove, withdraw an invitation), API keys (create, revoke), the
/// history import switch, Instagram Login from the channels page to its callback, a session
/// renewed with the refresh cookie, and signing out.
pub async fn every_page_and_form(browser: &mut Session<'_>, rest: Rest<'_>) {
    for page in [
        "/app/retention",
        "/app/erasure",
        "/app/account",
        "/app/users",
        "/app/api-keys",
        "/app/audit",
        "/app/usage",
        "/app/bitrix24",
    ] {
        let r = browser.get(page).await;
        assert_eq!(r.status, 200, "{page}: {}", r.body);
    }
    // A second user (the test's own, unrecorded access), whose role changes, then who goes.
    let tenant = TenantId::parse(rest.tenant).unwrap();
    let setup = rest.d.setup_services("ConsoleFunction").accounts().unwrap();
    let invited = setup
        .invite(
            &tenant,
            &Principal::Platform,
            Email::parse("agent@acme.test").unwrap(),
            Role::Agent,
        )
        .await
        .unwrap();
    let password = Password::new("a long enough password").unwrap();
    let agent = setup
        .accept_invitation(&invited.token, &password)
        .await
        .unwrap()
        .user
        .id
        .to_string();
    for (path, fields) in [
        (
            "/app/users/role",
            vec![("user", agent.as_str()), ("role", "viewer")],
        ),
        ("/app/users/remove", vec![("user", agent.as_str())]),
    ] {
        let r = browser.submit("/app/users", path, &fields).await;
        assert_eq!(r.status, 303, "{path}: {}", r.body);
    }
    let r = browser
        .submit(
            "/app/users",
            "/app/users/invite",
            &[("email", "viewer@acme.test"), ("role", "viewer")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let invitation = hidden(&r.body, "<td>viewer@acme.test</td>", "invitation");
    let r = browser
        .submit(
            "/app/users",
            "/app/users/withdraw",
            &[("invitation", &invitation)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = browser
        .submit("/app/api-keys", "/app/api-keys", &[("name", "Console key")])
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let key = hidden(&r.body, "<td>Console key</td>", "key");
    let r = browser
        .submit("/app/api-keys", "/app/api-keys/revoke", &[("key", &key)])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    for import in ["on", "off"] {
        let r = browser
            .submit(
                "/app/channels",
                "/app/channels/history",
                &[("id", rest.number), ("import", import)],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
    }
    // Instagram Login from the channels page: off to the authorization window (Instagram's
    // fake), back to the callback with its code and our state.
    rest.d.graph.set_instagram_login(
        rest.instagram,
        "instagram_business_basic,instagram_business_manage_messages",
    );
    let r = browser
        .submit("/app/channels", "/app/onboarding/instagram", &[])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let window = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&r.location)
        .send()
        .await
        .unwrap();
    let back = window.headers()["location"].to_str().unwrap().to_owned();
    let query = |from: &str, name: &str| {
        from.split(['?', '&', '#'])
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} in {from}"))
            .to_owned()
    };
    let callback = format!(
        "/app/onboarding/instagram/callback?code={}&state={}",
        query(&back, "code"),
        query(&r.location, "state")
    );
    let r = browser.get(&callback).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body.contains(rest.instagram), "{}", r.body);
    // An access token that ran out: the refresh cookie renews the session (rotated).
    browser.forget("wappline_session");
    let r = browser.get("/app/channels").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = browser.submit("/app/channels", "/app/sign-out", &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(browser.get("/app/channels").await.location, "/app/sign-in");
}
