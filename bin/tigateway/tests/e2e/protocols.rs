//! HTTP/2 (h2c and TLS+ALPN, SNI) to the gateway, and websocket through it.
use futures_util::{SinkExt, StreamExt};

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn h2c_prior_knowledge_from_client() {
    let up = upstream(UpstreamBehavior::named("u")).await;
    let gw = TestGateway::start(&format!("routes: [{{id: r, uri: \"{}\", predicates: [\"Path=/**\"]}}]", up.url()));
    let c = reqwest::Client::builder().no_proxy().http2_prior_knowledge().build().unwrap();
    let r = c.get(gw.url("/h2")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["path"], "/h2");
}

fn cert(dir: &std::path::Path, name: &str) -> (String, String, Vec<u8>) {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&cert_path, ck.cert.pem()).unwrap();
    std::fs::write(&key_path, ck.key_pair.serialize_pem()).unwrap();
    (cert_path.display().to_string(), key_path.display().to_string(), ck.cert.pem().into_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_alpn_h2_and_sni() {
    let up = upstream(UpstreamBehavior::named("u")).await;
    let dir = tempfile::tempdir().unwrap();
    let (c1, k1, pem1) = cert(dir.path(), "default.test");
    let (c2, k2, pem2) = cert(dir.path(), "api.test");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gw = TestGateway::start(&format!(
        r#"
server:
  listeners:
    - address: "127.0.0.1:{port}"
      tls: {{cert: "{c1}", key: "{k1}", sni: [{{serverName: api.test, cert: "{c2}", key: "{k2}"}}]}}
routes: [{{id: r, uri: "{u}", predicates: ["Path=/**"]}}]
"#,
        u = up.url()
    ));
    assert_eq!(gw.addr.port(), port);
    for (name, pem) in [("default.test", pem1), ("api.test", pem2)] {
        let c = reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .resolve(name, gw.addr)
            .build()
            .unwrap();
        let r = c.get(format!("https://{name}:{port}/tls")).send().await.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN should pick h2");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["path"], "/tls");
        assert_eq!(v["headers"]["x-forwarded-proto"], "https");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_echo_through_gateway() {
    let (ws_addr, _task) = ws_echo().await;
    let gw = TestGateway::start(&format!(
        r#"
selectors:
  - {{id: ws, pluginName: websocket, conditionList: [{{paramType: uri, operator: match, paramValue: "/ws/**"}}], handle: '[{{"upstreamUrl":"{ws_addr}"}}]'}}
rules:
  - {{id: wsr, selectorId: ws, conditionDataList: [{{paramType: uri, operator: match, paramValue: "/ws/**"}}]}}
routes:
  - {{id: wsroute, uri: "ws://{ws_addr}", predicates: ["Path=/chat/**"]}}
"#
    ));
    for path in ["/ws/echo", "/chat/room"] {
        let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}{path}", gw.addr))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(resp.status(), 101);
        for i in 0..10 {
            ws.send(tokio_tungstenite::tungstenite::Message::text(format!("hello {i}"))).await.unwrap();
            let m = ws.next().await.unwrap().unwrap();
            assert_eq!(m.into_text().unwrap().as_str(), format!("hello {i}"));
        }
        ws.close(None).await.unwrap();
    }
}
