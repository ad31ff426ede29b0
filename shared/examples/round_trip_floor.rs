//! The floor under a function's whole-process CPU: a Lambda "function" that does only the
//! round trips a request needs — the Runtime API's next-event and response exchanges, and
//! `FLOOR_STORAGE_CALLS` (default 1) POSTs to `AWS_ENDPOINT_URL` (HTTPS trusting
//! `SSL_CERT_FILE`, or HTTP) on one kept-alive connection — on blocking sockets, with no async
//! runtime, no HTTP library, no JSON, no signature and no handler. `make bench` runs it beside
//! the functions with the same stand-ins and events, so the kernel's and TLS's share of a
//! request (wake-ups, loopback TCP, records) is measured in the same run instead of guessed,
//! and what a function spends above it is its own.
//!
//! `cargo build --release -p shared --example round_trip_floor`; run as a function would be
//! (`AWS_LAMBDA_RUNTIME_API` set).

use std::io::BufReader;

#[path = "support/blocking_http.rs"]
mod blocking_http;

use blocking_http::{Stream, connect, exchange, get_item_request, storage_connection};

/// What the floor answers each event with: an HTTP API response of a token's size.
const RESPONSE: &str = r#"{"statusCode":200,"headers":{"content-type":"application/json","cache-control":"no-store"},"cookies":[],"body":"{\"access_token\":\"eyJhbGciOiJFUzI1NiIsImtpZCI6ImJlbmNoIn0.eyJpc3MiOiJodHRwczovL2lkLmV4YW1wbGUuY29tL29hdXRoIiwic3ViIjoiYmVuY2giLCJhdWQiOiJodHRwczovL2FwaS5leGFtcGxlLmNvbSIsImV4cCI6MTc5NjMyNDYzOCwiaWF0IjoxNzk2MzIxMDM4LCJqdGkiOiJiZW5jaCIsInNjb3BlIjoicmVhZCJ9.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl\",\"token_type\":\"Bearer\",\"expires_in\":3600,\"scope\":\"read\"}","isBase64Encoded":false}"#;

fn main() {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").expect("AWS_LAMBDA_RUNTIME_API");
    let calls: usize = std::env::var("FLOOR_STORAGE_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut storage = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|_| calls > 0)
        .map(|endpoint| storage_connection(&endpoint));
    let storage_request = storage
        .as_ref()
        .map(|(_, authority)| get_item_request(authority));
    let mut runtime: BufReader<Box<dyn Stream>> = BufReader::new(Box::new(connect(&api)));
    let next = format!("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: {api}\r\n\r\n");
    let mut body = Vec::new();
    loop {
        let id = exchange(
            &mut runtime,
            next.as_bytes(),
            "lambda-runtime-aws-request-id",
            &mut body,
        )
        .expect("a request id");
        if let (Some((connection, _)), Some(request)) = (storage.as_mut(), &storage_request) {
            for _ in 0..calls {
                exchange(connection, request.as_bytes(), "", &mut body);
            }
        }
        let response = format!(
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nhost: {api}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{RESPONSE}",
            RESPONSE.len()
        );
        exchange(&mut runtime, response.as_bytes(), "", &mut body);
    }
}
