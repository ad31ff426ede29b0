//! Wire-level parsing of token-style requests: the parameter body and the credentials a client
//! presents. Nothing here touches storage.

mod credentials;
mod params;

pub use credentials::{
    BasicCredentials, ClientCredentials, Presented, parse_basic, presented_credentials,
};
pub use params::{MAX_BODY_BYTES, Params, parse_body};
