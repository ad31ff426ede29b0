//! Blocking HTTP/1.1 on kept-alive connections, for the examples that measure a round trip's
//! floor (`round_trip_floor`, `storage_call_cpu floor`): no async runtime, no HTTP library.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use hyper_rustls::ConfigBuilderExt;

/// A DynamoDB GetItem's shape and size, unsigned (the stand-in answers whatever it answers).
const STORAGE_BODY: &str =
    r#"{"TableName":"oauth","Key":{"pk":{"S":"client#bench-client"}},"ConsistentRead":false}"#;

pub trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// One HTTP/1.1 exchange on a kept-alive connection: the request written, the response's
/// head read line by line and its body up to `Content-Length`. Returns the value of
/// `wanted_header` (lower-case) if the response had it.
pub fn exchange(
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

pub fn connect(authority: &str) -> TcpStream {
    let tcp = TcpStream::connect(authority).expect("connect");
    tcp.set_nodelay(true).expect("TCP_NODELAY");
    tcp
}

pub fn storage_connection(endpoint: &str) -> (BufReader<Box<dyn Stream>>, String) {
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

/// The GetItem POST to send on a `storage_connection` to `authority`.
pub fn get_item_request(authority: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/x-amz-json-1.0\r\n\
         x-amz-target: DynamoDB_20120810.GetItem\r\ncontent-length: {}\r\n\r\n{STORAGE_BODY}",
        STORAGE_BODY.len()
    )
}
