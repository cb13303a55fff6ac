//! Server TLS: certificates from PEM files, chosen by SNI, ALPN h2 / http/1.1.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tigateway_model::TlsConfig;

#[derive(Debug)]
struct SniResolver {
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            if let Some(k) = self.by_name.get(&name.to_ascii_lowercase()) {
                return Some(k.clone());
            }
        }
        Some(self.default.clone())
    }
}

fn load_key(cert: &str, key: &str, provider: &rustls::crypto::CryptoProvider) -> Result<Arc<CertifiedKey>, String> {
    let cert_pem = std::fs::read(cert).map_err(|e| format!("reading certificate {cert}: {e}"))?;
    let key_pem = std::fs::read(key).map_err(|e| format!("reading key {key}: {e}"))?;
    let chain: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("parsing certificate {cert}: {e}"))?;
    if chain.is_empty() {
        return Err(format!("no certificate in {cert}"));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| format!("parsing key {key}: {e}"))?
        .ok_or_else(|| format!("no private key in {key}"))?;
    let signing = provider.key_provider.load_private_key(key).map_err(|e| format!("unsupported key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

pub fn server_config(cfg: &TlsConfig, http2: bool) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let default = load_key(&cfg.cert, &cfg.key, &provider)?;
    let mut by_name = HashMap::new();
    for s in &cfg.sni {
        by_name.insert(s.server_name.to_ascii_lowercase(), load_key(&s.cert, &s.key, &provider)?);
    }
    let mut sc = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { default, by_name }));
    sc.alpn_protocols = if http2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    Ok(Arc::new(sc))
}
