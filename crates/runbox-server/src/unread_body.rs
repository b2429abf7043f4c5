//! A request answered before its body was read must not leave the client with a dead keep-alive connection.
//!
//! Many answers come before the body is read: a missing key (401), a foreign `Origin` (403), an unknown route, a
//! body over the limit. hyper then closes the connection after the answer (it cannot find the next request in the
//! unread bytes) but the answer does not say so, so an HTTP/1.1 client sends its next request on that connection
//! and gets "server disconnected" instead of an answer. This layer reads what is left of a small body once the
//! answer is made, so the connection stays usable; when the rest is large or slow to come, the answer says
//! `Connection: close`, so the client opens a new connection.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, Request, Version};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;

use runbox_engine::sync::LockOrRecover;

/// At most this much of an unread body is read after the answer (the rest of a small JSON request, say).
const DRAIN_BYTES: u64 = 256 * 1024;
/// And for at most this long.
const DRAIN_TIME: Duration = Duration::from_millis(500);

/// What the handler left of the body: `Done` when it was read to its end (or there was none).
enum Left {
    Reading,
    Done,
    Rest(Body),
}

/// The request body, watched: records reaching its end, and hands back what was left when dropped early.
struct Watched {
    inner: Option<Body>,
    left: Arc<Mutex<Left>>,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.inner = None;
            *self.left.lock_or_recover() = Left::Done;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let mut left = self.left.lock_or_recover();
        match self.inner.take() {
            Some(rest) if !rest.is_end_stream() => *left = Left::Rest(rest),
            _ => *left = Left::Done,
        }
    }
}

/// The middleware: see the module comment.
pub async fn keep_connections_usable(req: Request<Body>, next: Next) -> Response {
    let http1 = req.version() <= Version::HTTP_11;
    let (parts, body) = req.into_parts();
    if !http1 || body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let left = Arc::new(Mutex::new(Left::Reading));
    let watched = Watched {
        inner: Some(body),
        left: left.clone(),
    };
    let mut response = next.run(Request::from_parts(parts, Body::new(watched))).await;
    let rest = std::mem::replace(&mut *left.lock_or_recover(), Left::Done);
    let usable = match rest {
        Left::Done => true,
        // The body lives on past the answer (a handler still reading it): the connection's fate is its own.
        Left::Reading => true,
        Left::Rest(rest) => drain(rest).await,
    };
    if !usable {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads the rest of a body if it is small and comes at once; says whether it was read to its end.
async fn drain(rest: Body) -> bool {
    if rest.size_hint().lower() > DRAIN_BYTES {
        return false;
    }
    let limited = http_body_util::Limited::new(rest, DRAIN_BYTES as usize);
    matches!(tokio::time::timeout(DRAIN_TIME, limited.collect()).await, Ok(Ok(_)))
}
