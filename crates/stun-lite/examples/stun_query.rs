//! Prints the public `IP:PORT` of a UDP socket as STUN servers see it.
//!
//! ```text
//! cargo run -p stun-lite --example stun_query -- [--bind ADDR] [--timeout SECS] SERVER...
//! ```
//!
//! Without `--bind`, a fresh socket is used ([`stun_lite::query`], DNS names
//! allowed). With `--bind`, the query runs on that socket ([`stun_lite::query_on`]),
//! the way the SIP socket learns its own mapping. Output: `PUBLIC via SERVER`;
//! exit status 1 when no server answers.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut bind: Option<SocketAddr> = None;
    let mut timeout = Duration::from_secs(5);
    let mut servers = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bind" => match args.next().and_then(|a| a.parse().ok()) {
                Some(addr) => bind = Some(addr),
                None => return usage("--bind needs IP:PORT"),
            },
            "--timeout" => match args.next().and_then(|a| a.parse().ok()) {
                Some(secs) => timeout = Duration::from_secs_f64(secs),
                None => return usage("--timeout needs seconds"),
            },
            _ => servers.push(arg),
        }
    }
    if servers.is_empty() {
        return usage("no server given");
    }
    let result = match bind {
        None => stun_lite::query(&servers, timeout).await,
        Some(bind) => on_socket(bind, &servers, timeout).await,
    };
    match result {
        Ok(found) => {
            println!("{} via {}", found.public, found.server);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("stun_query: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn on_socket(
    bind: SocketAddr,
    servers: &[String],
    timeout: Duration,
) -> Result<stun_lite::Discovery, stun_lite::StunError> {
    let socket = tokio::net::UdpSocket::bind(bind).await?;
    let specs = servers
        .iter()
        .map(|s| s.parse())
        .collect::<Result<Vec<stun_lite::ServerSpec>, _>>()?;
    let (addrs, _unresolved) = stun_lite::resolve_servers(&specs).await;
    stun_lite::query_on(&socket, &addrs, timeout).await
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "stun_query: {problem}\nusage: stun_query [--bind IP:PORT] [--timeout SECS] SERVER..."
    );
    ExitCode::from(2)
}
