//! The OpenAPI 3 document served at `GET /api/v1/openapi.json`, built with utoipa from the same
//! endpoint table as the router ([`super::endpoints`]), so every served route is described.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Components, ComponentsBuilder, ContentBuilder, Header, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr,
    Required, ResponseBuilder, Tag,
};

use super::error::FieldError;
use super::identity::{NewRole, RoleUpdate};
use super::{endpoints, kind_path, ApiMethod, CrudOp, Endpoint, LoginRequest, LoginResponse, Op};
use crate::store::EntityKind;

const JSON: &str = "application/json";
const BEARER: &str = "bearer";

/// `GET /api/v1/openapi.json` (no authentication).
pub async fn serve() -> impl IntoResponse {
    static DOC: OnceLock<String> = OnceLock::new();
    let body = DOC.get_or_init(|| document().to_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))).clone();
    ([(header::CONTENT_TYPE, JSON)], body)
}

/// Schemas of bodies whose Rust types live outside the API module (store, identity, model); they
/// describe the JSON those types serialise to.
#[allow(dead_code)]
mod doc {
    use serde_json::Value;
    use utoipa::ToSchema;

    use super::FieldError;

    /// The body of every error response.
    #[derive(ToSchema)]
    #[schema(as = Error)]
    #[serde(rename_all = "camelCase")]
    pub struct ErrorBody {
        /// The HTTP status code.
        pub code: u16,
        pub message: String,
        /// Per-field validation errors (422).
        pub errors: Option<Vec<FieldError>>,
        /// The object's current version (409 version conflicts).
        pub current_version: Option<i64>,
    }

    /// What a committed (or, for a dry run, would-be) write did.
    #[derive(ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct WriteOutcome {
        /// The revision written; for a dry run, the one that would have been written.
        pub revision: i64,
        /// The config changes the write made.
        pub changes: Vec<Value>,
    }

    #[derive(ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct RevisionSummary {
        pub revision: i64,
        pub actor: String,
        pub operation: String,
        pub created_at: String,
    }

    /// A revision with its whole config (secrets redacted) and its changes from the previous one.
    #[derive(ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct RevisionDetail {
        pub revision: i64,
        pub actor: String,
        pub operation: String,
        pub created_at: String,
        #[schema(value_type = Object)]
        pub config: Value,
        pub changes: Vec<Value>,
    }

    /// A request to explain against the stored config.
    #[derive(ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ExplainRequest {
        /// HTTP method (default GET).
        pub method: Option<String>,
        /// Request target: a path, optionally with `?query`.
        pub path: String,
        /// Query string without `?`; overrides one in `path`.
        pub query: Option<String>,
        /// Header name -> value, or a list of values for a repeated header.
        pub headers: Option<std::collections::BTreeMap<String, Value>>,
        /// Cookie name -> value.
        pub cookies: Option<std::collections::BTreeMap<String, String>>,
        /// Client address after trusted-proxy resolution (default 127.0.0.1).
        pub client_ip: Option<String>,
        /// TCP peer address (default: the client address).
        pub peer_ip: Option<String>,
        /// Body, for `post` conditions.
        pub body: Option<String>,
    }

    /// What the gateway does with the request and why.
    #[derive(ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct Explanation {
        /// The request as matching saw it (normalised path, host, client IP, upgrade).
        pub request: Value,
        /// Every implemented plugin in chain order: `name`, `order`, `enabled`, `result`
        /// (disabled, noSelector, noRule, noRoute, skipped, applied, terminal, responsePhase,
        /// notReached), `detail`, the chosen `selector`/`rule`, and the evaluated `selectors`/`rules`
        /// (each with `matched`, `candidate`, and for a non-match `failed`: `paramType`, `paramName`,
        /// `operator`, `expected`, `actual`); for `route`, `routes` with each route's failing predicate.
        pub plugins: Vec<Value>,
        /// `kind` (proxy, redirect, respond, notFound, badRequest), `status`, `plugin`, `selector`,
        /// `rule`, `route`, `upstreams`, `location`, `message`.
        pub outcome: Value,
        /// Caveats (e.g. request-plugin edits not applied).
        pub notes: Option<Vec<String>>,
    }

    /// One audit-log entry (secrets redacted).
    #[derive(ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct AuditEntry {
        pub id: i64,
        pub revision: i64,
        pub at: String,
        pub actor: String,
        /// `create`, `update`, `delete`, `batch`, `import`, `rollback` or `seed`.
        pub operation: String,
        /// `create`, `update` or `delete` of this one object.
        pub action: String,
        pub entity_type: String,
        pub entity_id: String,
        #[schema(value_type = Option<Object>)]
        pub before: Option<Value>,
        #[schema(value_type = Option<Object>)]
        pub after: Option<Value>,
    }

    /// One step of a batch: `{"op":"create","item":{"kind":…,…}}`,
    /// `{"op":"update","id":…,"expectedVersion":…,"item":{…}}` or
    /// `{"op":"delete","kind":…,"id":…,"expectedVersion":…}`.
    #[derive(ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct Change {
        /// `create`, `update` or `delete`.
        pub op: String,
        pub id: Option<String>,
        /// `plugin`, `selector`, `rule`, `metaData`, `appAuth` or `route` (delete).
        pub kind: Option<String>,
        pub expected_version: Option<i64>,
        /// The object, tagged with its kind (create, update).
        #[schema(value_type = Option<Object>)]
        pub item: Option<Value>,
    }

    /// A user (never the password hash).
    #[derive(ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct User {
        pub id: String,
        pub username: String,
        pub enabled: bool,
        pub roles: Vec<String>,
        pub version: i64,
        pub created_at: String,
        pub updated_at: String,
    }

    #[derive(ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct NewUser {
        pub username: String,
        pub password: String,
        /// Default `true`.
        pub enabled: Option<bool>,
        pub roles: Option<Vec<String>>,
    }

    /// What to change; an absent field keeps its value; `roles` replaces the whole set.
    #[derive(ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct UserUpdate {
        pub password: Option<String>,
        pub enabled: Option<bool>,
        pub roles: Option<Vec<String>>,
    }

    #[derive(ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct Role {
        pub name: String,
        /// `[["rules", "write"], ["audit", "read"], …]`
        pub permissions: Vec<Vec<String>>,
        pub builtin: bool,
        pub version: i64,
        pub created_at: String,
        pub updated_at: String,
    }

    /// An API token as listings show it (never the plaintext).
    #[derive(ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct TokenInfo {
        pub id: String,
        pub name: String,
        /// The owner's username.
        pub owner: String,
        /// A subset of the owner's roles; absent: all of them.
        pub roles: Option<Vec<String>>,
        pub created_at: String,
        pub expires_at: Option<String>,
        pub revoked_at: Option<String>,
        pub last_used_at: Option<String>,
    }

    /// A new token; the plaintext `token` appears in this response only.
    #[derive(ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct CreatedToken {
        pub token: String,
        #[serde(flatten)]
        pub info: TokenInfo,
    }

    #[derive(ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct NewToken {
        /// What the token is for (1–255 characters).
        pub name: String,
        /// The owner's username.
        pub owner: String,
        /// A subset of the owner's roles; absent: all of them.
        pub roles: Option<Vec<String>>,
        /// Absent: until revoked.
        pub expires_in_secs: Option<u64>,
    }

    /// `{"revision": n}`: the revision the delete wrote.
    #[derive(ToSchema)]
    pub struct Deleted {
        pub revision: i64,
    }
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// The schema name of a config kind's objects.
fn kind_schema(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Plugin => "Plugin",
        EntityKind::Selector => "Selector",
        EntityKind::Rule => "Rule",
        EntityKind::MetaData => "MetaData",
        EntityKind::AppAuth => "AppAuth",
        EntityKind::Route => "RouteDefinition",
    }
}

fn kind_noun(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Plugin => "plugin",
        EntityKind::Selector => "selector",
        EntityKind::Rule => "rule",
        EntityKind::MetaData => "metadata entry",
        EntityKind::AppAuth => "app credential",
        EntityKind::Route => "route",
    }
}

/// `{items: [item], total, page, pageSize}`.
fn page_schema(item: &str) -> Schema {
    ObjectBuilder::new()
        .property("items", ArrayBuilder::new().items(schema_ref(item)))
        .required("items")
        .property("total", ObjectBuilder::new().schema_type(Type::Integer).format(None))
        .required("total")
        .property("page", ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
        .required("page")
        .property("pageSize", ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
        .required("pageSize")
        .description(Some(format!("One page of {item} objects.")))
        .into()
}

fn components() -> Components {
    let mut b = ComponentsBuilder::new()
        .schema_from::<doc::ErrorBody>()
        .schema_from::<FieldError>()
        .schema_from::<LoginRequest>()
        .schema_from::<LoginResponse>()
        .schema_from::<doc::WriteOutcome>()
        .schema_from::<doc::RevisionSummary>()
        .schema_from::<doc::RevisionDetail>()
        .schema_from::<doc::AuditEntry>()
        .schema_from::<doc::Change>()
        .schema_from::<doc::User>()
        .schema_from::<doc::NewUser>()
        .schema_from::<doc::UserUpdate>()
        .schema_from::<doc::Role>()
        .schema_from::<NewRole>()
        .schema_from::<RoleUpdate>()
        .schema_from::<doc::TokenInfo>()
        .schema_from::<doc::CreatedToken>()
        .schema_from::<doc::NewToken>()
        .schema_from::<doc::Deleted>()
        .schema_from::<doc::ExplainRequest>()
        .schema_from::<doc::Explanation>()
        .schema(
            "Config",
            ObjectBuilder::new()
                .description(Some("The whole config (plugins, selectors, rules, metadata, app credentials, routes) as one document, the same form as the config file.")),
        );
    for kind in EntityKind::ALL {
        let name = kind_schema(kind);
        b = b.schema(
            name,
            ObjectBuilder::new().property("version", ObjectBuilder::new().schema_type(Type::Integer)).description(
                Some(format!(
                    "A {} as the config model defines it (camelCase JSON, the same form as in the config file), plus \
                     `version` (the optimistic-locking version; answered by the API, optional in request bodies).",
                    kind_noun(kind)
                )),
            ),
        );
        b = b.schema(format!("Page{name}"), page_schema(name));
    }
    for item in ["RevisionSummary", "AuditEntry", "User", "Role", "TokenInfo"] {
        b = b.schema(format!("Page{item}"), page_schema(item));
    }
    let mut c = b.build();
    c.add_security_scheme(
        BEARER,
        SecurityScheme::Http({
            let mut h = Http::new(HttpAuthScheme::Bearer);
            h.description =
                Some("A session JWT from `POST /api/v1/login` or an API token from `POST /api/v1/tokens`.".to_string());
            h
        }),
    );
    c
}

fn integer() -> Schema {
    ObjectBuilder::new().schema_type(Type::Integer).into()
}

fn string() -> Schema {
    ObjectBuilder::new().schema_type(Type::String).into()
}

fn boolean() -> Schema {
    ObjectBuilder::new().schema_type(SchemaType::new(Type::Boolean)).into()
}

/// Builds one operation from an endpoint of the table.
struct Op3 {
    b: OperationBuilder,
}

impl Op3 {
    fn new(tag: &str, id: String, summary: String) -> Op3 {
        Op3 { b: OperationBuilder::new().tag(tag).operation_id(Some(id)).summary(Some(summary)) }
    }

    fn path_param(mut self, name: &str, schema: Schema, desc: &str) -> Self {
        self.b = self.b.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(schema))
                .description(Some(desc)),
        );
        self
    }

    fn query(mut self, name: &str, schema: Schema, desc: &str) -> Self {
        self.b = self.b.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .schema(Some(schema))
                .description(Some(desc)),
        );
        self
    }

    fn paging(self) -> Self {
        self.query("page", integer(), "1-based page number (default 1).").query(
            "pageSize",
            integer(),
            "Items per page (default 20).",
        )
    }

    /// `If-Match` / `?version=`: the version the caller expects (optimistic locking).
    fn versioned(mut self) -> Self {
        self.b = self.b.parameter(
            ParameterBuilder::new()
                .name("If-Match")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .schema(Some(string()))
                .description(Some("The object's current version (`\"3\"`, `W/\"3\"` or `3`); or give `?version=`.")),
        );
        self.query("version", integer(), "The object's current version, when If-Match is not given.")
            .err("409", "The object changed since that version; the body holds `currentVersion`.")
            .err("428", "No version given (If-Match, `?version=` or the body's `version`).")
    }

    fn body(mut self, schema: RefOr<Schema>, desc: &str) -> Self {
        self.b = self.b.request_body(Some(
            RequestBodyBuilder::new()
                .description(Some(desc))
                .required(Some(Required::True))
                .content(JSON, ContentBuilder::new().schema(Some(schema)).build())
                .build(),
        ));
        self.err("400", "Malformed JSON, or a body that does not fit the schema (unknown fields included).")
            .err("413", "The body is larger than the limit (1 MiB; 64 MiB for import and batch).")
            .err("415", "The body is not `application/json`.")
    }

    fn ok(mut self, code: &str, schema: Option<RefOr<Schema>>, desc: &str) -> Self {
        let mut r = ResponseBuilder::new().description(desc);
        if let Some(s) = schema {
            r = r.content(JSON, ContentBuilder::new().schema(Some(s)).build());
        }
        self.b = self.b.response(code, r.build());
        self
    }

    fn err(mut self, code: &str, desc: &str) -> Self {
        let mut r = ResponseBuilder::new()
            .description(desc)
            .content(JSON, ContentBuilder::new().schema(Some(schema_ref("Error"))).build());
        if code == "429" {
            r = r.header("Retry-After", Header::new(integer()));
        }
        self.b = self.b.response(code, r.build());
        self
    }

    /// Behind a bearer token and an RBAC check.
    fn secured(mut self) -> Self {
        self.b = self.b.security(SecurityRequirement::new(BEARER, Vec::<String>::new()));
        self.err("401", "No, or an invalid, expired or revoked, bearer token.")
            .err("403", "The caller's roles do not grant this action.")
            .err("503", "The store is unavailable.")
    }

    fn not_found(self, what: &str) -> Self {
        self.err("404", &format!("No such {what}."))
    }

    fn invalid(self) -> Self {
        self.err("422", "The object does not validate; `errors` lists the fields.")
    }

    fn build(self) -> Operation {
        self.b.build()
    }
}

fn crud_operation(kind: EntityKind, op: CrudOp) -> Operation {
    crud_op3(kind, op).build()
}

fn crud_op3(kind: EntityKind, op: CrudOp) -> Op3 {
    let name = kind_schema(kind);
    let noun = kind_noun(kind);
    let tag = kind_path(kind).trim_start_matches("/api/v1/");
    let id = |verb: &str| format!("{verb}{name}");
    let id_param = |o: Op3| o.path_param("id", string(), &format!("The {noun}'s id."));
    match op {
        CrudOp::List => {
            let mut o = Op3::new(tag, id("list"), format!("List {noun}s, paged and filtered")).paging().query(
                "name",
                string(),
                "Case-insensitive substring of the name.",
            );
            if matches!(kind, EntityKind::Selector | EntityKind::Rule) {
                o = o.query("pluginName", string(), "Only those of this plugin.");
            }
            if kind == EntityKind::Rule {
                o = o.query("selectorId", string(), "Only the rules of this selector.");
            }
            o.ok("200", Some(schema_ref(&format!("Page{name}"))), "One page.")
                .secured()
                .err("400", "A query parameter does not parse.")
        }
        CrudOp::Create => Op3::new(tag, id("create"), format!("Create a {noun}"))
            .body(schema_ref(name), &format!("The new {noun}; an absent id is generated."))
            .ok("201", Some(schema_ref(name)), "Created; the object with its version.")
            .secured()
            .err("409", "An object with that id already exists.")
            .invalid(),
        CrudOp::Get => id_param(Op3::new(tag, id("get"), format!("Get a {noun}")))
            .ok("200", Some(schema_ref(name)), "The object with its version.")
            .secured()
            .not_found(noun),
        CrudOp::Update => id_param(Op3::new(tag, id("update"), format!("Replace a {noun}")))
            .body(schema_ref(name), "The whole object; may carry `version`.")
            .ok("200", Some(schema_ref(name)), "Updated; the object with its new version.")
            .secured()
            .not_found(noun)
            .versioned()
            .invalid(),
        CrudOp::Delete => id_param(Op3::new(tag, id("delete"), format!("Delete a {noun}")))
            .ok("200", Some(schema_ref("Deleted")), "Deleted.")
            .secured()
            .not_found(noun)
            .versioned()
            .err("400", "If-Match or `?version=` does not parse."),
    }
}

fn operation(ep: &Endpoint) -> Operation {
    let mut op = operation_without_permission(ep);
    if let Some((resource, action)) = ep.op.permission() {
        let needs = format!("Needs `{action:?}` on `{resource:?}`.").to_lowercase();
        op.description = Some(needs);
    }
    op
}

fn operation_without_permission(ep: &Endpoint) -> Operation {
    let config = "config";
    let users = "users";
    let roles = "roles";
    let tokens = "tokens";
    let n_param = |o: Op3| o.path_param("n", integer(), "The revision number.");
    let user_id = |o: Op3| o.path_param("id", string(), "The user's id.");
    let role_name = |o: Op3| o.path_param("name", string(), "The role's name.");
    let token_id = |o: Op3| o.path_param("id", string(), "The token's id.");
    let o = |tag: &str, id: &str, summary: &str| Op3::new(tag, id.to_string(), summary.to_string());
    let op = match ep.op {
        Op::Crud(kind, op) => return crud_operation(kind, op),
        Op::OpenApi => o("meta", "openapi", "This OpenAPI document").ok("200", None, "The OpenAPI 3 document (JSON)."),
        Op::Login => o("auth", "login", "Log in with a username and password")
            .body(schema_ref("LoginRequest"), "The credentials.")
            .ok("200", Some(schema_ref("LoginResponse")), "A session token.")
            .err("401", "Wrong username or password, or the user is disabled.")
            .err("429", "Too many failed logins from this address or for this user; see Retry-After.")
            .err("503", "The store is unavailable."),
        Op::Logout => o("auth", "logout", "End the caller's session")
            .ok("204", None, "The session no longer works.")
            .err("422", "The caller used an API token (revoke it with `DELETE /api/v1/tokens/{id}`).")
            .secured(),
        Op::Batch => o(config, "batch", "Apply many changes in one transaction (all or nothing)")
            .body(RefOr::T(ArrayBuilder::new().items(schema_ref("Change")).into()), "The changes, applied in order.")
            .ok("200", Some(schema_ref("WriteOutcome")), "Applied as one revision.")
            .secured()
            .err("404", "A change names an object that does not exist.")
            .err("409", "A version conflict, or an object that already exists; nothing was applied.")
            .invalid(),
        Op::Export => o(config, "export", "Export the whole config (backup)")
            .ok("200", Some(schema_ref("Config")), "The whole config as one document.")
            .secured(),
        Op::Import => o(config, "import", "Import a whole config, replacing the current one (restore)")
            .query("dryRun", boolean(), "Only report what would change (default false).")
            .body(schema_ref("Config"), "The whole config, as `GET /api/v1/export` answers it.")
            .ok("200", Some(schema_ref("WriteOutcome")), "Imported (or, for a dry run, what would change).")
            .secured()
            .invalid(),
        Op::Revisions => o(config, "listRevisions", "List config revisions, newest first")
            .paging()
            .ok("200", Some(schema_ref("PageRevisionSummary")), "One page.")
            .secured()
            .err("400", "A query parameter does not parse."),
        Op::Revision => n_param(o(config, "getRevision", "Get a revision's config and changes"))
            .ok("200", Some(schema_ref("RevisionDetail")), "The revision, secrets redacted.")
            .secured()
            .not_found("revision")
            .err("400", "The revision number does not parse."),
        Op::Rollback => n_param(o(config, "rollback", "Roll the config back to a revision (as a new revision)"))
            .ok("200", Some(schema_ref("WriteOutcome")), "Rolled back.")
            .secured()
            .not_found("revision")
            .err("400", "The revision number does not parse.")
            .invalid(),
        Op::Audit => o("audit", "listAudit", "List the audit log, newest first")
            .paging()
            .query("entityType", string(), "`plugin`, `selector`, `rule`, `meta_data`, `app_auth` or `route`.")
            .query("entityId", string(), "Only this object's entries (needs entityType).")
            .ok("200", Some(schema_ref("PageAuditEntry")), "One page, secrets redacted.")
            .secured()
            .err("400", "A query parameter does not parse, or an unknown entityType."),
        Op::Explain => o(config, "explain", "Explain how the stored config handles a request")
            .body(schema_ref("ExplainRequest"), "The request to explain.")
            .ok(
                "200",
                Some(schema_ref("Explanation")),
                "Which plugins ran, which selector/rule/route each chose, the failing condition of every other \
                 candidate, and the outcome.",
            )
            .secured()
            .err("400", "The described request is malformed (the field is named).")
            .err("409", "The stored config does not compile."),
        Op::ListUsers => o(users, "listUsers", "List users")
            .paging()
            .query("username", string(), "Case-insensitive substring of the username.")
            .ok("200", Some(schema_ref("PageUser")), "One page.")
            .secured()
            .err("400", "A query parameter does not parse."),
        Op::CreateUser => o(users, "createUser", "Create a user")
            .body(schema_ref("NewUser"), "The new user.")
            .ok("201", Some(schema_ref("User")), "Created.")
            .secured()
            .err("409", "The username is taken.")
            .invalid(),
        Op::GetUser => user_id(o(users, "getUser", "Get a user"))
            .ok("200", Some(schema_ref("User")), "The user.")
            .secured()
            .not_found("user"),
        Op::UpdateUser => user_id(o(users, "updateUser", "Change a user's password, enabled flag or roles"))
            .body(schema_ref("UserUpdate"), "What to change.")
            .ok("200", Some(schema_ref("User")), "Updated.")
            .secured()
            .not_found("user")
            .versioned()
            .invalid(),
        Op::DeleteUser => user_id(o(users, "deleteUser", "Delete a user"))
            .ok("204", None, "Deleted.")
            .secured()
            .not_found("user")
            .versioned()
            .err("400", "If-Match or `?version=` does not parse.")
            .invalid(),
        Op::RevokeSessions => user_id(o(users, "revokeUserSessions", "End every session of a user"))
            .ok("204", None, "Sessions issued until now no longer work; API tokens are not affected.")
            .secured()
            .not_found("user"),
        Op::RotateSessionSecret => o(users, "rotateSessionSecret", "Replace the session signing secret")
            .ok("204", None, "Every session issued so far no longer works; API tokens are not affected.")
            .secured(),
        Op::ListRoles => o(roles, "listRoles", "List roles")
            .paging()
            .ok("200", Some(schema_ref("PageRole")), "One page.")
            .secured()
            .err("400", "A query parameter does not parse."),
        Op::CreateRole => o(roles, "createRole", "Create a role")
            .body(schema_ref("NewRole"), "The new role and its permissions.")
            .ok("201", Some(schema_ref("Role")), "Created.")
            .secured()
            .err("409", "A role with that name exists.")
            .invalid(),
        Op::GetRole => role_name(o(roles, "getRole", "Get a role"))
            .ok("200", Some(schema_ref("Role")), "The role.")
            .secured()
            .not_found("role"),
        Op::UpdateRole => role_name(o(roles, "updateRole", "Replace a role's permissions"))
            .body(schema_ref("RoleUpdate"), "The new permissions.")
            .ok("200", Some(schema_ref("Role")), "Updated.")
            .secured()
            .not_found("role")
            .versioned()
            .invalid(),
        Op::DeleteRole => role_name(o(roles, "deleteRole", "Delete a role"))
            .ok("204", None, "Deleted.")
            .secured()
            .not_found("role")
            .versioned()
            .err("400", "If-Match or `?version=` does not parse.")
            .invalid(),
        Op::ListTokens => o(tokens, "listTokens", "List API tokens")
            .paging()
            .query("owner", string(), "Only this user's tokens.")
            .ok("200", Some(schema_ref("PageTokenInfo")), "One page.")
            .secured()
            .err("400", "A query parameter does not parse."),
        Op::CreateToken => o(tokens, "createToken", "Create an API token")
            .body(schema_ref("NewToken"), "The new token.")
            .ok("201", Some(schema_ref("CreatedToken")), "Created; the plaintext token appears only here.")
            .secured()
            .not_found("owner")
            .invalid(),
        Op::GetToken => token_id(o(tokens, "getToken", "Get an API token's info"))
            .ok("200", Some(schema_ref("TokenInfo")), "The token's info.")
            .secured()
            .not_found("token"),
        Op::RevokeToken => token_id(o(tokens, "revokeToken", "Revoke an API token"))
            .ok("200", Some(schema_ref("TokenInfo")), "Revoked; the row stays for the audit trail.")
            .secured()
            .not_found("token"),
    };
    op.build()
}

fn http_method(m: ApiMethod) -> HttpMethod {
    match m {
        ApiMethod::Get => HttpMethod::Get,
        ApiMethod::Post => HttpMethod::Post,
        ApiMethod::Put => HttpMethod::Put,
        ApiMethod::Delete => HttpMethod::Delete,
    }
}

/// The whole document.
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    for ep in endpoints() {
        paths.add_path_operation(&ep.path, vec![http_method(ep.method)], operation(&ep));
    }
    let mut tags = vec![Tag::new("auth"), Tag::new("meta")];
    tags.extend(EntityKind::ALL.into_iter().map(|k| Tag::new(kind_path(k).trim_start_matches("/api/v1/"))));
    tags.extend(["config", "audit", "users", "roles", "tokens"].map(Tag::new));
    OpenApiBuilder::new()
        .info(InfoBuilder::new().title("TiGateway admin API").version(env!("CARGO_PKG_VERSION")).description(Some(
            "The control plane's REST API. JSON in and out; errors as `{\"code\", \"message\", \"errors\"?, \
                     \"currentVersion\"?}`. Every endpoint but login and this document needs a bearer token.",
        )))
        .paths(paths)
        .components(Some(components()))
        .tags(Some(tags))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_documented() {
        let doc = serde_json::to_value(document()).unwrap();
        for ep in endpoints() {
            let m = ep.method.as_str().to_lowercase();
            assert!(doc["paths"][&ep.path][&m].is_object(), "{m} {} missing", ep.path);
        }
    }
}
