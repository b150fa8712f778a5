//! Table tests of the label function: plain maps in, configuration and errors out.

use super::*;

fn w(name: &str, labels: &[(&str, &str)], addrs: &[&str]) -> Workload {
    Workload {
        name: name.into(),
        container_name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        exposed_ports: vec![],
        addresses: addrs.iter().map(|a| a.to_string()).collect(),
        bindings: Vec::new(),
    }
}

fn swarm() -> Settings {
    Settings::new(Mode::Swarm)
}

fn docker() -> Settings {
    Settings::new(Mode::Containers)
}

fn urls(c: &Configuration, svc: &str) -> Vec<String> {
    c.http
        .services
        .get(svc)
        .and_then(|s| s.load_balancer.as_ref())
        .map(|lb| lb.servers.iter().map(|s| s.url.clone()).collect())
        .unwrap_or_default()
}

fn rule(c: &Configuration, r: &str) -> String {
    c.http
        .routers
        .get(r)
        .map(|r| r.rule.clone())
        .unwrap_or_else(|| panic!("no router {r}: {c:#?}"))
}

#[test]
fn implicit_router_and_service_with_default_rule() {
    let b = build(
        &w(
            "stack_web",
            &[("traefik.http.services.x.loadbalancer.server.port", "8080")],
            &["10.0.0.2", "10.0.0.3"],
        ),
        &swarm(),
    );
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    assert_eq!(rule(&b.config, "stack-web"), "Host(`stack-web`)");
    assert_eq!(b.config.http.routers["stack-web"].service, "x");
    assert_eq!(
        urls(&b.config, "x"),
        ["http://10.0.0.2:8080", "http://10.0.0.3:8080"]
    );
}

#[test]
fn rows_of_v2_v3_grammar() {
    // (labels, router, expected rule, service, expected urls of service)
    struct Row {
        labels: &'static [(&'static str, &'static str)],
        router: &'static str,
        rule: &'static str,
        service: &'static str,
        urls: &'static [&'static str],
    }
    let rows = [
        Row {
            labels: &[
                ("traefik.http.routers.r.rule", "Host(`a.test`)"),
                ("traefik.http.services.s.loadbalancer.server.port", "80"),
            ],
            router: "r",
            rule: "Host(`a.test`)",
            service: "s",
            urls: &["http://10.0.0.9:80"],
        },
        Row {
            labels: &[
                ("Traefik.HTTP.Routers.R.Rule", "Host(`a.test`)"),
                ("traefik.http.services.s.LoadBalancer.Server.Port", "81"),
            ],
            router: "R",
            rule: "Host(`a.test`)",
            service: "s",
            urls: &["http://10.0.0.9:81"],
        },
        Row {
            labels: &[
                ("traefik.http.routers.r.rule", "PathPrefix(`/x`)"),
                ("traefik.http.services.s.loadbalancer.server.port", "80"),
                (
                    "traefik.http.services.s.loadbalancer.server.scheme",
                    "https",
                ),
            ],
            router: "r",
            rule: "PathPrefix(`/x`)",
            service: "s",
            urls: &["https://10.0.0.9:80"],
        },
        Row {
            labels: &[("traefik.http.services.app.loadbalancer.server.port", "3000")],
            router: "svc",
            rule: "Host(`svc`)",
            service: "app",
            urls: &["http://10.0.0.9:3000"],
        },
        Row {
            labels: &[
                ("traefik.http.routers.r.rule", "Host(`b`)"),
                ("traefik.http.routers.r.service", "s2"),
                ("traefik.http.services.s1.loadbalancer.server.port", "1"),
                ("traefik.http.services.s2.loadbalancer.server.port", "2"),
            ],
            router: "r",
            rule: "Host(`b`)",
            service: "s2",
            urls: &["http://10.0.0.9:2"],
        },
        Row {
            labels: &[
                ("traefik.http.routers.r.rule", "Host(`v2`, `v2b`)"),
                ("traefik.http.routers.r.ruleSyntax", "v2"),
                ("traefik.http.services.s.loadbalancer.server.port", "80"),
            ],
            router: "r",
            rule: "Host(`v2`, `v2b`)",
            service: "s",
            urls: &["http://10.0.0.9:80"],
        },
        Row {
            labels: &[
                ("traefik.http.routers.r.rule", "Host(`u`)"),
                (
                    "traefik.http.services.s.loadbalancer.server.url",
                    "http://other:9",
                ),
            ],
            router: "r",
            rule: "Host(`u`)",
            service: "s",
            urls: &["http://other:9"],
        },
        Row {
            labels: &[
                ("traefik.http.services.s.loadbalancer.server.port", "80"),
                ("traefik.http.services.s.loadbalancer.server.weight", "3"),
            ],
            router: "svc",
            rule: "Host(`svc`)",
            service: "s",
            urls: &["http://10.0.0.9:80"],
        },
    ];
    for (i, row) in rows.iter().enumerate() {
        let b = build(&w("svc", row.labels, &["10.0.0.9"]), &swarm());
        assert!(b.errors.is_empty(), "row {i}: {:?}", b.errors);
        assert_eq!(rule(&b.config, row.router), row.rule, "row {i}");
        assert_eq!(
            b.config.http.routers[row.router].service, row.service,
            "row {i}"
        );
        assert_eq!(urls(&b.config, row.service), row.urls, "row {i}");
    }
}

#[test]
fn nested_values_decode_like_the_file_provider() {
    let b = build(
        &w(
            "api",
            &[
                ("traefik.http.routers.api.rule", "Host(`api.test`)"),
                ("traefik.http.routers.api.entrypoints", "web,websecure"),
                ("traefik.http.routers.api.priority", "42"),
                ("traefik.http.routers.api.tls", "true"),
                ("traefik.http.routers.api.tls.certresolver", "le"),
                ("traefik.http.routers.api.tls.domains[0].main", "api.test"),
                (
                    "traefik.http.routers.api.tls.domains[0].sans",
                    "a.api.test,b.api.test",
                ),
                ("traefik.http.routers.api.middlewares", "strip,auth@file"),
                (
                    "traefik.http.middlewares.strip.stripprefix.prefixes",
                    "/api",
                ),
                ("traefik.http.services.api.loadbalancer.server.port", "8080"),
                (
                    "traefik.http.services.api.loadbalancer.sticky.cookie",
                    "true",
                ),
                (
                    "traefik.http.services.api.loadbalancer.sticky.cookie.name",
                    "sess",
                ),
                (
                    "traefik.http.services.api.loadbalancer.healthcheck.path",
                    "/health",
                ),
                (
                    "traefik.http.services.api.loadbalancer.healthcheck.interval",
                    "5s",
                ),
                (
                    "traefik.http.services.api.loadbalancer.passhostheader",
                    "false",
                ),
            ],
            &["10.1.0.5"],
        ),
        &swarm(),
    );
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    let r = &b.config.http.routers["api"];
    assert_eq!(r.entry_points, ["web", "websecure"]);
    assert_eq!(r.priority, Some(42));
    assert_eq!(r.middlewares, ["strip", "auth@file"]);
    let tls = r.tls.as_ref().expect("tls");
    assert_eq!(tls.cert_resolver.as_deref(), Some("le"));
    assert_eq!(tls.domains[0].sans, ["a.api.test", "b.api.test"]);
    let lb = b.config.http.services["api"]
        .load_balancer
        .as_ref()
        .expect("lb");
    assert_eq!(
        lb.sticky
            .as_ref()
            .and_then(|s| s.cookie.as_ref())
            .and_then(|c| c.name.as_deref()),
        Some("sess")
    );
    assert_eq!(
        lb.health_check.as_ref().map(|h| h.path.as_str()),
        Some("/health")
    );
    assert_eq!(lb.pass_host_header, Some(false));
    assert!(b.config.http.middlewares.contains_key("strip"));
}

#[test]
fn per_router_isolation_drops_only_the_bad_item() {
    let b = build(
        &w(
            "shop",
            &[
                ("traefik.http.routers.good.rule", "Host(`good.test`)"),
                ("traefik.http.routers.good.service", "s"),
                (
                    "traefik.http.routers.badrule.rule",
                    "Host(`x.test`) && PathPrefx(`/`)",
                ),
                ("traefik.http.routers.badrule.service", "s"),
                ("traefik.http.routers.badprio.rule", "Host(`p.test`)"),
                ("traefik.http.routers.badprio.priority", "high"),
                ("traefik.http.routers.badprio.service", "s"),
                ("traefik.http.routers.badport.rule", "Host(`bp.test`)"),
                ("traefik.http.routers.badport.service", "bp"),
                (
                    "traefik.http.services.bp.loadbalancer.server.port",
                    "eighty",
                ),
                ("traefik.http.services.s.loadbalancer.server.port", "80"),
                ("traefik.http.routers.typo.rulle", "Host(`t.test`)"),
            ],
            &["10.0.0.1"],
        ),
        &swarm(),
    );
    // One line per mistake: router `badport` falls with its service `bp`, on bp's line.
    let dropped: BTreeSet<&str> = b.errors.iter().map(|e| e.item.as_str()).collect();
    assert_eq!(
        dropped,
        BTreeSet::from(["badrule", "badprio", "bp", "typo"]),
        "{:#?}",
        b.errors
    );
    let dropped_items: BTreeSet<&str> = b.config.dropped.iter().map(|d| d.name.as_str()).collect();
    assert!(dropped_items.contains("badport"), "{:?}", b.config.dropped);
    assert_eq!(b.config.http.routers.keys().collect::<Vec<_>>(), ["good"]);
    assert_eq!(urls(&b.config, "s"), ["http://10.0.0.1:80"]);
    let find = |item: &str| {
        b.errors
            .iter()
            .find(|e| e.item == item)
            .unwrap_or_else(|| panic!("{item}"))
    };
    assert_eq!(find("badrule").label, "traefik.http.routers.badrule.rule");
    assert!(
        find("badrule").reason.contains("PathPrefx"),
        "{}",
        find("badrule")
    );
    assert_eq!(
        find("badprio").label,
        "traefik.http.routers.badprio.priority"
    );
    assert_eq!(
        find("bp").label,
        "traefik.http.services.bp.loadbalancer.server.port"
    );
    assert!(find("bp")
        .reason
        .contains("router `badport` is dropped with it"));
    assert!(
        find("typo").reason.contains("did you mean"),
        "{}",
        find("typo")
    );
    let line = find("badrule").to_string();
    assert!(
        line.starts_with(
            "shop: router `badrule` dropped: label `traefik.http.routers.badrule.rule`"
        ),
        "{line}"
    );
}

#[test]
fn router_without_service_and_several_services_is_an_error() {
    let b = build(
        &w(
            "m",
            &[
                ("traefik.http.routers.r.rule", "Host(`m`)"),
                ("traefik.http.services.a.loadbalancer.server.port", "1"),
                ("traefik.http.services.b.loadbalancer.server.port", "2"),
            ],
            &["10.0.0.1"],
        ),
        &swarm(),
    );
    assert!(b.config.http.routers.is_empty());
    assert_eq!(b.errors.len(), 1);
    assert!(
        b.errors[0].reason.contains("several services"),
        "{}",
        b.errors[0]
    );
    // No router labels and several services: no implicit router, a note, no error.
    let b = build(
        &w(
            "m",
            &[
                ("traefik.http.services.a.loadbalancer.server.port", "1"),
                ("traefik.http.services.b.loadbalancer.server.port", "2"),
            ],
            &["10.0.0.1"],
        ),
        &swarm(),
    );
    assert!(b.config.http.routers.is_empty() && b.errors.is_empty());
    assert_eq!(b.config.http.services.len(), 2);
}

#[test]
fn swarm_port_only_from_label_compose_lowest_exposed() {
    // No Traefik label at all (the proxy's own service, a database): not routed, and not an error.
    let b = build(&w("noport", &[], &["10.0.0.1"]), &swarm());
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    assert!(b.config.http.routers.is_empty() && b.config.http.services.is_empty());
    // With a router label but no port: one error, on the service, naming no label the user did not write.
    let b = build(
        &w(
            "noport",
            &[("traefik.http.routers.np.rule", "Host(`np.test`)")],
            &["10.0.0.1"],
        ),
        &swarm(),
    );
    assert_eq!(b.errors.len(), 1, "{:?}", b.errors);
    assert!(
        b.errors[0].reason.contains("port is missing")
            && b.errors[0]
                .reason
                .contains("router `np` is dropped with it"),
        "{}",
        b.errors[0]
    );
    assert_eq!(b.errors[0].label, "", "{}", b.errors[0]);
    assert_eq!(
        (b.errors[0].kind, b.errors[0].item.as_str()),
        (ItemKind::Service, "noport")
    );
    assert!(b.config.http.routers.is_empty() && b.config.http.services.is_empty());
    let mut c = w("proj_web_1", &[], &["172.20.0.3"]);
    c.name = "web_proj".into();
    c.exposed_ports = vec![8080, 443, 9000];
    let b = build(&c, &docker());
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    assert_eq!(urls(&b.config, "web-proj"), ["http://172.20.0.3:443"]);
    assert_eq!(rule(&b.config, "web-proj"), "Host(`web-proj`)");
    c.labels.insert(
        "traefik.http.services.web.loadbalancer.server.port".into(),
        "9000".into(),
    );
    let b = build(&c, &docker());
    assert_eq!(urls(&b.config, "web"), ["http://172.20.0.3:9000"]);
    c.exposed_ports.clear();
    c.labels.clear();
    c.labels.insert("traefik.enable".into(), "true".into());
    let b = build(&c, &docker());
    assert!(
        b.errors[0].reason.contains("exposes no port"),
        "{:?}",
        b.errors
    );
}

#[test]
fn default_rule_template_and_ipv6() {
    let mut s = swarm();
    s.default_rule =
        Template::parse("Host(`{{ normalize .Name }}.{{ index .Labels \"zone\" }}`)").expect("tpl");
    let b = build(
        &w(
            "my_app",
            &[
                ("zone", "example.org"),
                ("traefik.http.services.a.loadbalancer.server.port", "80"),
            ],
            &["fd00::5"],
        ),
        &s,
    );
    assert_eq!(rule(&b.config, "my-app"), "Host(`my-app.example.org`)");
    assert_eq!(urls(&b.config, "a"), ["http://[fd00::5]:80"]);
}

#[test]
fn enable_exposed_by_default_and_constraints() {
    let mut s = swarm();
    let on = w("a", &[("traefik.enable", "true")], &[]);
    let off = w("b", &[("traefik.enable", "false")], &[]);
    let none = w("c", &[("env", "prod")], &[]);
    let bad = w("d", &[("traefik.enable", "yes")], &[]);
    assert!(options(&on, &s).expect("ok").enable);
    assert!(!options(&off, &s).expect("ok").enable);
    assert!(options(&none, &s).expect("ok").enable);
    assert!(options(&bad, &s)
        .expect_err("bad")
        .to_string()
        .contains("traefik.enable"));
    s.exposed_by_default = false;
    assert!(options(&on, &s).expect("ok").enable);
    assert!(!options(&none, &s).expect("ok").enable);
    s.exposed_by_default = true;
    s.constraints = Some(
        Constraint::parse("Label(`env`, `prod`) && !Label(`traefik.enable`, `false`)").expect("c"),
    );
    assert!(options(&none, &s).expect("ok").enable);
    let o = options(&on, &s).expect("ok");
    assert!(
        !o.enable
            && o.skipped
                .as_deref()
                .is_some_and(|r| r.contains("constraints"))
    );
}

#[test]
fn provider_namespaces() {
    let s = swarm();
    let o = options(
        &w(
            "a",
            &[
                ("traefik.swarm.network", "net1"),
                ("traefik.swarm.lbswarm", "true"),
            ],
            &[],
        ),
        &s,
    )
    .expect("ok");
    assert_eq!((o.network.as_deref(), o.lbswarm), (Some("net1"), true));
    let o = options(&w("a", &[("traefik.docker.network", "net2")], &[]), &s).expect("ok");
    assert_eq!(o.network.as_deref(), Some("net2"));
    let e = options(
        &w(
            "a",
            &[
                ("traefik.docker.network", "n"),
                ("traefik.swarm.network", "n"),
            ],
            &[],
        ),
        &s,
    )
    .expect_err("both");
    assert!(e.reason.contains("both"), "{e}");
    // The v2 docker provider in swarm mode reads traefik.docker.* only.
    let mut v2 = swarm();
    v2.namespace = "docker";
    let o = options(
        &w(
            "a",
            &[
                ("traefik.swarm.network", "x"),
                ("traefik.docker.network", "y"),
            ],
            &[],
        ),
        &v2,
    )
    .expect("ok");
    assert_eq!(o.network.as_deref(), Some("y"));
    let o = options(&w("a", &[("traefik.docker.network", "y")], &[]), &docker()).expect("ok");
    assert_eq!(o.network.as_deref(), Some("y"));
}

#[test]
fn merge_unions_identical_and_drops_conflicts() {
    let s = swarm();
    let labels: &[(&str, &str)] = &[
        ("traefik.http.routers.web.rule", "Host(`w`)"),
        ("traefik.http.services.web.loadbalancer.server.port", "80"),
    ];
    let a = build(&w("c1", labels, &["10.0.0.1"]), &s);
    let b = build(&w("c2", labels, &["10.0.0.2"]), &s);
    let c = build(
        &w(
            "c3",
            &[
                ("traefik.http.routers.web.rule", "Host(`other`)"),
                ("traefik.http.routers.web.service", "web"),
                ("traefik.http.services.web.loadbalancer.server.port", "80"),
            ],
            &["10.0.0.3"],
        ),
        &s,
    );
    let (m, errors) = merge(&[
        ("c1".into(), a.config.clone()),
        ("c2".into(), b.config.clone()),
    ]);
    assert!(errors.is_empty());
    assert_eq!(
        urls(&m, "web"),
        ["http://10.0.0.1:80", "http://10.0.0.2:80"]
    );
    let (m, errors) = merge(&[
        ("c1".into(), a.config),
        ("c2".into(), b.config),
        ("c3".into(), c.config),
    ]);
    assert!(!m.http.routers.contains_key("web"));
    assert_eq!(
        urls(&m, "web").len(),
        3,
        "services equal except servers still merge"
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, ItemKind::Router);
    assert!(errors[0].reason.contains("c1, c2, c3"), "{}", errors[0]);
    // Different load-balancer settings conflict.
    let x = build(
        &w(
            "x",
            &[("traefik.http.services.s.loadbalancer.server.port", "80")],
            &["10.0.0.1"],
        ),
        &s,
    );
    let y = build(
        &w(
            "y",
            &[
                ("traefik.http.services.s.loadbalancer.server.port", "80"),
                (
                    "traefik.http.services.s.loadbalancer.passhostheader",
                    "false",
                ),
            ],
            &["10.0.0.2"],
        ),
        &s,
    );
    let (m, errors) = merge(&[("x".into(), x.config), ("y".into(), y.config)]);
    assert!(!m.http.services.contains_key("s"));
    assert!(errors
        .iter()
        .any(|e| e.kind == ItemKind::Service && e.reason.contains("x, y")));
}

#[test]
fn tcp_hostsni_routers() {
    let b = build(
        &w(
            "db",
            &[
                ("traefik.tcp.routers.pg.rule", "HostSNI(`db.test`)"),
                ("traefik.tcp.routers.pg.tls", "true"),
                ("traefik.tcp.routers.pg.tls.passthrough", "true"),
                ("traefik.tcp.services.pg.loadbalancer.server.port", "5432"),
                ("traefik.tcp.routers.bad.rule", "HostSNI(`x`"),
                ("traefik.tcp.routers.bad.service", "pg"),
            ],
            &["10.0.0.7"],
        ),
        &swarm(),
    );
    let r = b
        .config
        .tcp
        .routers
        .get("pg")
        .unwrap_or_else(|| panic!("{:#?}", b.errors));
    assert_eq!(r.service, "pg");
    assert!(r.tls.as_ref().is_some_and(|t| t.passthrough));
    assert_eq!(
        b.config.tcp.services["pg"]
            .load_balancer
            .as_ref()
            .map(|l| l.servers[0].address.clone()),
        Some("10.0.0.7:5432".into())
    );
    assert_eq!(b.errors.len(), 1, "{:?}", b.errors);
    assert_eq!(b.errors[0].item, "bad");
    assert!(
        b.config.http.routers.is_empty(),
        "TCP-only workloads get no implicit HTTP router"
    );
}

#[test]
fn tls_store_and_servers_transport_labels() {
    let b = build(
        &w(
            "t",
            &[
                ("traefik.http.services.t.loadbalancer.server.port", "443"),
                (
                    "traefik.http.services.t.loadbalancer.server.scheme",
                    "https",
                ),
                (
                    "traefik.http.services.t.loadbalancer.serverstransport",
                    "insecure",
                ),
                (
                    "traefik.http.serverstransports.insecure.insecureskipverify",
                    "true",
                ),
            ],
            &["10.0.0.1"],
        ),
        &swarm(),
    );
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    assert!(b.config.http.servers_transports["insecure"].insecure_skip_verify);
    assert_eq!(urls(&b.config, "t"), ["https://10.0.0.1:443"]);
    let bad = build(
        &w(
            "t",
            &[
                ("traefik.http.services.t.loadbalancer.server.port", "1"),
                ("traefik.http.services.t.loadbalancer.server.scheme", "ftp"),
            ],
            &["10.0.0.1"],
        ),
        &swarm(),
    );
    assert!(bad.errors[0].reason.contains("ftp"));
}

#[test]
fn v1_labels_translate_with_notes() {
    let mut s = swarm();
    s.namespace = "docker";
    s.v1_domain = Some("traefik".into());
    let b = build(
        &w(
            "whoami0",
            &[("traefik.port", "80")],
            &["10.0.0.4", "10.0.0.5"],
        ),
        &s,
    );
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    assert_eq!(rule(&b.config, "whoami0"), "Host(`whoami0.traefik`)");
    assert_eq!(
        urls(&b.config, "whoami0"),
        ["http://10.0.0.4:80", "http://10.0.0.5:80"]
    );
    assert!(
        b.notes
            .iter()
            .any(|n| n.contains("traefik.port") && n.contains("loadbalancer.server.port=80")),
        "{:?}",
        b.notes
    );

    let b = build(
        &w("my_stack/web", &[("traefik.port", "8080")], &["10.0.0.4"]),
        &s,
    );
    assert_eq!(
        rule(&b.config, "my-stack-web"),
        "Host(`my-stack-web.traefik`)"
    );

    let b = build(
        &w(
            "whoami1",
            &[
                ("traefik.port", "80"),
                ("traefik.backend.loadbalancer.sticky", "true"),
            ],
            &["10.0.0.4"],
        ),
        &s,
    );
    let cookie = |b: &Built, svc: &str| {
        b.config.http.services[svc]
            .load_balancer
            .as_ref()
            .and_then(|l| l.sticky.as_ref())
            .and_then(|s| s.cookie.as_ref())
            .and_then(|c| c.name.clone())
    };
    assert_eq!(cookie(&b, "whoami1").as_deref(), Some("_TRAEFIK_BACKEND"));
    let b = build(
        &w(
            "app",
            &[
                ("traefik.port", "80"),
                ("traefik.backend.loadbalancer.stickiness", "true"),
            ],
            &["10.0.0.4"],
        ),
        &s,
    );
    assert_eq!(cookie(&b, "app"), Some(v1_cookie_name("app")));
    let b = build(
        &w(
            "app",
            &[
                ("traefik.port", "80"),
                ("traefik.backend.loadbalancer.stickiness", "true"),
                ("traefik.backend.loadbalancer.stickiness.cookieName", "mine"),
            ],
            &["10.0.0.4"],
        ),
        &s,
    );
    assert_eq!(cookie(&b, "app").as_deref(), Some("mine"));

    let b = build(
        &w(
            "api",
            &[
                ("traefik.port", "3000"),
                ("traefik.backend", "api_backend"),
                (
                    "traefik.frontend.rule",
                    "Host:api.example.com,www.example.com;PathPrefixStrip:/v1",
                ),
                ("traefik.frontend.entryPoints", "http,https"),
                ("traefik.frontend.priority", "10"),
                ("traefik.frontend.redirect.entryPoint", "https"),
                (
                    "traefik.frontend.auth.basic.users",
                    "u:$apr1$x$y,v:$apr1$z$w",
                ),
                ("traefik.backend.healthcheck.path", "/health"),
                ("traefik.backend.healthcheck.interval", "10s"),
                ("traefik.docker.network", "proxy"),
            ],
            &["10.0.0.4"],
        ),
        &s,
    );
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    let r = &b.config.http.routers["api-backend"];
    assert_eq!(
        r.rule,
        "Host(`api.example.com`, `www.example.com`) && PathPrefix(`/v1`)"
    );
    assert_eq!(r.rule_syntax.as_deref(), Some("v2"));
    assert_eq!(r.entry_points, ["http", "https"]);
    assert_eq!(r.priority, Some(10));
    assert_eq!(
        r.middlewares,
        [
            "api-backend-redirect",
            "api-backend-auth",
            "api-backend-stripprefix"
        ]
    );
    assert_eq!(r.service, "api-backend");
    let mw = &b.config.http.middlewares;
    assert_eq!(
        mw["api-backend-stripprefix"].0["stripPrefix"]["prefixes"],
        serde_json::json!(["/v1"])
    );
    assert_eq!(
        mw["api-backend-auth"].0["basicAuth"]["users"],
        serde_json::json!(["u:$apr1$x$y", "v:$apr1$z$w"])
    );
    assert_eq!(
        mw["api-backend-redirect"].0["redirectScheme"]["scheme"],
        serde_json::json!("https")
    );
    let lb = b.config.http.services["api-backend"]
        .load_balancer
        .as_ref()
        .expect("lb");
    assert_eq!(
        lb.health_check.as_ref().map(|h| h.path.as_str()),
        Some("/health")
    );
    assert_eq!(
        options(&w("api", &[("traefik.docker.network", "proxy")], &[]), &s)
            .expect("o")
            .network
            .as_deref(),
        Some("proxy")
    );
}

#[test]
fn v1_lbswarm_and_bad_rule() {
    let s = swarm();
    let o = options(
        &w("a", &[("traefik.backend.loadbalancer.swarm", "true")], &[]),
        &s,
    )
    .expect("ok");
    assert!(o.lbswarm);
    let b = build(
        &w(
            "a",
            &[("traefik.port", "80"), ("traefik.frontend.rule", "Hots:x")],
            &["10.0.0.1"],
        ),
        &s,
    );
    assert_eq!(b.errors.len(), 1);
    assert_eq!(b.errors[0].label, "traefik.frontend.rule");
    assert!(
        b.errors[0].reason.contains("Hots") || b.errors[0].reason.contains("hots"),
        "{}",
        b.errors[0]
    );
}

#[test]
fn v1_rule_translation_table() {
    let rows: &[(&str, &str)] = &[
        ("Host:a.com", "Host(`a.com`)"),
        ("Host: a.com , b.com", "Host(`a.com`, `b.com`)"),
        ("PathPrefix:/x", "PathPrefix(`/x`)"),
        ("Host:a;Path:/p", "Host(`a`) && Path(`/p`)"),
        ("Method:GET,POST", "Method(`GET`, `POST`)"),
        ("Headers:X-A,b", "Headers(`X-A`, `b`)"),
        (
            "HostRegexp:{sub:[a-z]+}.a.com",
            "HostRegexp(`{sub:[a-z]+}.a.com`)",
        ),
        ("Query:a=b", "Query(`a=b`)"),
        ("AddPrefix:/api", ""),
    ];
    for (v1, v2) in rows {
        let t = translate_v1_rule(v1).unwrap_or_else(|e| panic!("{v1}: {e}"));
        assert_eq!(t.rule, *v2, "{v1}");
        if !v2.is_empty() {
            crate::rule::parse(&t.rule, Syntax::V2)
                .unwrap_or_else(|e| panic!("{v1} → {}: {e}", t.rule));
        }
    }
    assert_eq!(
        translate_v1_rule("AddPrefix:/api")
            .expect("ok")
            .add_prefix
            .as_deref(),
        Some("/api")
    );
    assert_eq!(
        translate_v1_rule("PathStrip:/a,/b")
            .expect("ok")
            .strip_prefixes,
        ["/a", "/b"]
    );
    assert!(translate_v1_rule("Host").is_err());
    assert!(translate_v1_rule("Foo:bar").is_err());
}

#[test]
fn v1_cookie_name_is_five_hex_of_sha1() {
    let n = v1_cookie_name("whoami");
    assert_eq!(n.len(), 6);
    assert!(n.starts_with('_') && n[1..].chars().all(|c| c.is_ascii_hexdigit()));
    let digest = hex::encode(Sha1::digest(b"_TRAEFIK_BACKEND_backend-whoami"));
    assert_eq!(&n[1..], &digest[..5]);
}

#[test]
fn v2_label_wins_over_v1_translation() {
    let b = build(
        &w(
            "a",
            &[
                ("traefik.port", "80"),
                ("traefik.http.services.a.loadbalancer.server.port", "81"),
            ],
            &["10.0.0.1"],
        ),
        &swarm(),
    );
    assert_eq!(urls(&b.config, "a"), ["http://10.0.0.1:81"]);
}

#[test]
fn non_traefik_and_provider_labels_are_ignored_by_the_tree() {
    let b = build(
        &w(
            "a",
            &[
                ("com.docker.stack.namespace", "x"),
                ("traefik.enable", "true"),
                ("traefik.docker.network", "n"),
                ("traefik.http.services.a.loadbalancer.server.port", "80"),
            ],
            &["10.0.0.1"],
        ),
        &swarm(),
    );
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    assert_eq!(b.config.http.routers.len(), 1);
}

#[test]
fn structural_conflicts_drop_only_their_item() {
    let b = build(
        &w(
            "a",
            &[
                ("traefik.http.routers.x.rule", "Host(`x`)"),
                ("traefik.http.routers.x.rule.extra", "oops"),
                ("traefik.http.routers.ok.rule", "Host(`ok`)"),
                ("traefik.http.services.a.loadbalancer.server.port", "80"),
            ],
            &["10.0.0.1"],
        ),
        &swarm(),
    );
    assert!(b.config.http.routers.contains_key("ok"));
    assert!(!b.config.http.routers.contains_key("x"));
    assert_eq!(b.errors.len(), 1, "{:?}", b.errors);
}

#[test]
fn no_addresses_means_no_servers() {
    let b = build(
        &w(
            "a",
            &[("traefik.http.services.a.loadbalancer.server.port", "80")],
            &[],
        ),
        &swarm(),
    );
    assert!(urls(&b.config, "a").is_empty());
}

/// Router names of a configuration (what would serve).
fn router_names(c: &Configuration) -> Vec<String> {
    c.http.routers.keys().cloned().collect()
}

fn dropped_names(c: &Configuration, kind: ItemKind) -> Vec<String> {
    c.dropped
        .iter()
        .filter(|d| d.kind == kind)
        .map(|d| d.name.clone())
        .collect()
}

#[test]
fn v1_rule_typo_is_dropped_and_never_replaced_by_a_default_router() {
    for domain in [None, Some("example.com".to_string())] {
        let mut s = swarm();
        s.v1_domain = domain.clone();
        let b = build(
            &w(
                "stack_svc",
                &[
                    ("traefik.port", "80"),
                    ("traefik.frontend.rule", "Hostt:x"),
                    ("traefik.frontend.auth.basic.users", "u:$apr1$x$y"),
                ],
                &["10.0.0.1"],
            ),
            &s,
        );
        assert!(
            router_names(&b.config).is_empty(),
            "domain {domain:?}: a router serves: {:#?}",
            b.config.http.routers
        );
        assert_eq!(
            dropped_names(&b.config, ItemKind::Router),
            ["stack-svc"],
            "{:?}",
            b.config.dropped
        );
        let d = &b.config.dropped[0];
        assert!(
            d.error.contains("traefik.frontend.rule") && d.error.contains("hostt"),
            "{}",
            d.error
        );
        assert!(b.errors.iter().any(|e| e.kind == ItemKind::Router));
    }
}

#[test]
fn v2_invalid_rule_label_gets_no_default_router() {
    let b = build(
        &w(
            "stack_svc",
            &[
                ("traefik.http.routers.web.rule", "Hostt(`x`)"),
                ("traefik.http.services.web.loadbalancer.server.port", "80"),
            ],
            &["10.0.0.1"],
        ),
        &swarm(),
    );
    assert!(router_names(&b.config).is_empty(), "{:?}", b.config.http);
    assert_eq!(dropped_names(&b.config, ItemKind::Router), ["web"]);
    // A router label that does not decode, or is not even a router key, is explicit configuration too.
    for labels in [
        &[("traefik.http.routers.web.priority", "high")][..],
        &[("traefik.http.routers", "x")][..],
    ] {
        let mut l = labels.to_vec();
        l.push(("traefik.http.services.web.loadbalancer.server.port", "80"));
        let b = build(&w("stack_svc", &l, &["10.0.0.1"]), &swarm());
        assert!(
            router_names(&b.config).is_empty(),
            "{labels:?}: {:?}",
            b.config.http.routers
        );
        assert!(!b.errors.is_empty());
    }
}

#[test]
fn bad_port_label_serves_nothing_and_lists_the_service() {
    for port_label in [
        "traefik.http.services.web.loadbalancer.server.port",
        "traefik.port",
    ] {
        let b = build(
            &w("stack_svc", &[(port_label, "eighty")], &["10.0.0.1"]),
            &swarm(),
        );
        assert!(
            router_names(&b.config).is_empty(),
            "{port_label}: {:?}",
            b.config.http.routers
        );
        assert!(
            b.config.http.services.is_empty(),
            "{:?}",
            b.config.http.services
        );
        assert_eq!(dropped_names(&b.config, ItemKind::Service).len(), 1);
    }
}

#[test]
fn merge_carries_dropped_items_and_conflicts() {
    let port = ("traefik.http.services.s.loadbalancer.server.port", "80");
    let a = build(
        &w(
            "a",
            &[
                ("traefik.http.routers.r.rule", "Host(`a`)"),
                ("traefik.http.routers.r.service", "s"),
                ("traefik.http.routers.bad.rule", "Nope(`x`)"),
                ("traefik.http.routers.bad.service", "s"),
                port,
            ],
            &["10.0.0.1"],
        ),
        &swarm(),
    );
    let b = build(
        &w(
            "b",
            &[("traefik.http.routers.r.rule", "Host(`b`)"), port],
            &["10.0.0.2"],
        ),
        &swarm(),
    );
    let (c, errors) = merge(&[("a".into(), a.config), ("b".into(), b.config)]);
    let mut dropped = dropped_names(&c, ItemKind::Router);
    dropped.sort();
    assert_eq!(dropped, ["bad", "r"], "{:?}", c.dropped);
    assert!(!c.http.routers.contains_key("r"));
    assert_eq!(urls(&c, "s").len(), 2);
    assert_eq!(errors.len(), 1);
}

#[test]
fn a_non_ascii_label_key_near_the_namespace_prefix_does_not_panic() {
    // Found by the `labels` fuzz target: the namespace check sliced the key at the prefix length, inside
    // a multi-byte character, and the provider panicked on a label anyone deploying a service can set.
    let s = swarm();
    for key in [
        "traefik.dockerҗx",
        "traefik.swarm.җ",
        "traefik.httpdҗidlewares.x",
    ] {
        let wl = w(
            "svc",
            &[(key, "1"), ("traefik.enable", "true")],
            &["10.0.0.2"],
        );
        let o = options(&wl, &s).expect("options");
        assert!(o.enable, "{key}");
    }
}

/// Cases from Traefik's own tables (pkg/config/label/label_test.go, pkg/provider/docker/config_test.go at
/// v3.7.9) where swarmgate used to differ.
#[test]
fn traefik_table_edge_cases() {
    let container = |labels: &[(&str, &str)]| {
        let mut wl = w("Test", labels, &["127.0.0.1"]);
        wl.exposed_ports = vec![80];
        build(&wl, &docker())
    };
    // `sticky=false` beside `sticky.cookie.*`: stickiness off, the service kept (label_test.go Service1).
    let b = container(&[
        ("traefik.http.services.s.loadbalancer.sticky", "false"),
        (
            "traefik.http.services.s.loadbalancer.sticky.cookie.name",
            "fui",
        ),
    ]);
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    let lb = b.config.http.services["s"]
        .load_balancer
        .as_ref()
        .expect("lb");
    assert!(lb.sticky.is_none(), "{lb:?}");
    assert_eq!(urls(&b.config, "s"), ["http://127.0.0.1:80"]);
    // A router's `tls=false` is a plain router.
    let b = container(&[("traefik.http.routers.r.tls", "false")]);
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    assert!(b.config.http.routers["r"].tls.is_none());
    // An empty `server.port` is no port label: the exposed port ("one container with label port on two
    // services").
    let b = container(&[
        (
            "traefik.http.services.Service1.LoadBalancer.server.port",
            "",
        ),
        (
            "traefik.http.services.Service2.LoadBalancer.server.port",
            "8080",
        ),
    ]);
    assert_eq!(urls(&b.config, "Service1"), ["http://127.0.0.1:80"]);
    assert_eq!(urls(&b.config, "Service2"), ["http://127.0.0.1:8080"]);
    // `server.url` with `server.scheme`: refused. Traefik drops the container's whole configuration;
    // swarmgate (docs/differences.md, per-item isolation) drops the service and the router that uses it,
    // each with its error.
    let b = container(&[
        (
            "traefik.http.services.Service1.LoadBalancer.server.url",
            "http://1.2.3.4:5678",
        ),
        (
            "traefik.http.services.Service1.LoadBalancer.server.scheme",
            "https",
        ),
    ]);
    assert!(b.config.http.services.is_empty() && b.config.http.routers.is_empty());
    assert!(
        b.errors
            .iter()
            .any(|e| e.reason.contains("`server.url` and `server.scheme`")),
        "{:?}",
        b.errors
    );
}

#[test]
fn default_rule_configured_empty_or_broken_costs_only_the_default_routers() {
    let wl = w(
        "app",
        &[
            ("traefik.http.routers.explicit.rule", "Host(`x.test`)"),
            ("traefik.http.routers.implicit.service", "app"),
            ("traefik.http.services.app.loadbalancer.server.port", "80"),
        ],
        &["10.0.0.2"],
    );
    let mut off = swarm();
    off.default_rule_off = true;
    let b = build(&wl, &off);
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    assert_eq!(rule(&b.config, "explicit"), "Host(`x.test`)");
    assert!(!b.config.http.routers.contains_key("implicit"));
    let mut broken = swarm();
    broken.default_rule_error = Some("providers.swarm.defaultRule: unknown field `.Nam`".into());
    let b = build(&wl, &broken);
    assert_eq!(rule(&b.config, "explicit"), "Host(`x.test`)");
    assert!(!b.config.http.routers.contains_key("implicit"));
    assert!(
        b.errors
            .iter()
            .any(|e| e.item == "implicit" && e.reason.contains(".Nam")),
        "{:?}",
        b.errors
    );
}

fn udp_addresses(c: &Configuration, svc: &str) -> Vec<String> {
    c.udp
        .services
        .get(svc)
        .and_then(|s| s.load_balancer.as_ref())
        .map(|lb| lb.servers.iter().map(|s| s.address.clone()).collect())
        .unwrap_or_default()
}

#[test]
fn udp_routers_and_services_from_labels() {
    // Swarm: task IPs with `server.port`; the router without `service` binds to the only UDP service; no
    // implicit HTTP router or service for a UDP-only workload.
    let b = build(
        &w(
            "stack_dns",
            &[
                ("traefik.udp.routers.dns.entrypoints", "dns"),
                ("traefik.udp.services.dns.loadbalancer.server.port", "53"),
            ],
            &["10.0.0.2", "10.0.0.3"],
        ),
        &swarm(),
    );
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    assert!(b.notes.is_empty(), "{:?}", b.notes);
    assert_eq!(b.config.udp.routers["dns"].service, "dns");
    assert_eq!(b.config.udp.routers["dns"].entry_points, ["dns"]);
    assert_eq!(
        udp_addresses(&b.config, "dns"),
        ["10.0.0.2:53", "10.0.0.3:53"]
    );
    assert!(b.config.http.routers.is_empty() && b.config.http.services.is_empty());

    // Containers: the implicit UDP service named after the container, on its lowest exposed port.
    let mut c = w(
        "game",
        &[("traefik.udp.routers.g.entrypoints", "game")],
        &["172.17.0.5"],
    );
    c.exposed_ports = vec![27015, 27016];
    let b = build(&c, &docker());
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    assert_eq!(b.config.udp.routers["g"].service, "game");
    assert_eq!(udp_addresses(&b.config, "game"), ["172.17.0.5:27015"]);
}

#[test]
fn a_bad_udp_label_drops_only_its_item() {
    let b = build(
        &w(
            "dns",
            &[
                ("traefik.udp.routers.a.service", "ok"),
                ("traefik.udp.services.ok.loadbalancer.server.port", "53"),
                ("traefik.udp.services.bad.loadbalancer.server.port", "fifty"),
                ("traefik.udp.routers.b.service", "bad"),
                ("traefik.udp.routers.c.entrypoints.x", "y"),
            ],
            &["10.0.0.9"],
        ),
        &swarm(),
    );
    assert_eq!(udp_addresses(&b.config, "ok"), ["10.0.0.9:53"]);
    assert!(b.config.udp.routers.contains_key("a"));
    assert!(!b.config.udp.services.contains_key("bad"));
    assert!(!b.config.udp.routers.contains_key("b"));
    assert!(!b.config.udp.routers.contains_key("c"));
    assert_eq!(dropped_names(&b.config, ItemKind::UdpService), ["bad"]);
    let mut routers = dropped_names(&b.config, ItemKind::UdpRouter);
    routers.sort();
    assert_eq!(routers, ["b", "c"]);
}

#[test]
fn udp_services_of_two_workloads_merge_their_servers() {
    let part = |name: &str, ip: &str| {
        let b = build(
            &w(
                name,
                &[
                    ("traefik.udp.routers.dns.service", "dns"),
                    ("traefik.udp.services.dns.loadbalancer.server.port", "53"),
                ],
                &[ip],
            ),
            &swarm(),
        );
        (name.to_string(), b.config)
    };
    let (c, errors) = merge(&[part("a", "10.0.0.1"), part("b", "10.0.0.2")]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(udp_addresses(&c, "dns"), ["10.0.0.1:53", "10.0.0.2:53"]);
}

#[test]
fn an_empty_service_label_drops_the_service_and_its_routers() {
    // `traefik.http.services.test=` (Traefik's "invalid HTTP service definition"): a service of no kind.
    let mut wl = w("Test", &[("traefik.http.services.test", "")], &["10.0.0.2"]);
    wl.exposed_ports = vec![80];
    let b = build(&wl, &docker());
    assert!(b.config.http.services.is_empty(), "{:?}", b.config.http);
    assert!(b.config.http.routers.is_empty(), "{:?}", b.config.http);
    assert!(
        b.errors
            .iter()
            .any(|e| e.item == "test" && e.reason.contains("the service is empty")),
        "{:?}",
        b.errors
    );
    for proto in ["tcp", "udp"] {
        let label = format!("traefik.{proto}.services.test");
        let b = build(
            &w("Test", &[(label.as_str(), "")], &["10.0.0.2"]),
            &docker(),
        );
        assert!(
            b.config.tcp.services.is_empty() && b.config.udp.services.is_empty(),
            "{proto}"
        );
        assert_eq!(b.errors.len(), 1, "{proto}: {:?}", b.errors);
    }
}

#[test]
fn a_workload_without_addresses_keeps_its_services_without_servers_and_needs_no_port() {
    // An unhealthy container kept by `allowEmptyServices`: no servers, so no port is needed.
    let mut s = docker();
    s.allow_empty_services = true;
    let b = build(
        &w(
            "Test",
            &[
                ("traefik.tcp.routers.foo.rule", "HostSNI(`foo.bar`)"),
                ("traefik.http.routers.web.rule", "Host(`web.test`)"),
            ],
            &[],
        ),
        &s,
    );
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    assert!(urls(&b.config, "Test").is_empty());
    assert!(b.config.tcp.services["Test"]
        .load_balancer
        .as_ref()
        .is_some_and(|lb| lb.servers.is_empty()));
    assert_eq!(b.config.http.routers["web"].service, "Test");
}

#[test]
fn decode_is_the_labels_alone_with_the_port_on_a_server() {
    let b = decode(
        &w(
            "app",
            &[
                ("traefik.http.services.s.loadbalancer.server.port", "8080"),
                ("traefik.udp.services.u.loadbalancer.server.port", "53"),
                ("traefik.http.routers.r.rule", "Host(`a.test`)"),
            ],
            &["10.0.0.2"],
        ),
        &docker(),
    );
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    let lb = b.config.http.services["s"]
        .load_balancer
        .as_ref()
        .expect("lb");
    assert_eq!(lb.servers.len(), 1);
    assert_eq!(lb.servers[0].port.as_deref(), Some("8080"));
    assert!(lb.servers[0].url.is_empty());
    let udp = b.config.udp.services["u"]
        .load_balancer
        .as_ref()
        .expect("udp lb");
    assert_eq!(udp.servers[0].port.as_deref(), Some("53"));
    // No service bound, no implicit router or service: what the labels say, nothing more.
    assert_eq!(b.config.http.routers["r"].service, "");
    assert_eq!(b.config.http.services.len(), 1);
}

#[test]
fn use_bind_port_ip_takes_the_host_binding_of_the_chosen_port() {
    let mut wl = w(
        "Test",
        &[("traefik.http.services.s.loadbalancer.server.port", "80")],
        &["172.17.0.2"],
    );
    wl.exposed_ports = vec![79, 80];
    wl.bindings = vec![
        PortBinding {
            private_port: 79,
            host_ip: "192.168.0.1".into(),
            host_port: 8080,
        },
        PortBinding {
            private_port: 80,
            host_ip: "192.168.0.1".into(),
            host_port: 8081,
        },
    ];
    let mut s = docker();
    s.use_bind_port_ip = true;
    assert_eq!(
        urls(&build(&wl, &s).config, "s"),
        ["http://192.168.0.1:8081"]
    );
    // Off: the container's address and port.
    assert_eq!(
        urls(&build(&wl, &docker()).config, "s"),
        ["http://172.17.0.2:80"]
    );
    // Bound on every address: Traefik cannot tell which, and falls back.
    wl.bindings[1].host_ip = "0.0.0.0".into();
    assert_eq!(urls(&build(&wl, &s).config, "s"), ["http://172.17.0.2:80"]);
    // No binding of that port: falls back too.
    wl.bindings.truncate(1);
    assert_eq!(urls(&build(&wl, &s).config, "s"), ["http://172.17.0.2:80"]);
}
