//! The load test's ceiling: a bare actix-web server that answers `POST /v1/churn/score`, `POST /v1/sentiment` and
//! `POST /v1/recommendations` with the same request and reply shapes as crmscore, but with no snapshot lookup, no
//! tokenizer, no queue and no model.
//!
//! Every requested id or text gets the same constant answer (k constant catalogue-like items for recommendations),
//! so the reply grows with the request like crmscore's does. What
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
struct ScoreReply<R> {
    model: ModelRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot: Option<&'static str>,
    results: Vec<R>,
}

/// The body crmscore's recommendations route accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecommendRequest {
    customer_ids: Vec<String>,
    k: Option<usize>,
    #[allow(dead_code)]
    exclude_owned: Option<bool>,
}

#[derive(Debug, Serialize)]
struct Item {
    item_id: &'static str,
    score: f32,
    name: &'static str,
    category: &'static str,
    price_band: &'static str,
}

#[derive(Debug, Serialize)]
struct Recommendation<'a> {
    customer_id: &'a str,
    items: Vec<Item>,
    cold_start: bool,
}

/// The body crmscore's sentiment route accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SentimentRequest {
    texts: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Scores {
    negative: f32,
    neutral: f32,
    positive: f32,
}

#[derive(Debug, Serialize)]
struct TextResult {
    label: &'static str,
    scores: Scores,
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
        snapshot: Some("ceiling"),
        results,
    })
}

/// `POST /v1/recommendations`: k constant items per id (k as crmscore reads it: default 10, 1..=100).
async fn post_recommendations(body: web::Json<RecommendRequest>) -> HttpResponse {
    let k = body.k.unwrap_or(10);
    if k == 0 || k > 100 {
        return HttpResponse::BadRequest().finish();
    }
    let results = body
        .customer_ids
        .iter()
        .map(|id| Recommendation {
            customer_id: id,
            items: (0..k)
                .map(|i| Item {
                    item_id: "P0208",
                    score: 3.8608282 - i as f32 * 0.01,
                    name: "Full Fibre 500 Mb Broadband Essentials",
                    category: "broadband",
                    price_band: "low",
                })
                .collect(),
            cold_start: false,
        })
        .collect();
    HttpResponse::Ok().json(ScoreReply::<Recommendation> {
        model: ModelRef {
            name: "recommendation",
            version: "1",
        },
        snapshot: Some("ceiling"),
        results,
    })
}

/// `POST /v1/sentiment`: one constant result per text.
async fn post_sentiment(body: web::Json<SentimentRequest>) -> HttpResponse {
    let results = body
        .texts
        .iter()
        .map(|_| TextResult {
            label: "neutral",
            scores: Scores {
                negative: 0.015291902,
                neutral: 0.96908116,
                positive: 0.015626892,
            },
        })
        .collect();
    HttpResponse::Ok().json(ScoreReply::<TextResult> {
        model: ModelRef {
            name: "sentiment",
            version: "1",
        },
        snapshot: None,
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
            .route("/v1/recommendations", web::post().to(post_recommendations))
            .route("/v1/sentiment", web::post().to(post_sentiment))
    })
    .workers(workers.max(1))
    .bind(args.bind)?
    .run()
    .await
}
