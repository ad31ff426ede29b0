//! Adapter tests against a real emulator (moto): the DynamoDB store and the Secrets Manager key
//! source. `make test` starts moto and runs these with `--include-ignored`; the endpoint comes
//! from `OAUTH_TEST_AWS_ENDPOINT`.

use std::collections::BTreeMap;
use std::sync::Arc;

use shared::crypto::{random_secret, sha256_b64};
use shared::error::StoreError;
use shared::keys::rotation::ensure_keys;
use shared::keys::{Alg, KeySetDocument, KeySource};
use shared::storage::dynamo::DynamoStore;
use shared::storage::secrets::SecretsKeySource;
use shared::storage::{
    AssertionReplays, Client, ClientDirectory, Counted, FailureCounters, GrantType, LoginDirectory,
    PushedRequest, PushedRequests, RefreshFamilies, RefreshFamily, Revocations, Rotation,
    StoredSecret, TokenRecords, User, Wanted,
};

async fn sdk_config() -> aws_config::SdkConfig {
    let endpoint = std::env::var("OAUTH_TEST_AWS_ENDPOINT")
        .expect("OAUTH_TEST_AWS_ENDPOINT must point at moto (make test sets it)");
    sdk_config_at(&endpoint).await
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &random_secret()[..10]
            .to_ascii_lowercase()
            .replace(['-', '_'], "x")
    )
}

async fn fresh_store() -> DynamoStore {
    let sdk = sdk_config().await;
    let store = DynamoStore::from_sdk_config(&sdk, unique("adapter")).await;
    assert!(
        store.create_table_if_missing().await.unwrap(),
        "a new table is created"
    );
    assert!(
        !store.create_table_if_missing().await.unwrap(),
        "init is idempotent"
    );
    store
}

fn client(id: &str, secret: &str) -> Client {
    Client {
        client_id: id.into(),
        name: "adapter test".into(),
        secrets: vec![StoredSecret {
            sha256: sha256_b64(secret.as_bytes()),
            expires_at: None,
        }],
        api_key_sha256: None,
        grants: vec![GrantType::Password, GrantType::RefreshToken],
        allowed_scopes: vec!["read".into()],
        default_scopes: vec!["read".into()],
        redirect_uris: vec![],
        access_token_ttl: 3600,
        refresh_token_ttl: 86400,
        audience: Some("api".into()),
        claims: BTreeMap::from([("tier".into(), "gold".into())]),
        enabled: true,
        created_at: 1,
        public: false,
        pkce_required: true,
        consent: false,
        post_logout_redirect_uris: Vec::new(),
        jwks: None,
        jwks_uri: Some("https://client.example.com/jwks.json".into()),
        dpop_bound_access_tokens: true,
        require_pushed_authorization_requests: true,
    }
}

fn family(id: &str, hash: &str, exp: i64) -> RefreshFamily {
    RefreshFamily {
        family_id: id.into(),
        client_id: "c1".into(),
        user_id: "u-1".into(),
        scope: "read".into(),
        auth_time: 10,
        issued_at: 10,
        current_hash: hash.into(),
        retired_hashes: Vec::new(),
        revoked: false,
        exp,
        // Round-trips through every adapter like the rest of the family.
        jkt: Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into()),
    }
}

fn account_only(user_id: &str) -> Wanted<'_> {
    Wanted {
        account: Some(user_id),
        ..Wanted::default()
    }
}

fn family_only(id: &str) -> Wanted<'_> {
    Wanted {
        family: Some(id),
        ..Wanted::default()
    }
}

/// The family `id` as the store reads it (it must exist).
async fn stored_family(store: &DynamoStore, id: &str) -> RefreshFamily {
    let found = store.read(family_only(id)).await.unwrap();
    found.family.expect("the family exists")
}

/// The raw item under `pk`, as DynamoDB holds it.
async fn raw_item(
    store: &DynamoStore,
    pk: &str,
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    let sdk = sdk_config().await;
    aws_sdk_dynamodb::Client::new(&sdk)
        .get_item()
        .table_name(store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(pk.to_owned()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

#[tokio::test]
#[ignore = "needs moto: run through make test"]
async fn clients_and_users_round_trip_and_login_reads_them_in_one_batch() {
    let store = fresh_store().await;
    let c = client("c1", "s");
    assert!(store.put_client(&c, true).await.unwrap());
    assert!(
        !store.put_client(&c, true).await.unwrap(),
        "only_new refuses to overwrite"
    );
    assert_eq!(store.client("c1").await.unwrap(), Some(c.clone()));
    assert_eq!(store.client("nobody").await.unwrap(), None);

    let user = User {
        username: "admin@wso2.com@carbon.super".into(),
        user_id: "9f1c0d3e-0000-4000-8000-000000000000".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$x$y".into(),
        claims: BTreeMap::from([("email".into(), "a@x.org".into())]),
        enabled: true,
        created_at: 2,
        credentials_changed_at: 2,
    };
    assert!(store.put_user(&user, true).await.unwrap());
    assert!(
        !store.put_user(&user, true).await.unwrap(),
        "a username is claimed once"
    );
    assert_eq!(
        store.user(&user.username).await.unwrap(),
        Some(user.clone())
    );

    let records = store
        .login_records(Some("c1"), Some(&user.username))
        .await
        .unwrap();
    assert_eq!(records.client, Some(c.clone()));
    assert_eq!(records.user, Some(user.clone()));
    assert_eq!(records.user_failures, None);
    let nothing = store
        .login_records(Some("nobody"), Some("nobody"))
        .await
        .unwrap();
    assert!(nothing.client.is_none() && nothing.user.is_none());
    let client_only = store.login_records(Some("c1"), None).await.unwrap();
    assert_eq!(client_only.client, Some(c));

    // The account beside the login record, found by the user id alone.
    let wanted = account_only(&user.user_id);
    assert_eq!(
        store.read(wanted).await.unwrap().account,
        Some(user.account())
    );
    let mut disabled = user.clone();
    disabled.enabled = false;
    store.put_user(&disabled, false).await.unwrap();
    assert!(!store.read(wanted).await.unwrap().account.unwrap().enabled);
    store.delete_user(&disabled).await.unwrap();
    assert!(store.read(wanted).await.unwrap().account.is_none());
    assert!(store.user(&user.username).await.unwrap().is_none());

    let listed: Vec<Client> = store.scan_prefix("client#").await.unwrap();
    assert_eq!(listed.len(), 1);
}

#[tokio::test]
#[ignore = "needs moto: run through make test"]
async fn init_writes_the_account_of_users_created_before_accounts_existed() {
    let store = fresh_store().await;
    let user = User {
        username: "legacy".into(),
        user_id: "0b7e1c7a-0000-4000-8000-000000000001".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$x$y".into(),
        claims: BTreeMap::new(),
        enabled: true,
        created_at: 2,
        credentials_changed_at: 0,
    };
    assert!(store.put_user(&user, true).await.unwrap());
    store.delete(format!("uid#{}", user.user_id)).await.unwrap();
    assert_eq!(store.backfill_accounts().await.unwrap(), 1);
    assert_eq!(store.backfill_accounts().await.unwrap(), 0, "idempotent");
    assert_eq!(
        store
            .read(account_only(&user.user_id))
            .await
            .unwrap()
            .account,
        Some(user.account())
    );
}

#[tokio::test]
#[ignore = "needs moto: run through make test"]
async fn failure_counter_counts_slides_resets_and_clears() {
    let store = fresh_store().await;
    assert_eq!(
        store
            .increment(Counted::User("bob"), 100, 900, false)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            // A wrong hint costs a second write, not a wrong count.
            .increment(Counted::User("bob"), 101, 900, false)
            .await
            .unwrap(),
        2
    );
    let counter = store
        .login_records(None, Some("bob"))
        .await
        .unwrap()
        .user_failures
        .unwrap();
    assert_eq!((counter.failures, counter.window_end), (2, 1001));
    // After the window the count starts again.
    assert_eq!(
        store
            .increment(Counted::User("bob"), 5000, 900, true)
            .await
            .unwrap(),
        1
    );
    store.clear_failures(Counted::User("bob")).await.unwrap();
    assert_eq!(
        store
            .login_records(None, Some("bob"))
            .await
            .unwrap()
            .user_failures
            .unwrap()
            .failures,
        0
    );
    store
        .clear_failures(Counted::Client("never-failed"))
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs moto: run through make test"]
async fn a_client_assertion_is_used_once_until_it_expires() {
    let store = Arc::new(fresh_store().await);
    let key = shared::storage::keys::assertion("c1", "jti-1");
    let racers: Vec<_> = (0..20)
        .map(|_| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move { store.first_use(&key, 200, 100).await.unwrap() })
        })
        .collect();
    let mut firsts = 0;
    for racer in racers {
        firsts += usize::from(racer.await.unwrap());
    }
    assert_eq!(firsts, 1, "of 20 concurrent uses exactly one is first");
    assert!(!store.first_use(&key, 200, 200).await.unwrap());
    // Past its expiry (TTL not yet run, as in moto) the record no longer counts.
    assert!(store.first_use(&key, 300, 201).await.unwrap());
    let other = shared::storage::keys::assertion("c2", "jti-1");
    assert!(
        store.first_use(&other, 200, 100).await.unwrap(),
        "per client"
    );
    assert_eq!(
        raw_item(&store, &key).await.unwrap()["ttl"].as_n().unwrap(),
        "300"
    );
}

#[tokio::test]
#[ignore = "needs moto: run through make test"]
async fn concurrent_increments_each_get_their_own_count() {
    // The password grant verifies only attempts counted within the threshold: that holds only
    // if N racing increments return N distinct counts.
    let store = Arc::new(fresh_store().await);
    let racers: Vec<_> = (0..24)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .increment(Counted::User("carol"), 100, 900, false)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut counts = Vec::new();
    for racer in racers {
        counts.push(racer.await.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=24).collect::<Vec<u32>>());
}

#[tokio::test]
#[ignore = "needs moto: run through make test"]
async fn rotation_is_conditional_and_exactly_one_of_many_racers_wins() {
    let store = Arc::new(fresh_store().await);
    store.put_client(&client("c1", "s"), true).await.unwrap();
    store
        .create_family(&family("fam1", "h0", 10_000), 10_000 + 3600)
        .await
        .unwrap();
    assert!(
        store
            .create_family(&family("fam1", "h0", 10_000), 10_000)
            .await
            .is_err(),
        "ids never collide silently"
    );
    let item = raw_item(&store, "rfam#fam1").await.unwrap();
    assert_eq!(
        item["ttl"],
        aws_sdk_dynamodb::types::AttributeValue::N("13600".into()),
        "kept past its exp while access tokens minted from it live"
    );

    let found = store
        .read(Wanted {
            family: Some("fam1"),
            client: Some("c1"),
            ..Wanted::default()
        })
        .await
        .unwrap();
    assert_eq!(found.family.unwrap().current_hash, "h0");
    assert!(found.client.is_some());

    let retired_h0 = vec!["h0".to_owned()];
    assert_eq!(
        store
            .rotate("fam1", "wrong", "h1", &[], 100, None)
            .await
            .unwrap(),
        Rotation::Rejected
    );
    assert_eq!(
        store
            .rotate("fam1", "h0", "h1", &[], 10_000, None)
            .await
            .unwrap(),
        Rotation::Rejected,
        "expired"
    );
    assert_eq!(
        store
            .rotate("fam1", "h0", "h1", &retired_h0, 100, None)
            .await
            .unwrap(),
        Rotation::Rotated
    );
    let rotated = store.read(family_only("fam1")).await.unwrap().family;
    assert_eq!(
        rotated.map(|f| (f.current_hash, f.issued_at, f.auth_time, f.retired_hashes)),
        Some(("h1".to_owned(), 100, 10, retired_h0)),
        "the rotation records when the current token was issued, and what it replaced"
    );

    let racers: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .rotate("fam1", "h1", &format!("h2-{i}"), &[], 100, None)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for racer in racers {
        if racer.await.unwrap() == Rotation::Rotated {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "one conditional UpdateItem wins");

    // A family bound to a DPoP key keeps it; one not yet bound is bound by its rotation.
    let current = stored_family(&store, "fam1").await;
    let bound = current.jkt.clone();
    store
        .rotate(
            "fam1",
            &current.current_hash,
            "h2b",
            &[],
            100,
            Some("another-key"),
        )
        .await
        .unwrap();
    let after = stored_family(&store, "fam1").await;
    assert_eq!((after.current_hash.as_str(), after.jkt), ("h2b", bound));
    let unbound = RefreshFamily {
        jkt: None,
        ..family("fam2", "u0", 10_000)
    };
    store.create_family(&unbound, 13_600).await.unwrap();
    store
        .rotate("fam2", "u0", "u1", &[], 100, Some("key-1"))
        .await
        .unwrap();
    let bound = stored_family(&store, "fam2").await;
    assert_eq!(bound.jkt.as_deref(), Some("key-1"));

    store.revoke_family("fam1").await.unwrap();
    let current = store
        .read(family_only("fam1"))
        .await
        .unwrap()
        .family
        .unwrap();
    assert!(current.revoked);
    assert_eq!(
        store
            .rotate("fam1", &current.current_hash, "h3", &[], 100, None)
            .await
            .unwrap(),
        Rotation::Rejected
    );
    store.revoke_family("missing").await.unwrap();
    assert!(
        store
            .read(family_only("missing"))
            .await
            .unwrap()
            .family
            .is_none(),
        "revoking nothing creates nothing"
    );
}

#[tokio::test]
#[ignore = "needs moto: run through make test"]
async fn a_token_check_reads_client_account_family_and_marker_in_one_batch() {
    let store = fresh_store().await;
    store.put_client(&client("c1", "s"), true).await.unwrap();
    store
        .create_family(&family("famA", "h", 10_000), 10_000)
        .await
        .unwrap();
    let wanted = Wanted {
        client: Some("c1"),
        account: Some("u-1"),
        family: Some("famA"),
        revoked_jti: Some("jti-1"),
        ..Wanted::default()
    };
    let found = store.read(wanted).await.unwrap();
    assert!(!found.jti_revoked);
    assert!(!found.family.unwrap().revoked);
    assert!(found.client.is_some() && found.account.is_none());
    store.revoke_access_token("jti-1", 10_000).await.unwrap();
    store.revoke_family("famA").await.unwrap();
    let found = store.read(wanted).await.unwrap();
    assert!(found.jti_revoked);
    assert!(found.family.unwrap().revoked);
    let none = store.read(Wanted::default()).await.unwrap();
    assert!(!none.jti_revoked && none.family.is_none() && none.client.is_none());
}

#[tokio::test]
#[ignore = "needs moto: run through make test"]
async fn admin_cleanup_revokes_the_families_of_a_user_or_a_client() {
    let store = fresh_store().await;
    let mut other_client = family("famB", "h", 10_000);
    other_client.client_id = "c2".into();
    let mut other_user = family("famC", "h", 10_000);
    other_user.user_id = "u-2".into();
    for f in [family("famA", "h", 10_000), other_client, other_user] {
        store.create_family(&f, 10_000).await.unwrap();
    }
    assert_eq!(store.revoke_user_families("u-1").await.unwrap(), 2);
    assert_eq!(
        store.revoke_user_families("u-1").await.unwrap(),
        0,
        "revoked families are not counted again"
    );
    assert_eq!(store.revoke_client_families("c1").await.unwrap(), 1);
    for (id, revoked) in [("famA", true), ("famB", true), ("famC", true)] {
        let family = store.read(family_only(id)).await.unwrap().family.unwrap();
        assert_eq!(family.revoked, revoked, "{id}");
    }
}

#[tokio::test]
#[ignore = "needs moto: run through make test"]
async fn key_source_reads_what_was_stored_and_reports_missing_or_empty() {
    let sdk = sdk_config().await;
    let source = SecretsKeySource::new(aws_sdk_secretsmanager::Client::new(&sdk), unique("keys"));
    assert_eq!(
        source.load().await.unwrap(),
        None,
        "a missing secret reads as empty"
    );
    assert!(source.create_if_missing().await.unwrap());
    assert!(!source.create_if_missing().await.unwrap());
    assert_eq!(
        source.load().await.unwrap(),
        None,
        "a secret without a value reads as empty"
    );
    let mut doc = KeySetDocument::default();
    ensure_keys(&mut doc, Alg::Es256, 1).unwrap();
    let text = serde_json::to_string(&doc).unwrap();
    source.store(&text).await.unwrap();
    assert_eq!(source.load().await.unwrap().as_deref(), Some(text.as_str()));
    let mut rotated = doc.clone();
    ensure_keys(&mut rotated, Alg::Rs256, 2).unwrap();
    let text2 = serde_json::to_string(&rotated).unwrap();
    source.store(&text2).await.unwrap();
    assert_eq!(
        source.load().await.unwrap().as_deref(),
        Some(text2.as_str()),
        "AWSCURRENT moves on put"
    );
}

#[tokio::test]
#[ignore = "needs moto: run through make test"]
async fn an_unreachable_endpoint_is_unavailable_not_a_hang() {
    let sdk = sdk_config().await;
    let dead = sdk.to_builder().endpoint_url("http://127.0.0.1:9").build();
    for store in [
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&dead), "t"),
        DynamoStore::from_sdk_config(&dead, "t").await,
    ] {
        assert!(matches!(
            store.client("c").await,
            Err(StoreError::Unavailable(_))
        ));
    }
}

fn code_record(hash: &str, exp: i64) -> shared::storage::AuthorizationCode {
    shared::storage::AuthorizationCode {
        code_hash: hash.into(),
        client_id: "c1".into(),
        redirect_uri: "https://app.example.com/cb".into(),
        scope: "openid".into(),
        nonce: None,
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        dpop_jkt: Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into()),
        user_id: "u-1".into(),
        username: "alice".into(),
        claims: BTreeMap::new(),
        auth_time: 10,
        family_id: "u-1~famfamfamfamfamfamfam".into(),
        exp,
        consumed_at: None,
    }
}

#[tokio::test]
#[ignore = "needs moto: run through make test"]
async fn a_code_is_redeemed_once_by_one_conditional_write() {
    use shared::storage::{AuthorizationCodes, Redemption};

    let store = Arc::new(fresh_store().await);
    store.store_code(&code_record("h1", 160)).await.unwrap();
    assert!(
        store.store_code(&code_record("h1", 160)).await.is_err(),
        "codes never collide silently"
    );
    assert_eq!(
        store.redeem_code("h1", 160).await.unwrap(),
        Redemption::Unusable,
        "expiry is in the condition, not left to TTL"
    );
    let Redemption::Redeemed(redeemed) = store.redeem_code("h1", 100).await.unwrap() else {
        panic!("the first redemption wins");
    };
    assert_eq!(redeemed.consumed_at, Some(100));
    assert_eq!(redeemed.family_id, "u-1~famfamfamfamfamfamfam");
    let Redemption::Reused(again) = store.redeem_code("h1", 101).await.unwrap() else {
        panic!("a second redemption is reuse");
    };
    assert_eq!(
        again.family_id, redeemed.family_id,
        "reuse names what to revoke"
    );
    assert_eq!(
        store.redeem_code("never", 100).await.unwrap(),
        Redemption::Unusable
    );
    // Of many concurrent redemptions exactly one wins (ory/fosite#778).
    store.store_code(&code_record("h2", 1000)).await.unwrap();
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.redeem_code("h2", 100).await.unwrap() })
        })
        .collect();
    let mut redeemed = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Redemption::Redeemed(_) => redeemed += 1,
            Redemption::Reused(_) => {}
            Redemption::Unusable => panic!("a consumed code reads as reuse"),
        }
    }
    assert_eq!(redeemed, 1);
}

#[tokio::test]
#[ignore = "needs moto: run through make test"]
async fn sign_in_records_are_read_in_one_batch_and_transactions_end_once() {
    use shared::storage::{BrowserSession, Consent, LoginTransaction, SignInRecords};

    let store = Arc::new(fresh_store().await);
    let transaction = LoginTransaction {
        id: "t1".into(),
        csrf_hash: "csrf".into(),
        client_id: "c1".into(),
        client_name: "C1".into(),
        redirect_uri: "https://app.example.com/cb".into(),
        state: Some("s".into()),
        form_post: false,
        scope: "openid".into(),
        nonce: None,
        code_challenge: None,
        dpop_jkt: Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into()),
        login_hint: None,
        ask_consent: false,
        consenting_user: None,
        hinted_user: Some("6f0c1d2e".into()),
        exp: 1000,
    };
    store.put_transaction(&transaction).await.unwrap();
    assert!(
        store.put_transaction(&transaction).await.is_err(),
        "no silent collision"
    );
    let session = BrowserSession {
        id_hash: "sh".into(),
        user_id: "u-1".into(),
        username: "alice".into(),
        auth_time: 10,
        idle_exp: 100,
        absolute_exp: 500,
        families: Vec::new(),
    };
    store.put_session(&session).await.unwrap();
    let consent = Consent {
        user_id: "u-1".into(),
        client_id: "c1".into(),
        scopes: vec!["openid".into()],
    };
    store.put_consent(&consent).await.unwrap();
    store.put_client(&client("c1", "s"), true).await.unwrap();
    let wanted = Wanted {
        client: Some("c1"),
        transaction: Some("t1"),
        session: Some("sh"),
        consent: Some(("u-1", "c1")),
        login: Some("alice"),
        ..Wanted::default()
    };
    let found = store.read(wanted).await.unwrap();
    assert_eq!(found.transaction, Some(transaction));
    assert_eq!(found.session, Some(session.clone()));
    assert_eq!(found.consent, Some(consent));
    assert!(found.client.is_some() && found.user.is_none());

    store.touch_session("sh", 200).await.unwrap();
    let touched = store.read(wanted).await.unwrap().session.unwrap();
    assert_eq!(touched.idle_exp, 200);
    // Of two concurrent form posts one ends the transaction.
    let (a, b) = tokio::join!(
        store.finish_transaction("t1"),
        store.finish_transaction("t1")
    );
    assert_eq!(
        [a.unwrap(), b.unwrap()]
            .iter()
            .filter(|ended| **ended)
            .count(),
        1
    );
    // Logout's list: appended one at a time, answered whole by the deleting write.
    assert!(store.add_session_family("sh", "u-1~f1").await.unwrap());
    assert!(store.add_session_family("sh", "u-1~f2").await.unwrap());
    let listed = store.read(wanted).await.unwrap().session.unwrap();
    assert_eq!(listed.families, ["u-1~f1", "u-1~f2"]);
    let ended = store
        .end_session("sh")
        .await
        .unwrap()
        .expect("the ended record");
    assert_eq!(ended.families, listed.families);
    assert!(store.end_session("sh").await.unwrap().is_none());
    assert!(
        !store.add_session_family("sh", "u-1~f3").await.unwrap(),
        "no family listed under an ended session"
    );
    store.touch_session("sh", 300).await.unwrap();
    let found = store.read(wanted).await.unwrap();
    assert!(
        found.session.is_none(),
        "a touch never brings a session back"
    );
    assert!(found.transaction.is_none());
}

#[tokio::test]
#[ignore = "needs moto: run through make test"]
async fn burying_a_family_revokes_it_whether_or_not_it_exists_yet() {
    let store = fresh_store().await;
    store
        .bury_family(&family("early", "h", 10_000), 10_000)
        .await
        .unwrap();
    let early = store
        .read(family_only("early"))
        .await
        .unwrap()
        .family
        .unwrap();
    assert!(
        early.revoked,
        "written revoked before its creator got there"
    );
    assert!(
        store
            .create_family(&family("early", "h", 10_000), 10_000)
            .await
            .is_err()
    );
    store
        .create_family(&family("late", "h", 10_000), 10_000)
        .await
        .unwrap();
    store
        .bury_family(&family("late", "h", 10_000), 10_000)
        .await
        .unwrap();
    assert!(
        store
            .read(family_only("late"))
            .await
            .unwrap()
            .family
            .unwrap()
            .revoked
    );
}

#[tokio::test]
#[ignore = "needs moto: run through make test"]
async fn secrets_manager_rotation_steps_stage_and_promote_versions() {
    use shared::keys::secret_rotation::{
        RotationContext, RotationError, RotationEvent, SecretVersions, Step, StepOutcome, run_step,
    };
    use shared::storage::secrets::SecretsRotation;
    let sdk = sdk_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let name = unique("rotated-keys");
    let source = SecretsKeySource::new(client.clone(), name.clone());
    source.create_if_missing().await.unwrap();
    let mut doc = KeySetDocument::default();
    ensure_keys(&mut doc, Alg::Rs256, 0).unwrap();
    let before = serde_json::to_string(&doc).unwrap();
    source.store(&before).await.unwrap();
    // Rotation on, without running one now (moto: no Lambda to call; the value is kept).
    client
        .rotate_secret()
        .secret_id(&name)
        .rotate_immediately(false)
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .send()
        .await
        .unwrap();
    // moto, with no Lambda to call, labels a copy without the value AWSCURRENT: put it back.
    source.store(&before).await.unwrap();
    let secret = SecretsRotation::new(client.clone(), name.clone());
    let ctx = RotationContext {
        now: 30 * 86_400,
        jwks_max_age: 300,
        local: shared::keys::KeyPolicy {
            key_cache_seconds: 300,
            max_token_ttl: 3600,
        },
    };
    let step = |token: &str, step| RotationEvent {
        secret_id: name.clone(),
        token: token.to_owned(),
        step,
    };
    let token = uuid::Uuid::new_v4().to_string();
    let staged = run_step(&secret, &step(&token, Step::Create), ctx)
        .await
        .unwrap();
    assert!(matches!(staged, StepOutcome::Staged(_)), "{staged:?}");
    let versions = secret.stages().await.unwrap().versions;
    let labels = &versions.iter().find(|(id, _)| *id == token).unwrap().1;
    assert_eq!(labels, &["AWSPENDING"]);
    assert!(
        source.load().await.unwrap().as_deref() == Some(before.as_str()),
        "AWSCURRENT untouched until finishSecret"
    );
    assert_eq!(
        run_step(&secret, &step(&token, Step::Create), ctx)
            .await
            .unwrap(),
        StepOutcome::AlreadyDone
    );
    for s in [Step::Set, Step::Test] {
        assert_eq!(
            run_step(&secret, &step(&token, s), ctx).await.unwrap(),
            StepOutcome::Checked
        );
    }
    assert_eq!(
        run_step(&secret, &step(&token, Step::Finish), ctx)
            .await
            .unwrap(),
        StepOutcome::Finished
    );
    let after = KeySetDocument::parse(&source.load().await.unwrap().unwrap()).unwrap();
    assert_eq!(
        after.active(Alg::Rs256).unwrap().kid,
        doc.keys
            .iter()
            .find(|k| k.status == shared::keys::KeyStatus::Next)
            .unwrap()
            .kid,
        "the next key signs"
    );
    assert_eq!(
        run_step(&secret, &step(&token, Step::Finish), ctx)
            .await
            .unwrap(),
        StepOutcome::AlreadyDone
    );

    // A pending set that does not test leaves AWSCURRENT as it was.
    let current = source.load().await.unwrap().unwrap();
    let broken = uuid::Uuid::new_v4().to_string();
    secret.put_pending(&broken, "{\"keys\":[]}").await.unwrap();
    let tested = run_step(&secret, &step(&broken, Step::Test), ctx).await;
    assert!(tested.is_err(), "{tested:?}");
    assert!(
        source.load().await.unwrap().unwrap() == current,
        "AWSCURRENT unchanged"
    );

    // An oauthctl rotation between createSecret and finishSecret is never undone.
    let racing = uuid::Uuid::new_v4().to_string();
    run_step(&secret, &step(&racing, Step::Create), ctx)
        .await
        .unwrap();
    let by_hand = before.clone();
    let rotated = secret
        .at_stage("AWSCURRENT")
        .await
        .unwrap()
        .unwrap()
        .version_id;
    let put = client
        .put_secret_value()
        .secret_id(&name)
        .secret_string(&by_hand)
        .send()
        .await
        .unwrap();
    // What AWS does on that put, and moto does not once a stage was moved by
    // UpdateSecretVersionStage (it relabels its "default" version and leaves AWSCURRENT on
    // the rotated one too, measured): AWSCURRENT moves to the new version.
    client
        .update_secret_version_stage()
        .secret_id(&name)
        .version_stage("AWSCURRENT")
        .move_to_version_id(put.version_id().unwrap())
        .remove_from_version_id(&rotated)
        .send()
        .await
        .unwrap();
    let refused = run_step(&secret, &step(&racing, Step::Finish), ctx).await;
    assert!(
        matches!(refused, Err(RotationError::CurrentMoved)),
        "{refused:?}"
    );
    assert!(
        source.load().await.unwrap().unwrap() == by_hand,
        "the operator's set stays"
    );
}

#[tokio::test]
#[ignore = "needs moto: run through make test"]
async fn a_pushed_request_is_taken_once_and_not_after_it_expired() {
    let store = Arc::new(fresh_store().await);
    let pushed = |hash: &str, exp| PushedRequest {
        reference_hash: hash.to_owned(),
        client_id: "c1".to_owned(),
        parameters: "response_type=code&client_id=c1".to_owned(),
        exp,
    };
    store.push_request(&pushed("p1", 1_000)).await.unwrap();
    assert!(
        store.push_request(&pushed("p1", 1_000)).await.is_err(),
        "no overwrite"
    );
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take_request("p1", "c1", 100).await.unwrap() })
        })
        .collect();
    let mut taken = Vec::new();
    for racer in racers {
        taken.extend(racer.await.unwrap());
    }
    assert_eq!(
        taken,
        vec![pushed("p1", 1_000)],
        "one conditional delete wins"
    );
    store.push_request(&pushed("p2", 1_000)).await.unwrap();
    assert_eq!(
        store.take_request("p2", "c1", 1_000).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store.take_request("missing", "c1", 100).await.unwrap(),
        None
    );
}

/// A loopback stand-in for DynamoDB that answers with `responses` in order (keep-alive) and
/// records each request's head.
async fn canned_dynamodb(
    responses: Vec<(u16, &'static str)>,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut responses = responses.into_iter();
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = Vec::new();
            loop {
                let mut chunk = [0u8; 4096];
                let Ok(read) = socket.read(&mut chunk).await else {
                    break;
                };
                if read == 0 {
                    break;
                }
                buffer.extend_from_slice(&chunk[..read]);
                let text = String::from_utf8_lossy(&buffer).to_string();
                let Some(end) = text.find("\r\n\r\n") else {
                    continue;
                };
                let length: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buffer.len() < end + 4 + length {
                    continue;
                }
                log.lock().unwrap().push(text[..end].to_string());
                buffer.clear();
                let Some((status, body)) = responses.next() else {
                    return;
                };
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(answer.as_bytes()).await.unwrap();
            }
        }
    });
    (url, seen)
}

#[tokio::test]
async fn a_direct_read_is_signed_retries_throttling_and_stops_at_a_validation_error() {
    let throttled = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"Rate exceeded"}"#;
    let (url, seen) = canned_dynamodb(vec![(400, throttled), (500, "{}"), (200, "{}")]).await;
    // Lambda's credentials are temporary: the session token must be sent and signed.
    let sdk = sdk_config_at(&url)
        .await
        .to_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::new(
                    "testing",
                    "testing",
                    Some("session-token".into()),
                    None,
                    "test",
                ),
            ),
        )
        .build();
    let store = DynamoStore::from_sdk_config(&sdk, "t").await;
    assert!(
        store.client("c").await.unwrap().is_none(),
        "the third attempt answers: no item"
    );
    let heads = seen.lock().unwrap().clone();
    assert_eq!(heads.len(), 3, "two retries");
    let head = heads[0].to_ascii_lowercase();
    assert!(head.starts_with("post / http/1.1"), "{head}");
    assert!(
        head.contains("x-amz-target: dynamodb_20120810.getitem"),
        "{head}"
    );
    assert!(
        head.contains("authorization: aws4-hmac-sha256 credential=testing/"),
        "{head}"
    );
    assert!(head.contains("/us-east-1/dynamodb/aws4_request"), "{head}");
    assert!(
        head.contains("x-amz-security-token: session-token"),
        "{head}"
    );
    let signed = head.split("signedheaders=").nth(1).unwrap_or_default();
    assert!(signed.contains("x-amz-security-token"), "{head}");
    // Not the SDK (which would pass the rest too): it sends its invocation id and user agent.
    assert!(
        !head.contains("amz-sdk-invocation-id") && !head.contains("x-amz-user-agent"),
        "{head}"
    );

    let missing = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#;
    let (url, seen) = canned_dynamodb(vec![(400, missing), (200, "{}")]).await;
    let store = DynamoStore::from_sdk_config(&sdk_config_at(&url).await, "t").await;
    match store.client("c").await {
        Err(StoreError::Unavailable(text)) => {
            assert!(text.contains("ResourceNotFoundException"), "{text}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "a validation error is not retried"
    );
}

async fn sdk_config_at(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}
