//! Body types of the data plane: enums rather than boxed trait objects, so a proxied request costs
//! no allocation for its body wrappers.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::h1::H1Body;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body sent to the client.
pub enum ProxyBody {
    Empty,
    Full(Full<Bytes>),
    /// An HTTP/1.1 upstream response streamed through; its connection goes back to the pool at its end.
    H1(H1Body),
    /// An HTTP/2 upstream response streamed through.
    Upstream(Incoming),
    /// A streamed body whose end is waited for: the bytes it carried go to the metrics, the
    /// access log and the span when it ends or the client goes away (see `observe::Tail`).
    Tail(Box<crate::observe::Tail>),
}

impl ProxyBody {
    pub fn full(b: Bytes) -> Self {
        ProxyBody::Full(Full::new(b))
    }
    pub fn empty() -> Self {
        ProxyBody::Empty
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Empty => Poll::Ready(None),
            ProxyBody::Full(f) => Pin::new(f).poll_frame(cx).map_err(|never| match never {}),
            ProxyBody::H1(b) => Pin::new(b).poll_frame(cx),
            ProxyBody::Upstream(b) => Pin::new(b).poll_frame(cx).map_err(|e| Box::new(e) as BoxError),
            ProxyBody::Tail(t) => {
                let polled = Pin::new(&mut t.inner).poll_frame(cx);
                if let Poll::Ready(Some(Ok(frame))) = &polled {
                    if let Some(d) = frame.data_ref() {
                        t.sent += d.len() as u64;
                    }
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Empty => true,
            ProxyBody::Full(f) => f.is_end_stream(),
            ProxyBody::H1(b) => b.is_end_stream(),
            ProxyBody::Upstream(b) => b.is_end_stream(),
            ProxyBody::Tail(t) => t.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Empty => SizeHint::with_exact(0),
            ProxyBody::Full(f) => f.size_hint(),
            ProxyBody::H1(b) => b.size_hint(),
            ProxyBody::Upstream(b) => b.size_hint(),
            ProxyBody::Tail(t) => t.inner.size_hint(),
        }
    }
}

/// Raised when a streamed request body passes its limit; the proxy answers 413.
#[derive(Debug)]
pub struct BodyTooLarge;

impl std::fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body larger than the limit")
    }
}
impl std::error::Error for BodyTooLarge {}

/// A request body sent upstream.
pub enum ReqBody {
    Empty,
    Full(Full<Bytes>),
    /// The client's body streamed through, counted against a limit.
    Stream {
        body: Incoming,
        seen: u64,
        limit: u64,
    },
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Full(f) => Pin::new(f).poll_frame(cx).map_err(|never| match never {}),
            ReqBody::Stream { body, seen, limit } => match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(d) = frame.data_ref() {
                        *seen += d.len() as u64;
                        if *seen > *limit {
                            return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                        }
                    }
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Full(f) => f.is_end_stream(),
            ReqBody::Stream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Full(f) => f.size_hint(),
            ReqBody::Stream { body, .. } => body.size_hint(),
        }
    }
}

/// Reads a whole body up to `limit` bytes (for `post` conditions); `Err(true)` when over the limit.
pub async fn read_bounded(body: &mut Incoming, limit: u64) -> Result<Bytes, bool> {
    use http_body_util::BodyExt;
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| false)?;
        if let Some(d) = frame.data_ref() {
            if (buf.len() + d.len()) as u64 > limit {
                return Err(true);
            }
            buf.extend_from_slice(d);
        }
    }
    Ok(buf.freeze())
}
