//! `gate-operator`: command-line entry point of the Kubernetes operator.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use gate_operator::context::{Ctx, Timing};
use gate_operator::inject::InjectConfig;
use gate_operator::leader::{LeaseConfig, elect};
use gate_operator::run::{Health, lead, router};
use gate_operator::webhook::CertSource;
use gate_operator::webhook_cert::{CertConfig, ServingCert, maintain};
use gate_proto::client::{Credentials, connect_admin};
use tokio::sync::watch;

/// Gate operator: reconciles `Resource`, `Policy`, `Group` and `AccessRequest` custom resources
/// (gate.dev/v1alpha1) into the Gate control plane.
#[derive(Debug, Parser)]
#[command(name = "gate-operator", version)]
struct Args {
    /// URL of the Gate control plane's gRPC endpoint.
    #[arg(
        long,
        env = "GATE_CONTROL_URL",
        default_value = "http://localhost:8080"
    )]
    control_plane: String,
    /// Org API key (role editor or admin), usually from a Secret through the environment.
    #[arg(long, env = "GATE_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Organization id, only for a system (root) key.
    #[arg(long, env = "GATE_ORG_ID")]
    org_id: Option<String>,
    /// Watch only this namespace (default: every namespace).
    #[arg(long, env = "GATE_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "gate-system")]
    lease_namespace: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME", default_value = "gate-operator")]
    identity: String,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "GATE_OPERATOR_LISTEN", default_value = "0.0.0.0:8081")]
    listen: String,
    /// Seconds between drift checks of in-sync objects.
    #[arg(long, default_value_t = 60)]
    resync_seconds: u64,
    /// Serve the sidecar injector's admission webhook (HTTPS, `POST /mutate`) on this address.
    #[arg(long, env = "GATE_WEBHOOK_LISTEN")]
    webhook_listen: Option<String>,
    /// The webhook's PEM certificate (re-read when it changes: rotation needs no restart).
    #[arg(
        long,
        env = "GATE_WEBHOOK_CERT_FILE",
        default_value = "/etc/gate/webhook/tls.crt"
    )]
    webhook_cert_file: String,
    /// The webhook's PEM private key.
    #[arg(
        long,
        env = "GATE_WEBHOOK_KEY_FILE",
        default_value = "/etc/gate/webhook/tls.key"
    )]
    webhook_key_file: String,
    /// Issue the webhook's certificate into this Secret (in the operator's namespace) and renew it,
    /// instead of reading --webhook-cert-file (for clusters without cert-manager; decision 062).
    #[arg(long, env = "GATE_WEBHOOK_CERT_SECRET")]
    webhook_cert_secret: Option<String>,
    /// The webhook's Service (the issued certificate names `SERVICE.NAMESPACE.svc`).
    #[arg(long, env = "GATE_WEBHOOK_SERVICE", default_value = "gate-operator")]
    webhook_service: String,
    /// The MutatingWebhookConfiguration whose `caBundle` the operator keeps current.
    #[arg(
        long,
        env = "GATE_WEBHOOK_CONFIGURATION",
        default_value = "gate-operator"
    )]
    webhook_configuration: String,
    /// Lifetime of an issued certificate in hours; renewed after 2/3 of it.
    #[arg(long, env = "GATE_WEBHOOK_CERT_VALIDITY_HOURS", default_value_t = 2160)]
    webhook_cert_validity_hours: u64,
    /// The connector image injected sidecars run.
    #[arg(
        long,
        env = "GATE_CONNECTOR_IMAGE",
        default_value = "ghcr.io/gate-dev/gate-connector:latest"
    )]
    connector_image: String,
    /// Default requests of injected sidecars (`cpu=50m,memory=64Mi`); pod annotations override them.
    #[arg(
        long,
        env = "GATE_SIDECAR_REQUESTS",
        default_value = "cpu=50m,memory=64Mi"
    )]
    sidecar_requests: String,
    /// Default limits of injected sidecars (`memory=256Mi`); pod annotations override them.
    #[arg(long, env = "GATE_SIDECAR_LIMITS", default_value = "memory=256Mi")]
    sidecar_limits: String,
    /// The Secret, in each opted-in namespace, holding the sidecars' control-plane token (an org
    /// key with role connector).
    #[arg(
        long,
        env = "GATE_SIDECAR_TOKEN_SECRET",
        default_value = "gate-connector-token"
    )]
    sidecar_token_secret: String,
    /// The key of that Secret.
    #[arg(long, env = "GATE_SIDECAR_TOKEN_KEY", default_value = "token")]
    sidecar_token_key: String,
    /// The issuer of identity tokens sidecars accept from clients (default: --control-plane).
    #[arg(long, env = "GATE_SIDECAR_TOKEN_ISSUER")]
    sidecar_token_issuer: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt().with_target(false).init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gate-operator: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The webhook's certificate: issued and renewed by the operator into `--webhook-cert-secret`,
/// or read from the files.
fn webhook_certs(args: &Args, kube: &kube::Client) -> anyhow::Result<CertSource> {
    let Some(secret) = &args.webhook_cert_secret else {
        let files =
            gate_operator::webhook::tls_files(&args.webhook_cert_file, &args.webhook_key_file)
                .map_err(anyhow::Error::msg)
                .context("admission webhook TLS")?;
        return Ok(Arc::new(files).into());
    };
    let config = CertConfig {
        namespace: args.lease_namespace.clone(),
        secret: secret.clone(),
        service: args.webhook_service.clone(),
        webhook_configuration: args.webhook_configuration.clone(),
        validity: Duration::from_secs(args.webhook_cert_validity_hours.max(1) * 3600),
        check_every: Duration::from_secs(60),
    };
    let serving = Arc::new(ServingCert::default());
    tokio::spawn(maintain(
        kube.clone(),
        config,
        serving.clone(),
        gate_operator::webhook::alpn(),
    ));
    Ok(serving.into())
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(address) = &args.webhook_listen {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("listen on {address} (webhook)"))?;
        let config = InjectConfig {
            image: args.connector_image.clone(),
            control_plane_url: args.control_plane.clone(),
            requests: gate_operator::inject::parse_amounts(
                "--sidecar-requests",
                &args.sidecar_requests,
            )
            .map_err(anyhow::Error::msg)?,
            limits: gate_operator::inject::parse_amounts("--sidecar-limits", &args.sidecar_limits)
                .map_err(anyhow::Error::msg)?,
            token_secret: args.sidecar_token_secret.clone(),
            token_key: args.sidecar_token_key.clone(),
            token_issuer: args.sidecar_token_issuer.clone().filter(|i| !i.is_empty()),
            ..InjectConfig::default()
        };
        // The named Resources' credentials Secret references are read through the API.
        let kube = kube::Client::try_default()
            .await
            .context("kubernetes client for the webhook")?;
        let certs = webhook_certs(&args, &kube)?;
        tokio::spawn(gate_operator::webhook::serve(
            listener,
            certs,
            gate_operator::webhook::Injector {
                config: Arc::new(config),
                kube: Some(kube),
            },
        ));
    }
    let credentials = Credentials::new(Some(&args.api_key), args.org_id.as_deref())
        .context("control-plane credentials")?;
    let cp = connect_admin(&args.control_plane, credentials)
        .await
        .context("control plane")?;
    let client = kube::Client::try_default()
        .await
        .context("kubernetes client (in-cluster or kubeconfig)")?;
    let timing = Timing {
        resync: Duration::from_secs(args.resync_seconds.max(1)),
        ..Timing::default()
    };
    let ctx = Arc::new(Ctx::new(client.clone(), cp, &args.identity, timing));
    let health = Arc::new(Health::default());
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    let app = router(ctx.clone(), health.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health listener stopped");
        }
    });
    let (leading_tx, leading_rx) = watch::channel(false);
    let lease = LeaseConfig {
        namespace: args.lease_namespace,
        name: "gate-operator".into(),
        identity: args.identity,
        duration: Duration::from_secs(15),
        renew_every: Duration::from_secs(5),
    };
    tokio::spawn(elect(client, lease, leading_tx));
    health.ready.store(true, Ordering::Relaxed);
    tokio::select! {
        () = lead(ctx, args.watch_namespace, leading_rx, health) => Ok(()),
        signal = tokio::signal::ctrl_c() => signal.context("signal"),
    }
}
