"""Synthetic CRM customer base for crmscore: deterministic, realistic enough to train a churn model on.

Each customer is driven by a few hidden traits (engagement, satisfaction, price sensitivity, financial
stress, service problems). The observed columns are noisy, correlated views of those traits, and the
churn label is drawn from a known nonlinear logistic process over the observed columns plus hidden noise.

Output is an Arrow table shaped like a warehouse export: a string `customer_id`, ~20 feature columns of
mixed Arrow types (int8/int16/int32/int64/float32/float64, some nullable) and two columns the model must
ignore (`segment`, `snapshot_date`). Values are rounded the way a CRM stores them (cents, 1-3 decimals),
which also keeps Parquet small.

    table, churned = generate(100_000, seed=7)            # one chunk
    for table, churned in iter_chunks(10_000_000, seed=7): # bounded memory, 1M rows at a time
        ...
    X = feature_matrix(table)                              # float32 [n, 21], NaN for nulls, manifest order

Output is a pure function of (n, seed, chunk_rows): chunk i is drawn from SeedSequence([seed, i]) and its
customer ids start at i * chunk_rows. (A smaller n with the same seed gives different rows, not a prefix.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

SNAPSHOT_DATE = dt.date(2025, 6, 30)
SEGMENTS = ("consumer", "smb", "enterprise")
CHUNK_ROWS = 1_000_000

# Model input columns, in the order of the ONNX input tensor (and of `features` in model.toml).
FEATURES: list[tuple[str, pa.DataType]] = [
    ("tenure_months", pa.int16()),
    ("monthly_charges", pa.float64()),
    ("total_charges", pa.float64()),
    ("contract_type", pa.int8()),  # 0 month-to-month, 1 one year, 2 two year
    ("payment_method", pa.int8()),  # 0 electronic check, 1 mailed check, 2 bank transfer, 3 credit card
    ("num_products", pa.int8()),
    ("support_tickets_90d", pa.int16()),
    ("days_since_last_purchase", pa.int32()),
    ("complaints_12m", pa.int8()),
    ("nps_score", pa.int8()),  # 0-10, NULL when the survey was never answered (~30%)
    ("logins_per_month", pa.float32()),
    ("discount_usage_rate", pa.float32()),  # 0-1
    ("age_band", pa.int8()),  # 0: 18-24, 1: 25-34, 2: 35-44, 3: 45-54, 4: 55-64, 5: 65+
    ("paperless_billing", pa.int8()),  # 0/1
    ("avg_session_minutes", pa.float32()),
    ("late_payments_12m", pa.int16()),
    ("email_open_rate", pa.float32()),  # 0-1, NULL when unsubscribed / bouncing (~5%)
    ("app_rating", pa.float32()),  # 1-5, NULL for customers without the app
    ("referrals", pa.int16()),
    ("monthly_data_mb", pa.int64()),
    ("lifetime_value", pa.float64()),
]
FEATURE_NAMES = [name for name, _ in FEATURES]
NULLABLE = {"nps_score", "email_open_rate", "app_rating"}

# File column order: grouped like a CRM export, deliberately not the model order (the server projects by name).
COLUMN_ORDER = [
    "customer_id", "snapshot_date", "segment", "age_band",
    "contract_type", "tenure_months", "payment_method", "paperless_billing",
    "monthly_charges", "total_charges", "lifetime_value", "num_products", "monthly_data_mb",
    "logins_per_month", "avg_session_minutes", "days_since_last_purchase", "email_open_rate", "app_rating",
    "support_tickets_90d", "complaints_12m", "late_payments_12m", "nps_score", "discount_usage_rate", "referrals",
]  # fmt: skip

_TYPES = dict(FEATURES) | {"customer_id": pa.string(), "snapshot_date": pa.date32(), "segment": pa.string()}
SCHEMA = pa.schema([pa.field(c, _TYPES[c], nullable=c not in ("customer_id", "snapshot_date", "segment"))
                    for c in COLUMN_ORDER])  # fmt: skip


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _categorical(rng: np.random.Generator, scores: np.ndarray) -> np.ndarray:
    """One draw per row from softmax(scores[row]) (scores: [n, k]); vectorised inverse-CDF sampling."""
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    u = rng.random(len(scores))[:, None]
    return np.minimum((u > cdf).sum(axis=1), scores.shape[1] - 1)


def _customer_ids(start: int, n: int) -> pa.Array:
    """'C%07d' ids built straight into an Arrow buffer (a Python f-string per row costs ~1 s per 1M rows)."""
    ids = np.arange(start, start + n, dtype=np.int64)
    if n and ids[-1] >= 10**7:  # wider than 7 digits: rare, take the simple path
        return pa.array([f"C{i:07d}" for i in ids.tolist()], type=pa.string())
    chars = np.empty((n, 8), dtype=np.uint8)
    chars[:, 0] = ord("C")
    for pos in range(7, 0, -1):
        chars[:, pos] = ord("0") + ids % 10
        ids //= 10
    offsets = np.arange(0, 8 * (n + 1), 8, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()))


def generate(n: int, seed: int, start_id: int = 0, chunk_index: int = 0) -> tuple[pa.Table, np.ndarray]:
    """Generate `n` customers; returns (table with SCHEMA, churn labels as uint8 [n])."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, chunk_index]))
    normal = rng.standard_normal

    # --- who the customer is ---------------------------------------------------------------------
    segment = rng.choice(3, size=n, p=[0.72, 0.21, 0.07])
    smb, ent = segment == 1, segment == 2
    age_band = rng.choice(6, size=n, p=[0.10, 0.22, 0.22, 0.19, 0.15, 0.12])
    age_c = age_band - 2.5

    # Hidden traits. None of these is a column; the model only sees their noisy consequences.
    engagement = normal(n) - 0.12 * age_c + 0.2 * (segment > 0)
    price_sens = normal(n) - 0.5 * (segment > 0)
    stress = normal(n) - 0.3 * ent
    service_issues = rng.gamma(1.0, 1.0, n)  # mean 1, long tail: a few customers have lots of problems

    # --- contract & billing ------------------------------------------------------------------------
    contract = _categorical(rng, np.column_stack([
        np.zeros(n),
        -0.7 + 0.8 * smb + 1.0 * ent + 0.10 * age_band - 0.3 * price_sens,
        -1.1 + 0.9 * smb + 1.8 * ent + 0.20 * age_band - 0.4 * price_sens,
    ]))  # fmt: skip
    mtm = contract == 0
    # Month-to-month customers are young accounts; long contracts accumulate tenure (clipped at 6 years).
    tenure = np.clip(np.ceil(rng.exponential(np.array([13.0, 30.0, 45.0])[contract])), 1, 72)

    num_products = np.clip(1 + rng.poisson(np.clip(0.5 + 0.4 * (segment > 0) + 0.012 * tenure + 0.2 * engagement,
                                                   0.05, None)), 1, 6)  # fmt: skip
    monthly = 18.0 + 21.0 * num_products + 12.0 * smb + 38.0 * ent - 3.0 * price_sens + normal(n) * 8.0
    monthly *= np.array([1.0, 0.96, 0.92])[contract]  # longer contracts are discounted
    monthly = np.round(np.clip(monthly, 18.25, 260.0), 2)
    total = np.round(monthly * tenure * rng.uniform(0.93, 1.04, n), 2)  # price changes, credits, proration

    payment = _categorical(rng, np.column_stack([
        0.3 + 0.8 * mtm - 0.15 * age_c + 0.4 * stress,  # electronic check
        -0.6 + 0.35 * age_c - 0.3 * (segment > 0),        # mailed check
        -0.1 + 0.5 * ~mtm + 0.6 * (segment > 0),          # bank transfer (auto-pay)
        0.0 + 0.5 * ~mtm - 0.2 * stress,                  # credit card (auto-pay)
    ]))  # fmt: skip
    paperless = rng.random(n) < _sigmoid(0.6 - 0.35 * age_c + 0.3 * engagement)

    # --- usage & engagement ------------------------------------------------------------------------
    logins = np.round(np.clip(np.exp(1.6 + 0.7 * engagement + 0.1 * num_products + 0.3 * normal(n)) - 1, 0, None), 1)
    session_min = np.round(rng.lognormal(1.8 + 0.25 * engagement, 0.45), 1)
    days_since = np.clip(np.round(rng.exponential(22.0 * np.exp(-0.6 * engagement))), 0, 1095)
    data_mb = np.round(rng.lognormal(7.6 + 0.3 * engagement - 0.15 * age_c + 0.2 * num_products, 0.8))
    email_open = np.round(_sigmoid(-0.6 + 0.8 * engagement + 0.6 * normal(n)), 3)
    email_null = rng.random(n) < 0.05
    has_app = rng.random(n) < _sigmoid(0.5 + 0.7 * engagement - 0.45 * age_c)

    # --- service & satisfaction --------------------------------------------------------------------
    tickets = rng.poisson(0.25 + 0.45 * service_issues + 0.08 * num_products)
    complaints = np.clip(rng.poisson(0.12 * tickets + 0.2 * service_issues), 0, 20)
    satisfaction = (0.5 * engagement - 0.6 * (service_issues - 1) - 0.3 * complaints + 0.3 * (contract == 2)
                    + 0.8 * normal(n))  # fmt: skip
    nps = np.clip(np.round(7.0 + 1.8 * satisfaction), 0, 10)
    # Non-response is informative: disengaged and unhappy customers skip the survey more often.
    nps_null = rng.random(n) < _sigmoid(-0.95 - 0.6 * engagement - 0.25 * satisfaction)
    app_rating = np.round(np.clip(3.6 + 0.6 * satisfaction + 0.5 * normal(n), 1.0, 5.0), 1)
    referrals = np.clip(rng.poisson(0.08 + 0.3 * np.exp(0.5 * satisfaction) * np.sqrt(tenure / 24.0)), 0, 50)

    # --- money -------------------------------------------------------------------------------------
    discount = np.round(_sigmoid(-1.3 + 0.9 * price_sens + 0.5 * normal(n)), 3)
    late = np.clip(rng.poisson(0.15 + 0.6 * np.exp(0.8 * stress - 0.8) * (1.0 + 0.8 * (payment == 0))), 0, 12)
    ltv = np.round(np.clip(total * (0.30 + 0.04 * num_products) + 45.0 * referrals - 15.0 * complaints, 0, None), 2)

    # --- churn: known nonlinear process ------------------------------------------------------------
    nps_seen = np.where(nps_null, 7.0, nps)
    logit = (
        -2.9
        + 2.75 * mtm * np.exp(-tenure / 9.0)                   # new month-to-month customers leave
        + 0.7 * mtm - 1.0 * (contract == 2)
        + 0.55 * np.minimum(tickets, 6) * (complaints > 0)     # tickets that escalate into complaints
        + 0.2 * np.minimum(complaints, 5)
        - 0.7 * (np.log1p(logins) - 1.6)                       # low engagement
        + 0.75 * np.tanh(days_since / 90.0)
        + 2.0 * discount * (monthly > 85.0)                    # price-sensitive on an expensive plan
        + 0.75 * nps_null                                      # never answered the survey
        + 0.9 * (~nps_null & (nps_seen <= 6)) - 0.75 * (~nps_null & (nps_seen >= 9))
        + 0.45 * (payment == 0)
        + 0.28 * np.minimum(late, 5)
        - 0.3 * (num_products - 1)
        + np.where(has_app, 0.6 * (app_rating <= 2.0) - 0.45 * (app_rating >= 4.0), 0.0)
        + 0.5 * normal(n)                                      # what the CRM never sees
    )  # fmt: skip
    churned = (rng.random(n) < _sigmoid(logit)).astype(np.uint8)

    def col(name: str, values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
        typ = _TYPES[name]
        return pa.array(values.astype(typ.to_pandas_dtype()), type=typ, mask=null)

    cols = {
        "customer_id": _customer_ids(start_id, n),
        "snapshot_date": pa.repeat(pa.scalar(SNAPSHOT_DATE, pa.date32()), n),
        "segment": pa.array(SEGMENTS).take(pa.array(segment.astype(np.int8))),
        "tenure_months": col("tenure_months", tenure),
        "monthly_charges": col("monthly_charges", monthly),
        "total_charges": col("total_charges", total),
        "contract_type": col("contract_type", contract),
        "payment_method": col("payment_method", payment),
        "num_products": col("num_products", num_products),
        "support_tickets_90d": col("support_tickets_90d", tickets),
        "days_since_last_purchase": col("days_since_last_purchase", days_since),
        "complaints_12m": col("complaints_12m", complaints),
        "nps_score": col("nps_score", nps, nps_null),
        "logins_per_month": col("logins_per_month", logins),
        "discount_usage_rate": col("discount_usage_rate", discount),
        "age_band": col("age_band", age_band),
        "paperless_billing": col("paperless_billing", paperless),
        "avg_session_minutes": col("avg_session_minutes", session_min),
        "late_payments_12m": col("late_payments_12m", late),
        "email_open_rate": col("email_open_rate", email_open, email_null),
        "app_rating": col("app_rating", app_rating, ~has_app),
        "referrals": col("referrals", referrals),
        "monthly_data_mb": col("monthly_data_mb", data_mb),
        "lifetime_value": col("lifetime_value", ltv),
    }
    table = pa.Table.from_arrays([cols[c] for c in COLUMN_ORDER], schema=SCHEMA)
    return table, churned


def iter_chunks(n: int, seed: int, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Yield `n` customers as consecutive chunks of at most `chunk_rows` rows (bounded memory)."""
    for index, start in enumerate(range(0, n, chunk_rows)):
        yield generate(min(chunk_rows, n - start), seed, start_id=start, chunk_index=index)


def feature_matrix(table: pa.Table) -> np.ndarray:
    """float32 [rows, len(FEATURES)] in manifest order, NULL -> NaN: exactly what the server feeds the model."""
    out = np.empty((table.num_rows, len(FEATURES)), dtype=np.float32)
    for j, name in enumerate(FEATURE_NAMES):
        # Integers with nulls come back as float64 with NaN; float64 -> float32 rounds to nearest, like Rust `as f32`.
        out[:, j] = table.column(name).to_numpy(zero_copy_only=False).astype(np.float32)
    return out
