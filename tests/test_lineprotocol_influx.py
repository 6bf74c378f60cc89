"""Escaping and field types checked against a real InfluxDB: what we write is what we read."""

import pytest

from sitewatch.core.influx import InfluxClient, PermanentWriteError
from sitewatch.core.lineprotocol import format_line, join_lines

pytestmark = pytest.mark.integration

AWKWARD = ["with space", "comma,here", "equals=sign", 'quote"d', "back\\slash", 'all of, =them"\\x']


async def test_escaped_names_and_values_round_trip(influx_client: InfluxClient) -> None:
    lines = []
    for i, text in enumerate(AWKWARD):
        lines.append(
            format_line(
                f"m {i},x",
                {"tag key,=": text},
                {"field key,=": text, "n": i},
                1_700_000_000_000 + i,
            )
        )
    await influx_client.write(join_lines(lines))
    for i, text in enumerate(AWKWARD):
        rows = await influx_client.series(f'SELECT * FROM "m {i},x"')
        assert len(rows) == 1
        assert rows[0]["field key,="] == text
        assert rows[0]["tag key,="] == text
        assert rows[0]["n"] == i


async def test_integer_valued_float_reading_keeps_the_field_float(
    influx_client: InfluxClient,
) -> None:
    # the ingest formatter writes a float field's value 3 as 3.0; a later 3.5 must be accepted
    await influx_client.write(join_lines([format_line("crane", {"d": "a"}, {"load": 3.0}, 1)]))
    await influx_client.write(join_lines([format_line("crane", {"d": "a"}, {"load": 3.5}, 2)]))
    # msgspec's float spellings (ingest's fast path) are floats to InfluxDB too
    await influx_client.write(b"crane,d=a load=1e16 3\ncrane,d=a load=1e-7 4\n")
    rows = await influx_client.series("SELECT load FROM crane")
    assert [r["load"] for r in rows] == [3, 3.5, 1e16, 1e-7]
    # ...whereas an integer written first would make InfluxDB refuse every later float
    await influx_client.write(join_lines([format_line("bad", {"d": "a"}, {"load": 3}, 1)]))
    with pytest.raises(PermanentWriteError, match="field type conflict"):
        await influx_client.write(join_lines([format_line("bad", {"d": "a"}, {"load": 3.5}, 2)]))
