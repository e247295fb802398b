"""Synthetic CRM customer base for crmscore: deterministic, realistic enough to train a churn model on.

Each customer is driven by a few hidden traits (engagement, satisfaction, price sensitivity, financial
stress, service problems). The observed columns are noisy, correlated views of those traits, and the
churn label is drawn from a known nonlinear logistic process over the observed columns plus hidden noise.

Output is an Arrow table shaped like a warehouse export: a string `customer_id`, ~20 feature columns of
mixed Arrow types (int8/int16/int32/int64/float32/float64, some nullable) and two columns the model must
ignore (`segment`, `snapshot_date`). Values are rounded the way a CRM stores them (cents, 1-3 decimals),
which also keeps Parquet small.

Every customer also carries `owned_items` (list<string> of catalogue item ids, oldest purchase first, 0-15 items,
NULL for ~0.3% whose history was not migrated). Purchases come from the fixed 800-item product catalogue
(`catalogue()`) with preferences driven by the observed columns (age band, contract, data usage, tenure, digital
engagement, segment, price sensitivity...) plus per-customer taste the CRM never sees. They are drawn from a
separate random stream after everything else, so adding them left every other column unchanged.

    table, churned = generate(100_000, seed=7)            # one chunk
    for table, churned in iter_chunks(10_000_000, seed=7): # bounded memory, 1M rows at a time
        ...
    X = feature_matrix(table)                              # float32 [n, 21], NaN for nulls, manifest order
    items = catalogue()                                    # the 800-item product catalogue (pa.Table)

Output is a pure function of (n, seed, chunk_rows): chunk i is drawn from SeedSequence([seed, i]) (purchases
from SeedSequence([seed, i, 7])) and its customer ids start at i * chunk_rows. (A smaller n with the same seed
gives different rows, not a prefix.)
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator, Mapping

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
    "owned_items",
]  # fmt: skip

OWNED_ITEMS = pa.list_(pa.string())
_TYPES = dict(FEATURES) | {"customer_id": pa.string(), "snapshot_date": pa.date32(), "segment": pa.string(),
                           "owned_items": OWNED_ITEMS}  # fmt: skip
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
    # Purchases come last, from their own stream: the columns above are exactly what they were before.
    cols["owned_items"] = owned_items(cols, np.random.default_rng(np.random.SeedSequence([seed, chunk_index, 7])))
    table = pa.Table.from_arrays([cols[c] for c in COLUMN_ORDER], schema=SCHEMA)
    return table, churned


# --- product catalogue & purchase histories (the recommender's data) ----------------------------------------------

CATALOGUE_SEED = 2025  # one fixed catalogue: every snapshot and the recommender share it, whatever the customer seed
PRICE_BANDS = ("low", "mid", "high")
N_STYLES = 4  # hidden shopper styles (value seeker, early adopter, home & family, business): see owned_items
MAX_OWNED = 15
_PREMIUM = ("Pro", "Premium", "Ultimate", "Max", "Unlimited", "4K", "1 Gb", "2 Gb", "Business", "Worldwide", "2TB",
            "5TB", "Month Pass", "Annual", "Priority", "Plus", "Family")  # fmt: skip
_BUDGET = ("Lite", "Basic", "Essential", "Mini", "Go", "Student", "Day Pass", "50GB", "5GB", "Starter", "Remote")

# category -> (item count, average price level, name parts: every combination is a candidate name).
_CATEGORIES: dict[str, tuple[int, float, list[tuple[str, ...]]]] = {
    "mobile plans": (70, 0.0, [
        ("Essential", "Smart", "Unlimited", "Flex", "Family", "Student", "Business", "Senior", "Max", "Go", "Plus"),
        ("5GB", "10GB", "20GB", "30GB", "50GB", "100GB", "Unlimited Data"),
        ("Mobile Plan", "SIM-only Plan", "5G Plan"),
    ]),
    "broadband": (45, 0.2, [
        ("Fibre", "Full Fibre", "Cable", "5G Home", "Business Fibre", "Fibre Max"),
        ("100 Mb", "300 Mb", "500 Mb", "900 Mb", "1 Gb", "2 Gb"),
        ("Broadband", "Broadband + Calls", "Broadband Essentials"),
    ]),
    "TV bundles": (50, 0.3, [
        ("Essentials", "Entertainment", "Sports", "Movies", "Kids", "Family", "Ultimate", "World", "Documentary",
         "Music", "Premier"),
        ("TV Pack", "TV Bundle", "TV Plus", "TV HD", "TV 4K"),
    ]),
    "devices": (130, 0.9, [
        ("Nimbus", "Orion", "Vega", "Lumo", "Kestrel", "Atlas", "Zephyr", "Helix"),
        ("X3", "X5", "S2", "S8", "A1", "A4", "Note 7", "Fold 2"),
        ("Phone", "Phone Pro", "Phone Lite", "Tablet", "Tablet Mini", "Watch", "Laptop", "Router", "Mesh Wi-Fi"),
    ]),
    "accessories": (150, -0.9, [
        ("USB-C Charger 30W", "Wireless Charger", "Phone Case", "Screen Protector", "Earbuds", "Headphones",
         "Power Bank 10000mAh", "Car Mount", "USB-C Cable 2m", "Watch Strap", "Bluetooth Speaker", "Stylus",
         "Tablet Keyboard", "Travel Adapter", "Ring Light", "Gaming Controller"),
        ("Black", "White", "Blue", "Graphite", "Rose", "Lite", "Pro", "Go", "Max", "Plus"),
    ]),
    "insurance": (40, 0.0, [
        ("Device Insurance", "Screen Cover", "Loss & Theft Cover", "Extended Warranty", "Travel Gadget Cover",
         "Home Tech Cover", "Laptop Cover", "Family Gadget Cover"),
        ("Basic", "Standard", "Premium", "Plus", "Annual", "Monthly"),
    ]),
    "streaming add-ons": (60, -0.5, [
        ("StreamBox", "CineMax+", "TuneWave", "KidsZone", "SportsLive", "DocuFlix", "AnimeHub", "ClassicTV",
         "NewsNow", "FitStream", "GameCloud", "PodPlay"),
        ("Basic", "Standard", "Premium", "Annual", "Family", "Student"),
    ]),
    "security": (50, -0.3, [
        ("SafeNet Antivirus", "Parental Controls", "Secure VPN", "Identity Guard", "Business Firewall",
         "Secure Wi-Fi", "Password Vault", "Scam Call Blocker", "Email Shield"),
        ("Basic", "1 device", "3 devices", "5 devices", "10 devices", "Family", "Business", "Premium"),
    ]),
    "cloud storage": (35, -0.4, [
        ("Cloud Drive", "Photo Backup", "Business Cloud", "Family Cloud", "Secure Backup", "Video Vault"),
        ("50GB", "200GB", "500GB", "1TB", "2TB", "5TB"),
    ]),
    "smart home": (85, 0.0, [
        ("Smart Bulb", "Smart Plug", "Video Doorbell", "Indoor Camera", "Outdoor Camera", "Smart Thermostat",
         "Smart Speaker", "Smart Display", "Motion Sensor", "Door Sensor", "Smart Lock", "Smart Hub",
         "Smoke Alarm", "Robot Vacuum", "Leak Sensor"),
        ("Starter", "2-pack", "4-pack", "Pro", "Mini", "Plus", "Max"),
    ]),
    "roaming packs": (45, -0.3, [
        ("Europe", "USA & Canada", "Asia", "Worldwide", "Middle East", "Latin America", "Africa", "Oceania"),
        ("Day Pass", "Week Pass", "Month Pass", "Data Boost 5GB", "Data Boost 20GB", "Calls & Texts"),
    ]),
    "support plans": (40, -0.2, [
        ("Tech Support", "Home Setup Visit", "Priority Care", "Business Support", "Remote Help", "Device Setup",
         "Wi-Fi Health Check", "Data Transfer Service"),
        ("Basic", "Standard", "Premium", "24/7", "Annual"),
    ]),
}  # fmt: skip
CATEGORIES = tuple(_CATEGORIES)


class Catalogue:
    """The product catalogue: `table` (item_id, name, category, price_band; row i is item P{i+1:04d}) plus the
    hidden item traits purchases are drawn from (which the recommender must learn from purchases alone)."""

    def __init__(self) -> None:
        rng = np.random.default_rng(CATALOGUE_SEED)
        names, category, level = [], [], []
        for c, (count, base, parts) in enumerate(_CATEGORIES.values()):
            combos = [" ".join(p) for p in itertools.product(*parts)]
            for i in sorted(rng.choice(len(combos), size=count, replace=False)):
                name = combos[i]
                names.append(name)
                category.append(c)
                level.append(base + 0.9 * any(w in name for w in _PREMIUM) - 0.9 * any(w in name for w in _BUDGET))
        order = rng.permutation(len(names))  # ids are assigned in "launch" order, not grouped by category
        self.size = len(names)
        self.category = np.asarray(category, dtype=np.int64)[order]
        level = np.asarray(level)[order] + rng.normal(0.0, 0.5, self.size)
        self.band = np.digitize(level, [-0.55, 0.55])  # 0 low, 1 mid, 2 high
        # Log-popularity per hidden shopper style: a general appeal plus a style-specific one.
        self.log_pop = (rng.normal(0.0, 0.9, self.size)[:, None] + rng.normal(0.0, 0.8, (self.size, N_STYLES)))
        self.ids = np.array([f"P{i + 1:04d}" for i in range(self.size)])
        self.table = pa.table({
            "item_id": pa.array(self.ids, pa.string()),
            "name": pa.array(np.asarray(names)[order], pa.string()),
            "category": pa.array(np.asarray(CATEGORIES)[self.category], pa.string()),
            "price_band": pa.array(np.asarray(PRICE_BANDS)[self.band], pa.string()),
        })  # fmt: skip
        self._build_samplers()

    def _build_samplers(self) -> None:
        """Precomputes the item draw: P(item | category, style, band) does not depend on the customer, so one
        concatenated CDF serves everyone. The items of group g = (category, style, band) follow each other in
        `group_items`, and their CDF runs from g to g + 1 in `group_cdf`: one searchsorted for all draws."""
        k, s, b = len(CATEGORIES), N_STYLES, len(PRICE_BANDS)
        self.log_mass = np.full((k, s, b), -np.inf)  # log total weight per group; -inf where the group is empty
        items, cdf = [], []
        for c in range(k):
            for t in range(s):
                for band in range(b):
                    g = (c * s + t) * b + band
                    members = np.flatnonzero((self.category == c) & (self.band == band))
                    w = np.exp(self.log_pop[members, t])
                    if members.size:
                        self.log_mass[c, t, band] = np.log(w.sum())
                        steps = np.cumsum(w) / w.sum()
                        steps[-1] = 1.0  # exact upper end: a draw never spills into the next group
                        items.append(members)
                        cdf.append(g + steps)
        self.group_items = np.concatenate(items)
        self.group_cdf = np.concatenate(cdf)


_CATALOGUE: Catalogue | None = None


def catalogue() -> Catalogue:
    """The shared product catalogue (built once per process; deterministic)."""
    global _CATALOGUE
    if _CATALOGUE is None:
        _CATALOGUE = Catalogue()
    return _CATALOGUE


def _draw_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One draw per row of non-negative weights [m, k]; a zero weight is never drawn (u lies in (0, total] and
    the compares are strict). One pass per column: k is small, rows are many."""
    cdf = np.cumsum(weights, axis=1)
    u = (1.0 - rng.random(len(weights))) * cdf[:, -1]
    picked = np.zeros(len(weights), dtype=np.int64)
    for j in range(weights.shape[1] - 1):
        picked += u > cdf[:, j]
    return picked


def owned_items(cols: Mapping[str, pa.Array | pa.ChunkedArray], rng: np.random.Generator,
                block_rows: int = 65_536) -> pa.ListArray:  # fmt: skip
    """Purchase histories for the customers in `cols` (observed columns only): list<string> of item ids, oldest
    first. A purchase picks a category (softmax of feature-driven affinities + personal taste), then a price band
    (price sensitivity x what the category offers), then an item by its popularity for the customer's hidden
    shopper style. Repeats collapse: a customer owns each item at most once."""
    cat = catalogue()
    n = len(cols["customer_id"])

    def num(name: str) -> np.ndarray:  # the columns used here are never NULL
        return cols[name].to_numpy(zero_copy_only=False).astype(np.float64)

    segment = cols["segment"].to_numpy(zero_copy_only=False)
    smb, ent = (segment == "smb").astype(float), (segment == "enterprise").astype(float)
    age = num("age_band")
    age_c, young, senior, midlife = age - 2.5, (age <= 1) * 1.0, (age >= 4) * 1.0, ((age == 2) | (age == 3)) * 1.0
    contract = num("contract_type")
    tenure_y = num("tenure_months") / 12.0
    data = np.log(num("monthly_data_mb") + 1.0) - 8.0
    logins = np.log1p(num("logins_per_month")) - 1.8
    session = np.log(num("avg_session_minutes") + 0.1) - 1.8
    monthly = (num("monthly_charges") - 60.0) / 25.0
    discount = num("discount_usage_rate") - 0.2
    has_app = (~np.isnan(cols["app_rating"].to_numpy(zero_copy_only=False).astype(float))) * 1.0
    tickets = np.minimum(num("support_tickets_90d"), 4.0)

    # Category affinities, one column per CATEGORIES entry (log scale, before personal taste).
    affinity = 2.0 * np.column_stack([
        0.6 + 0.5 * data + 0.3 * young + 0.3 * (contract == 0),                        # mobile plans
        0.2 + 0.15 * tenure_y + 0.5 * smb + 0.3 * (contract > 0) - 0.2 * young,        # broadband
        -0.1 + 0.25 * age_c + 0.4 * (contract == 2) + 0.3 * monthly - 0.6 * ent,       # TV bundles
        0.4 + 0.35 * data + 0.3 * logins - 1.2 * discount + 0.3 * young,               # devices
        0.5 + 0.4 * young + 0.3 * has_app + 0.2 * data,                                # accessories
        -0.6 + 0.3 * age_c + 0.15 * tenure_y + 0.3 * (contract == 2),                  # insurance
        0.0 - 0.3 * age_c + 0.4 * session + 0.3 * data,                                # streaming add-ons
        -0.5 + 0.8 * smb + 1.0 * ent + 0.2 * age_c,                                    # security
        -0.7 + 1.0 * ent + 0.5 * smb + 0.4 * logins + 0.3 * num("paperless_billing"),  # cloud storage
        -0.3 + 0.4 * midlife + 0.3 * has_app + 0.3 * monthly,                          # smart home
        -0.8 + 1.2 * ent + 0.4 * smb + 0.3 * data + 0.2 * ((age >= 1) & (age <= 3)),  # roaming packs
        -0.9 + 0.5 * senior + 0.25 * tickets + 0.3 * smb,                              # support plans
    ]) + rng.normal(0.0, 0.7, (n, len(CATEGORIES)))  # fmt: skip
    band_pref = np.column_stack([
        1.5 * discount + 0.15 * num("late_payments_12m"),                              # low
        np.zeros(n),                                                                   # mid
        0.5 * monthly + 0.8 * ent - 2.0 * discount,                                    # high
    ])  # fmt: skip
    style_logits = 2.0 * np.column_stack([
        2.5 * discount + 0.3 * np.minimum(num("late_payments_12m"), 3.0),             # value seeker
        0.6 * logins + 0.5 * data + 0.4 * young,                                       # early adopter
        0.5 * midlife + 0.4 * (contract == 2) + 0.2 * tenure_y,                        # home & family
        1.5 * ent + 1.0 * smb - 0.5,                                                   # business
    ])  # fmt: skip
    style = _categorical(rng, style_logits)
    # How many purchases: older, multi-product, engaged accounts have bought more.
    count = np.clip(rng.poisson(np.clip(0.4 + 0.8 * num("num_products") + 0.06 * num("tenure_months")
                                        + 0.3 * logins, 0.1, None)), 0, MAX_OWNED)  # fmt: skip
    missing = rng.random(n) < 0.003  # history not migrated: NULL, not an empty list

    # Each customer makes 2 * count + 2 draws with replacement (a flat, ragged layout: `who` says whose draw
    # it is) and keeps the first `count` distinct items, in draw (= purchase) order. Blocks bound memory.
    draws = np.where(missing | (count == 0), 0, 2 * count + 2)
    values, kept = [], np.zeros(n, dtype=np.int64)
    for lo in range(0, n, block_rows):
        who = np.repeat(np.arange(lo, min(lo + block_rows, n)), draws[lo : lo + block_rows])
        c = _draw_rows(rng, np.exp(affinity[who]))
        t = style[who]
        # Price band: a category with no item in a band has weight 0 there, so that band is never drawn.
        b = _draw_rows(rng, np.exp(cat.log_mass[c, t] + band_pref[who]))
        g = (c * N_STYLES + t) * len(PRICE_BANDS) + b
        item = cat.group_items[np.searchsorted(cat.group_cdf, g + rng.random(len(who)), side="right")]

        key = who * cat.size + item  # (customer, item): sorting it groups each customer's repeats
        order = np.argsort(key, kind="stable")
        first = np.empty(len(key), dtype=bool)
        first[order] = np.concatenate([[True], np.diff(key[order]) != 0])
        distinct_before = np.cumsum(first) - first  # distinct draws earlier in the block...
        starts = np.searchsorted(who, who)  # ...minus those of earlier customers = rank within the customer
        keep = first & (distinct_before - distinct_before[starts] < count[who])
        values.append(item[keep])
        kept += np.bincount(who[keep], minlength=n)

    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(kept, out=offsets[1:])
    ids = pa.array(cat.ids).take(pa.array(np.concatenate(values)))
    return pa.ListArray.from_arrays(pa.array(offsets), ids, type=OWNED_ITEMS,
                                    mask=pa.array(missing) if missing.any() else None)  # fmt: skip


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
