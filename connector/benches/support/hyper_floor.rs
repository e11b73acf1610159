//! The floor of Gate's HTTP machinery: a reverse proxy made of nothing but
//! the parts Gate's HTTP path is built from — a hyper HTTP/1.1 server and
//! hyper-util's pooled client on one current-thread runtime, forwarding each
//! request unchanged (no identity, policy, audit or header work). What it
//! reaches bounds what Gate can reach with these libraries.

use std::net::SocketAddr;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Body = http_body_util::combinators::BoxBody<bytes::Bytes, hyper::Error>;

/// Start the floor proxy in front of `upstream` on its own thread; its port.
pub(crate) fn start(upstream: u16) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(serve(listener, upstream));
    });
    port
}

async fn serve(listener: std::net::TcpListener, upstream: u16) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Body> =
        Client::builder(TokioExecutor::new()).build(connector);
    let origin: SocketAddr = ([127, 0, 0, 1], upstream).into();
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
                let client = client.clone();
                async move {
                    let (mut parts, body) = request.into_parts();
                    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                    parts.uri = format!("http://{origin}{path}").parse().unwrap();
                    let request = http::Request::from_parts(parts, body.boxed());
                    let response = client.request(request).await.unwrap();
                    Ok::<_, std::convert::Infallible>(response.map(BodyExt::boxed))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
