//! Signed media links end to end on the domain APIs: the CRM sync's linker makes a link, the
//! media proxy serves it from a loopback fake of the Graph API (embedded store, real
//! encryption of the channel token). Forged, altered, truncated and expired links, a
//! disconnected channel, hosts outside Meta's CDNs, media gone and provider failures.

use std::collections::BTreeMap;
use std::time::Duration;

use e2e_tests::fake_graph::{FakeGraph, GraphFailure};
use wappline::app::Platform;
use wappline::crm_sync::MediaLinker;
use wappline::graph::{GraphClient, GraphConfig, GraphError, HostPolicy};
use wappline::ids::{InstagramAccountId, PhoneNumberId, TenantId};
use wappline::media::{
    LinkError, MediaClaims, MediaError, MediaLinkKey, MediaLinks, MediaProxy, MediaRef,
};
use wappline::meta::{AccountRef, Media, MediaKind};
use wappline::tenant::{ChannelRef, Connection, RetentionDays, Secret, TenantName, TenantScope};

const PUBLIC: &str = "https://wappline.example.com/prod";
const NUMBER_A: &str = "106540352242922";
const NUMBER_B: &str = "106540352242923";
const IG_ACCOUNT: &str = "17841405822304914";
const TOKEN_A: &str = "EAAGtokenForTenantA0123456789";
const TOKEN_B: &str = "EAAGtokenForTenantB0123456789";
const JPEG: &[u8] = b"\xff\xd8\xff\xe0fake jpeg bytes\xff\xd9";

struct World {
    platform: Platform,
    graph: FakeGraph,
    links: MediaLinks,
    proxy: MediaProxy,
    _dir: tempfile::TempDir,
}

fn key(byte: u8) -> MediaLinkKey {
    MediaLinkKey::from_bytes(&[byte; 32]).unwrap()
}

fn links_with(key: MediaLinkKey) -> MediaLinks {
    MediaLinks::new(key, PUBLIC)
        .unwrap()
        .with_hosts(HostPolicy::meta().with_loopback(true))
}

fn graph_client(fake: &FakeGraph) -> GraphClient {
    let config = GraphConfig::default()
        .with_base_url(&fake.base_url())
        .unwrap();
    GraphClient::new(config).unwrap()
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::embedded(dir.path()).unwrap();
    let graph = FakeGraph::start().await;
    let links = links_with(key(7));
    let proxy = MediaProxy::new(
        links.clone(),
        platform.tenants.clone(),
        graph_client(&graph),
    );
    World {
        platform,
        graph,
        links,
        proxy,
        _dir: dir,
    }
}

impl World {
    async fn tenant(&self, name: &str) -> (TenantId, TenantScope) {
        let id = self
            .platform
            .tenants
            .create(TenantName::parse(name).unwrap(), RetentionDays::default())
            .await
            .unwrap()
            .id;
        let scope = self.platform.tenants.scope(&id).await.unwrap().unwrap();
        (id, scope)
    }

    /// A tenant with a WhatsApp number whose token the fake accepts for that number.
    async fn whatsapp_tenant(
        &self,
        name: &str,
        number: &str,
        token: &str,
    ) -> (TenantId, TenantScope) {
        let (id, scope) = self.tenant(name).await;
        scope
            .connect(connection(wa_channel(number), token))
            .await
            .unwrap();
        self.graph.add_token(token, number);
        (id, scope)
    }
}

fn connection(channel: ChannelRef, token: &str) -> Connection {
    Connection {
        channel,
        details: BTreeMap::new(),
        secrets: BTreeMap::from([(
            "access_token",
            Secret::parse("access_token", token).unwrap(),
        )]),
        authorized_by: None,
    }
}

fn wa_channel(number: &str) -> ChannelRef {
    ChannelRef::WhatsApp(PhoneNumberId::parse(number).unwrap())
}

fn wa(number: &str) -> AccountRef {
    AccountRef::WhatsApp(PhoneNumberId::parse(number).unwrap())
}

fn ig() -> AccountRef {
    AccountRef::Instagram(InstagramAccountId::parse(IG_ACCOUNT).unwrap())
}

fn wa_image(media_id: &str) -> Media {
    let mut m = Media::new(MediaKind::Image);
    m.media_id = Some(media_id.into());
    m.mime_type = Some("image/jpeg".into());
    m
}

fn ig_image(url: &str) -> Media {
    let mut m = Media::new(MediaKind::Image);
    m.url = Some(url.into());
    m
}

/// The token at the end of a link.
fn token_of(url: &str) -> String {
    let prefix = format!("{PUBLIC}/media/");
    url.strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{url} is not under {prefix}"))
        .to_owned()
}

async fn link(
    links: &MediaLinks,
    tenant: &TenantId,
    account: &AccountRef,
    media: &Media,
) -> String {
    let file = links.link(tenant, account, media).await.expect("linked");
    token_of(&file.url)
}

/// `sealed_from`'s nonce and ciphertext with `tag_from`'s authentication tag (the last 16
/// bytes of a link's decoded bytes).
fn splice(sealed_from: &str, tag_from: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let mut a = URL_SAFE_NO_PAD.decode(sealed_from).unwrap();
    let b = URL_SAFE_NO_PAD.decode(tag_from).unwrap();
    let n = a.len();
    a[n - 16..].copy_from_slice(&b[b.len() - 16..]);
    URL_SAFE_NO_PAD.encode(a)
}

#[tokio::test]
async fn whatsapp_link_serves_the_bytes_through_the_graph_api() {
    let w = world().await;
    let (tenant, _) = w.whatsapp_tenant("Shop A", NUMBER_A, TOKEN_A).await;
    w.graph
        .add_media("1037543291543636", NUMBER_A, "image/jpeg", JPEG);

    let mut media = wa_image("1037543291543636");
    media.filename = Some("../../holiday photo.jpg".into());
    let file = w.links.link(&tenant, &wa(NUMBER_A), &media).await.unwrap();
    assert!(
        file.url.starts_with(&format!("{PUBLIC}/media/")),
        "{}",
        file.url
    );
    assert_eq!(file.name.as_deref(), Some("holiday photo.jpg"));
    assert!(!file.url.contains(TOKEN_A));

    let got = w.proxy.fetch(&token_of(&file.url)).await.unwrap();
    assert_eq!(&got.bytes[..], JPEG);
    assert_eq!(got.content_type, "image/jpeg");
    assert_eq!(got.filename.as_deref(), Some("holiday photo.jpg"));

    // Exactly: the media URL with the channel's token (checked against the number), then the
    // short-lived URL with the same token.
    let calls = w.graph.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(
        calls[0].path,
        format!("/{}/1037543291543636", GraphConfig::default().version())
    );
    assert_eq!(
        calls[0].query.as_deref(),
        Some(&*format!("phone_number_id={NUMBER_A}"))
    );
    assert_eq!(calls[1].path, "/lookaside/whatsapp_business/attachments/");
    for call in &calls {
        assert_eq!(call.bearer.as_deref(), Some(TOKEN_A));
        assert_eq!(call.status, 200);
    }

    // The same link works again (Bitrix24 may download twice); nothing was kept.
    let again = w.proxy.fetch(&token_of(&file.url)).await.unwrap();
    assert_eq!(&again.bytes[..], JPEG);
    assert_eq!(w.graph.calls().len(), 4);
}

#[tokio::test]
async fn expired_links_are_refused_without_calling_meta() {
    let w = world().await;
    let (tenant, _) = w.whatsapp_tenant("Shop A", NUMBER_A, TOKEN_A).await;
    w.graph.add_media("111", NUMBER_A, "image/jpeg", JPEG);

    let short = w.links.clone().with_ttl(Duration::ZERO);
    let token = link(&short, &tenant, &wa(NUMBER_A), &wa_image("111")).await;
    assert_eq!(
        w.proxy.fetch(&token).await.unwrap_err(),
        MediaError::Link(LinkError::Expired)
    );

    // A link valid now is refused once its expiry has passed.
    let token = link(&w.links, &tenant, &wa(NUMBER_A), &wa_image("111")).await;
    let claims = w.links.verify(&token).unwrap();
    assert_eq!(
        w.links.verify_at(&token, claims.expires_at),
        Err(LinkError::Expired)
    );
    assert!(w.links.verify_at(&token, claims.expires_at - 1).is_ok());
    assert!(w.graph.calls().is_empty());
}

#[tokio::test]
async fn forged_altered_and_truncated_links_are_refused() {
    let w = world().await;
    let (tenant_a, _) = w.whatsapp_tenant("Shop A", NUMBER_A, TOKEN_A).await;
    let (tenant_b, _) = w.whatsapp_tenant("Shop B", NUMBER_B, TOKEN_B).await;
    w.graph.add_media("111", NUMBER_A, "image/jpeg", JPEG);
    w.graph
        .add_media("222", NUMBER_A, "image/jpeg", b"secret two");
    w.graph
        .add_media("333", NUMBER_B, "image/jpeg", b"tenant b");

    let a_111 = link(&w.links, &tenant_a, &wa(NUMBER_A), &wa_image("111")).await;
    let a_222 = link(&w.links, &tenant_a, &wa(NUMBER_A), &wa_image("222")).await;
    let b_333 = link(&w.links, &tenant_b, &wa(NUMBER_B), &wa_image("333")).await;

    // Signed with another key.
    let forged = link(
        &links_with(key(8)),
        &tenant_a,
        &wa(NUMBER_A),
        &wa_image("111"),
    )
    .await;
    // Another media id, or another tenant's link, with a genuine tag of another link.
    let other_media = splice(&a_222, &a_111);
    let other_tenant = splice(&b_333, &a_111);
    // One character changed (in its highest bit, which always counts).
    let mut flipped = a_111.clone().into_bytes();
    flipped[5] = if flipped[5].is_ascii_uppercase() {
        flipped[5].to_ascii_lowercase()
    } else {
        b'A'
    };
    let flipped = String::from_utf8(flipped).unwrap();

    for (name, token, want) in [
        ("forged", forged.as_str(), LinkError::BadSignature),
        ("other media", &other_media, LinkError::BadSignature),
        ("other tenant", &other_tenant, LinkError::BadSignature),
        ("flipped", &flipped, LinkError::BadSignature),
        (
            "truncated",
            &a_111[..a_111.len() - 4],
            LinkError::BadSignature,
        ),
        ("too short", &a_111[..20], LinkError::Malformed),
        ("empty", "", LinkError::Malformed),
        ("garbage", "not-a-token", LinkError::Malformed),
        (
            "two links",
            &format!("{a_111}.{a_222}"),
            LinkError::Malformed,
        ),
    ] {
        assert_eq!(
            w.proxy.fetch(token).await.unwrap_err(),
            MediaError::Link(want),
            "{name}"
        );
    }
    assert!(w.graph.calls().is_empty(), "a refused link reached Meta");

    // The genuine links still work, each for its own media and tenant.
    assert_eq!(
        &w.proxy.fetch(&a_222).await.unwrap().bytes[..],
        b"secret two"
    );
    assert_eq!(&w.proxy.fetch(&b_333).await.unwrap().bytes[..], b"tenant b");
}

#[tokio::test]
async fn a_disconnected_channel_stops_its_links_at_once() {
    let w = world().await;
    let (tenant_a, scope_a) = w.whatsapp_tenant("Shop A", NUMBER_A, TOKEN_A).await;
    w.graph.add_media("111", NUMBER_A, "image/jpeg", JPEG);
    let token = link(&w.links, &tenant_a, &wa(NUMBER_A), &wa_image("111")).await;
    assert!(w.proxy.fetch(&token).await.is_ok());
    let calls_before = w.graph.calls().len();

    scope_a.disconnect(&wa_channel(NUMBER_A)).await.unwrap();
    assert_eq!(
        w.proxy.fetch(&token).await.unwrap_err(),
        MediaError::NotConnected
    );

    // The number now connected to another tenant: tenant A's old link still does not work,
    // and the new owner's token is never used for it.
    let (_, scope_b) = w.tenant("Shop B").await;
    scope_b
        .connect(connection(wa_channel(NUMBER_A), TOKEN_B))
        .await
        .unwrap();
    w.graph.add_token(TOKEN_B, NUMBER_A);
    assert_eq!(
        w.proxy.fetch(&token).await.unwrap_err(),
        MediaError::NotConnected
    );
    assert_eq!(w.graph.calls().len(), calls_before);
}

#[tokio::test]
async fn instagram_links_fetch_only_from_meta_cdn_hosts() {
    let w = world().await;
    let (tenant, scope) = w.tenant("Shop IG").await;
    scope
        .connect(connection(
            ChannelRef::Instagram(InstagramAccountId::parse(IG_ACCOUNT).unwrap()),
            "IGQtoken0123456789",
        ))
        .await
        .unwrap();

    let url = w.graph.add_cdn("asset1.jpg", "image/jpeg", JPEG);
    let token = link(&w.links, &tenant, &ig(), &ig_image(&url)).await;
    let got = w.proxy.fetch(&token).await.unwrap();
    assert_eq!(&got.bytes[..], JPEG);
    assert_eq!(got.content_type, "image/jpeg");
    assert_eq!(got.filename.as_deref(), Some("image.jpg"));
    // No token goes to the CDN.
    assert!(w.graph.calls().iter().all(|c| c.bearer.is_none()));

    // A redirect within the allowed hosts is followed.
    let redirect = format!("{}/cdn-redirect/asset1.jpg", w.graph.base_url());
    let token = link(&w.links, &tenant, &ig(), &ig_image(&redirect)).await;
    assert_eq!(&w.proxy.fetch(&token).await.unwrap().bytes[..], JPEG);

    // Outside Meta's CDNs: not linked at all...
    for bad in [
        "https://evil.example/x.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "https://lookaside.fbsbx.com.evil.example/x",
    ] {
        assert!(
            w.links.link(&tenant, &ig(), &ig_image(bad)).await.is_none(),
            "{bad} linked"
        );
    }
    // ... and refused by the proxy even when a link to it is correctly signed.
    let calls = w.graph.calls().len();
    for bad in [
        "https://evil.example/x.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/internal",
    ] {
        let claims = MediaClaims {
            tenant: tenant.clone(),
            account: ig(),
            media: MediaRef::InstagramUrl(bad.into()),
            mime_type: None,
            filename: None,
            expires_at: i64::MAX,
            conversation: None,
        };
        let token = w.links.sign(&claims).unwrap();
        assert!(
            matches!(w.proxy.fetch(&token).await, Err(MediaError::Refused(_))),
            "{bad} fetched"
        );
    }
    // Loopback is allowed only because this Graph API is a loopback fake; a production
    // policy refuses it.
    let strict = MediaProxy::new(
        w.links.clone(),
        w.platform.tenants.clone(),
        graph_client(&w.graph).with_hosts(HostPolicy::meta()),
    );
    let token = link(&w.links, &tenant, &ig(), &ig_image(&url)).await;
    assert!(matches!(
        strict.fetch(&token).await,
        Err(MediaError::Refused(_))
    ));
    assert_eq!(w.graph.calls().len(), calls);

    // An expired CDN object (404) is gone.
    let missing = format!("{}/cdn/missing.jpg", w.graph.base_url());
    let token = link(&w.links, &tenant, &ig(), &ig_image(&missing)).await;
    assert_eq!(w.proxy.fetch(&token).await.unwrap_err(), MediaError::Gone);
}

#[tokio::test]
async fn provider_failures_are_typed_retryable_or_not() {
    let w = world().await;
    let (tenant, _) = w.whatsapp_tenant("Shop A", NUMBER_A, TOKEN_A).await;
    w.graph.add_media("111", NUMBER_A, "image/jpeg", JPEG);
    let token = link(&w.links, &tenant, &wa(NUMBER_A), &wa_image("111")).await;

    for failure in [
        GraphFailure::ServerError,
        GraphFailure::Down,
        GraphFailure::RateLimit,
    ] {
        w.graph.fail_next(1, failure);
        let e = w.proxy.fetch(&token).await.unwrap_err();
        assert!(e.is_retryable(), "{failure:?}: {e:?}");
        match (&e, failure) {
            (
                MediaError::Provider(GraphError::RateLimited { error, .. }),
                GraphFailure::RateLimit,
            ) => {
                assert_eq!(error.code, Some(80007))
            }
            (
                MediaError::Provider(GraphError::Unavailable { status, .. }),
                GraphFailure::ServerError,
            ) => {
                assert_eq!(*status, Some(500))
            }
            (MediaError::Provider(GraphError::Unavailable { status, .. }), GraphFailure::Down) => {
                assert_eq!(*status, Some(503))
            }
            other => panic!("unexpected {other:?}"),
        }
        // The next try succeeds.
        assert_eq!(&w.proxy.fetch(&token).await.unwrap().bytes[..], JPEG);
    }

    // The download itself failing (after the media URL was retrieved) is retryable too.
    let calls = w.graph.calls().len();
    w.graph.fail_downloads(1, GraphFailure::Down);
    let e = w.proxy.fetch(&token).await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert_eq!(w.graph.calls().len(), calls + 2);
    assert_eq!(&w.proxy.fetch(&token).await.unwrap().bytes[..], JPEG);

    // Media Meta no longer has: gone, not retryable.
    w.graph.set_gone("111");
    let e = w.proxy.fetch(&token).await.unwrap_err();
    assert_eq!(e, MediaError::Gone);
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn revoked_tokens_and_oversized_media_are_permanent_failures() {
    let w = world().await;
    // The channel's stored token is one Meta does not accept (revoked): code 190.
    let (tenant, scope) = w.tenant("Shop A").await;
    scope
        .connect(connection(wa_channel(NUMBER_A), "EAAGrevokedToken000"))
        .await
        .unwrap();
    w.graph.add_media("111", NUMBER_A, "image/jpeg", JPEG);
    let token = link(&w.links, &tenant, &wa(NUMBER_A), &wa_image("111")).await;
    let e = w.proxy.fetch(&token).await.unwrap_err();
    match &e {
        MediaError::Provider(GraphError::Unauthorized(api)) => assert_eq!(api.code, Some(190)),
        other => panic!("{other:?}"),
    }
    assert!(!e.is_retryable());

    // Larger than the limit: refused on the size Meta reports, before downloading.
    w.graph.add_token("EAAGrevokedToken000", NUMBER_A);
    let small = w.proxy.clone().with_max_bytes(JPEG.len() - 1);
    let calls = w.graph.calls().len();
    assert_eq!(
        small.fetch(&token).await.unwrap_err(),
        MediaError::TooLarge {
            limit: JPEG.len() - 1
        }
    );
    assert_eq!(w.graph.calls().len(), calls + 1);

    // Media of another number of the same token is not served under this number's link.
    w.graph.add_token("EAAGrevokedToken000", NUMBER_B);
    w.graph
        .add_media("999", NUMBER_B, "image/jpeg", b"other number");
    let token = link(&w.links, &tenant, &wa(NUMBER_A), &wa_image("999")).await;
    assert_eq!(w.proxy.fetch(&token).await.unwrap_err(), MediaError::Gone);
}
