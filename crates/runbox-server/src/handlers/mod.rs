//! One module per resource; handlers stay thin and leave the work to the engine.

pub mod compat;
pub mod docs;
pub mod execute;
pub mod executions;
pub mod files;
pub mod info;
pub mod sessions;
pub mod stream;
pub mod ws;
