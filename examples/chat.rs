//! A chat room, the port of `chat.py` of the reference programs (Python's
//! `ThreadingTCPServer` with a `StreamRequestHandler`): every line a member sends goes to every
//! other member, prefixed with the sender's address, as `('127.0.0.1', 54321): hello`. It shows
//! waiting connections: each member's turn reads one line, broadcasts it through the other
//! members' `ConnectionWriter`s (`req.writer()`: cloneable, safe beside their own turns) and
//! ends with `Next::WaitForInput`, so an idle member waits in the server's reactor and holds no
//! thread (before its first line too: `StreamOptions::wait_for_first_input`). `setup` joins the
//! room at the accept and `finish` leaves it, once each, as Python's `handle` adds the member
//! and its `finally:` discards it. Ctrl-C stops it.
//!
//! ```text
//! cargo run --example chat
//! python3 examples/python/chat_test.py 300
//! nc 127.0.0.1 9998                      # in two terminals or more: type lines in each
//! ```
//!
//! `chat_test.py N` connects N members at once and checks that each received every other
//! member's line; 300 passes, as against the original.

// An example program talks to its user on stdout.
#![allow(clippy::print_stdout)]
#![forbid(unsafe_code)]

use sockserve::{Address, BoxError, ConnectionWriter, Handler, Next, StreamOptions, StreamRequest};
use sockserve::{Threading, ThreadingTcpServer};
use std::{collections::HashMap, io::BufRead, sync::Arc, sync::Mutex};

/// Python's `self.server.members` and `self.server.lock` in one: each member's writer under
/// its address (unique among live connections). A lock is poisoned only by a panic while it
/// is held, and nothing panics under it here: hence `unwrap`.
#[derive(Clone)]
struct Chat(Arc<Mutex<HashMap<Address, ConnectionWriter>>>);

impl Handler<StreamRequest> for Chat {
    fn setup(&mut self, req: &mut StreamRequest) -> Result<(), BoxError> {
        let mut members = self.0.lock().unwrap();
        members.insert(req.client_address.clone(), req.writer());
        Ok(())
    }

    /// One line a turn (Python's `for line in self.rfile`); lines sent together are each a
    /// turn at once, without a wait.
    fn handle(&mut self, req: &mut StreamRequest) -> Result<Next, BoxError> {
        let mut msg = format!("{:#}: ", req.client_address).into_bytes(); // Python's tuple
        if req.rfile.read_until(b'\n', &mut msg)? == 0 {
            return Ok(Next::Done);
        }
        let others = self.0.lock().unwrap().clone();
        for (_, writer) in others.iter().filter(|(a, _)| **a != req.client_address) {
            let _ = writer.write_all(&msg); // a member that left or failed misses the line
        }
        Ok(Next::WaitForInput)
    }

    fn finish(&mut self, req: &mut StreamRequest) -> Result<(), BoxError> {
        self.0.lock().unwrap().remove(&req.client_address);
        Ok(())
    }
}

fn main() -> Result<(), sockserve::Error> {
    sockserve::socket::raise_fd_limit()?; // a descriptor per member: as many as allowed
    let mut server = ThreadingTcpServer::builder_handler(Chat(Arc::default()))
        .allow_reuse_address(true)
        .strategy(Threading::new().daemon_threads(true))
        // Members speak first: one that joined (setup) waits for its first line without a thread.
        .request_options(StreamOptions::default().wait_for_first_input(true))
        // Python's default of 5 drops connections under a burst (sockserve's is SOMAXCONN).
        .request_queue_size(1024)
        .bind("127.0.0.1:9998")?;
    let address = server.server_address().as_inet().expect("an IP server");
    println!("chat on ('{}', {})", address.ip(), address.port());
    server.serve_forever()
}
