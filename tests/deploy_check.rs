//! Checks of the deployment artifacts that can run without a Docker engine:
//!
//! - `docker/init-cluster.sh` (the compose `init` service) run with the built
//!   binary makes the cluster secrets, idempotently, and
//!   `radmfa check-config` accepts every `docker/config/node*.toml` against
//!   them (container paths mapped into a temporary directory, every one of
//!   them, or the test fails);
//! - the node configs, `docker/compose.yaml` and `docker/config/nginx.conf`
//!   agree on node ids and addresses;
//! - `docker-compose config -q` validates the compose file (and rejects a
//!   broken copy, so the check is not vacuous), and the resolved file wires
//!   volumes, health checks and ports as documented;
//! - `nginx -t` accepts the balancer configuration;
//! - the image's default config serves, and the image's HEALTHCHECK command
//!   (`radmfa stats --json`) succeeds while it runs and fails once it stopped;
//! - the Dockerfile copies every workspace manifest into its dependency layer
//!   and only files that exist;
//! - `deploy/systemd/radmfa.service` carries the hardening it documents,
//!   `systemd-analyze verify` has nothing to say about it and
//!   `systemd-analyze security --offline` rates its exposure at most 2.0.
//!
//! External tools: `docker-compose` (v1, works without an engine), nginx with
//! its stream module and systemd-analyze, installed by `.ci/run`. Without
//! one, the checks that need it skip with a line naming the package (a
//! failure under `CI=true`).

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use radmfa_server::RuntimeConfig;

#[allow(dead_code)] // page() and replace() serve the tests that run recipes
#[path = "common/recipe_text.rs"]
mod recipe_text;
#[path = "common/tools.rs"]
mod tools;

/// Node ids of the compose cluster and their addresses on its network.
const NODES: [(u16, Ipv4Addr); 3] = [
    (1, Ipv4Addr::new(172, 28, 12, 11)),
    (2, Ipv4Addr::new(172, 28, 12, 12)),
    (3, Ipv4Addr::new(172, 28, 12, 13)),
];
/// nginx's address: the one RADIUS client the nodes know.
const BALANCER: Ipv4Addr = Ipv4Addr::new(172, 28, 12, 10);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn show(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command to completion; panics with a hint when it cannot start.
fn run(cmd: &mut Command, hint: &str) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} ({hint}): {e}"))
}

/// `radmfa` with an explicit config (never the environment's RADMFA_CONFIG).
fn radmfa(config: &Path, args: &[&str]) -> Output {
    run(
        Command::new(env!("CARGO_BIN_EXE_radmfa"))
            .env_remove("RADMFA_CONFIG")
            .arg("--config")
            .arg(config)
            .args(args),
        "the binary under test",
    )
}

/// A directory holding `radmfa` (the binary under test), to put first on PATH
/// for scripts that call it by name as the image does.
fn bin_dir(tmp: &Path) -> PathBuf {
    let dir = tmp.join("bin");
    std::fs::create_dir_all(&dir).expect("bin dir");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_radmfa"), dir.join("radmfa")).expect("symlink");
    dir
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs docker/init-cluster.sh as the compose `init` service does.
fn init_cluster(tmp: &Path, bin: &Path) -> Output {
    run(
        Command::new("sh")
            .arg(repo().join("docker/init-cluster.sh"))
            .arg(tmp.join("ca"))
            .arg(tmp.join("cluster"))
            .args(["1", "2", "3"])
            .env("PATH", path_with(bin))
            .env_remove("RADMFA_CONFIG"),
        "POSIX sh",
    )
}

/// The key files init-cluster.sh makes: 64 hex digits and a newline, 0600.
fn assert_key_file(path: &Path) -> String {
    let text = read(path);
    let hex = text
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("{}: no newline", path.display()));
    assert_eq!(hex.len(), 64, "{}: {hex:?}", path.display());
    assert!(
        hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{}: not hex",
        path.display()
    );
    let mode = std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "{}: mode {mode:o}", path.display());
    text
}

/// Maps the container paths of a node config into `tmp` and fails if any
/// container path is left over (the file must be checked as a whole).
fn localize(text: &str, tmp: &Path, data_dir: &Path) -> String {
    let mapped = text
        .replace(
            "/etc/radmfa/cluster/",
            &format!("{}/", tmp.join("cluster").display()),
        )
        .replace(
            "/etc/radmfa/gateway/",
            &format!("{}/", tmp.join("gateway").display()),
        )
        .replace(
            "\"/var/lib/radmfa\"",
            &format!("{:?}", data_dir.display().to_string()),
        );
    for (n, line) in mapped.lines().enumerate() {
        let code = line.split('#').next().unwrap_or_default();
        assert!(
            !code.contains("/etc/radmfa") && !code.contains("/var/lib/radmfa"),
            "line {}: container path not mapped by the test: {line}",
            n + 1
        );
    }
    mapped
}

/// `radmfa check-config` on one localized node config; returns the text.
fn check_node_config(path: &Path, text: &str) -> String {
    std::fs::write(path, text).expect("write config");
    let out = radmfa(path, &["check-config"]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(": ok"),
        "check-config {}: {}",
        path.display(),
        show(&out)
    );
    text.to_string()
}

#[test]
fn init_script_makes_the_secrets_and_every_node_config_checks() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let bin = bin_dir(tmp);

    let out = init_cluster(tmp, &bin);
    assert!(out.status.success(), "init-cluster.sh: {}", show(&out));
    let cluster = tmp.join("cluster");
    for f in [
        "ca.pem",
        "node-1.pem",
        "node-1.key",
        "node-2.pem",
        "node-2.key",
        "node-3.pem",
        "node-3.key",
    ] {
        assert!(
            std::fs::metadata(cluster.join(f)).is_ok_and(|m| m.len() > 0),
            "{f} missing"
        );
    }
    // The CA key never reaches the directory the nodes mount.
    assert!(
        !cluster.join("ca.key").exists(),
        "ca.key copied to the nodes"
    );
    assert!(tmp.join("ca/ca.key").exists());
    let keys: Vec<String> = ["cluster.key", "seed.key", "gateway.key"]
        .iter()
        .map(|f| assert_key_file(&cluster.join(f)))
        .collect();
    assert!(
        keys[0] != keys[1] && keys[1] != keys[2],
        "keys must be independent"
    );
    // The server accepts the cluster key as it is.
    radmfa_server::load_cluster_key(&cluster.join("cluster.key")).expect("cluster.key accepted");
    let node1_cert = read(&cluster.join("node-1.pem"));
    // One VAPID key for all nodes, owner-only, and nothing else left behind.
    let vapid = read(&cluster.join("vapid.key"));
    assert!(
        vapid.starts_with("-----BEGIN PRIVATE KEY-----"),
        "vapid.key is not a PKCS#8 PEM key"
    );
    assert_eq!(
        std::fs::metadata(cluster.join("vapid.key"))
            .expect("vapid.key")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(
        std::fs::read_dir(&cluster).expect("cluster dir").all(|e| !e
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .starts_with('.')),
        "scratch directory left in {}",
        cluster.display()
    );

    // Idempotent: a second run (a restarted init service) rotates nothing.
    let out = init_cluster(tmp, &bin);
    assert!(out.status.success(), "second run: {}", show(&out));
    for (f, before) in ["cluster.key", "seed.key", "gateway.key"].iter().zip(&keys) {
        assert_eq!(&read(&cluster.join(f)), before, "{f} changed on re-run");
    }
    assert_eq!(read(&cluster.join("node-1.pem")), node1_cert);
    assert!(
        read(&cluster.join("vapid.key")) == vapid,
        "vapid.key changed on re-run"
    );

    // The gateway simulator writes its certificate at start; any PEM
    // certificate stands in for it here (the config reads the file).
    std::fs::create_dir_all(tmp.join("gateway")).expect("gateway dir");
    std::fs::copy(cluster.join("ca.pem"), tmp.join("gateway/sim.pem")).expect("sim.pem");

    let nginx = read(&repo().join("docker/config/nginx.conf"));
    for (id, ip) in NODES {
        let shipped = repo().join(format!("docker/config/node{id}.toml"));
        let data = tmp.join(format!("data{id}"));
        let text = localize(&read(&shipped), tmp, &data);
        let local = tmp.join(format!("node{id}.toml"));
        let checked = check_node_config(&local, &text);

        // The same file, read in-process, agrees with compose and nginx.
        std::fs::write(&local, checked).expect("write");
        let cfg = RuntimeConfig::load(&local).expect("loads");
        assert_eq!(cfg.node_id, id);
        assert_eq!(cfg.data_dir, data);
        assert_eq!(cfg.key_file, cluster.join("seed.key"), "shared seed key");
        assert_eq!(cfg.cluster_key_file, cluster.join("cluster.key"));
        let radius_ports: Vec<u16> = cfg.listen.iter().map(SocketAddr::port).collect();
        assert_eq!(radius_ports, vec![1812, 1813]);
        let c = cfg.cluster.as_ref().expect("[cluster]");
        assert_eq!(c.listen.port(), 4443);
        assert_eq!(c.cert, cluster.join(format!("node-{id}.pem")));
        let mut peers = c.peers.clone();
        peers.sort();
        let expected: Vec<(u16, SocketAddr)> = NODES
            .iter()
            .filter(|(other, _)| *other != id)
            .map(|(other, addr)| (*other, SocketAddr::from((*addr, 4443))))
            .collect();
        assert_eq!(peers, expected, "node {id} peers");
        let clients: Vec<String> = cfg.clients.iter().map(|c| c.address.to_string()).collect();
        assert_eq!(clients, vec![format!("{BALANCER}/32")], "node {id} clients");
        assert!(cfg.gateway.is_some(), "node {id} [gateway]");
        for port in [1812, 1813] {
            assert!(
                nginx.contains(&format!("server {ip}:{port} ")),
                "nginx.conf has no upstream {ip}:{port}"
            );
        }
        // The node's certificate names it; check-config already loaded it
        // with the CA (PeerTls), here the id must match the file name.
        assert!(read(&local).contains(&format!("node-{id}.pem")));
    }

    // The role each node starts with (the seed: one master, the others
    // subordinate).
    let roles: Vec<String> = NODES
        .iter()
        .map(|(id, _)| {
            read(&repo().join(format!("docker/config/node{id}.toml")))
                .lines()
                .find(|l| l.starts_with("role ="))
                .unwrap_or_else(|| panic!("node{id}.toml: no role"))
                .to_string()
        })
        .collect();
    assert_eq!(
        roles,
        [
            "role = \"primary\"",
            "role = \"replica\"",
            "role = \"replica\""
        ]
    );
}

/// `docker-compose` (v1: it parses and validates without an engine).
fn compose(args: &[&str], file: &Path) -> Output {
    run(
        Command::new("docker-compose")
            .arg("-f")
            .arg(file)
            .args(args)
            .env("COMPOSE_INTERACTIVE_NO_CLI", "1"),
        "apt-get install docker-compose",
    )
}

/// The `services:` of `docker-compose config` output (normalized block YAML,
/// two-space indent, keys sorted), one text block per service.
fn service_blocks(resolved: &str) -> BTreeMap<String, String> {
    let mut blocks = BTreeMap::new();
    let mut in_services = false;
    let mut current: Option<String> = None;
    for line in resolved.lines() {
        if !line.starts_with(' ') {
            in_services = line == "services:";
            current = None;
            continue;
        }
        if !in_services {
            continue;
        }
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) {
            if !name.starts_with(' ') {
                current = Some(name.to_string());
                blocks.insert(name.to_string(), String::new());
                continue;
            }
        }
        if let Some(name) = &current {
            let block = blocks.get_mut(name).expect("block");
            block.push_str(line.trim());
            block.push('\n');
        }
    }
    blocks
}

#[test]
fn compose_file_validates_and_wires_the_cluster() {
    if !tools::require_tool("docker-compose", "apt-get install docker-compose") {
        return;
    }
    let file = repo().join("docker/compose.yaml");
    let out = compose(&["config", "-q"], &file);
    assert!(
        out.status.success(),
        "docker-compose config -q: {}",
        show(&out)
    );

    // The validator is not a rubber stamp: a typo in a service is refused.
    let tmp = tempfile::tempdir().expect("tempdir");
    let broken = tmp.path().join("compose.yaml");
    std::fs::write(
        &broken,
        read(&file).replacen("  lb:\n", "  lb:\n    helthcheck: {}\n", 1),
    )
    .expect("write");
    let out = compose(&["config", "-q"], &broken);
    assert!(!out.status.success(), "broken compose file accepted");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("helthcheck"),
        "{}",
        show(&out)
    );

    let out = compose(&["config"], &file);
    assert!(out.status.success(), "{}", show(&out));
    let services = service_blocks(&String::from_utf8_lossy(&out.stdout));
    let names: Vec<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(names, ["gateway", "init", "lb", "node1", "node2", "node3"]);

    let has = |service: &str, needle: &str| {
        let block = &services[service];
        assert!(
            block.contains(needle),
            "service {service} lacks {needle:?}:\n{block}"
        );
    };
    for (id, ip) in NODES {
        let s = format!("node{id}");
        has(&s, "image: radmfa:latest");
        has(&s, &format!("ipv4_address: {ip}"));
        has(
            &s,
            &format!("docker/config/node{id}.toml:/etc/radmfa/node.toml:ro"),
        );
        has(&s, &format!("- node{id}-data:/var/lib/radmfa:rw"));
        has(&s, "- cluster:/etc/radmfa/cluster:ro");
        has(&s, "- gateway-ca:/etc/radmfa/gateway:ro");
        has(&s, "RADMFA_CONFIG: /etc/radmfa/node.toml");
        // The image's HEALTHCHECK command, through the control socket.
        has(&s, "healthcheck:\n");
        has(&s, "test:\n- CMD\n- radmfa\n- stats\n- --json\n");
        has(&s, "condition: service_completed_successfully");
        has(&s, "read_only: true");
        has(&s, "- ALL");
        assert!(
            !services[&s].contains("ports:"),
            "node{id} must be reached through the balancer only"
        );
    }
    // The init service makes the secrets and keeps the CA key to itself.
    has("init", "- radmfa-init-cluster");
    has("init", "- cluster-ca:/var/lib/radmfa-ca:rw");
    has("init", "- cluster:/etc/radmfa/cluster:rw");
    has("init", "- '1'\n- '2'\n- '3'\n");
    for s in ["gateway", "node1", "node2", "node3", "lb"] {
        assert!(
            !services[s].contains("cluster-ca"),
            "{s} must not see the CA key"
        );
    }
    has("gateway", "ipv4_address: 172.28.12.20");
    has("gateway", "--cert-out /var/lib/radmfa-gateway/sim.pem");
    // The balancer: the one published address, UDP 1812 and 1813.
    has("lb", &format!("ipv4_address: {BALANCER}"));
    has("lb", "docker/config/nginx.conf:/etc/nginx/nginx.conf:ro");
    for port in [1812, 1813] {
        has(
            "lb",
            &format!("- protocol: udp\npublished: {port}\ntarget: {port}\n"),
        );
    }

    let volumes = compose(&["config", "--volumes"], &file);
    assert!(volumes.status.success(), "{}", show(&volumes));
    let mut volumes: Vec<String> = String::from_utf8_lossy(&volumes.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    volumes.sort();
    assert_eq!(
        volumes,
        [
            "cluster",
            "cluster-ca",
            "gateway-ca",
            "node1-data",
            "node2-data",
            "node3-data"
        ]
    );
}

/// Path of nginx's dynamic stream module, when nginx has it as a module
/// (Debian); None when it is built in (the official image).
fn nginx_stream_module() -> Option<PathBuf> {
    [
        "/usr/lib/nginx/modules/ngx_stream_module.so",
        "/usr/lib64/nginx/modules/ngx_stream_module.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

#[test]
fn nginx_balancer_config_passes_nginx_t() {
    let conf = repo().join("docker/config/nginx.conf");
    let text = read(&conf);
    assert!(text.contains("listen 1812 udp reuseport;"), "{text}");
    assert!(text.contains("listen 1813 udp reuseport;"), "{text}");
    assert_eq!(text.matches("proxy_responses 1;").count(), 2);
    if !tools::require_tool("nginx", "apt-get install nginx libnginx-mod-stream") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    // The file as mounted in the official image (stream built in); on Debian
    // the stream module is loaded first, then the very same file included.
    let wrapper = tmp.path().join("nginx.conf");
    let load = nginx_stream_module()
        .map(|m| format!("load_module {};\n", m.display()))
        .unwrap_or_default();
    std::fs::write(&wrapper, format!("{load}include {};\n", conf.display())).expect("wrapper");
    let out = run(
        Command::new("nginx")
            .args(["-t", "-e", "stderr", "-p"])
            .arg(tmp.path())
            .arg("-c")
            .arg(&wrapper),
        "apt-get install nginx libnginx-mod-stream",
    );
    assert!(out.status.success(), "nginx -t: {}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("test is successful"),
        "{}",
        show(&out)
    );
}

/// A running `radmfa serve`, killed on drop if the test fails.
struct Serving(Option<Child>);

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn image_default_config_serves_and_its_healthcheck_tracks_the_server() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    // The shipped file with its container data directory and fixed ports
    // mapped for a test run; nothing else changes.
    let text = read(&repo().join("docker/config/standalone.toml"));
    assert!(text.contains("listen = [\"0.0.0.0:1812\", \"0.0.0.0:1813\"]"));
    let text = localize(&text, tmp.path(), &data).replace(
        "listen = [\"0.0.0.0:1812\", \"0.0.0.0:1813\"]",
        "listen = [\"127.0.0.1:0\", \"127.0.0.1:0\"]",
    );
    let config = tmp.path().join("radmfa.toml");
    std::fs::write(&config, text).expect("config");
    let out = radmfa(&config, &["check-config"]);
    assert!(out.status.success(), "{}", show(&out));

    // The HEALTHCHECK command fails while no server runs...
    let health = || radmfa(&config, &["stats", "--json"]);
    assert!(!health().status.success(), "healthy without a server");

    let ready = tmp.path().join("ready.json");
    let log = std::fs::File::create(tmp.path().join("serve.log")).expect("log");
    let mut server = Serving(Some(
        Command::new(env!("CARGO_BIN_EXE_radmfa"))
            .env_remove("RADMFA_CONFIG")
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .arg("--ready-file")
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start radmfa serve"),
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.exists() {
        let exited = server.0.as_mut().and_then(|c| c.try_wait().ok().flatten());
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "server did not become ready ({exited:?}): {}",
            read(&tmp.path().join("serve.log"))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // ...succeeds while it runs (the control socket answers)...
    let out = health();
    assert!(out.status.success(), "healthcheck: {}", show(&out));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
    assert!(stats.is_object(), "{stats}");

    // ...and fails again once the server stopped (SIGTERM, as docker stop).
    let mut child = server.0.take().expect("child");
    let kill = run(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdout(Stdio::null()),
        "kill",
    );
    assert!(kill.status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("server ignored SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    std::fs::File::open(tmp.path().join("serve.log"))
        .and_then(|mut f| f.read_to_string(&mut log))
        .expect("log");
    assert!(status.success(), "exit {status}: {log}");
    assert!(
        !health().status.success(),
        "healthy after the server stopped"
    );
}

#[test]
fn dockerfile_copies_every_workspace_manifest_and_existing_files() {
    let dockerfile = read(&repo().join("docker/Dockerfile"));
    let cargo = read(&repo().join("Cargo.toml"));
    let members_line = cargo
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("workspace members");
    let members: Vec<&str> = members_line
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|m| !m.is_empty())
        .collect();
    assert!(members.len() >= 5, "{members_line}");
    for m in &members {
        // The dependency layer needs every member's manifest and a stand-in
        // source, or `cargo build --locked` fails there.
        assert!(
            dockerfile.contains(&format!("COPY {m}/Cargo.toml {m}/Cargo.toml")),
            "Dockerfile: no manifest COPY for workspace member {m}"
        );
        assert!(
            dockerfile
                .lines()
                .filter(|l| l.trim_start().starts_with("for d in "))
                .any(|l| l.split_whitespace().any(|w| w.trim_end_matches(';') == *m)),
            "Dockerfile: no stand-in source for workspace member {m}"
        );
    }
    // Every COPY from the build context names something that exists.
    let ignore = read(&repo().join(".dockerignore"));
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ")) {
        if line.contains("--from=") {
            continue;
        }
        let words: Vec<&str> = line
            .split_whitespace()
            .skip(1)
            .filter(|w| !w.starts_with("--"))
            .collect();
        let (_, sources) = words.split_last().expect("COPY dest");
        for src in sources {
            assert!(repo().join(src).exists(), "COPY {src}: no such file");
            if src.starts_with("docker/") {
                // docker/ is ignored as a whole; these must be re-included.
                assert!(
                    ignore.lines().any(|l| l == format!("!{src}")),
                    ".dockerignore hides {src}"
                );
            }
        }
    }
    for needle in [
        "ARG RUST_IMAGE=rust:1-bookworm",
        "ARG RUNTIME_IMAGE=debian:bookworm-slim",
        "FROM ${RUST_IMAGE} AS builder",
        "FROM ${RUNTIME_IMAGE}\n",
        // CI (tests/container.sh) feeds the binaries it built this way; the
        // default still compiles them in the builder stage.
        "ARG BINARIES=builder\n",
        "FROM ${BINARIES} AS binaries\n",
        "COPY --from=binaries /out/radmfa /out/radmfa-gateway-sim /usr/local/bin/",
        "cargo build --release --locked -p radmfa -p radmfa-gateway-sim",
        "USER 10001:10001",
        "VOLUME [\"/var/lib/radmfa\"]",
        "EXPOSE 1812/udp 1813/udp 4443/tcp",
        "CMD [\"radmfa\", \"stats\", \"--json\"]",
        "STOPSIGNAL SIGTERM",
    ] {
        assert!(dockerfile.contains(needle), "Dockerfile lacks {needle:?}");
    }
    assert!(
        ignore.lines().any(|l| l == "target/"),
        ".dockerignore: target/"
    );
}

/// `Key=value` pairs of a unit file, in order (repeated keys kept).
fn unit_keys(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn systemd_unit_is_hardened_and_verifies() {
    let unit = repo().join("deploy/systemd/radmfa.service");
    let text = read(&unit);
    let keys = unit_keys(&text);
    let get = |k: &str| -> Vec<&str> {
        keys.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for (k, v) in [
        ("Type", "exec"),
        ("User", "radmfa"),
        ("StateDirectory", "radmfa"),
        ("ReadWritePaths", "/var/lib/radmfa"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
        ("SystemCallArchitectures", "native"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("UMask", "0077"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert!(
            get(k).contains(&v),
            "radmfa.service: want {k}={v}, have {:?}",
            get(k)
        );
    }
    // The server has no sd_notify (claiming it would make systemd wait for
    // a READY=1 that never comes); SIGHUP reloads its configuration.
    assert_eq!(get("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert_eq!(get("ExecStart").len(), 1);
    let exec = get("ExecStart")[0];
    assert!(
        exec.starts_with("/usr/bin/radmfa ") && exec.ends_with(" serve"),
        "{exec}"
    );
    // A bad configuration exits 2 (main.rs): no restart loop on it.
    assert_eq!(get("RestartPreventExitStatus"), ["2"]);

    let sysusers = read(&repo().join("deploy/systemd/radmfa.sysusers"));
    assert!(sysusers.lines().any(|l| l.starts_with("u radmfa ")));

    // The unit's keys were checked above; what follows needs systemd-analyze.
    let analyze = tools::on_path("systemd-analyze")
        .or_else(|| Some(PathBuf::from("/usr/bin/systemd-analyze")).filter(|p| p.exists()));
    let Some(analyze) = analyze else {
        tools::require("systemd-analyze", false, "apt-get install systemd");
        return;
    };
    // verify needs the ExecStart binary to exist: the unit as shipped, with
    // only /usr/bin/radmfa replaced by the binary under test.
    let tmp = tempfile::tempdir().expect("tempdir");
    let copy = tmp.path().join("radmfa.service");
    std::fs::write(
        &copy,
        text.replace(
            "ExecStart=/usr/bin/radmfa ",
            &format!("ExecStart={} ", env!("CARGO_BIN_EXE_radmfa")),
        ),
    )
    .expect("unit copy");
    let out = run(
        Command::new(&analyze).arg("verify").arg(&copy),
        "systemd-analyze",
    );
    // Unknown keys and bad values are only warnings (exit 0): none may name
    // our unit. Warnings about other installed units are not ours.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("radmfa.service"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {}",
        show(&out)
    );
    // The sandbox as systemd rates it: exposure 2.0 or lower ("OK").
    let out = run(
        Command::new(&analyze)
            .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
            .arg(&copy),
        "systemd-analyze",
    );
    assert!(
        out.status.success(),
        "systemd-analyze security: {}",
        show(&out)
    );
}

/// Ports named in `listen` lines (set or commented out) of a TOML text.
fn listen_ports(text: &str) -> std::collections::BTreeSet<u16> {
    let mut ports = std::collections::BTreeSet::new();
    for line in text.lines() {
        let line = line.trim_start_matches(['#', ' ']);
        let Some(rest) = line.strip_prefix("listen") else {
            continue;
        };
        let rest = rest.trim_start();
        if !rest.starts_with('=') {
            continue;
        }
        // Every "IP:PORT" string on the line.
        for quoted in rest.split('"').skip(1).step_by(2) {
            if let Ok(addr) = quoted.parse::<SocketAddr>() {
                ports.insert(addr.port());
            }
        }
    }
    ports
}

/// The ports the image exposes and the deployment guide lists are exactly
/// the ports the annotated default configuration can open (every listener's
/// `listen` line, set or commented out), so neither can claim a port that
/// nothing serves or miss one that a section opens.
#[test]
fn exposed_and_documented_ports_are_the_listeners_of_the_default_config() {
    let config = read(&repo().join("config/radmfa.toml"));
    let listeners = listen_ports(&config);
    for port in [1812, 1813, 4443, 2083, 8443, 8444] {
        assert!(
            listeners.contains(&port),
            "config/radmfa.toml has no listen line with port {port}: {listeners:?}"
        );
    }

    let dockerfile = read(&repo().join("docker/Dockerfile"));
    let exposed: std::collections::BTreeSet<u16> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|l| l.split_whitespace())
        .map(|p| {
            p.split('/')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("EXPOSE entry {p:?} is not PORT/PROTO"))
        })
        .collect();
    assert_eq!(
        exposed, listeners,
        "docker/Dockerfile EXPOSE differs from the listeners of config/radmfa.toml"
    );

    let guide = read(&repo().join("docs/deployment.md"));
    let mut documented = std::collections::BTreeSet::new();
    for line in guide.lines() {
        // Rows of the port table: "| 1812/udp | NAS -> radmfa ... |", inbound only.
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || cells[2].contains("outbound") || cells[1].contains("outbound") {
            continue;
        }
        if let Some(port) = cells[1]
            .split('/')
            .next()
            .and_then(|n| n.parse::<u16>().ok())
        {
            documented.insert(port);
        }
    }
    assert_eq!(
        documented, listeners,
        "the port table of docs/deployment.md differs from the listeners of config/radmfa.toml"
    );
}

/// The Debian package's configuration (deploy/debian/radmfa.toml, the
/// conffile /etc/radmfa/radmfa.toml) is the annotated default with the data
/// in /var/lib/radmfa, the directory the unit may write and the package
/// creates: one line apart, so the two cannot drift.
#[test]
fn packaged_config_is_the_default_with_the_unit_data_dir() {
    let default = read(&repo().join("config/radmfa.toml"));
    let packaged = read(&repo().join("deploy/debian/radmfa.toml"));
    let want = default.replace(
        "\ndata_dir = \"./radmfa-data\"\n",
        "\ndata_dir = \"/var/lib/radmfa\"\n",
    );
    assert_ne!(want, default, "config/radmfa.toml has no data_dir line");
    assert!(
        packaged == want,
        "deploy/debian/radmfa.toml must be config/radmfa.toml with data_dir = \"/var/lib/radmfa\"; \
         regenerate it with: sed 's|^data_dir = \"./radmfa-data\"$|data_dir = \"/var/lib/radmfa\"|' \
         config/radmfa.toml > deploy/debian/radmfa.toml"
    );
    if let Err(e) =
        radmfa_server::config::ParsedConfig::parse(&packaged, "deploy/debian/radmfa.toml")
    {
        panic!("{e}");
    }
    assert_eq!(
        radmfa_server::config::data_dir_leniently(&packaged),
        Path::new("/var/lib/radmfa")
    );
    let unit = read(&repo().join("deploy/systemd/radmfa.service"));
    assert!(
        unit.contains("\nReadWritePaths=/var/lib/radmfa\n"),
        "the unit may not write the data dir"
    );
}

/// Every configuration block of docs/recipes/ (`<!-- recipe: NAME.toml -->`)
/// is valid as it stands, including those of recipes no test can run here
/// (RD Gateway through NPS); no file it names is read.
#[test]
fn recipe_config_blocks_are_valid() {
    let dir = repo().join("docs/recipes");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("docs/recipes") {
        let path = entry.expect("entry").path();
        let text = read(&path);
        for line in text.lines() {
            let Some(name) = line
                .strip_prefix("<!-- recipe: ")
                .and_then(|l| l.strip_suffix(" -->"))
            else {
                continue;
            };
            let block = recipe_text::block(&text, name);
            let origin = format!("{}#{name}", path.display());
            if let Err(e) = radmfa_server::config::ParsedConfig::parse(&block, &origin) {
                panic!("{e}");
            }
            seen += 1;
        }
    }
    assert!(seen >= 5, "only {seen} recipe blocks found");
}
