//! The bench's prefork rows ("prefork echo, 4 workers: ...", `--only prefork`): the
//! `prefork_server` example (a supervisor and 4 worker processes, each a threading echo
//! server, or a synchronous one) under the TCP workloads of the main echo tables (ping-pong
//! with 1, `--connections` and 100 connections, and a new connection per request), side by
//! side with the one-process `echo_server --mode threading` and tokio, with the ratios to
//! both. They are echo rows of their own [`Lineup`]: the servers are [`Server`] variants,
//! started, loaded, checked and stopped as the main rows' are, each run on fresh servers.
//! The server's CPU time per request is not shown: the work is in the workers, which the
//! supervisor's CPU time does not count.

use super::loadgen::Workload;
use super::{Bins, EchoTarget, Lineup, Load, Options, Server, Spec, example_bin};
use crate::cmd::Cmd;
use crate::integration::Family;

/// The workers of the prefork servers.
pub(super) const WORKERS: usize = 4;

/// The prefork tables: prefork threading and sync, the one-process threading server, tokio.
pub(super) const LINEUP: Lineup = Lineup {
    heading: "prefork echo, 4 workers: ",
    servers: &[
        Server::Prefork("threading"),
        Server::Prefork("sync"),
        Server::Sockserve("threading"),
        Server::Tokio,
    ],
    bases: &[
        (
            Server::Sockserve("threading"),
            "vs 1 process",
            "vs_one_process",
        ),
        (Server::Tokio, "vs tokio", "vs_tokio"),
    ],
    workloads,
    targets: no_targets,
};

/// The workloads of the prefork tables: those of the main rows with client threads over TCP
/// (ping-pong with 1, `--connections` and 100 connections, and a new connection per request).
fn workloads(opts: &Options) -> Vec<Spec> {
    super::workloads(opts)
        .into_iter()
        .filter(|spec| Server::Prefork("threading").in_row(*spec))
        .collect()
}

/// The issues set the prefork rows no target.
fn no_targets() -> Vec<EchoTarget> {
    Vec::new()
}

/// `prefork_server --workers 4 --mode MODE --addr ADDR`.
pub(super) fn cmd(bins: &Bins, mode: &str, addr: &str) -> Cmd {
    Cmd::new(example_bin(&bins.examples, "prefork_server")).args([
        "--workers",
        &WORKERS.to_string(),
        "--mode",
        mode,
        "--addr",
        addr,
    ])
}

/// Why a prefork server does not run `spec`, if it does not: a synchronous worker serves one
/// connection at a time, so more persistent connections than workers would wait.
pub(super) fn skip_reason(spec: Spec, server: Server) -> Option<&'static str> {
    let Server::Prefork(mode) = server else {
        return None;
    };
    match spec.load {
        _ if spec.family != Family::Tcp => Some("n/a: the prefork example is a TCP server"),
        Load::Crowd(_) => Some("n/a: not in the prefork rows"),
        Load::Threads(Workload::PingPong { connections })
            if mode == "sync" && connections > WORKERS =>
        {
            Some("n/a: one connection at a time per worker")
        }
        Load::Threads(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefork_rows_are_the_tcp_workloads_and_sync_skips_more_connections_than_workers() {
        let opts = Options::default();
        let specs = workloads(&opts);
        assert_eq!(specs.len(), 4, "{specs:#?}");
        let runs = |server: Server| {
            specs
                .iter()
                .filter(|s| server.in_row(**s) && s.skip_reason(server).is_none())
                .count()
        };
        assert_eq!(runs(Server::Prefork("threading")), 4);
        assert_eq!(
            runs(Server::Prefork("sync")),
            2,
            "1 connection and per request"
        );
        assert_eq!(runs(Server::Sockserve("threading")), 4);
        assert_eq!(runs(Server::Tokio), 4);
        for spec in &specs {
            assert!(LINEUP.label(*spec).starts_with("prefork echo, 4 workers: "));
        }
        // Not in the main rows' other families.
        let udp = Spec::ping_pong(Family::Udp, 10);
        assert!(!Server::Prefork("threading").in_row(udp));
        assert!(skip_reason(udp, Server::Prefork("threading")).is_some());
    }
}
