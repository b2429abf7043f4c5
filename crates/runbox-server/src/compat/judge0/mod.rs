//! Judge0 CE 1.13.1's API under `/judge0`: submissions (single, batch, `wait=true`), languages with Judge0's ids,
//! statuses, `/about`, `/config_info`, `/version`. A submission becomes a runbox async execution (the same store,
//! worker, caps and per-key scoping as `POST /executions`) whose id is the submission's UUID token; the Judge0
//! fields runbox needs to answer (expected output, echoed limits) are kept beside it. `X-Auth-Token` is accepted
//! as an API key. Errors are Judge0's: `{"error": "..."}`, or `{field: [messages]}` with 422.
//!
//! `submissions.rs` and `info.rs` hold the routes; `submit.rs` turns a Judge0 submission into a runbox async
//! execution and a stored one back into Judge0's record (with `submission.rs` and `record.rs`); `extract.rs` and
//! `error.rs` read requests and answer errors the Judge0 way; `catalogue.rs` holds Judge0's ids and constants.

pub mod catalogue;
mod error;
mod extract;
pub mod info;
pub mod record;
pub mod submission;
pub mod submissions;
mod submit;

pub use error::{Judge0Error, Judge0ErrorBody};
pub use extract::{AnyJson, Judge0Caller};
pub use submit::{callback_body, uuid4};
