//! Authorize function: the authorization endpoint, the hosted login page and consent.

use shared::endpoints::authorize::AuthorizeService;
use shared::{lambda, storage};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda::Error> {
    lambda::init_logging();
    let config = lambda::config_or_exit();
    let (store, key_source) = storage::aws::adapters(&config).await;
    let service = &AuthorizeService::new(config, store, key_source);
    lambda::serve(move |request| async move { service.handle(&request).await }).await
}
