//! Token function: `POST /oauth/v2/token` (+ aliases) and `POST /oauth/v2/revoke`.

use shared::endpoints::token::TokenService;
use shared::fetch::HttpsFetcher;
use shared::{lambda, storage};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda::Error> {
    lambda::init_logging();
    let config = lambda::config_or_exit();
    let (store, key_source) = storage::aws::adapters(&config).await;
    let service = &TokenService::new(config, store, key_source)
        .with_jwks_fetcher(Box::new(HttpsFetcher::new()));
    lambda::serve(move |request| async move { service.handle(&request).await }).await
}
