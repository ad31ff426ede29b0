//! The rotation function's four Secrets Manager steps (SPEC §6, issue #13) on an in-memory
//! secret with Secrets Manager's labelling rules; `adapters.rs` runs the same against moto.

use shared::keys::rotation::ensure_keys;
use shared::keys::secret_rotation::{
    RotationContext, RotationError, RotationEvent, Step, StepOutcome, run_step,
};
use shared::keys::{Alg, KeyPolicy, KeySetDocument, KeyStatus};
use shared::storage::memory::MemorySecret;

const DAY: i64 = 86_400;
const POLICY: KeyPolicy = KeyPolicy {
    key_cache_seconds: 300,
    max_token_ttl: 3600,
};

fn ctx(now: i64) -> RotationContext {
    RotationContext {
        now,
        jwks_max_age: 300,
        local: POLICY,
    }
}

fn event(token: &str, step: Step) -> RotationEvent {
    RotationEvent {
        secret_id: "keys".into(),
        token: token.into(),
        step,
    }
}

/// RS256 and ES256 keys created at time 0.
fn initial_set() -> KeySetDocument {
    let mut doc = KeySetDocument::default();
    ensure_keys(&mut doc, Alg::Rs256, 0).unwrap();
    ensure_keys(&mut doc, Alg::Es256, 0).unwrap();
    doc
}

fn kid(doc: &KeySetDocument, alg: Alg, status: KeyStatus) -> String {
    doc.keys
        .iter()
        .find(|k| k.alg == alg && k.status == status)
        .unwrap()
        .kid
        .clone()
}

fn current(secret: &MemorySecret) -> KeySetDocument {
    KeySetDocument::parse(&secret.current_text().unwrap()).unwrap()
}

async fn all_steps(secret: &MemorySecret, token: &str, now: i64) -> Vec<StepOutcome> {
    let mut outcomes = Vec::new();
    for step in [Step::Create, Step::Set, Step::Test, Step::Finish] {
        outcomes.push(
            run_step(secret, &event(token, step), ctx(now))
                .await
                .unwrap(),
        );
    }
    outcomes
}

#[tokio::test]
async fn the_four_steps_promote_next_keys_and_only_the_last_moves_awscurrent() {
    let before = initial_set();
    let secret = MemorySecret::with_rotation(&serde_json::to_string(&before).unwrap());
    let now = 30 * DAY;
    let created = run_step(&secret, &event("t1", Step::Create), ctx(now))
        .await
        .unwrap();
    let StepOutcome::Staged(rotation) = created else {
        panic!("{created:?}")
    };
    assert_eq!(rotation.promoted, [Alg::Rs256, Alg::Es256]);
    assert_eq!(
        current(&secret),
        before,
        "AWSCURRENT untouched until finishSecret"
    );
    // Every step may be retried (Secrets Manager does).
    assert_eq!(
        run_step(&secret, &event("t1", Step::Create), ctx(now + 5))
            .await
            .unwrap(),
        StepOutcome::AlreadyDone
    );
    for step in [Step::Set, Step::Test, Step::Test] {
        assert_eq!(
            run_step(&secret, &event("t1", step), ctx(now))
                .await
                .unwrap(),
            StepOutcome::Checked
        );
    }
    assert_eq!(current(&secret), before);
    assert_eq!(
        run_step(&secret, &event("t1", Step::Finish), ctx(now))
            .await
            .unwrap(),
        StepOutcome::Finished
    );
    assert_eq!(
        run_step(&secret, &event("t1", Step::Finish), ctx(now))
            .await
            .unwrap(),
        StepOutcome::AlreadyDone
    );
    let after = current(&secret);
    for alg in [Alg::Rs256, Alg::Es256] {
        assert_eq!(
            kid(&after, alg, KeyStatus::Active),
            kid(&before, alg, KeyStatus::Next),
            "{alg}: next signs"
        );
        assert_eq!(
            kid(&after, alg, KeyStatus::Retired),
            kid(&before, alg, KeyStatus::Active),
            "{alg}: the old active stays published"
        );
        assert_ne!(
            kid(&after, alg, KeyStatus::Next),
            kid(&before, alg, KeyStatus::Next)
        );
    }
}

#[tokio::test]
async fn a_next_key_younger_than_the_caches_is_only_published() {
    // The set's next keys are 100 s old: JWKS max-age + key cache is 600 s.
    let before = initial_set();
    let secret = MemorySecret::with_rotation(&serde_json::to_string(&before).unwrap());
    let outcomes = all_steps(&secret, "t1", 100).await;
    let StepOutcome::Staged(rotation) = &outcomes[0] else {
        panic!("{outcomes:?}")
    };
    assert!(rotation.promoted.is_empty());
    let after = current(&secret);
    for alg in [Alg::Rs256, Alg::Es256] {
        assert_eq!(
            kid(&after, alg, KeyStatus::Active),
            kid(&before, alg, KeyStatus::Active)
        );
    }
}

#[tokio::test]
async fn the_deployed_policy_recorded_with_the_keys_makes_promotion_wait() {
    let mut before = initial_set();
    before.policy = Some(KeyPolicy {
        key_cache_seconds: 3600,
        max_token_ttl: 3600,
    });
    let secret = MemorySecret::with_rotation(&serde_json::to_string(&before).unwrap());
    // 1000 s: old enough for this function's 300 s cache, not for the recorded 3600 s.
    let outcomes = all_steps(&secret, "t1", 1000).await;
    assert!(matches!(&outcomes[0], StepOutcome::Staged(r) if r.promoted.is_empty()));
}

#[tokio::test]
async fn a_failed_test_leaves_awscurrent_untouched() {
    let before = serde_json::to_string(&initial_set()).unwrap();
    let secret = MemorySecret::with_rotation(&before);
    use shared::keys::secret_rotation::SecretVersions;
    // A pending set whose key does not parse (as if createSecret had written garbage).
    let mut broken = initial_set();
    broken.keys[0].private_key_pem =
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into();
    broken.built_from = Some("v1".into());
    secret
        .put_pending("t1", &serde_json::to_string(&broken).unwrap())
        .await
        .unwrap();
    let tested = run_step(&secret, &event("t1", Step::Test), ctx(30 * DAY)).await;
    assert!(
        matches!(tested, Err(RotationError::InvalidSet(_))),
        "{tested:?}"
    );
    assert_eq!(secret.current_text().unwrap(), before);
}

#[tokio::test]
async fn a_concurrent_oauthctl_rotation_is_never_undone() {
    let secret = MemorySecret::with_rotation(&serde_json::to_string(&initial_set()).unwrap());
    let now = 30 * DAY;
    run_step(&secret, &event("t1", Step::Create), ctx(now))
        .await
        .unwrap();
    // Meanwhile an operator rotates by hand: a plain PutSecretValue, AWSCURRENT at once.
    let mut by_hand = initial_set();
    by_hand.keys.retain(|k| k.alg == Alg::Rs256);
    let by_hand_text = serde_json::to_string(&by_hand).unwrap();
    secret.put_current(&by_hand_text);
    for step in [Step::Test, Step::Finish] {
        let refused = run_step(&secret, &event("t1", step), ctx(now)).await;
        assert!(
            matches!(refused, Err(RotationError::CurrentMoved)),
            "{step:?}: {refused:?}"
        );
    }
    assert_eq!(
        secret.current_text().unwrap(),
        by_hand_text,
        "the operator's set stays"
    );
    // The next rotation starts from it.
    all_steps(&secret, "t2", now).await;
    assert!(current(&secret).keys.iter().all(|k| k.alg == Alg::Rs256));
}

#[tokio::test]
async fn steps_refuse_a_secret_or_token_not_in_rotation() {
    let text = serde_json::to_string(&initial_set()).unwrap();
    let disabled = MemorySecret::default();
    disabled.put_current(&text);
    let refused = run_step(&disabled, &event("t1", Step::Create), ctx(0)).await;
    assert!(
        matches!(refused, Err(RotationError::NotEnabled)),
        "{refused:?}"
    );
    let secret = MemorySecret::with_rotation(&text);
    for step in [Step::Set, Step::Test, Step::Finish] {
        let refused = run_step(&secret, &event("unknown", step), ctx(0)).await;
        assert!(
            matches!(refused, Err(RotationError::NotPending(_))),
            "{refused:?}"
        );
    }
    let empty = MemorySecret::with_rotation("");
    let refused = run_step(&empty, &event("t1", Step::Create), ctx(0)).await;
    assert!(refused.is_err());
}

#[test]
fn the_event_is_secrets_managers() {
    let event: RotationEvent = serde_json::from_str(
        r#"{"SecretId":"arn:aws:secretsmanager:us-east-1:1:secret:k","ClientRequestToken":"t","Step":"testSecret","RotationToken":"x"}"#,
    )
    .unwrap();
    assert_eq!(event.step, Step::Test);
    assert!(
        serde_json::from_str::<RotationEvent>(
            r#"{"SecretId":"s","ClientRequestToken":"t","Step":"other"}"#
        )
        .is_err()
    );
}

#[tokio::test]
async fn secrets_managers_set_up_check_of_a_new_schedule_passes() {
    use shared::keys::secret_rotation::SecretVersions;
    // A schedule created without rotating at once: Secrets Manager calls testSecret alone on
    // a pending version of its own, a copy of the current value (or none at all).
    let text = serde_json::to_string(&initial_set()).unwrap();
    let secret = MemorySecret::with_rotation(&text);
    secret.put_pending("check", &text).await.unwrap();
    assert_eq!(
        run_step(&secret, &event("check", Step::Test), ctx(0))
            .await
            .unwrap(),
        StepOutcome::Checked
    );
    assert_eq!(secret.current_text().unwrap(), text);
    // On the first deploy the secret has no value yet (oauthctl init comes later).
    let empty = MemorySecret::with_rotation("");
    empty.put_pending("check", "").await.unwrap();
    assert_eq!(
        run_step(&empty, &event("check", Step::Test), ctx(0))
            .await
            .unwrap(),
        StepOutcome::Checked
    );
}
