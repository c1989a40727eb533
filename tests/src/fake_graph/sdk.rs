//! A loopback fake of Meta's JavaScript SDK and of Embedded Signup's popup, for the console's
//! browser tests. Shapes as Meta documents them (WhatsApp Business Platform, "Embedded Signup
//! > Implementation"; Facebook JavaScript SDK reference, `FB.init` and `FB.login`):
//!
//! - `GET /en_US/sdk.js`: a script defining `window.FB` with `init({appId, version, ...})`
//!   and `login(callback, {config_id, response_type, override_default_response_type,
//!   extras})`, then calling `window.fbAsyncInit` as the real SDK does. `login` opens the
//!   sign-up window (`/{version}/dialog/oauth?client_id&config_id&response_type&
//!   override_default_response_type&extras&display=popup&origin`) and, when that window
//!   reports back, calls the callback with `{authResponse: {code, userID, expiresIn}, status:
//!   "connected"}` or, when the user left, `{authResponse: null, status: "unknown"}`.
//! - `GET /{version}/dialog/oauth?...`: the sign-up window. It checks what the page asked
//!   for: our fake app's id, the configuration id [`FAKE_ES_CONFIG_ID`], `response_type=
//!   code`, `override_default_response_type`, and `extras` with `setup` and
//!   `sessionInfoVersion: "3"` (anything else: a page saying what is wrong, and no buttons).
//!   Otherwise it shows the business the test prepared ([`FakeGraph::prepare_signup`]) with
//!   three buttons: `#finish` posts the session info `{"type": "WA_EMBEDDED_SIGNUP", "event":
//!   "FINISH" (or "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING" when `extras.featureType` is
//!   `whatsapp_business_app_onboarding`), "data": {"phone_number_id", "waba_id",
//!   "business_id"}}` as a JSON string to the opener (target origin: the page's), then hands
//!   the SDK a code the fake's `oauth/access_token` exchanges for the prepared token;
//!   `#cancel` posts `{"event": "CANCEL", "data": {"current_step"}}` and no code;
//!   `#report-error` posts a user-reported error (`CANCEL` with `data.error_message`,
//!   `error_id`, `session_id`, `timestamp`) and no code. Both messages come from this fake's
//!   origin, which the console is configured to accept as Facebook's.
//!
//! [`FakeGraph::expire_next_signup_code`] makes the next code one that has already expired.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::ownership::decode;
use super::{
    bytes_answer, is_version, now_secs, query_pairs, Answer, FakeGraph, ReadRequest, State,
};
use super::{CODE_SECS, FAKE_APP_ID};

/// The Embedded Signup configuration id the fake's sign-up window accepts (configure the
/// server's `META_ES_CONFIG_ID` with it).
pub const FAKE_ES_CONFIG_ID: &str = "1134867440811295";
/// The business portfolio the fake's sign-up reports.
pub const FAKE_BUSINESS_ID: &str = "2729063490586005";

#[derive(Default)]
pub(super) struct Sdk {
    /// `(token, waba, phone)` the next finished sign-up hands out.
    next: Option<(String, String, String)>,
    expire_next: bool,
    /// Each opening of the sign-up window: its query, decoded, with `extras` parsed.
    dialogs: Vec<Value>,
}

impl FakeGraph {
    /// The business the sign-up window finishes with: a code for `token` (register what
    /// `debug_token` says about it separately, e.g. [`FakeGraph::add_whatsapp_business`]),
    /// the WABA and the number.
    pub fn prepare_signup(&self, token: &str, waba: &str, phone: &str) {
        self.state().sdk.next = Some((token.to_owned(), waba.to_owned(), phone.to_owned()));
    }

    /// The next code the sign-up window hands out has already expired.
    pub fn expire_next_signup_code(&self) {
        self.state().sdk.expire_next = true;
    }

    /// What each opening of the sign-up window asked for.
    pub fn signup_dialogs(&self) -> Vec<Value> {
        self.state().sdk.dialogs.clone()
    }
}

/// The SDK's script and the sign-up window, or None for other requests.
pub(super) fn route(s: &mut State, r: &ReadRequest<'_>, segments: &[&str]) -> Option<Answer> {
    match (r.method, segments) {
        // Served with CORS, as connect.facebook.net serves it: Meta's snippet loads it with
        // `crossorigin="anonymous"`.
        ("GET", ["en_US", "sdk.js"]) => Some(
            hyper::Response::builder()
                .status(200)
                .header("content-type", "text/javascript; charset=utf-8")
                .header("access-control-allow-origin", "*")
                .body(http_body_util::Full::new(hyper::body::Bytes::from(
                    sdk_script(&s.base_url),
                )))
                .expect("valid response"),
        ),
        ("GET", [v, "dialog", "oauth"]) if is_version(v) => Some(dialog(s, r.query)),
        _ => None,
    }
}

fn sdk_script(origin: &str) -> String {
    SDK_JS.replace("__ORIGIN__", &json!(origin).to_string())
}

const SDK_JS: &str = r#"(function () {
  "use strict";
  var ORIGIN = __ORIGIN__;
  var app = null;
  var pending = null;
  function init(options) {
    if (!options || !options.appId || !options.version) {
      throw new Error("FB.init: appId and version are required");
    }
    app = { id: String(options.appId), version: String(options.version) };
  }
  function login(callback, options) {
    if (!app) {
      throw new Error("FB.login: call FB.init first");
    }
    options = options || {};
    pending = callback;
    var query = [
      ["client_id", app.id],
      ["config_id", options.config_id || ""],
      ["response_type", options.response_type || ""],
      ["override_default_response_type", options.override_default_response_type ? "true" : "false"],
      ["extras", JSON.stringify(options.extras || {})],
      ["display", "popup"],
      ["origin", window.location.origin]
    ].map(function (p) { return p[0] + "=" + encodeURIComponent(p[1]); }).join("&");
    window.open(ORIGIN + "/" + app.version + "/dialog/oauth?" + query, "fb_embedded_signup",
      "width=600,height=700");
  }
  window.addEventListener("message", function (event) {
    if (event.origin !== ORIGIN || !event.data || event.data.fakeSdk !== "authResponse") {
      return;
    }
    var callback = pending;
    pending = null;
    if (callback) {
      callback(event.data.response);
    }
  });
  window.FB = { init: init, login: login };
  if (typeof window.fbAsyncInit === "function") {
    window.fbAsyncInit();
  }
})();
"#;

fn page(body: &str) -> Answer {
    bytes_answer(
        200,
        "text/html; charset=utf-8",
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Fake Embedded Signup</title></head><body>{body}</body></html>"
        )
        .into_bytes(),
    )
}

fn refused(why: &str) -> Answer {
    page(&format!(
        "<h1>Embedded Signup</h1><p id=\"dialog-error\">{}</p>",
        why.replace('<', "&lt;")
    ))
}

fn dialog(s: &mut State, query: Option<&str>) -> Answer {
    let pairs: HashMap<String, String> = query_pairs(query)
        .into_iter()
        .map(|(k, v)| (k, decode(&v)))
        .collect();
    let field = |k: &str| pairs.get(k).cloned().unwrap_or_default();
    let extras: Value = serde_json::from_str(&field("extras")).unwrap_or(Value::Null);
    let mut record = json!(pairs);
    record["extras"] = extras.clone();
    s.sdk.dialogs.push(record);
    if field("client_id") != FAKE_APP_ID {
        return refused("Invalid App ID");
    }
    if field("config_id") != FAKE_ES_CONFIG_ID {
        return refused("Invalid configuration id");
    }
    if field("response_type") != "code" || field("override_default_response_type") != "true" {
        return refused(
            "Embedded Signup needs response_type=code with override_default_response_type",
        );
    }
    if !extras["setup"].is_object() || extras["sessionInfoVersion"] != "3" {
        return refused("extras needs setup and sessionInfoVersion 3");
    }
    let origin = field("origin");
    if !origin.starts_with("http://127.0.0.1:") {
        return refused("This domain is not in the app's allowed domains");
    }
    let Some((token, waba, phone)) = s.sdk.next.clone() else {
        return refused("No business to sign up (the test prepares one)");
    };
    let expires = if std::mem::take(&mut s.sdk.expire_next) {
        now_secs().saturating_sub(1)
    } else {
        now_secs() + CODE_SECS
    };
    let code = super::onboarding::issue_code(s, &token, expires);
    let finish = if extras["featureType"] == "whatsapp_business_app_onboarding" {
        "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING"
    } else {
        "FINISH"
    };
    let session = |event: &str, data: Value| {
        json!({"data": data, "type": "WA_EMBEDDED_SIGNUP", "event": event}).to_string()
    };
    let finished = session(
        finish,
        json!({"phone_number_id": phone, "waba_id": waba, "business_id": FAKE_BUSINESS_ID}),
    );
    let cancelled = session("CANCEL", json!({"current_step": "PHONE_NUMBER_SETUP"}));
    let reported = session(
        "CANCEL",
        json!({"error_message": "The display name was not approved", "error_id": "524126",
            "session_id": "f34b51dab5e0498", "timestamp": now_secs()}),
    );
    let auth = json!({"fakeSdk": "authResponse", "response": {
        "authResponse": {"code": code, "userID": "", "expiresIn": 0}, "status": "connected"}});
    let no_auth = json!({"fakeSdk": "authResponse", "response": {
        "authResponse": null, "status": "unknown"}});
    // Values go into the script as JSON (strings escaped), origin included.
    let script = format!(
        r#"<script>
"use strict";
var target = {origin};
function done(session, auth) {{
  window.opener.postMessage(session, target);
  window.opener.postMessage(auth, target);
  window.close();
}}
document.getElementById("finish").addEventListener("click", function () {{ done({finished}, {auth}); }});
document.getElementById("cancel").addEventListener("click", function () {{ done({cancelled}, {no_auth}); }});
document.getElementById("report-error").addEventListener("click", function () {{ done({reported}, {no_auth}); }});
</script>"#,
        origin = json!(origin),
        finished = json!(finished),
        cancelled = json!(cancelled),
        reported = json!(reported),
    );
    page(&format!(
        "<h1>Embedded Signup</h1><p>WhatsApp Business Account <span id=\"waba\">{waba}</span>, \
         number <span id=\"phone\">{phone}</span></p>\
         <button id=\"finish\">Finish</button> <button id=\"cancel\">Cancel</button> \
         <button id=\"report-error\">Report a problem</button>{script}"
    ))
}
