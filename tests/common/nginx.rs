//! nginx as a plain round-robin UDP balancer in front of radmfa nodes
//! (cluster_e2e, replication_e2e). Every session is logged to
//! `<dir>/nginx/access.log` as `CLIENT_PORT UPSTREAM STATUS`, so a test can
//! tell which node a request went to.
// Each including test binary uses some of these.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx, stopped when dropped.
pub struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether nginx and its stream module are installed (else the test is
/// skipped, or fails under CI, with what to install).
pub fn available() -> bool {
    super::require_tool("nginx", "apt-get install nginx")
        && super::require(
            "nginx's stream module",
            module().is_some(),
            "apt-get install libnginx-mod-stream",
        )
}

/// The stream module, if installed.
pub fn module() -> Option<&'static str> {
    [
        "/usr/lib/nginx/modules/ngx_stream_module.so",
        "/usr/lib64/nginx/modules/ngx_stream_module.so",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
}

/// nginx as a plain round-robin UDP balancer (no stickiness: every datagram
/// is its own session).
pub fn start(dir: &Path, listen: u16, upstreams: &[String]) -> Nginx {
    let module =
        module().expect("nginx's stream module (apt-get install nginx libnginx-mod-stream)");
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("logs")).expect("nginx dir");
    let servers: String = upstreams
        .iter()
        .map(|u| format!("        server {u};\n"))
        .collect();
    let conf = format!(
        "load_module {module};\nworker_processes 1;\nerror_log stderr notice;\npid {pid};\nevents {{ worker_connections 1024; }}\nstream {{\n    log_format up '$remote_port $upstream_addr $status';\n    access_log {log} up;\n    upstream radmfa {{\n{servers}    }}\n    server {{\n        listen 127.0.0.1:{listen} udp;\n        proxy_pass radmfa;\n        proxy_responses 1;\n        proxy_timeout 10s;\n    }}\n}}\n",
        pid = prefix.join("nginx.pid").display(),
        log = prefix.join("access.log").display(),
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("nginx.conf");
    let child = Command::new("nginx")
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf_path)
        .args(["-g", "daemon off; master_process off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx (apt-get install nginx libnginx-mod-stream)");
    // Ready when it answers: a Status-Server through it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = super::radclient_opts(
            &format!("127.0.0.1:{listen}"),
            "status",
            super::SECRET,
            "Message-Authenticator = 0x00\n",
            1,
        );
        if r.code.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nginx not answering: {}",
            r.output
        );
    }
    Nginx(child)
}

/// The access log: `(client port, upstream address)` per session, in order.
pub fn sessions(dir: &Path) -> Vec<(u16, String)> {
    let text = std::fs::read_to_string(dir.join("nginx").join("access.log")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let port = f.next()?.parse().ok()?;
            Some((port, f.next()?.to_string()))
        })
        .collect()
}
