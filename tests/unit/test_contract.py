"""One contract between operator and adapters: the error classes, the result model and its JSON
Schema, and the adapter contract docs agree."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from herald.errors import ErrorClass as OperatorErrorClass
from herald_adapters._contract import ErrorClass as AdapterErrorClass
from herald_adapters._contract import RateLimit, published
from herald_contract.errors import OPERATOR_ONLY, ErrorClass
from herald_contract.result import ResultModel, read_result, result_schema

from .builders import DETERMINISTIC

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "adapter-contract.md").read_text()


def test_one_error_class_everywhere():
    assert OperatorErrorClass is ErrorClass is AdapterErrorClass


def test_the_published_schema_is_the_models():
    on_disk = json.loads((ROOT / "docs" / "adapter-result.schema.json").read_text())
    assert on_disk == json.loads(json.dumps(result_schema(), sort_keys=True)), (
        "regenerate docs/adapter-result.schema.json"
    )


def test_the_contract_docs_name_every_field_and_every_adapter_class():
    table = {m.group(1) for m in re.finditer(r"^\| `(\w+)` \|", DOC, re.M)}
    fields = {(f.alias or name) for name, f in ResultModel.model_fields.items()}
    assert fields <= table, fields - table
    row = next(line for line in DOC.splitlines() if line.startswith("| `errorClass` |"))
    documented = set(re.findall(r"`([a-z_]+)`", row)) - {"errorClass"}
    assert documented == {c.value for c in ErrorClass if c not in OPERATOR_ONLY}


def test_what_an_adapter_writes_the_operator_reads_back():
    from datetime import UTC, datetime

    written = published(
        post_id="109",
        url="https://m.example/@h/109",
        response_seconds=0.2314,
        rate_limit=RateLimit(remaining=3, reset_at=datetime(2030, 6, 1, tzinfo=UTC)),
    )
    back = read_result(written.dumps())
    assert back is not None and back.outcome == "published" and back.post_id == "109"
    assert back.rate_limit is not None and back.rate_limit.remaining == 3
    assert back.response_seconds == 0.231


@DETERMINISTIC
@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=10), c, max_size=4),
        max_leaves=15,
    ),
    st.sampled_from(["published", "failed"]),
)
def test_reading_any_result_is_total(extra, outcome):
    doc = {**(extra if isinstance(extra, dict) else {"x": extra}), "outcome": outcome}
    for key in ("errorClass", "retryAfterSeconds", "postId", "url", "rateLimit", "responseSeconds", "verified"):
        doc.setdefault(key, extra)
    result = read_result(json.dumps(doc))
    assert result is not None and result.outcome == outcome
