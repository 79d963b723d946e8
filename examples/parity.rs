//! Every sockserve path that `PARITY.md` cites, so that a build proves each one exists:
//! `cargo doc` (broken intra-doc links denied, as `cargo xtask ci` runs it) resolves the
//! links below, and `cargo build` the `use` list. Generated from `PARITY.md` by
//! `cargo xtask parity`; `cargo xtask tidy` fails when it is stale. Do not edit.
//!
//! - [`sockserve`]
//! - [`sockserve::Address::family`]
//! - [`sockserve::Builder::allow_reuse_address`]
//! - [`sockserve::Builder::allow_reuse_port`]
//! - [`sockserve::Builder::bind`]
//! - [`sockserve::Builder::build_unbound`]
//! - [`sockserve::Builder::handle_error`]
//! - [`sockserve::Builder::handle_timeout`]
//! - [`sockserve::Builder::max_connections`]
//! - [`sockserve::Builder::max_packet_size`]
//! - [`sockserve::Builder::overload`]
//! - [`sockserve::Builder::request_queue_size`]
//! - [`sockserve::Builder::service_actions`]
//! - [`sockserve::Builder::timeout`]
//! - [`sockserve::Builder::verify_request`]
//! - [`sockserve::CloseReport`]
//! - [`sockserve::DEFAULT_MAX_CHILDREN`]
//! - [`sockserve::DatagramOptions`]
//! - [`sockserve::DatagramOptions::reply_when_empty`]
//! - [`sockserve::DatagramRequest`]
//! - [`sockserve::DatagramRequest::client_address`]
//! - [`sockserve::DatagramRequest::packet`]
//! - [`sockserve::DatagramRequest::rfile`]
//! - [`sockserve::DatagramRequest::socket`]
//! - [`sockserve::DatagramRequest::wfile`]
//! - [`sockserve::DefaultHooks`]
//! - [`sockserve::Family`]
//! - [`sockserve::Family::Inet`]
//! - [`sockserve::Family::Inet6`]
//! - [`sockserve::Family::Unix`]
//! - [`sockserve::Forking`]
//! - [`sockserve::Forking::active_children`]
//! - [`sockserve::Forking::block_on_close`]
//! - [`sockserve::Forking::max_children`]
//! - [`sockserve::ForkingTcpServer`]
//! - [`sockserve::ForkingUdpServer`]
//! - [`sockserve::ForkingUnixDatagramServer`]
//! - [`sockserve::ForkingUnixStreamServer`]
//! - [`sockserve::Handler`]
//! - [`sockserve::Handler::finish`]
//! - [`sockserve::Handler::handle`]
//! - [`sockserve::Handler::setup`]
//! - [`sockserve::HandlerError`]
//! - [`sockserve::HandlerExt`]
//! - [`sockserve::Hooks::handle_error`]
//! - [`sockserve::Hooks::handle_timeout`]
//! - [`sockserve::Hooks::service_actions`]
//! - [`sockserve::Hooks::shutdown_request`]
//! - [`sockserve::Hooks::verify_request`]
//! - [`sockserve::Job`]
//! - [`sockserve::Job::run`]
//! - [`sockserve::Job::run_in_forked_child`]
//! - [`sockserve::Kind`]
//! - [`sockserve::Next`]
//! - [`sockserve::Overload`]
//! - [`sockserve::RequestRef`]
//! - [`sockserve::Running::shutdown`]
//! - [`sockserve::SOMAXCONN`]
//! - [`sockserve::Server`]
//! - [`sockserve::Server::bind`]
//! - [`sockserve::Server::bind_handler`]
//! - [`sockserve::Server::builder`]
//! - [`sockserve::Server::builder_handler`]
//! - [`sockserve::Server::fileno`]
//! - [`sockserve::Server::handle_request`]
//! - [`sockserve::Server::max_packet_size`]
//! - [`sockserve::Server::serve_forever`]
//! - [`sockserve::Server::serve_forever_with`]
//! - [`sockserve::Server::server_activate`]
//! - [`sockserve::Server::server_address`]
//! - [`sockserve::Server::server_bind`]
//! - [`sockserve::Server::server_close`]
//! - [`sockserve::Server::server_close_by`]
//! - [`sockserve::Server::socket`]
//! - [`sockserve::Server::spawn`]
//! - [`sockserve::ServerContext`]
//! - [`sockserve::ServerContext::shutdown`]
//! - [`sockserve::ShutdownHandle::children`]
//! - [`sockserve::ShutdownHandle::shutdown`]
//! - [`sockserve::ShutdownHandle::shutdown_gracefully`]
//! - [`sockserve::Socket`]
//! - [`sockserve::Socket::accept`]
//! - [`sockserve::Socket::bind`]
//! - [`sockserve::Socket::close`]
//! - [`sockserve::Socket::fileno`]
//! - [`sockserve::Socket::getsockname`]
//! - [`sockserve::Socket::gettimeout`]
//! - [`sockserve::Socket::listen`]
//! - [`sockserve::Socket::makefile_reader`]
//! - [`sockserve::Socket::makefile_writer`]
//! - [`sockserve::Socket::new`]
//! - [`sockserve::Socket::recvfrom`]
//! - [`sockserve::Socket::sendall`]
//! - [`sockserve::Socket::sendall_by`]
//! - [`sockserve::Socket::sendto`]
//! - [`sockserve::Socket::setsockopt`]
//! - [`sockserve::Socket::settimeout`]
//! - [`sockserve::Socket::shutdown`]
//! - [`sockserve::Strategy::process_request`]
//! - [`sockserve::Strategy::server_close`]
//! - [`sockserve::Strategy::service_actions`]
//! - [`sockserve::StreamOptions`]
//! - [`sockserve::StreamOptions::disable_nagle_algorithm`]
//! - [`sockserve::StreamOptions::idle_timeout`]
//! - [`sockserve::StreamOptions::rbufsize`]
//! - [`sockserve::StreamOptions::timeout`]
//! - [`sockserve::StreamOptions::turn_timeout`]
//! - [`sockserve::StreamOptions::wbufsize`]
//! - [`sockserve::StreamOptions::write_timeout`]
//! - [`sockserve::StreamReader`]
//! - [`sockserve::StreamRequest`]
//! - [`sockserve::StreamRequest::client_address`]
//! - [`sockserve::StreamRequest::connection`]
//! - [`sockserve::StreamRequest::rfile`]
//! - [`sockserve::StreamRequest::server`]
//! - [`sockserve::StreamRequest::wfile`]
//! - [`sockserve::StreamWriter`]
//! - [`sockserve::Tcp`]
//! - [`sockserve::TcpServer`]
//! - [`sockserve::Threading`]
//! - [`sockserve::Threading::block_on_close`]
//! - [`sockserve::Threading::daemon_threads`]
//! - [`sockserve::Threading::threads`]
//! - [`sockserve::ThreadingTcpServer`]
//! - [`sockserve::ThreadingUdpServer`]
//! - [`sockserve::ThreadingUnixDatagramServer`]
//! - [`sockserve::ThreadingUnixStreamServer`]
//! - [`sockserve::Type`]
//! - [`sockserve::Type::Datagram`]
//! - [`sockserve::Type::Stream`]
//! - [`sockserve::Udp`]
//! - [`sockserve::UdpServer`]
//! - [`sockserve::UnixDatagram`]
//! - [`sockserve::UnixDatagramServer`]
//! - [`sockserve::UnixStream`]
//! - [`sockserve::UnixStreamServer`]
//! - [`sockserve::handler::driver::finish_request`]
//! - [`sockserve::mixins`]
//! - [`sockserve::prelude`]
//! - [`sockserve::reactor`]
//! - [`sockserve::reactor::Reactor`]
//! - [`sockserve::serve_until_signal`]
//! - [`sockserve::socket`]
//! - [`sockserve::socket::Shutdown::Write`]
//! - [`sockserve::socket::SockOpt`]
//! - [`sockserve::socket::exit_now`]
//! - [`sockserve::socket::opt::NoDelay`]
//! - [`sockserve::socket::opt::ReuseAddress`]
//! - [`sockserve::socket::opt::ReusePort`]
//! - [`sockserve::socket::raise_fd_limit`]

#![allow(unused_imports)]

use sockserve as _;
use sockserve::CloseReport as _;
use sockserve::DEFAULT_MAX_CHILDREN as _;
use sockserve::DatagramOptions as _;
use sockserve::DatagramRequest as _;
use sockserve::DefaultHooks as _;
use sockserve::Family as _;
use sockserve::Family::Inet as _;
use sockserve::Family::Inet6 as _;
use sockserve::Family::Unix as _;
use sockserve::Forking as _;
use sockserve::ForkingTcpServer as _;
use sockserve::ForkingUdpServer as _;
use sockserve::ForkingUnixDatagramServer as _;
use sockserve::ForkingUnixStreamServer as _;
use sockserve::Handler as _;
use sockserve::HandlerError as _;
use sockserve::HandlerExt as _;
use sockserve::Job as _;
use sockserve::Kind as _;
use sockserve::Next as _;
use sockserve::Overload as _;
use sockserve::RequestRef as _;
use sockserve::SOMAXCONN as _;
use sockserve::Server as _;
use sockserve::ServerContext as _;
use sockserve::Socket as _;
use sockserve::StreamOptions as _;
use sockserve::StreamReader as _;
use sockserve::StreamRequest as _;
use sockserve::StreamWriter as _;
use sockserve::Tcp as _;
use sockserve::TcpServer as _;
use sockserve::Threading as _;
use sockserve::ThreadingTcpServer as _;
use sockserve::ThreadingUdpServer as _;
use sockserve::ThreadingUnixDatagramServer as _;
use sockserve::ThreadingUnixStreamServer as _;
use sockserve::Type as _;
use sockserve::Type::Datagram as _;
use sockserve::Type::Stream as _;
use sockserve::Udp as _;
use sockserve::UdpServer as _;
use sockserve::UnixDatagram as _;
use sockserve::UnixDatagramServer as _;
use sockserve::UnixStream as _;
use sockserve::UnixStreamServer as _;
use sockserve::handler::driver::finish_request as _;
use sockserve::mixins as _;
use sockserve::prelude as _;
use sockserve::reactor as _;
use sockserve::reactor::Reactor as _;
use sockserve::serve_until_signal as _;
use sockserve::socket as _;
use sockserve::socket::Shutdown::Write as _;
use sockserve::socket::SockOpt as _;
use sockserve::socket::exit_now as _;
use sockserve::socket::opt::NoDelay as _;
use sockserve::socket::opt::ReuseAddress as _;
use sockserve::socket::opt::ReusePort as _;
use sockserve::socket::raise_fd_limit as _;
