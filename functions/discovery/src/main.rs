//! Discovery function: OIDC discovery, RFC 8414 metadata and JWKS.

use shared::endpoints::discovery::DiscoveryService;
use shared::{lambda, storage};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda::Error> {
    lambda::init_logging();
    let config = lambda::config_or_exit();
    let (_, key_source) = storage::aws::adapters(&config).await;
    let service = &DiscoveryService::new(config, key_source);
    lambda::serve(move |request| async move { service.handle(&request).await }).await
}
