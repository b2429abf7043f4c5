//! Sessions through the HTTP API in process: their life, state kept between cells, files, rich and streamed
//! outputs, ownership by key, floods, warm sessions, and a hundred at once.

mod hundred_sessions_at_once;
mod ruby_and_r_sessions_keep_state;
mod session_files_are_confined;
mod session_lifecycle;
mod session_output_flood_is_bounded;
mod session_outputs_are_rich_and_streamed;
mod sessions_belong_to_their_key;
mod sessions_keep_state;
mod warm_sessions_start_instantly;
