//! `tigateway explain`: the data plane's matching run on a described request, printed for humans
//! or as the JSON `POST /api/v1/explain` answers.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// Config file or directory (any form `gateway -c` takes).
    #[arg(short = 'c', long = "config")]
    config: PathBuf,
    /// The request: `'GET /api/users/42?x=1'`, or just a path (GET).
    request: String,
    /// A request header, `'Name: value'` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Query string (without `?`), overriding one in the request line.
    #[arg(long)]
    query: Option<String>,
    /// Request body, for `post` conditions (set Content-Type with -H).
    #[arg(long)]
    body: Option<String>,
    /// Client address after trusted-proxy resolution (default 127.0.0.1).
    #[arg(long)]
    client_ip: Option<String>,
    /// Print the JSON answer (the same structure as `POST /api/v1/explain`).
    #[arg(long)]
    json: bool,
}

pub fn run(a: ExplainArgs) -> ExitCode {
    let cfg = match tigateway_sync::file::load_path(&a.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let req = match tigateway_explain::request_from_cli(
        &a.request,
        &a.headers,
        a.query.as_deref(),
        a.body.as_deref(),
        a.client_ip.as_deref(),
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match tigateway_explain::explain(&cfg, &req) {
        Ok(e) if a.json => {
            println!("{}", serde_json::to_string_pretty(&e).expect("explanations serialise"));
            ExitCode::SUCCESS
        }
        Ok(e) => {
            print!("{}", tigateway_explain::render_text(&e));
            ExitCode::SUCCESS
        }
        Err(e @ tigateway_explain::ExplainError::BadRequest { .. }) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("{}: {e}", a.config.display());
            ExitCode::FAILURE
        }
    }
}
