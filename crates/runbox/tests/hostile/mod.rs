//! The hostile corpus runner's parts: the case data ([`case`]), the host-side checks every case is held to
//! ([`host`]) and the requests themselves ([`run`]).

pub mod case;
pub mod floods;
pub mod host;
pub mod run;
pub mod wire;
