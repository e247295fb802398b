"""Writes tests/fixtures/pyarrow_rowgroups.parquet: a snapshot as pyarrow writes it, for the loader's tests.

It has int64 customer ids, dictionary-typed string columns, nulls in feature columns, several row groups and
columns in an unusual order; feature values come from the sample snapshot so the churn model can score them.
Run: .venv/bin/python scripts/make_test_fixtures.py (after scripts/setup-python.sh).
"""
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
ROWS = 1000


def main() -> None:
    sample = pq.read_table(ROOT / "snapshots" / "customers-sample.parquet").slice(0, ROWS)
    rng = np.random.default_rng(2026)
    columns = {}
    # int64 ids, not in row order of the sample, so a lookup cannot succeed by position.
    columns["customer_id"] = pa.array(rng.permutation(ROWS).astype(np.int64) + 5_000_000)
    columns["segment"] = pc.dictionary_encode(sample["segment"])
    columns["region"] = pa.array(rng.choice(["north", "south", "east", "west"], ROWS)).dictionary_encode()
    for name in reversed(sample.column_names):
        if name in ("customer_id", "segment"):
            continue
        column = sample[name]
        if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
            # Extra nulls in every numeric column (on top of the sample's own).
            mask = pa.array(rng.random(ROWS) < 0.05)
            column = pc.if_else(mask, pa.scalar(None, column.type), column)
        columns[name] = column
    table = pa.table(columns)
    out = ROOT / "tests" / "fixtures" / "pyarrow_rowgroups.parquet"
    pq.write_table(table, out, row_group_size=128, compression="snappy", use_dictionary=True)
    meta = pq.ParquetFile(out).metadata
    print(f"wrote {out} ({out.stat().st_size} bytes, {meta.num_rows} rows, {meta.num_row_groups} row groups)")


if __name__ == "__main__":
    main()
