//! Refresh on expiry: the new pair stored before the single retry, a pair refreshed by another
//! worker, the refresh answer's fields, and the refresh's permanent errors.

use super::*;

#[tokio::test]
async fn expired_token_is_refreshed_stored_then_retried_once() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let store = MemoryStore::default();
    let old = fake.valid_tokens();
    let mut tokens = pair(&old);
    fake.expire_token();

    let portal = portal();
    let sent = client
        .session(&portal, &mut tokens, &store)
        .send_messages(&connector(), line(), &[message("u1", "c1", "m1", "hello")])
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);

    let new = fake.valid_tokens();
    assert_ne!(new.access_token, old.access_token);
    // The caller's pair is the new one, and it was stored exactly once.
    assert_eq!(tokens.access_token.expose(), new.access_token);
    assert_eq!(tokens.refresh_token.expose(), new.refresh_token);
    assert_eq!(
        tokens.member_id.as_ref().map(|m| m.as_str()),
        Some(FAKE_MEMBER_ID)
    );
    let saved = store.saved();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0], tokens);

    // Two REST calls (expired, then with the new token) around one OAuth refresh with the
    // documented parameters.
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].status, 401);
    assert_eq!(calls[0].auth.as_deref(), Some(old.access_token.as_str()));
    assert_eq!(calls[1].status, 200);
    assert_eq!(calls[1].auth.as_deref(), Some(new.access_token.as_str()));
    assert_eq!(calls[0].params, calls[1].params);
    let oauth = fake.oauth_requests();
    assert_eq!(oauth.len(), 1);
    assert_eq!(oauth[0].params["grant_type"], "refresh_token");
    assert_eq!(oauth[0].params["client_id"], FAKE_CLIENT_ID);
    assert_eq!(oauth[0].params["client_secret"], FAKE_CLIENT_SECRET);
    assert_eq!(oauth[0].params["refresh_token"], old.refresh_token);
    assert_eq!(fake.messages_received().len(), 1);
}

#[tokio::test]
async fn a_pair_refreshed_by_another_worker_is_used_without_refreshing_again() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let store = MemoryStore::default();
    let mut ours = pair(&fake.valid_tokens());
    fake.expire_token();
    // Another worker refreshes and stores the new pair first.
    let mut theirs = ours.clone();
    client
        .call_with_refresh(
            &portal(),
            &mut theirs,
            &store,
            SEND_STATUS_DELIVERY,
            json!({}),
        )
        .await
        .ok();
    assert_eq!(fake.oauth_requests().len(), 1);
    fake.clear_records();

    // Our stale pair meets expired_token, finds the stored newer pair, and retries with it.
    client
        .call_with_refresh(
            &portal(),
            &mut ours,
            &store,
            SEND_STATUS_DELIVERY,
            json!({"CONNECTOR": "c", "LINE": 1, "MESSAGES": []}),
        )
        .await
        .unwrap();
    assert_eq!(ours, theirs);
    assert!(fake.oauth_requests().is_empty(), "no second refresh");
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].status, 401);
    assert_eq!(calls[1].auth.as_deref(), Some(theirs.access_token.expose()));
    assert_eq!(store.saved().len(), 1);
}

#[tokio::test]
async fn refresh_answer_matches_the_documented_fields() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let old = fake.valid_tokens();
    let fresh = client.refresh(&secret(&old.refresh_token)).await.unwrap();
    assert_eq!(
        fresh.access_token.expose(),
        fake.valid_tokens().access_token
    );
    assert_eq!(fresh.expires_in, Some(3600));
    assert_eq!(
        fresh.member_id.as_ref().map(|m| m.as_str()),
        Some(FAKE_MEMBER_ID)
    );
    assert_eq!(
        fresh.client_endpoint.as_deref(),
        Some(format!("{}/{FAKE_DOMAIN}/rest/", fake.base_url()).as_str())
    );
    // The used refresh token is spent.
    let again = client
        .refresh(&secret(&old.refresh_token))
        .await
        .unwrap_err();
    assert!(matches!(&again, BitrixError::Unauthorized { code, .. } if code == "invalid_grant"));
}

#[tokio::test]
async fn invalid_refresh_token_is_a_permanent_error() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let store = MemoryStore::default();
    let mut tokens = pair(&fake.valid_tokens());
    fake.expire_token();
    fake.revoke_refresh_token();

    let err = client
        .call_with_refresh(
            &portal(),
            &mut tokens,
            &store,
            "imconnector.send.status.reading",
            json!({}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BitrixError::Unauthorized { code, .. } if code == "invalid_grant"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(store.saved().is_empty());
    assert_eq!(fake.calls().len(), 1, "no retry without a new token");
    assert_eq!(fake.oauth_requests().len(), 1);
}

#[tokio::test]
async fn unknown_access_token_is_not_refreshed() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let store = MemoryStore::default();
    let mut tokens = TokenPair::new(
        secret("not-a-token-the-portal-knows"),
        secret(&fake.valid_tokens().refresh_token),
    );
    let err = client
        .call_with_refresh(&portal(), &mut tokens, &store, SEND_MESSAGES, json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BitrixError::Unauthorized { code, .. } if code == "invalid_token"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(fake.oauth_requests().is_empty());
}

#[tokio::test]
async fn failing_store_stops_before_the_retry() {
    let fake = FakeBitrix::start().await;
    let client = client(&fake);
    let store = MemoryStore {
        fail: true,
        ..Default::default()
    };
    let mut tokens = pair(&fake.valid_tokens());
    fake.expire_token();
    let err = client
        .call_with_refresh(
            &portal(),
            &mut tokens,
            &store,
            SEND_STATUS_DELIVERY,
            json!({}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BitrixError::TokenStore(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(fake.calls().len(), 1);
    // The caller still holds the new pair and may store it again.
    assert_eq!(
        tokens.access_token.expose(),
        fake.valid_tokens().access_token
    );
}
