//! The languages of the catalogue: each behaves like itself in the sandbox, and compile stages (the compile cache,
//! collected files, what a compiler may do to the server) stay with their own request.

mod compile_cache_and_collect;
mod compilers_cannot_make_the_server_copy_host_files;
mod languages_behave;
mod snippets;
