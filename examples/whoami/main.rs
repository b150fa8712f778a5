//! The whoami test backend as its own small binary (for the `FROM scratch` test image):
//! `whoami [--listen ADDR] [--name NAME] [--udp ADDR]`. Same server as `swarmgate whoami`; `--udp` adds the
//! UDP echo (`swarmgate::whoami::serve_udp`).

use tokio_util::sync::CancellationToken;

fn main() -> std::io::Result<()> {
    let mut listen = "0.0.0.0:80".to_string();
    let mut name = std::env::var("WHOAMI_NAME").unwrap_or_else(|_| "whoami".into());
    let mut udp: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or(listen),
            "--name" => name = args.next().unwrap_or(name),
            "--udp" => udp = args.next(),
            "--port" => listen = format!("0.0.0.0:{}", args.next().unwrap_or_default()),
            other => {
                eprintln!(
                    "whoami: unknown argument `{other}` (use --listen ADDR, --port N, --name NAME)"
                );
                std::process::exit(2);
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind(&listen).await?;
        println!("whoami {name} listening on {}", l.local_addr()?);
        let cancel = CancellationToken::new();
        if let Some(u) = &udp {
            let s = tokio::net::UdpSocket::bind(u).await?;
            println!("whoami {name} listening on {}/udp", s.local_addr()?);
            tokio::spawn(swarmgate::whoami::serve_udp(
                s,
                name.clone(),
                cancel.clone(),
            ));
        }
        tokio::spawn(swarmgate::whoami::serve(l, name, cancel.clone()));
        let _ = tokio::signal::ctrl_c().await;
        cancel.cancel();
        Ok(())
    })
}
