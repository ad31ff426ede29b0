//! Key-set changes made by `oauthctl`: initial keys and zero-downtime rotation (SPEC §6).
//!
//! A key is published as `next` before it signs, so every JWKS cache (max-age) and every
//! function's key cache learns it first; a retired key stays published until every token it
//! signed has expired.

use super::{Alg, KeyEntry, KeyPolicy, KeySetDocument, KeyStatus, generate_key};

#[derive(Debug, Clone, Copy)]
pub struct RotationPolicy {
    /// JWKS `max-age` plus the functions' `KEY_CACHE_SECONDS`: how old `next` must be to sign.
    pub min_next_age: i64,
    /// `MAX_TOKEN_TTL + KEY_CACHE_SECONDS + 60`: how long a retired key stays published.
    pub retired_retention: i64,
}

impl RotationPolicy {
    pub fn new(jwks_max_age: i64, key_cache_seconds: i64, max_token_ttl: i64) -> Self {
        Self {
            min_next_age: jwks_max_age + key_cache_seconds,
            retired_retention: max_token_ttl + key_cache_seconds + 60,
        }
    }

    /// The rules for `doc`: its recorded policy, made no weaker than `local` (the rotating
    /// process's own configuration), so a missing or stale record never shortens a wait.
    pub fn for_document(doc: &KeySetDocument, jwks_max_age: i64, local: KeyPolicy) -> Self {
        let policy = doc
            .policy
            .map_or(local, |recorded| recorded.covering(local));
        Self::new(jwks_max_age, policy.key_cache_seconds, policy.max_token_ttl)
    }
}

/// Ensures `alg` has an active and a next key; returns the kids it added.
pub fn ensure_keys(doc: &mut KeySetDocument, alg: Alg, now: i64) -> Result<Vec<String>, String> {
    let mut added = Vec::new();
    for status in [KeyStatus::Active, KeyStatus::Next] {
        if !doc.keys.iter().any(|k| k.alg == alg && k.status == status) {
            let key = generate_key(alg, status, now)?;
            added.push(key.kid.clone());
            doc.keys.push(key);
        }
    }
    Ok(added)
}

#[derive(Debug, PartialEq)]
pub struct RotationReport {
    pub activated: String,
    pub retired: Option<String>,
    pub new_next: String,
    pub pruned: Vec<String>,
}

/// next → active, active → retired, a fresh next; prunes retired keys past their retention.
pub fn rotate(
    doc: &mut KeySetDocument,
    alg: Alg,
    now: i64,
    force: bool,
    policy: RotationPolicy,
) -> Result<RotationReport, String> {
    let next_index = doc
        .keys
        .iter()
        .position(|k| k.alg == alg && k.status == KeyStatus::Next)
        .ok_or_else(|| format!("no next {alg} key: run oauthctl init --alg {alg}"))?;
    let next_age = now - doc.keys[next_index].created_at;
    if !force && next_age < policy.min_next_age {
        return Err(format!(
            "the next {alg} key is {next_age}s old; caches may not know it until it is {}s old (use --force to rotate anyway)",
            policy.min_next_age
        ));
    }
    let mut retired = None;
    for key in doc
        .keys
        .iter_mut()
        .filter(|k| k.alg == alg && k.status == KeyStatus::Active)
    {
        key.status = KeyStatus::Retired;
        key.retired_at = Some(now);
        retired = Some(key.kid.clone());
    }
    let next = &mut doc.keys[next_index];
    next.status = KeyStatus::Active;
    next.activated_at = Some(now);
    let activated = next.kid.clone();
    let new_next = generate_key(alg, KeyStatus::Next, now)?;
    let new_next_kid = new_next.kid.clone();
    doc.keys.push(new_next);
    let pruned = prune(doc, now, policy);
    Ok(RotationReport {
        activated,
        retired,
        new_next: new_next_kid,
        pruned,
    })
}

/// What one automatic rotation did to each algorithm of the set.
#[derive(Debug, Default, PartialEq)]
pub struct SetRotation {
    /// Algorithms whose `next` key now signs.
    pub promoted: Vec<Alg>,
    /// Algorithms whose `next` was too young to sign: it stays published (a missing one is
    /// created), and the next rotation promotes it.
    pub published_only: Vec<Alg>,
    pub pruned: Vec<String>,
}

/// A rotation of every algorithm in the set (the rotation function, SPEC §6): next → active,
/// active → retired and a fresh next where `next` is old enough; elsewhere only a next is
/// ensured. Retired keys past their retention are pruned either way.
pub fn rotate_all(
    doc: &mut KeySetDocument,
    now: i64,
    policy: RotationPolicy,
) -> Result<SetRotation, String> {
    let mut outcome = SetRotation::default();
    for alg in Alg::ALL {
        if !doc.keys.iter().any(|k| k.alg == alg) {
            continue;
        }
        let ready = doc.keys.iter().any(|k| {
            k.alg == alg && k.status == KeyStatus::Next && now - k.created_at >= policy.min_next_age
        });
        if ready {
            let report = rotate(doc, alg, now, false, policy)?;
            outcome.pruned.extend(report.pruned);
            outcome.promoted.push(alg);
        } else {
            ensure_keys(doc, alg, now)?;
            outcome.published_only.push(alg);
        }
    }
    outcome.pruned.extend(prune(doc, now, policy));
    Ok(outcome)
}

/// Removes retired keys whose every token has expired; returns their kids.
pub fn prune(doc: &mut KeySetDocument, now: i64, policy: RotationPolicy) -> Vec<String> {
    let expired = |k: &KeyEntry| {
        k.status == KeyStatus::Retired
            && k.retired_at
                .is_some_and(|at| at + policy.retired_retention < now)
    };
    let pruned = doc
        .keys
        .iter()
        .filter(|k| expired(k))
        .map(|k| k.kid.clone())
        .collect();
    doc.keys.retain(|k| !expired(k));
    pruned
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RotationPolicy = RotationPolicy {
        min_next_age: 600,
        retired_retention: 1000,
    };

    #[test]
    fn init_then_rotation_moves_every_key_one_step() {
        let mut doc = KeySetDocument::default();
        assert_eq!(ensure_keys(&mut doc, Alg::Es256, 0).unwrap().len(), 2);
        assert!(
            ensure_keys(&mut doc, Alg::Es256, 0).unwrap().is_empty(),
            "idempotent"
        );
        let old_active = doc.active(Alg::Es256).unwrap().kid.clone();
        assert!(
            rotate(&mut doc, Alg::Es256, 599, false, POLICY).is_err(),
            "next too young"
        );
        let report = rotate(&mut doc, Alg::Es256, 600, false, POLICY).unwrap();
        assert_eq!(report.retired.as_deref(), Some(old_active.as_str()));
        assert_eq!(doc.active(Alg::Es256).unwrap().kid, report.activated);
        assert_eq!(doc.keys.len(), 3);
        assert!(
            rotate(&mut doc, Alg::Es256, 601, false, POLICY).is_err(),
            "the new next is young"
        );
        // Forced rotation, then much later the first retired key is pruned.
        rotate(&mut doc, Alg::Es256, 602, true, POLICY).unwrap();
        let report = rotate(&mut doc, Alg::Es256, 600 + 1001, true, POLICY).unwrap();
        assert_eq!(report.pruned, vec![old_active]);
    }

    #[test]
    fn the_recorded_policy_rules_unless_the_local_one_is_stricter() {
        let mut doc = KeySetDocument::default();
        let shell = KeyPolicy {
            key_cache_seconds: 300,
            max_token_ttl: 3600,
        };
        let deployed = KeyPolicy {
            key_cache_seconds: 900,
            max_token_ttl: 90 * 86400,
        };
        // Nothing recorded: the local values.
        assert_eq!(
            RotationPolicy::for_document(&doc, 300, shell).min_next_age,
            600
        );
        doc.policy = Some(deployed);
        let policy = RotationPolicy::for_document(&doc, 300, shell);
        assert_eq!(policy.min_next_age, 1200);
        assert_eq!(policy.retired_retention, 90 * 86400 + 900 + 60);
        // A next key old enough for the shell's cache but not the deployed one stays next.
        ensure_keys(&mut doc, Alg::Es256, 0).unwrap();
        assert!(rotate(&mut doc, Alg::Es256, 700, false, policy).is_err());
    }

    #[test]
    fn an_automatic_rotation_promotes_only_next_keys_old_enough() {
        let mut doc = KeySetDocument::default();
        ensure_keys(&mut doc, Alg::Rs256, 0).unwrap();
        ensure_keys(&mut doc, Alg::Es256, 500).unwrap();
        let rs_next = doc
            .keys
            .iter()
            .find(|k| k.alg == Alg::Rs256 && k.status == KeyStatus::Next)
            .unwrap()
            .kid
            .clone();
        let es_active = doc.active(Alg::Es256).unwrap().kid.clone();
        let outcome = rotate_all(&mut doc, 700, POLICY).unwrap();
        assert_eq!(outcome.promoted, [Alg::Rs256]);
        assert_eq!(
            outcome.published_only,
            [Alg::Es256],
            "its next is 200 s old"
        );
        assert_eq!(doc.active(Alg::Rs256).unwrap().kid, rs_next);
        assert_eq!(doc.active(Alg::Es256).unwrap().kid, es_active);
        assert!(
            !doc.keys.iter().any(|k| k.alg == Alg::EdDsa),
            "an algorithm the set does not use is not added"
        );
        // Much later both rotate and the first retired RS256 key goes.
        let outcome = rotate_all(&mut doc, 700 + 1001, POLICY).unwrap();
        assert_eq!(outcome.promoted, [Alg::Rs256, Alg::Es256]);
        assert_eq!(outcome.pruned.len(), 1);
    }

    #[test]
    fn rotation_touches_only_its_algorithm() {
        let mut doc = KeySetDocument::default();
        ensure_keys(&mut doc, Alg::Rs256, 0).unwrap();
        ensure_keys(&mut doc, Alg::Es256, 0).unwrap();
        let rs = doc.active(Alg::Rs256).unwrap().kid.clone();
        rotate(&mut doc, Alg::Es256, 10_000, false, POLICY).unwrap();
        assert_eq!(doc.active(Alg::Rs256).unwrap().kid, rs);
    }
}
