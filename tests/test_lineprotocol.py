import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewatch.core.lineprotocol import (
    CONTROL,
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


# -- control characters have no escape: refused; every other string round-trips ----------


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "\x00", "\t", "\x7f", "\x9b"])
def test_control_characters_are_refused_in_strings_and_keys(value: str) -> None:
    with pytest.raises(LineProtocolError, match="control character"):
        quote_string(value)
    with pytest.raises(LineProtocolError, match="control character"):
        escape_key(value)


def unquote_string(field: str) -> str:
    """InfluxDB's reading of a string field value (its scanner's rules: inside the
    quotes, a backslash escapes a double quote or a backslash, and is kept otherwise)."""
    assert field[0] == field[-1] == '"' and len(field) >= 2
    out: list[str] = []
    body, i = field[1:-1], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body) and body[i + 1] in '\\"':
            out.append(body[i + 1])
            i += 2
            continue
        assert c != '"', f"unescaped quote in {field!r}"
        out.append(c)
        i += 1
    return "".join(out)


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
    | st.text(alphabet='\\"ab \n,=', max_size=20)
)
def test_any_accepted_field_string_round_trips(value: str) -> None:
    try:
        quoted = quote_string(value)
    except LineProtocolError:
        assert CONTROL.search(value)
        return
    assert not CONTROL.search(quoted) and "\n" not in quoted
    assert unquote_string(quoted) == value
