//! In-process benchmarks of the token service (SPEC §10), driven through the same
//! `TokenService::handle` / `TokenInfoService::handle` the Lambda functions call, on the
//! in-memory store (no I/O).
//!
//! Groups (names are read by `bench/run.sh`):
//! - `token_cc/{RS256,ES256,EdDSA}`: warm client_credentials token, whole handler.
//! - `sign/{RS256,ES256,EdDSA}`: `Signer::sign_jwt` alone, from a loaded `KeySet`.
//! - `token_password/ES256`: password grant (argon2id verification included).
//! - `authorize/login_page`: GET /oauth/v2/authorize of a registered client, no session: the
//!   200 login page (request checks, the transaction written to the store, the page rendered).
//! - `authorize/code_exchange`: the token endpoint's authorization_code grant (client
//!   authentication, the code redeemed, PKCE S256, the family stored, an ES256 access token and
//!   an RS256 id_token), a fresh code each iteration.
//! - `authorize/login_post`: the login form's POST (argon2id dominates): session, code, 303.
//! - `introspect/{RS256,ES256,EdDSA}`: RFC 7662 introspection of a valid access token.
//! - `keyset_load/init_6_keys`: parsing the key set `oauthctl init` writes (cold-start share).
//! - `equal_time_password/{unknown_user,wrong_password}` and
//!   `equal_time_client/{unknown_client,wrong_secret,disabled_client}`: failure paths whose
//!   costs must not tell the cases apart. The judged equal-time ratios come from
//!   `equal_time_interleaved` (cases interleaved, see there), written to BENCH_META.
//!
//! The clock is the process CPU time (`CLOCK_PROCESS_CPUTIME_ID`, every thread, so the argon2
//! work on the blocking pool counts) unless `BENCH_CLOCK=wall`: the targets are CPU budgets and
//! the machine may be shared, which inflates wall time but not CPU time.

use std::collections::BTreeMap;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use shared::authorize::code::issue_code;
use shared::authorize::pkce::challenge_of;
use shared::config::Config;
use shared::endpoints::authorize::{AuthorizeService, LOGIN_PATH};
use shared::endpoints::token::TokenService;
use shared::endpoints::tokeninfo::TokenInfoService;
use shared::grants::client_auth::{Presentation, authenticate_client};
use shared::http::{ApiRequest, ApiResponse};
use shared::keys::{Alg, KeySet, KeySetDocument};
use shared::request::ClientCredentials;
use shared::storage::memory::MemoryStore;
use shared::storage::{
    AuthorizationCode, AuthorizationCodes, ClientDirectory, GrantType, SignInRecords,
};
use shared::testing::{
    CLIENT_SECRET as SECRET, ISSUER, PASSWORD, REDIRECT_URI, StaticKeys, USER_ID, USERNAME,
    WRONG_SECRET, basic, key_set, post,
};
use shared::tokens::refresh::RefreshToken;
use shared::tokens::{ACCESS_TOKEN_TYP, AccessTokenClaims};

/// Client authentication failures compared for equal time: (case, client id, secret). `svc`
/// exists, `off` is disabled, `nobody` does not exist (see `store`).
const CLIENT_FAILURES: [(&str, &str, &str); 3] = [
    ("unknown_client", "nobody", SECRET),
    ("wrong_secret", "svc", WRONG_SECRET),
    ("disabled_client", "off", SECRET),
];

/// The browser client's PKCE verifier (RFC 7636 appendix B's) and the sign-in's scope.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const WEB_SCOPE: &str = "openid email";

/// Password-grant failures compared for equal time: (case, username, password).
const PASSWORD_FAILURES: [(&str, &str, &str); 2] = [
    ("unknown_user", "mallory", PASSWORD),
    ("wrong_password", USERNAME, "wrong horse battery staple"),
];

// ---------------------------------------------------------------------------------------------
// Clock: process CPU time (default) or wall time.

struct Clock {
    cpu: bool,
}

fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn wall_ns() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

impl Measurement for Clock {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        if self.cpu {
            process_cpu_ns()
        } else {
            wall_ns()
        }
    }
    fn end(&self, start: u64) -> u64 {
        self.start().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &NanosFormatter
    }
}

struct NanosFormatter;

impl ValueFormatter for NanosFormatter {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if ns < 1e3 {
            (1.0, "ns")
        } else if ns < 1e6 {
            (1e-3, "µs")
        } else if ns < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per = match *throughput {
            Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => n as f64,
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => n as f64,
            Throughput::Bits(n) => n as f64,
        };
        values.iter_mut().for_each(|v| *v = per * 1e9 / *v);
        "elem/s"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

fn key_document() -> KeySetDocument {
    KeySetDocument::parse(&key_set(&Alg::ALL).0).expect("key set")
}

fn config(alg: Alg) -> Config {
    // Failure paths must keep doing the same work on every iteration: never lock.
    shared::testing::config(alg, &[("LOCKOUT_THRESHOLD", "1000000000")])
}

/// Clients `svc` (client_credentials), `app` (password + refresh), `off` (disabled); user
/// `alice`: `shared::testing::store`.
fn store(password_hash: &str) -> MemoryStore {
    shared::testing::store(password_hash)
}

fn form_post(path: &str, client_id: &str, secret: &str, body: &str) -> ApiRequest {
    post(
        path,
        "application/x-www-form-urlencoded",
        body,
        &[("authorization", &basic(client_id, secret))],
    )
}

fn cc_request(client_id: &str, secret: &str) -> ApiRequest {
    form_post(
        "/oauth/v2/token",
        client_id,
        secret,
        "grant_type=client_credentials&scope=read",
    )
}

fn password_request(username: &str, password: &str) -> ApiRequest {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "password")
        .append_pair("username", username)
        .append_pair("password", password)
        .append_pair("scope", "read")
        .finish();
    form_post("/oauth/v2/token", "app", SECRET, &body)
}

/// `store` plus the confidential browser client `web` (authorization_code + refresh_token,
/// redirect URI `REDIRECT_URI`, PKCE required), as in `shared/tests/sign_in.rs`.
fn sign_in_store(password_hash: &str) -> MemoryStore {
    let store = store(password_hash);
    store.put_client(shared::testing::client(
        "web",
        &[GrantType::AuthorizationCode, GrantType::RefreshToken],
    ));
    store
}

/// GET /oauth/v2/authorize for `web`, without a session cookie: the login page.
fn authorize_request() -> ApiRequest {
    let encode = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let query = format!(
        "response_type=code&client_id=web&redirect_uri={}&scope={}&state=st&nonce=n1&code_challenge={}&code_challenge_method=S256",
        encode(REDIRECT_URI),
        encode(WEB_SCOPE),
        challenge_of(VERIFIER)
    );
    ApiRequest {
        method: http::Method::GET,
        path: "/oauth/v2/authorize".into(),
        query: Some(query),
        domain_name: Some("id.example.com".into()),
        ..ApiRequest::default()
    }
}

/// The hidden value `name` of a page's form.
fn hidden(page: &ApiResponse, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.body.find(&marker).expect("hidden field") + marker.len();
    let end = page.body[start..].find('"').expect("end of value") + start;
    page.body[start..end].to_owned()
}

/// The login form of `page`, filled in with alice's password, posted from the same origin.
fn login_request(page: &ApiResponse) -> ApiRequest {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("transaction", &hidden(page, "transaction"))
        .append_pair("csrf_token", &hidden(page, "csrf_token"))
        .append_pair("username", USERNAME)
        .append_pair("password", PASSWORD)
        .finish();
    post(
        LOGIN_PATH,
        "application/x-www-form-urlencoded",
        &body,
        &[("sec-fetch-site", "same-origin")],
    )
}

/// A fresh code for `web`, stored as the login would store it (`issue_code`), and the token
/// request that exchanges it.
fn code_exchange_request(rt: &tokio::runtime::Runtime, store: &MemoryStore) -> ApiRequest {
    let issued = issue_code(
        AuthorizationCode {
            code_hash: String::new(),
            client_id: "web".to_owned(),
            redirect_uri: REDIRECT_URI.to_owned(),
            scope: WEB_SCOPE.to_owned(),
            nonce: Some("n1".to_owned()),
            code_challenge: Some(challenge_of(VERIFIER)),
            dpop_jkt: None,
            user_id: USER_ID.to_owned(),
            username: USERNAME.to_owned(),
            claims: BTreeMap::from([("email".to_owned(), "alice@example.com".to_owned())]),
            auth_time: shared::now_epoch(),
            family_id: RefreshToken::new_family(USER_ID).family_id,
            exp: 0,
            consumed_at: None,
        },
        shared::now_epoch(),
    );
    rt.block_on(store.store_code(&issued.record))
        .expect("store code");
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &issued.code)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("code_verifier", VERIFIER)
        .finish();
    form_post("/oauth/v2/token", "web", SECRET, &body)
}

fn runtime() -> tokio::runtime::Runtime {
    // One thread, as in Lambda; the blocking pool (argon2) is part of it.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn expect_status(response: &ApiResponse, status: u16, what: &str) {
    assert_eq!(
        response.status, status,
        "{what}: unexpected response {}",
        response.body
    );
}

// ---------------------------------------------------------------------------------------------
// Benchmarks.

/// CPU ms of the first and of a second call of `f`, in this fresh process (cold-start shares
/// that criterion's repeated iterations cannot see).
fn first_and_second_cpu_ms(f: impl Fn()) -> (f64, f64) {
    let t0 = process_cpu_ns();
    f();
    let t1 = process_cpu_ns();
    f();
    let t2 = process_cpu_ns();
    ((t1 - t0) as f64 / 1e6, (t2 - t1) as f64 / 1e6)
}

fn benches(c: &mut Criterion<Clock>) {
    // Before anything else touches aws-lc: the first random bytes seed its DRBG.
    let first_random = first_and_second_cpu_ms(|| {
        std::hint::black_box(shared::crypto::random_bytes::<16>());
    });
    let rt = runtime();
    let doc = key_document();
    let doc_text = serde_json::to_string(&doc).expect("key set json");
    let password_hash = shared::password::hash_password(PASSWORD).expect("argon2 hash");
    let first_keyset = first_and_second_cpu_ms(|| {
        std::hint::black_box(KeySet::from_document(&doc).expect("key set"));
    });
    let first_calls = serde_json::json!({
        "first_random_bytes_cpu_ms": first_random.0,
        "second_random_bytes_cpu_ms": first_random.1,
        "first_keyset_load_cpu_ms": first_keyset.0,
        "second_keyset_load_cpu_ms": first_keyset.1,
    });

    // Per algorithm, back to back so both see the same machine load: the signature alone
    // (header and claims serialised, base64url, signed), then a warm client_credentials token
    // through the whole handler.
    let keys = KeySet::from_document(&doc).expect("key set");
    let claims = AccessTokenClaims {
        iss: ISSUER.to_owned(),
        sub: "svc".to_owned(),
        aud: ISSUER.to_owned(),
        exp: 2_000_003_600,
        iat: 2_000_000_000,
        nbf: 2_000_000_000,
        jti: "bS1xY2h3c2hlZ2RqZmtsbQ".to_owned(),
        client_id: "svc".to_owned(),
        scope: "read".to_owned(),
        sid: None,
        preferred_username: None,
        cnf: None,
        custom: BTreeMap::new(),
    };
    for alg in Alg::ALL {
        let signer = keys.signer(alg).expect("active signer");
        let mut group = c.benchmark_group("sign");
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| {
                signer
                    .sign_jwt(ACCESS_TOKEN_TYP, std::hint::black_box(&claims))
                    .expect("sign")
            })
        });
        group.finish();

        let service = TokenService::new(
            config(alg),
            store(&password_hash),
            StaticKeys(doc_text.clone()),
        );
        let request = cc_request("svc", SECRET);
        expect_status(
            &rt.block_on(service.handle(&request)),
            200,
            "client_credentials",
        );
        let mut group = c.benchmark_group("token_cc");
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| rt.block_on(service.handle(std::hint::black_box(&request))))
        });
        group.finish();
    }

    // The audit + EMF line every token request writes (stdout write excluded).
    let record = shared::audit::Record {
        grant: Some("client_credentials"),
        client_id: Some("svc"),
        scope: Some("read"),
        jti: Some("bS1xY2h3c2hlZ2RqZmtsbQ"),
        source_ip: Some("203.0.113.7"),
        user_agent: Some("python-requests/2.32"),
        handler_ms: Some(0.042),
        ..Default::default()
    };
    let mut group = c.benchmark_group("audit");
    group.bench_function("token_issued_line", |b| {
        b.iter(|| {
            shared::audit::line(
                shared::audit::Event::TokenIssued,
                std::hint::black_box(&record),
                1_700_000_000_000,
            )
        })
    });
    group.finish();

    // Cold-start share: parsing the whole key set (what `oauthctl init` writes: an active and a
    // next key per algorithm) into signers, verification keys and the JWKS.
    let mut group = c.benchmark_group("keyset_load");
    group.sample_size(10);
    group.bench_function("init_6_keys", |b| {
        b.iter(|| {
            KeySet::from_document(
                &KeySetDocument::parse(std::hint::black_box(&doc_text)).expect("parse"),
            )
            .expect("key set")
        })
    });
    group.finish();

    // Introspection of a valid access token (client-authenticated POST).
    let mut group = c.benchmark_group("introspect");
    for alg in Alg::ALL {
        let token_service = TokenService::new(
            config(alg),
            store(&password_hash),
            StaticKeys(doc_text.clone()),
        );
        let issued = rt.block_on(token_service.handle(&cc_request("svc", SECRET)));
        let token =
            serde_json::from_str::<serde_json::Value>(&issued.body).expect("json")["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned();
        let service = TokenInfoService::new(
            config(alg),
            store(&password_hash),
            StaticKeys(doc_text.clone()),
        );
        let request = form_post(
            "/oauth/v2/tokeninfo",
            "svc",
            SECRET,
            &format!("token={token}"),
        );
        let answer = rt.block_on(service.handle(&request));
        expect_status(&answer, 200, "introspection");
        assert!(answer.body.contains("\"active\":true"), "{}", answer.body);
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| rt.block_on(service.handle(std::hint::black_box(&request))))
        });
    }
    group.finish();

    // Client authentication failures: all one 401, reached through the same work.
    let service = TokenService::new(
        config(Alg::Es256),
        store(&password_hash),
        StaticKeys(doc_text.clone()),
    );
    let cases = CLIENT_FAILURES.map(|(name, id, secret)| (name, cc_request(id, secret)));
    let mut group = c.benchmark_group("equal_time_client");
    for (name, request) in &cases {
        expect_status(&rt.block_on(service.handle(request)), 401, name);
        group.bench_function(*name, |b| {
            b.iter(|| rt.block_on(service.handle(std::hint::black_box(request))))
        });
    }
    group.finish();

    // argon2id-bound groups: few samples.
    let service = TokenService::new(
        config(Alg::Es256),
        store(&password_hash),
        StaticKeys(doc_text.clone()),
    );
    let mut group = c.benchmark_group("token_password");
    group.sample_size(10);
    let request = password_request(USERNAME, PASSWORD);
    expect_status(
        &rt.block_on(service.handle(&request)),
        200,
        "password grant",
    );
    group.bench_function("ES256", |b| {
        b.iter(|| rt.block_on(service.handle(std::hint::black_box(&request))))
    });
    group.finish();

    sign_in(c, &rt, &doc_text, &password_hash);

    let mut group = c.benchmark_group("equal_time_password");
    // argon2id dominates and varies with the machine: more samples than the other groups.
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(20));
    let cases = PASSWORD_FAILURES.map(|(name, user, pw)| (name, password_request(user, pw)));
    for (name, request) in &cases {
        expect_status(&rt.block_on(service.handle(request)), 400, name);
        group.bench_function(*name, |b| {
            b.iter(|| rt.block_on(service.handle(std::hint::black_box(request))))
        });
    }
    group.finish();

    let equal_time = equal_time_interleaved(&rt, &service);
    write_meta(&password_hash, first_calls, equal_time);
}

/// Browser sign-in (SPEC §12): the login page, the code exchange, the login form's POST.
fn sign_in(
    c: &mut Criterion<Clock>,
    rt: &tokio::runtime::Runtime,
    doc_text: &str,
    password_hash: &str,
) {
    let store = sign_in_store(password_hash);
    let authorize = AuthorizeService::new(
        config(Alg::Es256),
        store.clone(),
        StaticKeys(doc_text.to_owned()),
    );
    let token = TokenService::new(
        config(Alg::Es256),
        store.clone(),
        StaticKeys(doc_text.to_owned()),
    );
    let page_request = authorize_request();
    let page = rt.block_on(authorize.handle(&page_request));
    expect_status(&page, 200, "login page");
    assert!(page.body.contains("csrf_token"), "{}", page.body);
    let exchanged = rt.block_on(token.handle(&code_exchange_request(rt, &store)));
    expect_status(&exchanged, 200, "code exchange");
    assert!(
        exchanged.body.contains("\"id_token\""),
        "{}",
        exchanged.body
    );
    let clock = Clock { cpu: cpu_clock() };

    let mut group = c.benchmark_group("authorize");
    // Each page writes a transaction; they are finished (deleted) between timed chunks so the
    // in-memory store stays the size a real one would look like to a request.
    group.bench_function("login_page", |b| {
        b.iter_custom(|iters| {
            let mut total = 0;
            let mut done = 0;
            while done < iters {
                let n = (iters - done).min(256);
                let start = clock.start();
                let pages: Vec<ApiResponse> = (0..n)
                    .map(|_| rt.block_on(authorize.handle(std::hint::black_box(&page_request))))
                    .collect();
                total += clock.end(start);
                for page in &pages {
                    expect_status(page, 200, "login page");
                    let id = hidden(page, "transaction");
                    assert!(rt.block_on(store.finish_transaction(&id)).expect("finish"));
                }
                done += n;
            }
            total
        })
    });
    group.bench_function("code_exchange", |b| {
        b.iter_batched(
            || code_exchange_request(rt, &store),
            |request| {
                let response = rt.block_on(token.handle(&request));
                expect_status(&response, 200, "code exchange");
                response
            },
            BatchSize::SmallInput,
        )
    });
    // argon2id-bound, next to token_password: few samples.
    group.sample_size(10);
    group.bench_function("login_post", |b| {
        b.iter_batched(
            || login_request(&rt.block_on(authorize.handle(&page_request))),
            |request| {
                let response = rt.block_on(authorize.handle(&request));
                expect_status(&response, 303, "login form");
                response
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// One failure path under test: a name and one call of it.
type Case<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// Median CPU time per call of each case, measured interleaved: round after round, every case
/// runs one batch, starting from a different case each round. Criterion's groups run one case
/// after the other, so a change of clock speed or load between them reads as a gap between
/// cases; interleaving puts every case under the same conditions. Returns the medians (ns) and
/// the ratio of the largest to the smallest.
fn interleaved_medians(cases: &mut [Case<'_>], rounds: usize, batch: usize) -> serde_json::Value {
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); cases.len()];
    for round in 0..rounds {
        for offset in 0..cases.len() {
            let index = (round + offset) % cases.len();
            let start = process_cpu_ns();
            for _ in 0..batch {
                (cases[index].1)();
            }
            samples[index].push((process_cpu_ns() - start) as f64 / batch as f64);
        }
    }
    let mut medians = serde_json::Map::new();
    let mut values = Vec::new();
    for ((name, _), mut times) in cases.iter().zip(samples) {
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        eprintln!("equal time (interleaved, {rounds} rounds x {batch}): {name} {median:.0} ns");
        medians.insert((*name).to_owned(), median.into());
        values.push(median);
    }
    let ratio = values.iter().copied().fold(f64::MIN, f64::max)
        / values.iter().copied().fold(f64::MAX, f64::min);
    serde_json::json!({"median_ns": medians, "ratio": ratio, "rounds": rounds, "batch": batch})
}

/// The equal-time figures the report judges (goal: ratio within 1.10).
fn equal_time_interleaved(
    rt: &tokio::runtime::Runtime,
    service: &TokenService<MemoryStore, StaticKeys>,
) -> serde_json::Value {
    let run = |request: ApiRequest| -> Box<dyn FnMut() + '_> {
        Box::new(move || {
            std::hint::black_box(rt.block_on(service.handle(std::hint::black_box(&request))));
        })
    };
    let mut client_failures =
        CLIENT_FAILURES.map(|(name, id, secret)| (name, run(cc_request(id, secret))));
    let mut password =
        PASSWORD_FAILURES.map(|(name, user, pw)| (name, run(password_request(user, pw))));
    // The decision alone, on the records the store holds (what the handler sees).
    let decide = |client_id: &str, secret: &str| -> Box<dyn FnMut() + '_> {
        let record = rt.block_on(service.store.client(client_id)).ok().flatten();
        let presented = ClientCredentials {
            secretless: false,
            client_id: client_id.to_owned(),
            client_secret: secret.to_owned(),
            via_basic: true,
            assertion: None,
        };
        let presentation = Presentation {
            api_key: None,
            audiences: &[],
            now: 0,
            fetched_jwks: None,
        };
        Box::new(move || {
            std::hint::black_box(
                authenticate_client(
                    std::hint::black_box(record.as_ref()),
                    std::hint::black_box(&presented),
                    presentation,
                )
                .is_err(),
            );
        })
    };
    let mut auth = CLIENT_FAILURES.map(|(name, id, secret)| (name, decide(id, secret)));
    // The store's share of the handler-level figures: a found record is copied out, a missing
    // one is not (over DynamoDB: an item to decode vs none, inside a network round trip).
    let lookup = |client_id: &'static str| -> Box<dyn FnMut() + '_> {
        Box::new(move || {
            let found = rt.block_on(service.store.client(std::hint::black_box(client_id)));
            std::hint::black_box(found.ok());
        })
    };
    let mut lookups = [("found", lookup("svc")), ("missing", lookup("nobody"))];
    serde_json::json!({
        "client_lookup": interleaved_medians(&mut lookups, 301, 5000),
        "client_handler": interleaved_medians(&mut client_failures, 301, 500),
        "client_auth": interleaved_medians(&mut auth, 301, 5000),
        "password_handler": interleaved_medians(&mut password, 41, 1),
    })
}

/// Facts the report prints next to the figures (argon2 parameters as actually stored, clock).
fn write_meta(password_hash: &str, cold: serde_json::Value, equal_time: serde_json::Value) {
    let Ok(path) = std::env::var("BENCH_META") else {
        return;
    };
    let params = password_hash
        .split('$')
        .nth(3)
        .unwrap_or_default()
        .to_owned();
    let meta = serde_json::json!({
        "argon2_phc_params": params,
        "argon2_constants": {
            "m_kib": shared::password::MEMORY_KIB,
            "t": shared::password::ITERATIONS,
            "p": shared::password::PARALLELISM,
        },
        "clock": if cpu_clock() { "process-cpu" } else { "wall" },
        "first_calls_in_process": cold,
        "equal_time": equal_time,
    });
    std::fs::write(path, meta.to_string()).expect("write BENCH_META");
}

fn cpu_clock() -> bool {
    std::env::var("BENCH_CLOCK").as_deref() != Ok("wall")
}

fn criterion() -> Criterion<Clock> {
    Criterion::default()
        .with_measurement(Clock { cpu: cpu_clock() })
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args()
}

criterion_group! {
    name = token;
    config = criterion();
    targets = benches
}
criterion_main!(token);
