//! Process CPU per client-record read (one GetItem), through the SDK client and through the
//! direct path the functions use (`storage::dynamo_http`), against whatever
//! `AWS_ENDPOINT_URL` names. bench/README.md ("Where a storage call's CPU goes") uses it with
//! a canned keep-alive stand-in, which isolates this process's own cost.
//!
//! `cargo run --release -p shared --example storage_call_cpu -- [calls] [sdk|direct|floor]`
//! (one path only, for a profiler). `floor` is the same POST written and read on a blocking
//! `std::net::TcpStream`, unsigned: no HTTP library, no async runtime, no signature — what any
//! round trip costs this process on this kernel.

#[path = "support/blocking_http.rs"]
mod blocking_http;

use shared::storage::ClientDirectory;
use shared::storage::dynamo::DynamoStore;

fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

async fn cpu_per_read(store: &DynamoStore, calls: u64) -> f64 {
    for _ in 0..50 {
        let _ = store.client("bench").await;
    }
    let start = process_cpu_ns();
    for _ in 0..calls {
        // A canned stand-in's item need not be a client record: the call is what is measured.
        let _ = store.client("bench").await;
    }
    (process_cpu_ns() - start) as f64 / calls as f64 / 1000.0
}

/// The round trip alone: one keep-alive connection (TLS for an `https` endpoint), a canned
/// POST, the answer read up to its `Content-Length` (`support/blocking_http.rs`).
fn floor_per_read(endpoint: &str, calls: u64) -> f64 {
    let (mut connection, authority) = blocking_http::storage_connection(endpoint);
    let request = blocking_http::get_item_request(&authority);
    let mut body = Vec::new();
    let mut round_trip =
        || blocking_http::exchange(&mut connection, request.as_bytes(), "", &mut body);
    for _ in 0..50 {
        round_trip();
    }
    let start = process_cpu_ns();
    for _ in 0..calls {
        round_trip();
    }
    (process_cpu_ns() - start) as f64 / calls as f64 / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let calls = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let only = std::env::args().nth(2);
    let sdk = shared::storage::aws::load_sdk_config().await;
    let through_sdk = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), "bench");
    let direct = DynamoStore::from_sdk_config(&sdk, "bench").await;
    if only.as_deref() == Some("floor") {
        let endpoint =
            std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL names the endpoint");
        let us = floor_per_read(&endpoint, calls);
        println!("{calls} round trips (floor): {us:.1} µs CPU each");
        return;
    }
    if let Some(path) = only {
        let store = if path == "sdk" { &through_sdk } else { &direct };
        let us = cpu_per_read(store, calls).await;
        println!("{calls} reads ({path}): {us:.1} µs CPU each");
        return;
    }
    for round in 1..=2 {
        let sdk_us = cpu_per_read(&through_sdk, calls).await;
        let direct_us = cpu_per_read(&direct, calls).await;
        println!(
            "round {round}: {calls} reads: SDK {sdk_us:.1} µs CPU each, direct {direct_us:.1} µs (ratio {:.2})",
            direct_us / sdk_us
        );
    }
}
