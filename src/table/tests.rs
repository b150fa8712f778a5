use std::collections::BTreeMap;

use http::{HeaderMap, Method};

use super::compile::{build_server_for_tests, Compiled};
use super::*;
use crate::config::sources::from_yaml;
use crate::dynamic::decode_configuration;
use crate::rule::{RequestView, Syntax};

fn ctx(eps: &[(&str, bool)]) -> CompileContext {
    CompileContext {
        entry_points: eps
            .iter()
            .map(|(n, d)| EntryPointInfo {
                name: n.to_string(),
                as_default: *d,
                ..Default::default()
            })
            .collect(),
        default_syntax: Syntax::V3,
        tls: None,
        internal: Vec::new(),
        metrics: None,
        tcp_transport: None,
        udp_entry_points: Vec::new(),
    }
}

fn build(yaml: &str, c: &CompileContext) -> Compiled {
    let (cfg, errors) = decode_configuration(&from_yaml(yaml, "t.yml").expect("yaml"));
    assert!(errors.is_empty(), "{errors:?}");
    let mut providers = BTreeMap::new();
    providers.insert("file".to_string(), std::sync::Arc::new(cfg));
    compile(&BuildInput { providers }, c, &CarriedState::default(), 1)
}

fn find<'t>(set: &'t RouterSet, host: &str, path: &str) -> Option<&'t str> {
    let headers = HeaderMap::new();
    let view = RequestView {
        host,
        path,
        query: None,
        method: &Method::GET,
        headers: &headers,
        client_ip: "127.0.0.1".parse().expect("ip"),
    };
    set.find(&view).map(|r| &*r.name)
}

const BASE: &str = r#"
http:
  services:
    s:
      loadBalancer:
        servers:
          - url: http://127.0.0.1:1
"#;

#[test]
fn priority_is_rule_length_then_explicit_then_name() {
    let yaml = format!(
        "{BASE}  routers:\n    short:\n      rule: PathPrefix(`/`)\n      service: s\n    longer:\n      rule: PathPrefix(`/api`)\n      service: s\n    host:\n      rule: Host(`a.test`) && PathPrefix(`/api`)\n      service: s\n    forced:\n      rule: PathPrefix(`/x`)\n      priority: 1000\n      service: s\n"
    );
    let c = build(&yaml, &ctx(&[("web", false)]));
    let set = &c.table.entry_points[0].http;
    assert_eq!(find(set, "a.test", "/api/v1"), Some("host@file"));
    assert_eq!(find(set, "b.test", "/api/v1"), Some("longer@file"));
    assert_eq!(find(set, "b.test", "/other"), Some("short@file"));
    assert_eq!(find(set, "a.test", "/x"), Some("forced@file"));
}

#[test]
fn equal_priorities_are_ordered_by_name() {
    let yaml = format!(
        "{BASE}  routers:\n    b:\n      rule: PathPrefix(`/`)\n      service: s\n    a:\n      rule: PathPrefix(`/`)\n      service: s\n"
    );
    let c = build(&yaml, &ctx(&[("web", false)]));
    assert_eq!(
        find(&c.table.entry_points[0].http, "x", "/"),
        Some("a@file")
    );
}

#[test]
fn exact_host_and_any_host_candidates_merge_in_priority_order() {
    // The any-host router has the higher priority and must win over the host-indexed one.
    let yaml = format!(
        "{BASE}  routers:\n    host:\n      rule: Host(`a.test`)\n      service: s\n    path:\n      rule: PathPrefix(`/admin`)\n      priority: 100\n      service: s\n"
    );
    let c = build(&yaml, &ctx(&[("web", false)]));
    let set = &c.table.entry_points[0].http;
    assert_eq!(find(set, "a.test", "/admin"), Some("path@file"));
    assert_eq!(find(set, "a.test", "/"), Some("host@file"));
    assert_eq!(find(set, "b.test", "/"), None);
}

#[test]
fn bad_items_are_isolated_and_reported() {
    let yaml = format!(
        "{BASE}  routers:\n    ok:\n      rule: Host(`ok`)\n      service: s\n    badrule:\n      rule: Host(`x`\n      service: s\n    noservice:\n      rule: Host(`y`)\n      service: missing\n    badmw:\n      rule: Host(`z`)\n      service: s\n      middlewares: [nope]\n    badep:\n      rule: Host(`w`)\n      service: s\n      entryPoints: [nowhere]\n"
    );
    let c = build(&yaml, &ctx(&[("web", false)]));
    let st = &c.table.status.routers;
    assert_eq!(st["ok@file"].status, Status::Enabled);
    for bad in ["badrule@file", "noservice@file", "badmw@file", "badep@file"] {
        assert_eq!(st[bad].status, Status::Disabled, "{bad}: {:?}", st[bad]);
        assert!(
            c.issues.iter().any(|i| i.contains(bad)),
            "{bad} not reported: {:?}",
            c.issues
        );
    }
    assert!(
        st["badrule@file"].errors[0].contains("column"),
        "{:?}",
        st["badrule@file"]
    );
    assert_eq!(c.table.entry_points[0].http.len(), 1);
}

#[test]
fn default_entrypoints_follow_as_default() {
    let yaml = format!("{BASE}  routers:\n    r:\n      rule: Host(`a`)\n      service: s\n");
    let all = build(&yaml, &ctx(&[("web", false), ("admin", false)]));
    assert_eq!(all.table.entry_points[0].http.len(), 1);
    assert_eq!(all.table.entry_points[1].http.len(), 1);
    let marked = build(&yaml, &ctx(&[("web", true), ("admin", false)]));
    assert_eq!(marked.table.entry_points[0].http.len(), 1);
    assert_eq!(marked.table.entry_points[1].http.len(), 0);
}

#[test]
fn tls_routers_only_match_tls_requests() {
    let yaml = format!(
        "{BASE}  routers:\n    secure:\n      rule: Host(`a`)\n      service: s\n      tls: {{}}\n"
    );
    let c = build(&yaml, &ctx(&[("web", false)]));
    assert_eq!(c.table.entry_points[0].http.len(), 0);
    assert_eq!(c.table.entry_points[0].https.len(), 1);
}

#[test]
fn weighted_cycles_and_missing_children_are_disabled() {
    let yaml = r#"
http:
  routers:
    r:
      rule: Host(`a`)
      service: w1
  services:
    w1:
      weighted:
        services: [{name: w2}]
    w2:
      weighted:
        services: [{name: w1}]
    w3:
      weighted:
        services: [{name: ghost}]
"#;
    let c = build(yaml, &ctx(&[("web", false)]));
    assert_eq!(c.table.status.services["w1@file"].status, Status::Disabled);
    assert_eq!(c.table.status.services["w3@file"].status, Status::Disabled);
    assert_eq!(c.table.status.routers["r@file"].status, Status::Disabled);
}

#[test]
fn health_state_is_carried_over_by_server_identity() {
    let yaml = format!("{BASE}  routers:\n    r:\n      rule: Host(`a`)\n      service: s\n");
    let (cfg, _) = decode_configuration(&from_yaml(&yaml, "t.yml").expect("yaml"));
    let mut providers = BTreeMap::new();
    providers.insert("file".to_string(), std::sync::Arc::new(cfg));
    let input = BuildInput { providers };
    let c1 = compile(&input, &ctx(&[("web", false)]), &CarriedState::default(), 1);
    let c2 = compile(&input, &ctx(&[("web", false)]), &c1.carried, 2);
    let server = |c: &Compiled| match &c.table.services[0].kind {
        ServiceKind::LoadBalancer(lb) => lb.servers[0].health.clone(),
        _ => panic!("lb expected"),
    };
    assert!(std::sync::Arc::ptr_eq(&server(&c1), &server(&c2)));
}

#[test]
fn server_urls() {
    let s = build_server_for_tests("http://10.0.0.1").expect("ok");
    assert_eq!(s.authority.as_str(), "10.0.0.1:80");
    assert_eq!(s.scheme, UpstreamScheme::Http);
    let s = build_server_for_tests("h2c://10.0.0.1:50051").expect("ok");
    assert_eq!(s.scheme, UpstreamScheme::H2c);
    assert_eq!(s.uri_scheme.as_str(), "http");
    assert_eq!(
        build_server_for_tests("https://x")
            .expect("ok")
            .authority
            .as_str(),
        "x:443"
    );
    assert!(build_server_for_tests("ftp://x").is_err());
    assert!(build_server_for_tests("10.0.0.1:80").is_err());
    assert!(build_server_for_tests("http://user:pw@x").is_err());
}

#[test]
fn diff_lists_added_removed_changed() {
    let a = format!("{BASE}  routers:\n    keep:\n      rule: Host(`a`)\n      service: s\n    gone:\n      rule: Host(`b`)\n      service: s\n    edit:\n      rule: Host(`c`)\n      service: s\n");
    let b = format!("{BASE}  routers:\n    keep:\n      rule: Host(`a`)\n      service: s\n    new:\n      rule: Host(`d`)\n      service: s\n    edit:\n      rule: Host(`cc`)\n      service: s\n");
    let c = ctx(&[("web", false)]);
    let d = builder::diff(&build(&a, &c).table.status, &build(&b, &c).table.status);
    assert_eq!(d.added, vec!["new@file"]);
    assert_eq!(d.removed, vec!["gone@file"]);
    assert_eq!(d.changed, vec!["edit@file"]);
}

#[test]
fn dropped_items_are_listed_disabled_and_their_users_say_so() {
    let yaml = r#"
http:
  routers:
    uses-bad-service:
      rule: Host(`a`)
      service: bad
    uses-bad-mw:
      rule: Host(`b`)
      service: s
      middlewares: [auth]
  services:
    s:
      loadBalancer:
        servers:
          - url: http://127.0.0.1:1
"#;
    let (mut cfg, _) = decode_configuration(&from_yaml(yaml, "t.yml").expect("yaml"));
    for (kind, name) in [
        (crate::dynamic::ItemKind::Router, "typo"),
        (crate::dynamic::ItemKind::Service, "bad"),
        (crate::dynamic::ItemKind::Middleware, "auth"),
    ] {
        cfg.dropped.push(crate::dynamic::DroppedItem {
            kind,
            name: name.into(),
            error: format!("{name}: invalid"),
        });
    }
    let mut providers = BTreeMap::new();
    providers.insert("docker".to_string(), std::sync::Arc::new(cfg));
    let c = compile(
        &BuildInput { providers },
        &ctx(&[("web", false)]),
        &CarriedState::default(),
        1,
    );
    let st = &c.table.status;
    assert_eq!(st.routers["typo@docker"].status, Status::Disabled);
    assert_eq!(st.routers["typo@docker"].errors, ["typo: invalid"]);
    assert_eq!(st.services["bad@docker"].status, Status::Disabled);
    assert_eq!(st.middlewares["auth@docker"].status, Status::Disabled);
    let r = &st.routers["uses-bad-service@docker"];
    assert_eq!(r.status, Status::Disabled);
    assert!(r.errors[0].contains("is disabled"), "{:?}", r.errors);
    let r = &st.routers["uses-bad-mw@docker"];
    assert_eq!(r.status, Status::Disabled);
    assert!(r.errors[0].contains("auth: invalid"), "{:?}", r.errors);
    assert!(c.table.entry_points[0].http.is_empty());
}

fn input_of(yaml: &str) -> BuildInput {
    let (cfg, errors) = decode_configuration(&from_yaml(yaml, "t.yml").expect("yaml"));
    assert!(errors.is_empty(), "{errors:?}");
    let mut providers = BTreeMap::new();
    providers.insert("file".to_string(), std::sync::Arc::new(cfg));
    BuildInput { providers }
}

#[test]
fn stateful_middleware_state_is_carried_while_unchanged_and_dropped_when_gone() {
    let with = format!("{BASE}  middlewares:\n    limit:\n      rateLimit:\n        average: 5\n  routers:\n    r:\n      rule: Host(`a`)\n      service: s\n      middlewares: [limit]\n");
    let without = format!("{BASE}  routers:\n    r:\n      rule: Host(`a`)\n      service: s\n");
    let c = ctx(&[("web", false)]);
    let c1 = compile(&input_of(&with), &c, &CarriedState::default(), 1);
    let c2 = compile(&input_of(&with), &c, &c1.carried, 2);
    let (a, b) = (c1.carried.middlewares.held(), c2.carried.middlewares.held());
    assert_eq!((a.len(), b.len()), (1, 1));
    assert!(
        std::sync::Arc::ptr_eq(&a[0], &b[0]),
        "unchanged: same state"
    );
    let c3 = compile(&input_of(&without), &c, &c2.carried, 3);
    assert!(c3.carried.middlewares.is_empty(), "gone: state dropped");
    let c4 = compile(&input_of(&with), &c, &c3.carried, 4);
    assert!(!std::sync::Arc::ptr_eq(
        &a[0],
        &c4.carried.middlewares.held()[0]
    ));
}

#[test]
fn build_inputs_compare_by_pointer_then_by_value() {
    let yaml = format!("{BASE}  routers:\n    r:\n      rule: Host(`a`)\n      service: s\n");
    let a = input_of(&yaml);
    assert_eq!(a, a.clone(), "same snapshots");
    assert_eq!(a, input_of(&yaml), "equal snapshots");
    assert_ne!(a, input_of(BASE));
    assert_ne!(a, BuildInput::default());
}

#[test]
fn statuses_serialize_to_the_api_words() {
    let st = |s| serde_json::to_string(&ItemStatus::new(s, "file")).expect("json");
    assert_eq!(
        st(Status::Enabled),
        r#"{"status":"enabled","provider":"file"}"#
    );
    assert_eq!(
        st(Status::Warning),
        r#"{"status":"warning","provider":"file"}"#
    );
    assert_eq!(
        st(Status::Disabled),
        r#"{"status":"disabled","provider":"file"}"#
    );
    assert_eq!(Status::Warning.to_string(), "warning");
}

#[tokio::test]
async fn the_builder_compiles_off_the_runtime_and_skips_equal_input() {
    let yaml = format!("{BASE}  routers:\n    r:\n      rule: Host(`a`)\n      service: s\n");
    let store = empty_store(&["web".to_string()]);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut b = builder::TableBuilder::new(store.clone(), ctx(&[("web", false)]), shutdown);
    assert!(b.apply_off_runtime(input_of(&yaml)).await);
    assert_eq!(store.load().generation, 1);
    assert_eq!(
        store.load().status.routers["r@file"].status,
        Status::Enabled
    );
    let same = (*store.load().input).clone();
    assert!(!b.apply_off_runtime(same).await, "same snapshots: kept");
    assert!(!b.apply(input_of(&yaml)), "equal snapshots: kept");
    assert!(b.apply_off_runtime(input_of(BASE)).await);
    assert_eq!(store.load().generation, 2);
    assert!(store.load().status.routers.is_empty());
}

#[tokio::test]
async fn a_replaced_table_is_freed_by_the_builder_once_no_request_holds_it() {
    let with_router = |r: &str| {
        format!("{BASE}  routers:\n    {r}:\n      rule: Host(`{r}`)\n      service: s\n")
    };
    let store = empty_store(&["web".to_string()]);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut b = builder::TableBuilder::new(store.clone(), ctx(&[("web", false)]), shutdown);
    assert!(b.apply_off_runtime(input_of(&with_router("a"))).await);
    let in_flight = store.load_full(); // a request still running on table 1
    assert!(b.apply_off_runtime(input_of(&with_router("b"))).await);
    assert_eq!(
        b.retired_tables(),
        1,
        "table 1 is held by the request: kept"
    );
    drop(in_flight);
    assert!(b.apply_off_runtime(input_of(&with_router("c"))).await);
    assert_eq!(
        b.retired_tables(),
        0,
        "table 1 (released) and table 2 (unheld) freed by the builder"
    );
}
