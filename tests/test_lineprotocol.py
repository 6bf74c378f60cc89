import pytest

from sitewatch.lineprotocol import (
    LineProtocolError,
    escape_key,
    escape_measurement,
    format_field_value,
    format_line,
    quote_string,
)


def test_measurement_escapes_comma_and_space_only() -> None:
    assert escape_measurement("a b,c=d") == r"a\ b\,c=d"


def test_keys_escape_comma_equals_space() -> None:
    assert escape_key("a b,c=d") == r"a\ b\,c\=d"


def test_string_field_escapes_quote_and_backslash() -> None:
    assert quote_string('say "hi" \\ bye') == r'"say \"hi\" \\ bye"'


def test_field_types() -> None:
    assert format_field_value(3.0) == "3.0"
    assert format_field_value(3) == "3i"
    assert format_field_value(True) == "true"
    assert format_field_value(1e-7) == "1e-07"
    assert format_field_value("x") == '"x"'


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_refused(bad: float) -> None:
    with pytest.raises(LineProtocolError, match="non-finite"):
        format_field_value(bad)


def test_trailing_backslash_and_newline_are_refused() -> None:
    for bad in ("a\\", "a\nb", ""):
        with pytest.raises(LineProtocolError):
            escape_key(bad)


def test_format_line_sorts_tags() -> None:
    line = format_line("m", {"site": "S1", "device": "D 1"}, {"v": 1.5, "n": 2}, 123)
    assert line == r"m,device=D\ 1,site=S1 v=1.5,n=2i 123"


def test_a_point_needs_a_field() -> None:
    with pytest.raises(LineProtocolError):
        format_line("m", {}, {})
