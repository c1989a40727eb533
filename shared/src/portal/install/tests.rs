use super::codes::{code_key, well_formed};
use super::*;
use serde_json::json;

#[test]
fn codes_are_well_formed_or_refused() {
    assert!(well_formed(&format!("{CODE_PREFIX}{}", "ab".repeat(20))));
    for bad in [
        "",
        "wlb24_",
        &format!("{CODE_PREFIX}{}", "AB".repeat(20)),
        &format!("{CODE_PREFIX}{}", "ab".repeat(21)),
        &format!("xx{}", "ab".repeat(22)),
    ] {
        assert!(!well_formed(bad), "{bad}");
    }
    // Different codes, different keys; the key never contains the code.
    let a = code_key(&format!("{CODE_PREFIX}{}", "ab".repeat(20)));
    assert!(a.pk.starts_with("B24CODE#"));
    assert!(!a.pk.contains("abab"));
}

#[test]
fn wizard_request() {
    let form = json!({
        "DOMAIN": "Example.Bitrix24.com", "PROTOCOL": "1", "LANG": "en",
        "APP_SID": "dd8cec11e347088fe87c44870a9f1dba",
        "AUTH_ID": "ahodg4h37n89vo17gbkgq0x1l825nnb5", "AUTH_EXPIRES": "3600",
        "REFRESH_ID": "2lg086mxijlpvwh0h7r4nl19udm4try5",
        "member_id": "a223c6b3710f85df22e9377d6c4f7553", "status": "L"
    });
    let r = InstallRequest::from_form(&form).unwrap();
    assert_eq!(r.flow, InstallFlow::Wizard);
    assert_eq!(r.domain.as_str(), "example.bitrix24.com");
    assert_eq!(r.member_id.as_str(), "a223c6b3710f85df22e9377d6c4f7553");
    assert_eq!(r.access_token.expose(), "ahodg4h37n89vo17gbkgq0x1l825nnb5");
    assert!(r.application_token.is_none());
    assert!(!format!("{r:?}").contains("ahodg4h3"));
    let mut missing = form.clone();
    missing.as_object_mut().unwrap().remove("REFRESH_ID");
    assert!(matches!(
        InstallRequest::from_form(&missing),
        Err(InstallError::Malformed(_))
    ));
}

#[test]
fn callback_request() {
    let form = json!({
        "event": "ONAPPINSTALL",
        "data": {"VERSION": "1", "LANGUAGE_ID": "en"},
        "ts": "1466439714",
        "auth": {
            "access_token": "s6p6eclrvim6da22ft9ch94ekreb52lv", "expires_in": "3600",
            "scope": "imconnector,imopenlines", "domain": "example.bitrix24.com",
            "server_endpoint": "https://oauth.bitrix.info/rest/", "status": "L",
            "client_endpoint": "https://example.bitrix24.com/rest/",
            "member_id": "a223c6b3710f85df22e9377d6c4f7553",
            "refresh_token": "4s386p3q0tr8dy89xvmt96234v3dljg8",
            "application_token": "51856fefc120afa4b628cc82d3935cce"
        }
    });
    let r = InstallRequest::from_form(&form).unwrap();
    assert_eq!(r.flow, InstallFlow::Callback);
    assert_eq!(
        r.application_token.as_ref().map(|t| t.expose()),
        Some("51856fefc120afa4b628cc82d3935cce")
    );
    assert_eq!(r.language.as_deref(), Some("en"));
    let mut other = form.clone();
    other["event"] = json!("ONAPPUNINSTALL");
    assert!(InstallRequest::from_form(&other).is_err());
    let mut bad_domain = form;
    bad_domain["auth"]["domain"] = json!("not a host/x");
    assert!(InstallRequest::from_form(&bad_domain).is_err());
}

#[test]
fn registrations_follow_the_documented_rules() {
    let setup = PortalSetup::new(public_base_url("https://w.example/").unwrap());
    assert_eq!(setup.events_url(), "https://w.example/bitrix/events");
    let regs = setup.registrations();
    assert_eq!(regs.len(), 2);
    for (_, _, r) in regs {
        let p = r.to_params().unwrap();
        assert!(p["ICON"]["DATA_IMAGE"]
            .as_str()
            .unwrap()
            .starts_with("data:image/svg+xml;charset=US-ASCII,%3Csvg"));
        assert_eq!(
            p["PLACEMENT_HANDLER"],
            json!("https://w.example/bitrix/placement")
        );
        assert_eq!(p["CHAT_GROUP"], json!("N"));
    }
    assert!(public_base_url("http://example.com").is_err());
}
