"""Text from outside the gateway is made inert before a terminal or log shows it
(core/inert.py): every control character spelled out, nothing else changed; a JSON
message still parses to what was sent. Pure: strings in, strings out."""

from __future__ import annotations

import json

import pytest

from zero_tasks.core.inert import inert, inert_any, inert_json_line


@pytest.mark.parametrize(("text", "shown"), [
    ("plain text, ünïcode ✓", "plain text, ünïcode ✓"),
    ("\x1b[1A\x1b[2K\r", "\\x1b[1A\\x1b[2K\\x0d"),
    ("a\nb", "a\\x0ab"),
    ("\x00\x1f", "\\x00\\x1f"),
    ("\x7f\x80\x9f", "\\x7f\\x80\\x9f"),
    ("\x20\x7e\xa0\xff", "\x20\x7e\xa0\xff"),
    ("\u2028\u2029", "\\u2028\\u2029"),
    ("\u200e\u200f", "\\u200e\\u200f"),
    ("\u202a\u202e", "\\u202a\\u202e"),
    ("\u2066\u2069", "\\u2066\\u2069"),
    ("\u2065\u206a\u202f\u2027", "\u2065\u206a\u202f\u2027"),
])
def test_every_control_character_is_spelled_out_and_nothing_else_changes(text: str, shown: str) -> None:
    assert inert(text) == shown


def test_a_json_like_values_strings_and_keys_are_made_inert_and_other_values_kept() -> None:
    value = {"a\x1b": ["x\r", ("y\n",), 1, None, True], "n": 2.5}
    assert inert_any(value) == {"a\\x1b": ["x\\x0d", ["y\\x0a"], 1, None, True], "n": 2.5}


@pytest.mark.parametrize(("line", "shown"), [
    ('{"a": "b"}', '{"a": "b"}'),
    ('{"a":\t"b"}\r\n', '{"a": "b"}  '),
    ('{"a": "\x85\u2028\u202e\u2069"}', '{"a": "\\u0085\\u2028\\u202e\\u2069"}'),
])
def test_a_json_message_is_shown_as_received_with_its_control_characters_as_json_escapes(line: str,
                                                                                        shown: str) -> None:
    assert inert_json_line(line) == shown
    assert json.loads(shown) == json.loads(line)


def test_a_message_that_is_not_json_is_shown_as_inert_text() -> None:
    assert inert_json_line("not json\x1b[2K\r") == "not json\\x1b[2K\\x0d"
