//! A chat room (`chat.py` of the reference programs: Python's `ThreadingTCPServer` with a
//! `StreamRequestHandler`): every line a member sends goes to every other member, prefixed with
//! the sender's address, as `('127.0.0.1', 54321): hello`. Ctrl-C stops it.
//!
//! ```text
//! cargo run --example chat
//! python3 examples/python/chat_test.py 50
//! ```
//!
//! `chat_test.py N` connects N members at once and checks that each received every other
//! member's line; 300 passes, as against the original.

// An example program talks to its user on stdout.
#![allow(clippy::print_stdout)]
#![forbid(unsafe_code)]

use sockserve::{Address, Socket, Threading, ThreadingTcpServer};
use std::collections::HashMap;
use std::io::{self, BufRead};
use std::sync::{Arc, Mutex};

fn main() -> Result<(), sockserve::Error> {
    // Python's `self.server.members` and `self.server.lock` in one, each member's connection
    // under its address (unique among live connections). A lock is poisoned only by a panic
    // while it is held, and nothing panics under it here: hence `unwrap`.
    let members: Arc<Mutex<HashMap<Address, Arc<Socket>>>> = Arc::default();
    let mut server = ThreadingTcpServer::builder(move |req| {
        let (me, connection) = (req.client_address.clone(), Arc::clone(&req.connection));
        members.lock().unwrap().insert(me.clone(), connection);
        let mut line = Vec::new();
        // The closure is Python's `try:`; what follows it, the `finally:`.
        let served = (|| -> io::Result<()> {
            while req.rfile.read_until(b'\n', &mut line)? > 0 {
                let mut msg = format!("{me:#}: ").into_bytes(); // Python's tuple
                msg.append(&mut line); // moves the line, leaving `line` empty for the next
                let mut others = members.lock().unwrap().clone();
                others.remove(&me);
                for s in others.values() {
                    // A member that left, or whose connection failed, misses the line.
                    let _ = s.sendall(&msg);
                }
            }
            Ok(())
        })();
        members.lock().unwrap().remove(&me);
        served?;
        Ok(())
    })
    .allow_reuse_address(true)
    // Each member holds a pool thread for as long as it is connected: the pool's default cap
    // (256) would leave the 257th waiting, unserved, where Python's threads are not capped.
    .strategy(Threading::new().daemon_threads(true).max_threads(1024))
    // Python's default of 5 drops connections under a burst (sockserve's is SOMAXCONN).
    .request_queue_size(1024)
    .bind("127.0.0.1:9998")?;
    let address = server.server_address().as_inet().expect("an IP server");
    println!("chat on ('{}', {})", address.ip(), address.port());
    server.serve_forever()
}
