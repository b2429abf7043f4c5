//! The OpenAPI document, derived from the handlers' annotations. The committed `openapi.json` at the repository
//! root is checked against it by a test, so generated clients never drift from the server.

use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::schema::{AdditionalProperties, Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};

use runbox_engine::{WORKSPACE_DIR_PATTERN, WORKSPACE_PATH_PATTERN};

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
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        handlers::info::root,
        handlers::info::health,
        handlers::info::ready,
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
        crate::compat::judge0::submissions::create,
        crate::compat::judge0::submissions::get,
        crate::compat::judge0::submissions::delete,
        crate::compat::judge0::submissions::create_batch,
        crate::compat::judge0::submissions::get_batch,
        crate::compat::judge0::info::languages,
        crate::compat::judge0::info::all_languages,
        crate::compat::judge0::info::language,
        crate::compat::judge0::info::statuses,
        crate::compat::judge0::info::about,
        crate::compat::judge0::info::config_info,
        crate::compat::judge0::info::version,
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

/// Operations whose body may be left out: an empty `POST /sessions` starts a default session, an empty upload
/// makes an empty file.
const OPTIONAL_BODIES: &[(&str, &str)] = &[("/sessions", "post"), ("/sessions/{id}/files/{path}", "put")];

/// The document with the version of this build.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    for (path, method) in OPTIONAL_BODIES {
        let item = doc.paths.paths.get_mut(*path);
        let op = item.and_then(|item| match *method {
            "post" => item.post.as_mut(),
            "put" => item.put.as_mut(),
            _ => None,
        });
        if let Some(body) = op.and_then(|op| op.request_body.as_mut()) {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
    crate::cluster::forward::document(&mut doc);
    with_rules(doc)
}

/// Environment maps (`env`, `envs`) and their rules, which the derive cannot state: names of letters, digits and
/// `_` not starting with a digit, values without NUL, at most 256 variables (as the engine checks them).
const ENVIRONMENTS: &[(&str, &str)] = &[
    ("ExecuteBody", "env"),
    ("CreateSession", "env"),
    ("InterpreterBody", "envs"),
];

fn string_matching(pattern: &str) -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .build(),
    )
}

/// A property of a component schema, when both are plain objects.
fn property_mut<'a>(doc: &'a mut utoipa::openapi::OpenApi, schema: &str, field: &str) -> Option<&'a mut Object> {
    let components = doc.components.as_mut()?;
    let RefOr::T(Schema::Object(object)) = components.schemas.get_mut(schema)? else {
        return None;
    };
    match object.properties.get_mut(field)? {
        RefOr::T(Schema::Object(p)) => Some(p),
        _ => None,
    }
}

/// Adds the rules the derive cannot state (its `pattern` takes literals only): environment maps, and workspace
/// paths with the engine's own patterns.
fn with_rules(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    for (schema, field) in ENVIRONMENTS {
        if let Some(env) = property_mut(&mut doc, schema, field) {
            env.max_properties = Some(256);
            env.property_names = Some(Box::new(string_matching("^[A-Za-z_][A-Za-z0-9_]*$")));
            env.additional_properties = Some(Box::new(AdditionalProperties::RefOr(RefOr::T(string_matching(
                "^[^\\u0000]*$",
            )))));
        }
    }
    if let Some(path) = property_mut(&mut doc, "SourceFile", "path") {
        path.pattern = Some(WORKSPACE_PATH_PATTERN.into());
    }
    for (route, item) in doc.paths.paths.iter_mut() {
        let ops = [&mut item.get, &mut item.put, &mut item.delete, &mut item.post];
        for op in ops.into_iter().flatten() {
            for p in op.parameters.iter_mut().flatten() {
                let pattern = match (route.as_str(), p.name.as_str(), &p.parameter_in) {
                    ("/sessions/{id}/files/{path}", "path", ParameterIn::Path) => WORKSPACE_PATH_PATTERN,
                    ("/sessions/{id}/files", "path", ParameterIn::Query) => WORKSPACE_DIR_PATTERN,
                    _ => continue,
                };
                if let Some(RefOr::T(Schema::Object(schema))) = p.schema.as_mut() {
                    schema.pattern = Some(pattern.into());
                }
            }
        }
    }
    doc
}
