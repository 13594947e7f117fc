//! A TCP echo server on filch async tasks, with `async-io` for the sockets: one task
//! accepts connections and spawns one task per connection, which writes back every byte
//! it reads until the client closes its side.
//!
//! ```text
//! cargo run --release --example async_echo
//! ```
//!
//! As shipped it binds an ephemeral port on 127.0.0.1, prints the address, and then runs a
//! built-in client that sends a few lines, checks each comes back unchanged, and exits, so
//! the example ends by itself (and fails loudly if the echo is wrong). To make it a real
//! server:
//!
//! 1. Bind a fixed address: `Async::<TcpListener>::bind(([0, 0, 0, 0], 7000))`.
//! 2. Replace everything after the `println!` in `main` with `sched.block_on(serve(listener))`,
//!    and delete `self_test`.
//!
//! Then `nc localhost 7000` (or any TCP client) talks to it. The dependencies are `filch`,
//! `async-io = "2"` and `futures` (its `std` feature, for `AsyncReadExt`/`AsyncWriteExt`).
//! async-io drives its sockets from its own reactor thread, which wakes the filch tasks
//! waiting on them; the filch workers never block on I/O.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};

use async_io::Async;
use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Accepts connections forever, echoing each on its own task.
async fn serve(listener: Async<TcpListener>) -> io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        filch::spawn_async_detached(async move {
            if let Err(e) = echo(stream).await {
                eprintln!("{peer}: {e}");
            }
        })
        .expect("the scheduler is running");
    }
}

/// Writes back everything read from `stream` until the peer closes its side.
async fn echo(stream: Async<TcpStream>) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = (&stream).read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        (&stream).write_all(&buf[..n]).await?;
    }
}

/// Connects to `addr`, sends a few lines one at a time, and checks each comes back whole.
async fn self_test(addr: SocketAddr) -> io::Result<()> {
    let stream = Async::<TcpStream>::connect(addr).await?;
    let mut reader = BufReader::new(&stream);
    let lines = ["hello, filch\n", "a second line\n", &"x".repeat(10_000), "\n", "bye\n"];
    let mut sent = String::new();
    for line in lines {
        (&stream).write_all(line.as_bytes()).await?;
        sent.push_str(line);
    }
    stream.get_ref().shutdown(Shutdown::Write)?;
    let mut received = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            break;
        }
        received.push_str(&line);
    }
    assert_eq!(received, sent, "the echo differs from what was sent");
    println!("self-test: {} bytes echoed back unchanged", received.len());
    Ok(())
}

fn main() -> io::Result<()> {
    let sched = filch::Scheduler::builder().build().expect("default settings are valid");
    let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0))?;
    println!("echo server listening on {}", listener.get_ref().local_addr()?);

    let addr = listener.get_ref().local_addr()?;
    let server = sched.spawn_async(serve(listener));
    sched.block_on(self_test(addr))?;
    // The accept loop never ends by itself: stop it, and let the scheduler shut down.
    assert!(server.abort(), "the server stopped early");
    assert!(matches!(server.join(), Err(filch::TaskError::Cancelled)));
    Ok(())
}
