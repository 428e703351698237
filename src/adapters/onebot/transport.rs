//! OneBot v11 transports: how actions go out and frames come in.
//!
//! A [`Link`] is one way to send actions: over a WebSocket (request/response correlated by
//! `echo`) or over the HTTP API (`POST {url}/{action}`). Incoming frames — events and, on a
//! WebSocket, action answers — are pumped into the adapter core by [`pump`], which works for
//! both the forward WebSocket client (tokio-tungstenite) and the reverse WebSocket server
//! (axum). OneBot v11 spec: `communication/ws.md`, `communication/ws-reverse.md`,
//! `communication/http.md`; authentication by `Authorization: Bearer <access_token>`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::adapters::AdapterError;

/// What a connection carries (OneBot v11 `X-Client-Role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Universal,
    Api,
    Event,
}

impl Role {
    pub fn carries_actions(self) -> bool {
        matches!(self, Role::Universal | Role::Api)
    }
    pub fn carries_events(self) -> bool {
        matches!(self, Role::Universal | Role::Event)
    }
}

enum Outlet {
    Ws(mpsc::UnboundedSender<String>),
    Http {
        client: reqwest::Client,
        base: String,
        token: Option<String>,
    },
}

/// One way to send actions to the implementation.
pub struct Link {
    outlet: Outlet,
    pending: Mutex<HashMap<String, oneshot::Sender<Value>>>,
}

impl Link {
    pub fn ws(tx: mpsc::UnboundedSender<String>) -> Link {
        Link {
            outlet: Outlet::Ws(tx),
            pending: Mutex::new(HashMap::new()),
        }
    }

    pub fn http(client: reqwest::Client, base: &str, token: Option<String>) -> Link {
        Link {
            outlet: Outlet::Http {
                client,
                base: base.trim_end_matches('/').to_string(),
                token,
            },
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Value>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hand an answer that arrived with `echo` to the call waiting for it.
    pub fn deliver(&self, echo: &str, answer: Value) {
        if let Some(tx) = self.pending().remove(echo) {
            let _ = tx.send(answer);
        }
    }

    /// The connection is gone: every waiting call fails now rather than at its timeout.
    pub fn fail_all(&self) {
        self.pending().clear();
    }

    /// Send an action and wait for its answer; returns the answer's `data`.
    pub async fn call(
        &self,
        action: &str,
        params: Value,
        echo: String,
        timeout: Duration,
    ) -> Result<Value, AdapterError> {
        let timed_out = || AdapterError::Timeout {
            action: action.to_string(),
            timeout_ms: timeout.as_millis() as u64,
        };
        let answer = match &self.outlet {
            Outlet::Ws(tx) => {
                let (reply, rx) = oneshot::channel();
                self.pending().insert(echo.clone(), reply);
                let frame = json!({"action": action, "params": params, "echo": echo}).to_string();
                if tx.send(frame).is_err() {
                    self.pending().remove(&echo);
                    return Err(AdapterError::NotConnected("OneBot".into()));
                }
                match tokio::time::timeout(timeout, rx).await {
                    Ok(Ok(v)) => v,
                    Ok(Err(_)) => return Err(AdapterError::NotConnected("OneBot".into())),
                    Err(_) => {
                        self.pending().remove(&echo);
                        return Err(timed_out());
                    }
                }
            }
            Outlet::Http {
                client,
                base,
                token,
            } => {
                let mut req = client.post(format!("{base}/{action}")).json(&params);
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let resp = tokio::time::timeout(timeout, req.send())
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|e| AdapterError::Protocol(format!("{action}: HTTP API: {e}")))?;
                let status = resp.status();
                let body = tokio::time::timeout(timeout, resp.bytes())
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|e| AdapterError::Protocol(format!("{action}: HTTP API: {e}")))?;
                if !status.is_success() {
                    return Err(AdapterError::Action {
                        action: action.to_string(),
                        retcode: status.as_u16() as i64,
                        message: format!("HTTP {status}"),
                    });
                }
                serde_json::from_slice(&body).map_err(|e| {
                    AdapterError::Protocol(format!("{action}: answer is not JSON: {e}"))
                })?
            }
        };
        answer_data(action, answer)
    }
}

/// OneBot v11 action answer: `{"status": "ok"|"async"|"failed", "retcode": n, "data": ...}`.
fn answer_data(action: &str, answer: Value) -> Result<Value, AdapterError> {
    let retcode = answer.get("retcode").and_then(Value::as_i64).unwrap_or(-1);
    let status = answer.get("status").and_then(Value::as_str).unwrap_or("");
    if retcode == 0 || retcode == 1 || status == "ok" || status == "async" {
        return Ok(answer.get("data").cloned().unwrap_or(Value::Null));
    }
    let message = ["message", "msg", "wording"]
        .iter()
        .find_map(|k| answer.get(*k).and_then(Value::as_str))
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    Err(AdapterError::Action {
        action: action.to_string(),
        retcode,
        message,
    })
}

/// What a WebSocket message is, whatever library delivered it.
pub enum Frame {
    Data(Vec<u8>),
    Close,
    Skip,
}

type TungMessage = tokio_tungstenite::tungstenite::Message;
type AxMessage = axum::extract::ws::Message;

/// Frame conversions for the tokio-tungstenite client side.
pub fn tung_out(text: String) -> TungMessage {
    TungMessage::Text(text.into())
}

pub fn tung_in(m: TungMessage) -> Frame {
    match m {
        TungMessage::Text(t) => Frame::Data(t.as_bytes().to_vec()),
        TungMessage::Binary(b) => Frame::Data(b.to_vec()),
        TungMessage::Close(_) => Frame::Close,
        _ => Frame::Skip,
    }
}

/// Frame conversions for the axum server side.
pub fn ax_out(text: String) -> AxMessage {
    AxMessage::Text(text.into())
}

pub fn ax_in(m: AxMessage) -> Frame {
    match m {
        AxMessage::Text(t) => Frame::Data(t.as_bytes().to_vec()),
        AxMessage::Binary(b) => Frame::Data(b.to_vec()),
        AxMessage::Close(_) => Frame::Close,
        _ => Frame::Skip,
    }
}

/// Receives what a connection delivers.
pub trait FrameSink: Send + Sync + 'static {
    /// A frame arrived on a connection; `link` is the connection's own action link.
    fn on_frame(&self, bytes: &[u8], link: Option<&std::sync::Arc<Link>>);
}

/// Run one WebSocket connection until it closes: outgoing action frames from the returned
/// link, incoming frames to `sink`. `on_up` is called with the link once the pump runs.
pub async fn pump<St, Si, M, E1, E2>(
    stream: St,
    mut sink_half: Si,
    role: Role,
    to_message: fn(String) -> M,
    to_frame: fn(M) -> Frame,
    frames: std::sync::Arc<dyn FrameSink>,
    on_up: impl FnOnce(Option<std::sync::Arc<Link>>),
) -> String
where
    St: Stream<Item = Result<M, E1>> + Unpin + Send,
    Si: Sink<M, Error = E2> + Unpin + Send + 'static,
    M: Send + 'static,
    E1: std::fmt::Display,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink_half.send(to_message(text)).await.is_err() {
                break;
            }
        }
        let _ = sink_half.close().await;
    });
    // Hold the sender for the pump's whole life: an event-only socket has no link, and a dropped
    // sender would end the writer and close the socket at once.
    let _keep_open = tx.clone();
    let link = role
        .carries_actions()
        .then(|| std::sync::Arc::new(Link::ws(tx)));
    on_up(link.clone());
    let mut stream = stream;
    let reason = loop {
        match stream.next().await {
            Some(Ok(m)) => match to_frame(m) {
                Frame::Data(bytes) => frames.on_frame(&bytes, link.as_ref()),
                Frame::Close => break "closed by peer".to_string(),
                Frame::Skip => {}
            },
            Some(Err(e)) => break format!("connection error: {e}"),
            None => break "connection ended".to_string(),
        }
    };
    if let Some(l) = &link {
        l.fail_all();
    }
    writer.abort();
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_ok_and_failed() {
        assert_eq!(
            answer_data("a", json!({"status":"ok","retcode":0,"data":{"x":1}})).unwrap(),
            json!({"x":1})
        );
        let err = answer_data(
            "get_group_info",
            json!({"status":"failed","retcode":100,"message":"群不存在"}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("get_group_info") && err.contains("100") && err.contains("群不存在"),
            "{err}"
        );
    }
}
