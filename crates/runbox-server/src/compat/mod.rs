//! Drop-in APIs of other code runners, so that their existing clients work against runbox unchanged: Judge0 CE
//! (under `/judge0`) and Piston v2 (under `/api/v2`). Each adapter only translates: the incumbent's request
//! becomes an [`ExecuteBody`](crate::api::ExecuteBody) that goes through the same validation, caps, per-key
//! limits and async store as runbox's own routes, and the result is rendered back in the incumbent's shape, with
//! its errors. `docs/compatibility.md` lists each field: supported, mapped or refused.

pub mod judge0;
pub mod piston;
