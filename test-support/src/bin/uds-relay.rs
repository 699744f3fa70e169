//! `uds-relay SOCKET HOST:PORT`: accepts connections on the Unix socket SOCKET and relays each
//! to HOST:PORT over TCP, both ways, until either side closes.
//!
//! Network-namespace tests (`test_support::netns`) start it inside a lab host with
//! `ip netns exec`: the socket is a file the test process can open from the machine's own
//! namespace, the TCP side is a connection from that host to the api.

use std::path::Path;

use anyhow::Context;
use tokio::net::{TcpStream, UnixListener};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(socket), Some(target), None) = (args.next(), args.next(), args.next()) else {
        anyhow::bail!("usage: uds-relay SOCKET HOST:PORT");
    };
    if Path::new(&socket).exists() {
        std::fs::remove_file(&socket).with_context(|| format!("cannot replace {socket}"))?;
    }
    let listener = UnixListener::bind(&socket).with_context(|| format!("cannot bind {socket}"))?;
    eprintln!("uds-relay: {socket} -> {target}");
    loop {
        let (mut inbound, _) = listener.accept().await.context("accept")?;
        let target = target.clone();
        tokio::spawn(async move {
            match TcpStream::connect(&target).await {
                Ok(mut outbound) => {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                Err(e) => eprintln!("uds-relay: cannot connect to {target}: {e}"),
            }
        });
    }
}
