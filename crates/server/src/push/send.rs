//! Sending one Web Push message to one registered browser: RFC 8291
//! `aes128gcm` encryption (web-push-native, on RustCrypto's P-256, HKDF and
//! AES-GCM: no crypto of our own), RFC 8292 VAPID authorization, RFC 8030
//! delivery (POST to the push resource with `TTL` and `Urgency`) over the
//! reqwest client. The endpoint URL is a capability: only its host is ever
//! logged.

use std::time::Duration;

use radmfa_store::PushDevice;
use tracing::warn;
use web_push_native::{p256, Auth};

use super::vapid::VapidKey;
use crate::config::PushSettings;

/// What the push service said about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Accepted (201, or any 2xx).
    Sent,
    /// 404 or 410: the subscription is gone (browser unsubscribed, data
    /// cleared); the device should be removed.
    Gone,
    /// Anything else; already logged with the remedy.
    Failed,
}

/// Sends Web Push messages for the node.
#[derive(Debug)]
pub struct Pusher {
    client: reqwest::Client,
    key: VapidKey,
    settings: PushSettings,
}

impl Pusher {
    /// A sender signing with `key`; HTTP requests time out after 10 s.
    pub fn new(key: VapidKey, settings: PushSettings) -> Result<Pusher, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Pusher {
            client,
            key,
            settings,
        })
    }

    /// The public key browsers subscribe with.
    pub fn public_key(&self) -> &str {
        self.key.public_b64()
    }

    /// Whether `endpoint` may be registered (https; http only with
    /// `[push] allow_http_endpoints`).
    pub fn endpoint_allowed(&self, endpoint: &str) -> bool {
        endpoint.starts_with("https://")
            || (self.settings.allow_http_endpoints && endpoint.starts_with("http://"))
    }

    /// Encrypts `payload` for `device` and posts it, to be kept by the push
    /// service for at most `ttl_secs` (an approval nobody waits for any more
    /// is worthless), with `Urgency: high` (a sign-in waits for it).
    pub async fn send(&self, device: &PushDevice, payload: &[u8], ttl_secs: u64) -> Delivery {
        let host = device.endpoint_host();
        let request = match self.request(device, payload, ttl_secs) {
            Ok(r) => r,
            Err(why) => {
                warn!(device = %device.id, push_service = host, error = %why,
                    "cannot build the push message for this device; remove it (radmfa user device-remove) and register the browser again");
                return Delivery::Failed;
            }
        };
        match self.client.execute(request).await {
            Ok(r) if r.status().is_success() => Delivery::Sent,
            Ok(r) if matches!(r.status().as_u16(), 404 | 410) => Delivery::Gone,
            Ok(r) => {
                let status = r.status().as_u16();
                let remedy = match status {
                    400 | 401 | 403 => "the push service refused our VAPID signature: every node must hold the same [push] vapid_key_file as when the browser registered, and [push] subject must be a mailto: or https: contact",
                    413 => "the message is too large (a bug: report it)",
                    429 => "the push service is rate limiting this server; sign-ins wait for it",
                    _ => "the push service failed; it is outside radmfa (try again later)",
                };
                warn!(device = %device.id, push_service = host, status, remedy, "push message refused");
                Delivery::Failed
            }
            Err(e) => {
                warn!(device = %device.id, push_service = host, error = %e.without_url(),
                    "cannot reach the push service: the nodes need outbound HTTPS to the browsers' push services (docs/deployment.md)");
                Delivery::Failed
            }
        }
    }

    fn request(
        &self,
        device: &PushDevice,
        payload: &[u8],
        ttl_secs: u64,
    ) -> Result<reqwest::Request, String> {
        if !self.endpoint_allowed(&device.endpoint) {
            return Err("the endpoint is not https".into());
        }
        let url = reqwest::Url::parse(&device.endpoint).map_err(|e| e.to_string())?;
        let audience = url.origin().ascii_serialization();
        let b64 = |s: &str| {
            data_encoding::BASE64URL_NOPAD
                .decode(s.trim_end_matches('=').as_bytes())
                .map_err(|e| e.to_string())
        };
        let ua_public = p256::PublicKey::from_sec1_bytes(&b64(&device.p256dh)?)
            .map_err(|e| format!("p256dh: {e}"))?;
        let auth = b64(&device.auth)?;
        if auth.len() != 16 {
            return Err("auth is not 16 bytes".into());
        }
        let body =
            web_push_native::encrypt(payload.to_vec(), &ua_public, &Auth::clone_from_slice(&auth))
                .map_err(|e| e.to_string())?;
        let authorization = self.key.authorization(&audience, &self.settings.subject)?;
        self.client
            .post(url)
            .header("TTL", ttl_secs.to_string())
            .header("Urgency", "high")
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header("Authorization", authorization)
            .body(body)
            .build()
            .map_err(|e| e.to_string())
    }
}
