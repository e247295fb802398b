//! The load test's ceiling: a bare actix-web server that answers `POST /v1/churn/score` with the same request and
//! reply shapes as crmscore, but with no snapshot lookup, no queue and no model.
//!
//! Every requested id gets the same constant score, so the reply grows with the request like crmscore's does. What
//! is left is JSON parsing, serialization and HTTP on this machine: the most any handler of this request size can
//! serve. `scripts/loadtest.sh` runs it pinned to the same CPUs as crmscore and prints crmscore's figures as a ratio
//! to it.
//!
//! ```text
//! cargo build --release --example ceiling
//! target/release/examples/ceiling --bind 127.0.0.1:18090 --workers 1
//! curl -s -d '{"customer_ids": ["C0004211"]}' -H 'content-type: application/json' \
//!     http://127.0.0.1:18090/v1/churn/score
//! ```

use std::net::SocketAddr;

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;
use serde::{Deserialize, Serialize};

/// A constant-answer stand-in for `crmscore serve`, to measure the HTTP + JSON ceiling.
#[derive(Debug, Parser)]
#[command(name = "ceiling", about, long_about = None)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18090")]
    bind: SocketAddr,
    /// HTTP worker threads (default: one per CPU this process may run on).
    #[arg(long)]
    workers: Option<usize>,
}

/// The body crmscore's churn route accepts (customer ids only).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScoreRequest {
    customer_ids: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ModelRef {
    name: &'static str,
    version: &'static str,
}

#[derive(Debug, Serialize)]
struct ChurnResult<'a> {
    customer_id: &'a str,
    churn_probability: f32,
    risk: &'static str,
}

#[derive(Debug, Serialize)]
struct ScoreReply<'a> {
    model: ModelRef,
    snapshot: &'static str,
    results: Vec<ChurnResult<'a>>,
}

/// `POST /v1/churn/score`: one constant result per id, in request order.
async fn post_churn_score(body: web::Json<ScoreRequest>) -> HttpResponse {
    let results = body
        .customer_ids
        .iter()
        .map(|id| ChurnResult {
            customer_id: id,
            churn_probability: 0.5,
            risk: "medium",
        })
        .collect();
    HttpResponse::Ok().json(ScoreReply {
        model: ModelRef {
            name: "churn",
            version: "1",
        },
        snapshot: "ceiling",
        results,
    })
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let workers = args.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
    });
    eprintln!(
        "ceiling listening on http://{} ({workers} workers)",
        args.bind
    );
    HttpServer::new(|| {
        App::new()
            // Same body limit and content-type leniency as crmscore's JSON config.
            .app_data(
                web::JsonConfig::default()
                    .limit(4 * 1024 * 1024)
                    .content_type_required(false),
            )
            .route("/v1/churn/score", web::post().to(post_churn_score))
    })
    .workers(workers.max(1))
    .bind(args.bind)?
    .run()
    .await
}
