//! `GET /websocket`: ShenYu 2.7's websocket sync, server side.
//!
//! A gateway connects with a `namespaceId` header (missing: the default namespace, as a 2.6
//! gateway expects), sends `RUNNING_MODE` (answered with a message without `groupType`) and
//! `MYSELF` (answered with the full sync), and then receives each revision's changes. A gateway
//! that also sends `x-tigateway-sync: 1` gets the extension fields (see `tigateway_model::sync_wire`).
//!
//! The upgrade is refused with 401 unless the client presents the admin's `--sync-token`
//! (`x-tigateway-sync-token` or `?token=`) or an admin token that may read the config
//! (`X-Access-Token` or `?token=`; the rule long polling applies). ShenYu 2.7 gateways cannot add
//! headers but keep the query string of their configured admin URL, hence `?token=`.

use std::collections::HashMap;
use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tigateway_model::sync_wire::{WsMessage, DEFAULT_NAMESPACE, EXTENSIONS_HEADER, TOKEN_HEADER};
use tokio::sync::broadcast::error::RecvError;

use super::{Publication, Publisher, Refusal};
use crate::api::AppState;

#[derive(Clone)]
struct WsState {
    publisher: Publisher,
    app: AppState,
}

pub fn router(publisher: Publisher, app: AppState) -> Router {
    Router::new().route("/websocket", get(upgrade)).with_state(WsState { publisher, app })
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timing.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who was let in, and the admin token to check again while the connection lives (none for the
/// sync token, which cannot change while the admin runs).
struct Admitted {
    who: String,
    token: Option<String>,
}

/// Who may follow the config: the sync token when one is configured, else (or when the client
/// gives something else) an admin token with config read.
async fn admit(st: &WsState, headers: &HeaderMap, query: &HashMap<String, String>) -> Result<Admitted, Refusal> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let query_token = query.get("token").map(String::as_str);
    if let Some(expected) = &st.publisher.settings().token {
        let given = [headers.get(TOKEN_HEADER).map(|v| v.as_bytes()), query_token.map(str::as_bytes)];
        if given.into_iter().flatten().any(|g| same(g, expected.as_bytes())) {
            return Ok(Admitted { who: "sync token".to_string(), token: None });
        }
    }
    let access = header("X-Access-Token").or(query_token);
    match super::may_read_config(&st.app, access).await {
        Ok(principal) => Ok(Admitted { who: principal.username, token: access.map(str::to_string) }),
        // A wrong sync token with no admin token is a wrong credential, not a missing one.
        Err(Refusal::Missing) if headers.contains_key(TOKEN_HEADER) => Err(Refusal::Invalid),
        Err(r) => Err(r),
    }
}

async fn upgrade(State(st): State<WsState>, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    let headers = parts.headers.clone();
    let query: HashMap<String, String> =
        parts.uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let admitted = match admit(&st, &headers, &query).await {
        Ok(a) => a,
        Err(why) => {
            let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.to_string()).unwrap_or_default();
            tracing::warn!(%peer, reason = %why, "websocket sync client refused");
            let status =
                if why == Refusal::Unavailable { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::UNAUTHORIZED };
            let body = Json(serde_json::json!({
                "code": status.as_u16(),
                "message": format!("websocket sync refused: {why}; present the sync token or an admin token that may read the config"),
            }));
            return (status, body).into_response();
        }
    };
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let (p, app) = (st.publisher, st.app);
    let namespace = headers
        .get("namespaceId")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_string();
    if namespace != p.settings().namespace {
        tracing::warn!(%namespace, "websocket sync client refused: this admin serves another namespace");
        return (StatusCode::NOT_FOUND, format!("namespace {namespace} is not served here")).into_response();
    }
    let extensions = headers.get(EXTENSIONS_HEADER).is_some_and(|v| v.as_bytes() == b"1");
    let port = headers.get("ClientPort").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    ws.on_upgrade(move |socket| session(socket, p, app, extensions, port, admitted))
}

async fn send(socket: &mut WebSocket, msgs: &[WsMessage]) -> bool {
    for m in msgs {
        let text = serde_json::to_string(m).expect("messages always serialize");
        if socket.send(Message::Text(text.into())).await.is_err() {
            return false;
        }
    }
    true
}

async fn session(
    mut socket: WebSocket,
    p: Publisher,
    app: AppState,
    extensions: bool,
    port: String,
    admitted: Admitted,
) {
    tracing::info!(client_port = %port, extensions, credential = %admitted.who, "websocket sync client connected");
    let mut events = p.subscribe();
    let mut recheck = tokio::time::interval(p.settings().recheck);
    recheck.reset(); // the first check is one period from now: admit() has just checked
                     // The newest revision this client has been sent; None until it asked for the full sync.
    let mut sent: Option<i64> = None;
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let text = text.as_str().trim();
                if text == "RUNNING_MODE" {
                    let mut reply = serde_json::json!({
                        "eventType": "RUNNING_MODE", "runningMode": "STANDALONE", "isMaster": true, "masterUrl": "/websocket"
                    });
                    if extensions {
                        // Tells the client the full sync will end with a hash-carrying message,
                        // so it never has to guess the end from a quiet period.
                        reply["tigateway"] = true.into();
                    }
                    if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                        break;
                    }
                } else if text == "MYSELF" {
                    let current: Arc<Publication> = p.current();
                    if !send(&mut socket, &current.full_sync(extensions)).await {
                        break;
                    }
                    sent = Some(current.revision);
                } else if text.contains("bootstrapInstanceInfo") {
                    tracing::debug!(client_port = %port, "gateway instance report");
                }
            }
            _ = recheck.tick(), if admitted.token.is_some() => {
                // An unavailable identity store does not cut gateways off; a token that is no
                // longer valid, or no longer allowed to read the config, does.
                match super::may_read_config(&app, admitted.token.as_deref()).await {
                    Err(why) if why != Refusal::Unavailable => {
                        tracing::warn!(client_port = %port, credential = %admitted.who, reason = %why, "websocket sync client disconnected: its credential no longer holds");
                        let close = axum::extract::ws::CloseFrame { code: 1008, reason: "credential no longer valid".into() };
                        let _ = socket.send(Message::Close(Some(close))).await;
                        break;
                    }
                    _ => {}
                }
            }
            publication = events.recv() => {
                match publication {
                    Ok(publication) => {
                        let Some(at) = sent else { continue };
                        if publication.revision <= at {
                            continue;
                        }
                        if !send(&mut socket, &publication.event_messages(extensions)).await {
                            break;
                        }
                        sent = Some(publication.revision);
                    }
                    Err(RecvError::Lagged(n)) => {
                        // Too slow to follow: start it over from the whole config. An extension
                        // client is simply disconnected, it reconnects and resyncs.
                        tracing::warn!(skipped = n, "websocket sync client fell behind; sending the whole config again");
                        if extensions {
                            break;
                        }
                        let current = p.current();
                        if !send(&mut socket, &current.full_sync(false)).await {
                            break;
                        }
                        sent = Some(current.revision);
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        }
    }
    tracing::info!(client_port = %port, "websocket sync client gone");
}
