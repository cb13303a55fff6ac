//! `GET /websocket`: ShenYu 2.7's websocket sync, server side.
//!
//! A gateway connects with a `namespaceId` header (missing: the default namespace, as a 2.6
//! gateway expects), sends `RUNNING_MODE` (answered with a message without `groupType`) and
//! `MYSELF` (answered with the full sync), and then receives each revision's changes. A gateway
//! that also sends `x-tigateway-sync: 1` gets the extension fields (see `tigateway_model::sync_wire`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tigateway_model::sync_wire::{WsMessage, DEFAULT_NAMESPACE, EXTENSIONS_HEADER, TOKEN_HEADER};
use tokio::sync::broadcast::error::RecvError;

use super::{Publication, Publisher};

pub fn router(publisher: Publisher) -> Router {
    Router::new().route("/websocket", get(upgrade)).with_state(publisher)
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timing.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn upgrade(
    State(p): State<Publisher>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(expected) = &p.settings().token {
        let given = headers
            .get(TOKEN_HEADER)
            .map(|v| v.as_bytes().to_vec())
            .or_else(|| query.get("token").map(|t| t.as_bytes().to_vec()))
            .unwrap_or_default();
        if !same(&given, expected.as_bytes()) {
            tracing::warn!("websocket sync client refused: missing or wrong sync token");
            return (StatusCode::UNAUTHORIZED, "sync token missing or wrong").into_response();
        }
    }
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
    ws.on_upgrade(move |socket| session(socket, p, extensions, port))
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

async fn session(mut socket: WebSocket, p: Publisher, extensions: bool, port: String) {
    tracing::info!(client_port = %port, extensions, "websocket sync client connected");
    let mut events = p.subscribe();
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
