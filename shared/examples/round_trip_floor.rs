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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use hyper_rustls::ConfigBuilderExt;

/// What the floor answers each event with: an HTTP API response of a token's size.
const RESPONSE: &str = r#"{"statusCode":200,"headers":{"content-type":"application/json","cache-control":"no-store"},"cookies":[],"body":"{\"access_token\":\"eyJhbGciOiJFUzI1NiIsImtpZCI6ImJlbmNoIn0.eyJpc3MiOiJodHRwczovL2lkLmV4YW1wbGUuY29tL29hdXRoIiwic3ViIjoiYmVuY2giLCJhdWQiOiJodHRwczovL2FwaS5leGFtcGxlLmNvbSIsImV4cCI6MTc5NjMyNDYzOCwiaWF0IjoxNzk2MzIxMDM4LCJqdGkiOiJiZW5jaCIsInNjb3BlIjoicmVhZCJ9.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl\",\"token_type\":\"Bearer\",\"expires_in\":3600,\"scope\":\"read\"}","isBase64Encoded":false}"#;

/// A DynamoDB GetItem's shape and size, unsigned (the stand-in answers whatever it answers).
const STORAGE_BODY: &str =
    r#"{"TableName":"oauth","Key":{"pk":{"S":"client#bench-client"}},"ConsistentRead":false}"#;

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// One HTTP/1.1 exchange on a kept-alive connection: the request written, the response's
/// head read line by line and its body up to `Content-Length`. Returns the value of
/// `wanted_header` (lower-case) if the response had it.
fn exchange(
    stream: &mut BufReader<Box<dyn Stream>>,
    request: &[u8],
    wanted_header: &str,
    body: &mut Vec<u8>,
) -> Option<String> {
    stream
        .get_mut()
        .write_all(request)
        .expect("write a request");
    let (mut length, mut wanted) = (0usize, None);
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).expect("read a response head") == 0 {
            panic!("the connection closed mid-response");
        }
        if line == "\r\n" {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if name == "content-length" {
            length = value.trim().parse().expect("a Content-Length");
        } else if name == wanted_header {
            wanted = Some(value.trim().to_owned());
        }
    }
    body.resize(length, 0);
    stream.read_exact(body).expect("read a response body");
    wanted
}

fn connect(authority: &str) -> TcpStream {
    let tcp = TcpStream::connect(authority).expect("connect");
    tcp.set_nodelay(true).expect("TCP_NODELAY");
    tcp
}

fn storage_connection(endpoint: &str) -> (BufReader<Box<dyn Stream>>, String) {
    let (tls, rest) = match endpoint.split_once("://") {
        Some(("https", rest)) => (true, rest),
        Some((_, rest)) => (false, rest),
        None => (false, endpoint),
    };
    let authority = rest.split('/').next().unwrap_or(rest).to_owned();
    let tcp = connect(&authority);
    let stream: Box<dyn Stream> = if tls {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_native_roots()
            .expect("roots (SSL_CERT_FILE)")
            .with_no_client_auth();
        let host = authority
            .rsplit_once(':')
            .map_or(authority.as_str(), |(h, _)| h);
        let name = rustls::pki_types::ServerName::try_from(host.to_owned()).expect("a host");
        let mut connection = rustls::ClientConnection::new(Arc::new(config), name).expect("TLS");
        let mut tcp = tcp;
        // The handshake now, as a client's connect does (a server may handshake as it accepts).
        while connection.is_handshaking() {
            connection.complete_io(&mut tcp).expect("a TLS handshake");
        }
        Box::new(rustls::StreamOwned::new(connection, tcp))
    } else {
        Box::new(tcp)
    };
    (BufReader::new(stream), authority)
}

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
    let storage_request = storage.as_ref().map(|(_, authority)| {
        format!(
            "POST / HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/x-amz-json-1.0\r\n\
             x-amz-target: DynamoDB_20120810.GetItem\r\ncontent-length: {}\r\n\r\n{STORAGE_BODY}",
            STORAGE_BODY.len()
        )
    });
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
