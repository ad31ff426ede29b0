//! The outbound HTTP adapter (`shared::fetch`) against a real socket on loopback: what a
//! client's host can answer, and what of it becomes keys.

use std::time::Duration;

use shared::fetch::{FETCH_TIMEOUT, HttpsFetcher, MAX_JWKS_BYTES};
use shared::grants::client_jwks::JwksFetcher;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const JWKS: &str = r#"{"keys":[]}"#;

/// Serves `response` (raw HTTP/1.1 bytes) to every connection, after `delay`; returns the URL
/// of `/jwks.json` on it.
async fn host(response: Vec<u8>, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let response = response.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                tokio::time::sleep(delay).await;
                let _ = socket.write_all(&response).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{address}/jwks.json")
}

fn answer(status: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    [head.as_bytes(), body].concat()
}

fn with_length(status: &str, body: &[u8]) -> Vec<u8> {
    answer(status, &[&format!("content-length: {}", body.len())], body)
}

async fn fetch(url: &str) -> Result<String, String> {
    HttpsFetcher::new().fetch(url).await.map_err(|e| e.0)
}

#[tokio::test]
async fn a_200_body_is_the_document() {
    let url = host(with_length("200 OK", JWKS.as_bytes()), Duration::ZERO).await;
    assert_eq!(fetch(&url).await.as_deref(), Ok(JWKS));
    // Chunked, as many servers answer.
    let chunked = answer(
        "200 OK",
        &["transfer-encoding: chunked"],
        format!("{:x}\r\n{JWKS}\r\n0\r\n\r\n", JWKS.len()).as_bytes(),
    );
    let url = host(chunked, Duration::ZERO).await;
    assert_eq!(fetch(&url).await.as_deref(), Ok(JWKS));
}

#[tokio::test]
async fn other_statuses_and_redirects_are_no_document() {
    for status in [
        "404 Not Found",
        "500 Internal Server Error",
        "204 No Content",
    ] {
        let url = host(with_length(status, JWKS.as_bytes()), Duration::ZERO).await;
        let error = fetch(&url).await.unwrap_err();
        assert!(error.contains(&status[..3]), "{error}");
    }
    let elsewhere = answer(
        "302 Found",
        &[
            "location: https://attacker.example/jwks.json",
            "content-length: 0",
        ],
        b"",
    );
    let url = host(elsewhere, Duration::ZERO).await;
    assert!(fetch(&url).await.unwrap_err().contains("302"));
}

#[tokio::test]
async fn a_body_over_the_cap_is_refused_declared_or_not() {
    let big = vec![b' '; MAX_JWKS_BYTES + 1];
    let url = host(with_length("200 OK", &big), Duration::ZERO).await;
    assert!(fetch(&url).await.unwrap_err().contains("over"));
    // Without a length the body is cut off at the cap, not read to the end.
    let mut undeclared = answer("200 OK", &[], b"");
    undeclared.extend(std::iter::repeat_n(b' ', 4 * MAX_JWKS_BYTES));
    let url = host(undeclared, Duration::ZERO).await;
    assert!(fetch(&url).await.unwrap_err().contains("over"));
    let exact = vec![b' '; MAX_JWKS_BYTES];
    let url = host(with_length("200 OK", &exact), Duration::ZERO).await;
    assert!(fetch(&url).await.is_ok());
}

#[tokio::test]
async fn a_host_that_does_not_answer_in_time_is_given_up_on() {
    let slow = FETCH_TIMEOUT + Duration::from_secs(5);
    let url = host(with_length("200 OK", JWKS.as_bytes()), slow).await;
    assert!(fetch(&url).await.unwrap_err().contains("no answer"));
}

#[tokio::test]
async fn nothing_listening_and_garbage_are_errors_not_panics() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    drop(listener);
    assert!(fetch(&closed).await.is_err());
    let url = host(b"not http at all\r\n\r\n".to_vec(), Duration::ZERO).await;
    assert!(fetch(&url).await.is_err());
    let url = host(with_length("200 OK", &[0xff, 0xfe]), Duration::ZERO).await;
    assert!(fetch(&url).await.unwrap_err().contains("UTF-8"));
    assert!(fetch("http://[::1/").await.is_err());
}
