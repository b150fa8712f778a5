//! The whoami test backend as its own small binary (for the `FROM scratch` test image):
//! `whoami [--listen ADDR] [--port N] [--name NAME] [--udp ADDR] [--on-sigterm ignore|exit|drain:DUR]
//! [--keepalive normal|close-each|close-after:DUR]`, or `whoami healthcheck [--port N]` (exit 0 when
//! `GET /health` answers 200: an exec-form `HEALTHCHECK CMD`). Same server as `swarmgate whoami`; the modes
//! are also read from `WHOAMI_ON_SIGTERM` / `WHOAMI_KEEPALIVE` (see `swarmgate::whoami::Modes`); `--udp`
//! adds the UDP echo (`swarmgate::whoami::serve_udp`).

use swarmgate::whoami::Modes;
use tokio_util::sync::CancellationToken;

fn main() -> std::io::Result<()> {
    let mut listen = "0.0.0.0:80".to_string();
    let mut name = std::env::var("WHOAMI_NAME").unwrap_or_else(|_| "whoami".into());
    let mut udp: Option<String> = None;
    let fail = |e: String| -> ! {
        eprintln!("whoami: {e}");
        std::process::exit(2)
    };
    let mut modes = Modes::from_env().unwrap_or_else(|e| fail(e));
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("healthcheck") {
        args.next();
        let port = match (args.next().as_deref(), args.next()) {
            (Some("--port"), Some(p)) => p.parse().unwrap_or(80),
            _ => 80,
        };
        std::process::exit(swarmgate::whoami::healthcheck(port));
    }
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or(listen),
            "--name" => name = args.next().unwrap_or(name),
            "--udp" => udp = args.next(),
            "--port" => listen = format!("0.0.0.0:{}", args.next().unwrap_or_default()),
            "--on-sigterm" => {
                modes.on_term = Modes::parse_on_term(&args.next().unwrap_or_default())
                    .unwrap_or_else(|e| fail(e))
            }
            "--keepalive" => {
                modes.keepalive = Modes::parse_keepalive(&args.next().unwrap_or_default())
                    .unwrap_or_else(|e| fail(e))
            }
            other => fail(format!(
                "unknown argument `{other}` (use --listen ADDR, --port N, --name NAME, --udp ADDR, --on-sigterm, --keepalive)"
            )),
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
        tokio::spawn(swarmgate::whoami::serve_with(
            l,
            name,
            modes,
            cancel.clone(),
        ));
        swarmgate::whoami::stop_signal(modes.on_term).await;
        cancel.cancel();
        Ok(())
    })
}
