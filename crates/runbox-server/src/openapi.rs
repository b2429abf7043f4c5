//! The OpenAPI document, derived from the handlers' annotations. The committed `openapi.json` at the repository
//! root is checked against it by a test, so generated clients never drift from the server.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::handlers;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "judge0_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Auth-Token"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "runbox",
        description = "Fast, secure execution of untrusted code. With API keys configured, every route but /health \
                       and the documentation (/openapi.json, /docs, /redoc) needs `Authorization: Bearer KEY` or \
                       `X-API-Key: KEY`. Errors are JSON `{code, message, details?}`.",
        license(name = "Apache-2.0")
    ),
    paths(
        handlers::info::root,
        handlers::info::health,
        handlers::info::languages,
        handlers::info::metrics,
        handlers::execute::execute,
        handlers::stream::execute_stream,
        handlers::executions::create,
        handlers::executions::get,
        handlers::executions::cancel,
        handlers::ws::socket,
        handlers::compat::interpreter_execute,
        handlers::docs::openapi_json,
        handlers::docs::redoc,
        handlers::sessions::create,
        handlers::sessions::list,
        handlers::sessions::get,
        handlers::sessions::delete,
        handlers::sessions::execute,
        handlers::sessions::execute_stream,
        handlers::sessions::interrupt,
        handlers::files::list,
        handlers::files::upload,
        handlers::files::download,
        handlers::files::delete,
        crate::compat::piston::runtimes,
        crate::compat::piston::execute,
        crate::compat::piston::connect::connect,
        crate::compat::judge0::create,
        crate::compat::judge0::get,
        crate::compat::judge0::delete,
        crate::compat::judge0::create_batch,
        crate::compat::judge0::get_batch,
        crate::compat::judge0::languages,
        crate::compat::judge0::all_languages,
        crate::compat::judge0::language,
        crate::compat::judge0::statuses,
        crate::compat::judge0::about,
        crate::compat::judge0::config_info,
        crate::compat::judge0::version,
    ),
    modifiers(&Security),
    security(("bearer" = []), ("api_key" = [])),
    tags(
        (name = "execution", description = "Run code once"),
        (name = "executions", description = "Asynchronous executions"),
        (name = "info", description = "Server, languages, metrics and documentation"),
        (name = "sessions", description = "Stateful sessions with persistent interpreters"),
        (name = "files", description = "Files of a session's workspace"),
        (name = "compat", description = "Routes shaped like other code interpreters' APIs"),
        (name = "piston", description = "Drop-in Piston v2 API (errors are `{message}`); see docs/compatibility.md"),
        (name = "judge0", description = "Drop-in Judge0 CE 1.13.1 API (errors are `{error}` or `{field: [messages]}`; \
                                         `X-Auth-Token` is accepted as an API key); see docs/compatibility.md"),
    )
)]
pub struct ApiDoc;

/// The document with the version of this build.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}
