//! The pending OAuth authorization between "Connect SePay" and the callback: sealed into the
//! state cookie, opened and verified on return. The logic lives in `sepay_crypto::oauth_state`
//! (pure, fuzzed in `fuzz/`); this module keeps the connector's paths.

pub use sepay_crypto::oauth_state::*;
