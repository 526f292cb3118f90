//! `radmfa-gateway-sim`: an HTTPS simulator of the radmfa cloud gateway
//! (`docs/gateway-protocol.md`) and of the Twilio Messages and Calls endpoints.
//!
//! It records every message it "sends" (readable at `GET /sim/messages`) and answers
//! verifications by rule (`POST /sim/rules`, `--default-rule`). For tests, demos and
//! the docker compose; never for production.

mod app;
mod rules;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use radmfa_gateway::Secret;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::app::{router, Sim, SimConfig};
use crate::rules::Rule;

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "radmfa-gateway-sim", version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port; see --ready-file).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Certificate chain (PEM). Without --cert/--key a self-signed certificate is made.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Names and IP addresses of the generated certificate.
    #[arg(long = "san", default_values = ["localhost", "127.0.0.1"])]
    sans: Vec<String>,
    /// Write the certificate in use (PEM) here, so clients can trust it.
    #[arg(long)]
    cert_out: Option<PathBuf>,
    /// Write the bound address (`ip:port`) here once the server accepts connections.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Bearer API key of the radmfa protocol and the /sim endpoints.
    #[arg(long, env = "RADMFA_SIM_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Twilio account SID accepted by the Twilio endpoints.
    #[arg(long, env = "RADMFA_SIM_TWILIO_SID", default_value = "ACsimulator")]
    twilio_account_sid: String,
    /// Twilio auth token; without it the Twilio endpoints refuse every request.
    #[arg(long, env = "RADMFA_SIM_TWILIO_TOKEN", hide_env_values = true)]
    twilio_auth_token: Option<String>,
    /// Rule for users without their own: approve, deny, fraud, timeout, never,
    /// enter:DIGITS (the PIN the user types), after:SECONDS:RULE.
    #[arg(long, default_value = "approve")]
    default_rule: Rule,
}

fn write_atomically(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// The certificate chain, its PEM text, and the key.
fn load_or_generate(
    args: &Args,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, String, PrivateKeyDer<'static>)> {
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        let pem =
            std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
        let chain = rustls_pemfile::certs(&mut pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("parsing {}", cert.display()))?;
        if chain.is_empty() {
            bail!("{} holds no certificate", cert.display());
        }
        let key_pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .with_context(|| format!("parsing {}", key.display()))?
            .with_context(|| format!("{} holds no private key", key.display()))?;
        return Ok((chain, pem, key));
    }
    let generated = rcgen::generate_simple_self_signed(args.sans.clone())
        .context("generating a self-signed certificate")?;
    let pem = generated.cert.pem();
    let der = generated.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der()));
    Ok((vec![der], pem, key))
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor, app: axum::Router) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let service = TowerToHyperService::new(app);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.api_key.is_empty() {
        bail!("--api-key must not be empty");
    }
    let (chain, pem, key) = load_or_generate(&args)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("TLS certificate and key")?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));

    let sim = Sim::new(SimConfig {
        api_key: Secret::new(args.api_key.clone()),
        twilio: args
            .twilio_auth_token
            .clone()
            .map(|t| (args.twilio_account_sid.clone(), Secret::new(t))),
        default_rule: args.default_rule.clone(),
    });
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("local address")?;
    if let Some(path) = &args.cert_out {
        write_atomically(path, pem.as_bytes())?;
    }
    if let Some(path) = &args.ready_file {
        write_atomically(path, addr.to_string().as_bytes())?;
    }
    tracing::info!(%addr, "radmfa-gateway-sim listening (HTTPS)");
    tokio::select! {
        () = serve(listener, acceptor, router(sim)) => {}
        r = tokio::signal::ctrl_c() => { r.context("waiting for Ctrl-C")?; }
    }
    Ok(())
}
