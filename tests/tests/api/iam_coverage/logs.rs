//! What every function logs while it runs real flows holds no message body, token, secret or
//! phone number (in clear, or in base64 as inside a wamid), and the lines of each relay step
//! carry its correlation ids (decision 0038).
//!
//! The scenario of this module's parent drives all the functions of the template through
//! their handlers; its lines are captured in the JSON format the functions write
//! (`wappline::logging::json_subscriber`), at `debug` for our crates, one level more than a
//! deployment's default. The capture is the test binary's global subscriber: a scoped one
//! misses the events whose call sites other tests of the binary reached first (as the admin
//! API's access-log test found), so the lines of tests running at the same time are scanned
//! too, which only makes the scan wider.

use std::collections::BTreeSet;

use e2e_tests::harness::{sample, ADMIN, WA_NUMBER};
use e2e_tests::personal_data::{describe, found_in, needles, values};
use serde_json::Value;

use super::{run, template, APP_TOKEN, WA_TOKEN};

/// Our crates at `debug`, everything else at `info`.
pub(super) const LEVEL: &str = "info,wappline=debug,admin_api=debug,meta_webhook=debug,\
bitrix_webhook=debug,public_api=debug,media_proxy=debug,data_deletion=debug,retention=debug";

/// The deliveries the scenario makes, the texts the operator and the API send, and the
/// customer it erases.
const DELIVERIES: [&str; 3] = [
    "whatsapp-text.json",
    "whatsapp-image.json",
    "whatsapp-audio.json",
];
const SENT_TEXTS: [&str; 2] = ["Thanks, on its way", "Your order has shipped"];
const CUSTOMER: [&str; 3] = ["+16505551234", "16505551234", "US.13491208655302741918"];

/// The lines of the span `name` (the relay step), as JSON.
fn lines_of<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["span"]["name"] == name).collect()
}

#[tokio::test]
async fn no_function_logs_a_body_token_or_phone_number_while_running_real_flows() {
    let run = run().await;
    // Every function of the template ran while its lines were captured.
    let functions: BTreeSet<_> = template::functions(&run.template)
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    let ran: BTreeSet<_> = run.recorded.iter().map(|r| r.function.clone()).collect();
    assert_eq!(ran, functions, "functions that did not run");
    assert_eq!(functions.len(), 13);

    let deliveries: Vec<Vec<u8>> = DELIVERIES.iter().map(|n| sample(n)).collect();
    let bodies: Vec<&[u8]> = deliveries.iter().map(Vec::as_slice).collect();
    let mut all = needles(&bodies, &[WA_NUMBER]);
    let mut secrets: Vec<&str> = vec![WA_TOKEN, APP_TOKEN, ADMIN];
    secrets.extend(run.secrets.iter().map(String::as_str));
    all.extend(values("token, key or password", &secrets));
    all.extend(values("what the operator or the API sent", &SENT_TEXTS));
    all.extend(values("the customer", &CUSTOMER));
    assert!(all.len() >= 40, "{} needles", all.len());

    let text = &run.logs;
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() >= 30, "{} lines logged", lines.len());
    let found = found_in(&all, text.as_bytes());
    assert!(
        found.is_empty(),
        "the logs hold personal data or secrets:\n{}",
        describe(&found)
    );

    // Each relay step's lines carry its correlation ids: the wamid only as its digest, which
    // is also the suffix of our message id.
    let text_sample: Value = serde_json::from_slice(&deliveries[0]).unwrap();
    let wamid = text_sample["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
        .as_str()
        .unwrap();
    let digest = wappline::logging::provider_ref(wamid);
    let inbound = lines_of(&lines, "inbound");
    assert!(
        inbound
            .iter()
            .any(|l| l["span"]["provider_ref"] == digest.as_str()
                && l["span"]["message"]
                    .as_str()
                    .is_some_and(|m| m.ends_with(&digest))
                && l["span"]["conversation"].is_string()
                && l["span"]["tenant"].is_string()),
        "no inbound line correlates the text message: {inbound:?}"
    );
    let sync = lines_of(&lines, "sync");
    assert!(
        sync.iter()
            .any(|l| l["span"]["provider_ref"] == digest.as_str()
                && l["span"]["crm_chat"].is_string()),
        "no sync line names the message and the Bitrix24 chat: {sync:?}"
    );
    let outbound = lines_of(&lines, "outbound");
    assert!(
        outbound
            .iter()
            .any(|l| l["span"]["provider_ref"].is_string()
                && l["span"]["crm_chat"].is_number()
                && l["span"]["crm_message"].is_number()),
        "no outbound line names the sent message and its Bitrix24 ids: {outbound:?}"
    );
    let replies = lines_of(&lines, "operator_reply");
    assert!(
        replies.is_empty()
            || replies
                .iter()
                .all(|l| l["span"]["crm_message"].is_number() && l["span"]["tenant"].is_string()),
        "{replies:?}"
    );
}
