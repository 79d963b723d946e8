//! The HTTP of `http_server`, apart from its connections: the request head and its parser
//! ([`request`]), responses ([`response`]), HTTP dates ([`date`]), and the files under the root
//! ([`files`]). Each has its unit tests (`cargo test -p sockserve-examples --example
//! http_server`).

pub(crate) mod date;
pub(crate) mod files;
pub(crate) mod request;
pub(crate) mod response;
