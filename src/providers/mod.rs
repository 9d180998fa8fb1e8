//! Provider integrations: wire types and codecs for the services behind the gateway.

pub mod google;
