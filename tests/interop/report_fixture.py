"""Fixture and expected figures of `crmscore report` (tests/report.rs).

Writes, under OUT:
  feedback/decisions/date=*/part-*.parquet and feedback/outcomes/date=*/part-*.parquet, per the schemas of
    /work/feedback-contract.md (the last day of each log left open: no _SUCCESS), with decoys the report must skip
    (other models, rows without a customer or a score, hidden and underscore files, a wal/ folder, outcomes that
    say nothing about churn);
  snapshot.parquet: the shipped sample snapshot with age_band nulled for some customers (a "null" group);
  expected.json: the report's figures computed here, independently, with pandas and scikit-learn, overall and per
    age_band and per segment.

Usage: python report_fixture.py SAMPLE_SNAPSHOT OUT
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.metrics import roc_auc_score

SAMPLE, OUT = Path(sys.argv[1]), Path(sys.argv[2])
BINS, MIN_GROUP, MODEL = 10, 50, "churn"
rng = np.random.default_rng(20261202)
US = 1_000_000
BASE = int(pd.Timestamp("2026-11-20T00:00:00Z").value // 1000)  # microseconds
DAY = 86_400 * US

# --- customers -------------------------------------------------------------------------------------------------
snap = pq.read_table(SAMPLE)
ids = np.array(snap.column("customer_id").to_pylist())
band = np.array(snap.column("age_band").to_pylist())
pick = lambda mask, n: rng.choice(ids[mask], size=n, replace=False)
main = pick(np.isin(band, [1, 2, 3, 4]), 2600)
tiny = pick(band == 5, 25)  # fewer than MIN_GROUP labelled
retained_only = pick(band == 0, 150)  # every labelled customer retained: AUC undefined
nulled = main[:200]  # their age_band becomes null in the fixture snapshot
absent = np.array([f"Z{i:07d}" for i in range(30)])  # not in the snapshot
customers = np.concatenate([main, tiny, retained_only, absent])

null_set = set(nulled)
age = snap.column("age_band").to_pylist()
age = [None if c in null_set else a for c, a in zip(ids, age)]
fixture_snap = snap.set_column(
    snap.schema.get_field_index("age_band"), pa.field("age_band", pa.int8()), pa.array(age, pa.int8())
)
OUT.mkdir(parents=True, exist_ok=True)
pq.write_table(fixture_snap, OUT / "snapshot.parquet")

# --- decisions ---------------------------------------------------------------------------------------------------
ACTIONS = np.array(["retention_offer", "upsell", "loyalty_call", None], dtype=object)
n_dec = 0


def new_id():
    return rng.bytes(16).hex()


rows = []
latest = {}  # the generator's own idea of each customer's latest churn decision (to aim outcomes at it)
for c in customers:
    k = int(rng.integers(1, 4))
    times = np.sort(BASE + rng.integers(0, 9 * DAY, size=k))
    if rng.random() < 0.03 and k >= 2:
        times[-1] = times[-2]  # a tie: the larger decision id is the latest
    for t in times:
        score = float(rng.beta(2.0, 5.0))
        d = dict(
            decision_id=new_id(), customer_id=str(c), decided_at=int(t),
            route=str(rng.choice(["insights", "churn_score"])), model=MODEL, model_version="1",
            models="churn=1;segmentation=1", snapshot_version="customers-sample.parquet", score=score,
            risk="high" if score > 0.5 else "low", segment="s", action=ACTIONS[rng.integers(0, 4)],
            item_id=None, expected_value=None, features=None,
        )
        rows.append(d)
        key = (d["decided_at"], d["decision_id"])
        if c not in latest or key > (latest[c]["decided_at"], latest[c]["decision_id"]):
            latest[c] = d
# Decoys: another model, an inline row without a customer, a churn row without a score.
for c in rng.choice(customers, 300):
    rows.append(dict(rows[0], decision_id=new_id(), customer_id=str(c), model="recommendation",
                     models="recommendation=1", score=0.99, action=None, decided_at=BASE + 10 * DAY - 1))
for _ in range(50):
    rows.append(dict(rows[0], decision_id=new_id(), customer_id=None, snapshot_version=None,
                     decided_at=BASE + int(rng.integers(0, 9 * DAY))))
for c in rng.choice(customers, 40):
    rows.append(dict(rows[0], decision_id=new_id(), customer_id=str(c), score=None,
                     decided_at=BASE + 10 * DAY - 2))

# --- outcomes ----------------------------------------------------------------------------------------------------
outs = []


def outcome(c, decision_id, kind, occurred):
    outs.append(dict(
        event_id=new_id(), customer_id=str(c), decision_id=decision_id, action="retention_offer",
        item_id=None, channel="email", outcome=kind, occurred_at=int(occurred),
        recorded_at=int(occurred + rng.integers(0, DAY)), note=None,
    ))


retained_set = set(retained_only)
for c in customers:
    d = latest[c]
    churn = rng.random() < d["score"] and c not in retained_set
    kind = "churned" if churn else "retained"
    other = "retained" if churn else "churned"
    after = d["decided_at"] + int(rng.integers(1, 20 * DAY))
    r = rng.random()
    if c in retained_set:
        r = r * 0.7  # most of them labelled, with retained only
    if r < 0.35:  # names the decision
        outcome(c, d["decision_id"], kind, after)
    elif r < 0.45:  # names it, and an unnamed contrary outcome came earlier: the named one counts
        outcome(c, None, other if c not in retained_set else "retained", after - 1)
        outcome(c, d["decision_id"], kind, after)
    elif r < 0.65:  # only the customer: the first after the decision counts
        outcome(c, None, kind, after)
        outcome(c, None, other if c not in retained_set else "retained", after + DAY)
    elif r < 0.72:  # names an older decision of the customer, after the latest one: counts by customer
        outcome(c, "0" * 32, kind, after)
    elif r < 0.80:  # only before the latest decision: unlabelled
        outcome(c, None, "churned", d["decided_at"] - 1)
    # else: no outcome yet
    if rng.random() < 0.2:  # outcomes that say nothing about churn
        outcome(c, d["decision_id"], str(rng.choice(["accepted", "declined", "no_response"])), after)

# --- write the day folders ---------------------------------------------------------------------------------------
TS = pa.timestamp("us", tz="UTC")
DECISIONS = pa.schema([
    ("decision_id", pa.string(), False), ("customer_id", pa.string()), ("decided_at", TS, False),
    ("route", pa.string(), False), ("model", pa.string(), False), ("model_version", pa.string(), False),
    ("models", pa.string(), False), ("snapshot_version", pa.string()), ("score", pa.float64()),
    ("risk", pa.string()), ("segment", pa.string()), ("action", pa.string()), ("item_id", pa.string()),
    ("expected_value", pa.float64()), ("features", pa.string()),
])
OUTCOMES = pa.schema([
    ("event_id", pa.string(), False), ("customer_id", pa.string(), False), ("decision_id", pa.string()),
    ("action", pa.string(), False), ("item_id", pa.string()), ("channel", pa.string()),
    ("outcome", pa.string(), False), ("occurred_at", TS, False), ("recorded_at", TS, False),
    ("note", pa.string()),
])


def write_log(name, records, schema, day_of):
    by_day = {}
    for r in records:
        by_day.setdefault(day_of(r), []).append(r)
    days = sorted(by_day)
    for i, day in enumerate(days):
        folder = OUT / "feedback" / name / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        part = [by_day[day][j] for j in rng.permutation(len(by_day[day]))]
        cols = {f.name: [r[f.name] for r in part] for f in schema}
        table = pa.table(cols, schema=schema)
        half = table.num_rows // 2
        pq.write_table(table.slice(0, half), folder / "part-00000.parquet")
        pq.write_table(table.slice(half), folder / "part-00001.parquet")
        (folder / ".part-00002.parquet.tmp").write_bytes(b"half-written")
        if i < len(days) - 1:  # the last day is still open
            (folder / "_SUCCESS").write_bytes(b"")
    return [f"{name}/date={d}" for d in days[-1:]]


def utc_day(micros):
    return pd.Timestamp(micros, unit="us", tz="UTC").strftime("%Y-%m-%d")


open_days = write_log("decisions", rows, DECISIONS, lambda r: utc_day(r["decided_at"]))
open_days += write_log("outcomes", outs, OUTCOMES, lambda r: utc_day(r["recorded_at"]))
(OUT / "feedback" / "wal").mkdir(exist_ok=True)
(OUT / "feedback" / "wal" / "part-00000.parquet").write_bytes(b"not parquet: the report must not read wal/")

# --- expected figures, computed from the files -------------------------------------------------------------------
fb = OUT / "feedback"
dec = pq.read_table(fb / "decisions").to_pandas()  # pyarrow skips files starting with _ or .
out = pq.read_table(fb / "outcomes").to_pandas()
n_files = sum(1 for _ in fb.glob("*/date=*/part-*.parquet"))
dec = dec[(dec["model"] == MODEL) & dec["customer_id"].notna() & dec["score"].notna()]
n_decisions = len(dec)
last = dec.sort_values(["customer_id", "decided_at", "decision_id"]).groupby("customer_id").tail(1)
out = out[out["outcome"].isin(["churned", "retained"])].copy()
out["y"] = (out["outcome"] == "churned").astype(float)
out = out.sort_values(["occurred_at", "recorded_at", "event_id"], kind="stable")
named = out[out["decision_id"].notna()].groupby("decision_id").head(1)[["decision_id", "y"]]
last = last.merge(named.rename(columns={"y": "y_named"}), on="decision_id", how="left")
later = last[["customer_id", "decided_at"]].merge(out[["customer_id", "occurred_at", "recorded_at", "event_id", "y"]],
                                                   on="customer_id")
later = later[later["occurred_at"] >= later["decided_at"]]
first = later.sort_values(["occurred_at", "recorded_at", "event_id"]).groupby("customer_id").head(1)
last = last.merge(first[["customer_id", "y"]].rename(columns={"y": "y_after"}), on="customer_id", how="left")
last["y"] = last["y_named"].fillna(last["y_after"])


def figures(g, name):
    lab = g[g["y"].notna()]
    y, p = lab["y"].to_numpy().astype(int), lab["score"].to_numpy()
    auc = float(roc_auc_score(y, p)) if len(set(y)) == 2 else None
    b = np.clip(np.floor(p * BINS).astype(int), 0, BINS - 1)
    table, ece = [], 0.0
    for k in range(BINS):
        m = b == k
        n = int(m.sum())
        mp = float(p[m].mean()) if n else None
        obs = float(y[m].mean()) if n else None
        if n:
            ece += n / len(p) * abs(mp - obs)
        table.append(dict(count=n, mean_predicted=mp, observed_rate=obs))
    actions = g["action"].fillna("none").value_counts(normalize=True)
    return dict(
        group=name, customers=len(g), labelled=len(lab), mean_score=float(g["score"].mean()),
        churn_rate=float(y.mean()) if len(lab) else None, auc=auc, ece=ece if len(lab) else None,
        too_small=len(lab) < MIN_GROUP, reliability=table,
        actions={k: float(v) for k, v in sorted(actions.items())},
    )


def by(column):
    values = dict(zip(fixture_snap.column("customer_id").to_pylist(), fixture_snap.column(column).to_pylist()))
    key = lambda c: "not_in_snapshot" if c not in values else ("null" if values[c] is None else str(values[c]))
    last["_g"] = last["customer_id"].map(key)
    return {name: figures(g, name) for name, g in last.groupby("_g")}


expected = dict(
    model=MODEL, decisions=n_decisions, outcomes=len(out), files=n_files, open_days=sorted(open_days),
    overall=figures(last, "overall"), by={"age_band": by("age_band"), "segment": by("segment")},
)
(OUT / "expected.json").write_text(json.dumps(expected, indent=1))
print(json.dumps({k: expected["by"]["age_band"][k]["labelled"] for k in expected["by"]["age_band"]}))
