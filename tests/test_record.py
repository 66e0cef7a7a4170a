"""What a decision record may carry (zero_tasks/core/record.py `clean`)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from zero_tasks.core.record import clean

JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                       max_leaves=20)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    return []


def test_a_clean_value_comes_back_unchanged() -> None:
    value = {"why": ["breakout above VWAP", "naïve ünïcode ✓"], "n": 1, "nested": {"k": [1.5, None]}}
    assert clean(value) == value


def test_a_nul_and_a_lone_surrogate_are_replaced_wherever_they_are() -> None:
    dirty = {"why": ["a\x00b"], "key\ud800": {"deep": ["x\udfffy"]}}
    cleaned = clean(dirty)
    assert cleaned["why"] == ["a\ufffdb"]
    assert all("\x00" not in s and s.encode("utf-8") for s in _strings(cleaned))


def test_a_literal_backslash_u0000_is_text_not_a_nul() -> None:
    assert clean(["\\u0000"]) == ["\\u0000"]


@given(JSONISH)
def test_every_string_of_a_cleaned_value_is_storable(value: object) -> None:
    for text in _strings(clean(value)):
        assert "\x00" not in text
        text.encode("utf-8")  # no lone surrogate
