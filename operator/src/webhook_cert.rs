//! The injector's certificate when cert-manager is not used (decision 062): the operator issues
//! a CA and a serving certificate into a Secret, renews both at 2/3 of their lifetime (the
//! previous CA stays in the bundle until it expires, so either pair verifies during the switch),
//! patches the `caBundle` of the injector's `MutatingWebhookConfiguration`, and hands the pair to
//! the webhook server in memory, which serves it from the next connection on: no restart, no
//! wait for the kubelet to refresh a mounted Secret. Every replica runs it; writes carry the
//! `resourceVersion` they read, so racing replicas settle on one pair.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::json;
use time::OffsetDateTime;
use tokio_rustls::TlsAcceptor;

/// When the Secret's pair was issued (RFC 3339): the start of its lifetime.
pub const ISSUED_AT: &str = "gate.dev/webhook-cert-issued-at";
/// When the Secret's pair expires (RFC 3339).
pub const EXPIRES_AT: &str = "gate.dev/webhook-cert-expires-at";
/// The DNS names the serving certificate was issued for (comma-separated).
pub const DNS_NAMES: &str = "gate.dev/webhook-cert-dns-names";

/// Where the certificate lives and what it is for.
#[derive(Debug, Clone)]
pub struct CertConfig {
    /// Namespace of the operator, its Service and the Secret.
    pub namespace: String,
    /// The Secret holding `tls.crt`, `tls.key` and `ca.crt`.
    pub secret: String,
    /// The webhook's Service: the certificate is issued for `SERVICE.NAMESPACE.svc`.
    pub service: String,
    /// The `MutatingWebhookConfiguration` whose webhooks pointing at `service` get the CA bundle.
    pub webhook_configuration: String,
    /// Lifetime of a pair; it is renewed after 2/3 of it.
    pub validity: Duration,
    /// How often the Secret and the CA bundle are checked (and rotations by other replicas seen).
    pub check_every: Duration,
}

impl CertConfig {
    /// The names the API server dials the webhook by.
    pub fn dns_names(&self) -> Vec<String> {
        let host = format!("{}.{}.svc", self.service, self.namespace);
        vec![host.clone(), format!("{host}.cluster.local")]
    }
}

/// A freshly issued pair and the CA bundle that verifies it.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    /// The new CA first, then the previous one while it is still valid.
    pub ca_bundle: String,
    pub issued_at: i64,
    pub expires_at: i64,
}

fn rcgen_error(what: &str) -> impl Fn(rcgen::Error) -> String + '_ {
    move |e| format!("cannot issue the webhook {what}: {e}")
}

fn at(second: i64) -> Result<OffsetDateTime, String> {
    OffsetDateTime::from_unix_timestamp(second).map_err(|e| format!("bad validity time: {e}"))
}

/// Issue a CA and a serving certificate valid from `now` for `config.validity` (backdated five
/// minutes for clock skew); `previous_ca` is appended to the bundle.
pub fn issue(config: &CertConfig, now: i64, previous_ca: Option<&str>) -> Result<Issued, String> {
    let lifetime = i64::try_from(config.validity.as_secs().max(1)).unwrap_or(i64::MAX / 2);
    let expires_at = now.saturating_add(lifetime);
    let (not_before, not_after) = (at(now - 300)?, at(expires_at)?);

    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error("CA"))?;
    ca.distinguished_name
        .push(DnType::CommonName, format!("{} webhook CA", config.service));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca.not_before, ca.not_after) = (not_before, not_after);
    let ca_key = KeyPair::generate().map_err(rcgen_error("CA key"))?;
    let ca = CertifiedIssuer::self_signed(ca, ca_key).map_err(rcgen_error("CA"))?;

    let names = config.dns_names();
    let mut leaf = CertificateParams::new(names.clone()).map_err(rcgen_error("certificate"))?;
    leaf.distinguished_name
        .push(DnType::CommonName, names[0].clone());
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    (leaf.not_before, leaf.not_after) = (not_before, not_after);
    let leaf_key = KeyPair::generate().map_err(rcgen_error("key"))?;
    let cert = leaf
        .signed_by(&leaf_key, &ca)
        .map_err(rcgen_error("certificate"))?;

    let mut ca_bundle = ca.pem();
    if let Some(previous) = previous_ca {
        ca_bundle.push_str(previous);
    }
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: leaf_key.serialize_pem(),
        ca_bundle,
        issued_at: now,
        expires_at,
    })
}

/// The moment a pair issued at `issued_at` and expiring at `expires_at` is renewed: 2/3 in.
pub fn renew_at(issued_at: i64, expires_at: i64) -> i64 {
    issued_at + (expires_at - issued_at).max(0) * 2 / 3
}

/// What to do with the Secret as read.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Issue a new pair; the current CA (still valid) joins the new bundle.
    Issue {
        previous_ca: Option<String>,
        why: String,
    },
}

fn text<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    let bytes = secret.data.as_ref()?.get(key)?;
    std::str::from_utf8(&bytes.0).ok()
}

fn annotation_seconds(secret: &Secret, key: &str) -> Option<i64> {
    let value = secret.metadata.annotations.as_ref()?.get(key)?;
    Some(value.parse::<Timestamp>().ok()?.as_second())
}

/// The first certificate of a PEM bundle (the CA that signed the current serving certificate).
fn first_pem(bundle: &str) -> Option<String> {
    const END: &str = "-----END CERTIFICATE-----";
    let end = bundle.find(END)? + END.len();
    let rest = &bundle[end..];
    let eol = if rest.starts_with("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    Some(format!("{}{eol}", bundle[..end].trim_start()))
}

/// Keep the Secret's pair, or issue a new one (missing or unusable pair, other DNS names, or
/// 2/3 of its lifetime gone).
pub fn assess(secret: Option<&Secret>, config: &CertConfig, now: i64) -> Verdict {
    let issue = |previous_ca, why: &str| Verdict::Issue {
        previous_ca,
        why: why.to_owned(),
    };
    let Some(secret) = secret else {
        return issue(None, "the Secret does not exist");
    };
    let (Some(cert), Some(key), Some(ca)) = (
        text(secret, "tls.crt"),
        text(secret, "tls.key"),
        text(secret, "ca.crt"),
    ) else {
        return issue(None, "the Secret lacks tls.crt, tls.key or ca.crt");
    };
    if gate_tls::acceptor_from_pem(cert.as_bytes(), key.as_bytes(), Vec::new()).is_err() {
        return issue(
            None,
            "the Secret's pair is not a usable certificate and key",
        );
    }
    let (Some(issued_at), Some(expires_at)) = (
        annotation_seconds(secret, ISSUED_AT),
        annotation_seconds(secret, EXPIRES_AT),
    ) else {
        return issue(
            None,
            "the Secret's validity annotations are missing or unreadable",
        );
    };
    let previous = (now < expires_at).then(|| first_pem(ca)).flatten();
    let names = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DNS_NAMES));
    if names.map(String::as_str) != Some(config.dns_names().join(",").as_str()) {
        return issue(previous, "the certificate names other hosts");
    }
    if now >= renew_at(issued_at, expires_at) {
        return issue(previous, "2/3 of the certificate's lifetime has passed");
    }
    Verdict::Keep
}

/// The Secret for `issued`, replacing `old` (its `resourceVersion` kept: a stale write is refused).
pub fn secret_for(config: &CertConfig, issued: &Issued, old: Option<Secret>) -> Secret {
    let stamp = |s: i64| {
        Timestamp::from_second(s)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    let mut secret = old.unwrap_or_default();
    let meta = &mut secret.metadata;
    meta.name = Some(config.secret.clone());
    meta.namespace = Some(config.namespace.clone());
    meta.labels
        .get_or_insert_default()
        .insert("gate.dev/generated".into(), "operator".into());
    let annotations = meta.annotations.get_or_insert_default();
    annotations.insert(ISSUED_AT.into(), stamp(issued.issued_at));
    annotations.insert(EXPIRES_AT.into(), stamp(issued.expires_at));
    annotations.insert(DNS_NAMES.into(), config.dns_names().join(","));
    secret.type_ = Some("kubernetes.io/tls".into());
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    secret.data = Some(
        [
            ("tls.crt".to_owned(), bytes(&issued.cert_pem)),
            ("tls.key".to_owned(), bytes(&issued.key_pem)),
            ("ca.crt".to_owned(), bytes(&issued.ca_bundle)),
        ]
        .into(),
    );
    secret.string_data = None;
    secret
}

/// The pair the webhook serves, as installed by [`ensure`].
#[derive(Default)]
pub struct ServingCert {
    current: Mutex<Option<(String, String, TlsAcceptor)>>,
}

impl ServingCert {
    /// Serve `cert`/`key` from the next connection on (a no-op when they are already served).
    pub fn install(&self, cert: &str, key: &str, alpn: Vec<Vec<u8>>) -> Result<(), String> {
        let mut current = self.current.lock().map_err(|_| "poisoned".to_owned())?;
        if current
            .as_ref()
            .is_some_and(|(c, k, _)| c == cert && k == key)
        {
            return Ok(());
        }
        let acceptor = gate_tls::acceptor_from_pem(cert.as_bytes(), key.as_bytes(), alpn)?;
        *current = Some((cert.to_owned(), key.to_owned(), acceptor));
        Ok(())
    }

    /// The acceptor for the installed pair.
    pub fn acceptor(&self) -> Result<TlsAcceptor, String> {
        let current = self.current.lock().map_err(|_| "poisoned".to_owned())?;
        current
            .as_ref()
            .map(|(_, _, acceptor)| acceptor.clone())
            .ok_or_else(|| "the webhook certificate has not been issued yet".to_owned())
    }
}

fn api_error(what: String) -> impl FnOnce(kube::Error) -> String {
    move |e| format!("{what}: {e}")
}

/// One check: read the Secret, issue or renew the pair if due, serve it, and make the webhooks'
/// `caBundle` its CA bundle.
pub async fn ensure(
    client: &kube::Client,
    config: &CertConfig,
    serving: &ServingCert,
    alpn: Vec<Vec<u8>>,
) -> Result<(), String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    let where_ = format!("Secret {}/{}", config.namespace, config.secret);
    let mut attempts = 0;
    let secret = loop {
        attempts += 1;
        let current = secrets
            .get_opt(&config.secret)
            .await
            .map_err(api_error(format!("read {where_}")))?;
        let now = Timestamp::now().as_second();
        let (previous_ca, why) = match assess(current.as_ref(), config, now) {
            Verdict::Keep => break current,
            Verdict::Issue { previous_ca, why } => (previous_ca, why),
        };
        let issued = issue(config, now, previous_ca.as_deref())?;
        let written = match current {
            None => {
                let new = secret_for(config, &issued, None);
                secrets.create(&PostParams::default(), &new).await
            }
            Some(old) => {
                let new = secret_for(config, &issued, Some(old));
                secrets
                    .replace(&config.secret, &PostParams::default(), &new)
                    .await
            }
        };
        match written {
            Ok(secret) => {
                tracing::info!(secret = %where_, reason = %why, "issued the webhook certificate");
                break Some(secret);
            }
            // Another replica wrote first: read what it wrote.
            Err(kube::Error::Api(e)) if e.code == 409 && attempts < 3 => {}
            Err(e) => return Err(format!("write {where_}: {e}")),
        }
    };
    let secret = secret.ok_or_else(|| format!("{where_} vanished"))?;
    let (Some(cert), Some(key), Some(ca)) = (
        text(&secret, "tls.crt"),
        text(&secret, "tls.key"),
        text(&secret, "ca.crt"),
    ) else {
        return Err(format!("{where_} lacks tls.crt, tls.key or ca.crt"));
    };
    serving.install(cert, key, alpn)?;
    patch_ca_bundle(client, config, ca).await
}

/// Set `caBundle` of every webhook of the configuration that calls `config.service`; a JSON patch
/// whose `test` of each webhook's name refuses it if the list changed under it.
async fn patch_ca_bundle(
    client: &kube::Client,
    config: &CertConfig,
    ca_bundle: &str,
) -> Result<(), String> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let name = &config.webhook_configuration;
    let what = format!("MutatingWebhookConfiguration {name}");
    let current = api
        .get(name)
        .await
        .map_err(api_error(format!("read {what}")))?;
    let want = ByteString(ca_bundle.as_bytes().to_vec());
    let encoded = serde_json::to_value(&want).map_err(|e| e.to_string())?;
    let mut ops = Vec::new();
    for (i, webhook) in current.webhooks.iter().flatten().enumerate() {
        let ours = webhook
            .client_config
            .service
            .as_ref()
            .is_some_and(|s| s.name == config.service && s.namespace == config.namespace);
        if !ours || webhook.client_config.ca_bundle.as_ref() == Some(&want) {
            continue;
        }
        ops.push(
            json!({"op": "test", "path": format!("/webhooks/{i}/name"), "value": webhook.name}),
        );
        ops.push(
            json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"),
                        "value": encoded}),
        );
    }
    if ops.is_empty() {
        return Ok(());
    }
    let patch: json_patch::Patch =
        serde_json::from_value(json!(ops)).map_err(|e| format!("patch of {what}: {e}"))?;
    api.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map_err(api_error(format!("patch the caBundle of {what}")))?;
    tracing::info!(configuration = %name, "patched the webhook CA bundle");
    Ok(())
}

/// [`ensure`] every `check_every` (every 5 s after an error) until the process ends.
pub async fn maintain(
    client: kube::Client,
    config: CertConfig,
    serving: Arc<ServingCert>,
    alpn: Vec<Vec<u8>>,
) {
    loop {
        let wait = match ensure(&client, &config, &serving, alpn.clone()).await {
            Ok(()) => config.check_every,
            Err(e) => {
                tracing::warn!(error = %e, "webhook certificate check failed");
                config.check_every.min(Duration::from_secs(5))
            }
        };
        tokio::time::sleep(wait).await;
    }
}
