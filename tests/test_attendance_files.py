"""Worker lists in (CSV, XLSX) and day-labour sheets out (CSV, XLSX): pure, no servers.

ID-card numbers get their own checks: the importer keeps only the keyed hash and the
mask, and no error, log line, row or exported file may show more of a number than its
mask.
"""

from __future__ import annotations

import csv
import io
import logging
import zipfile
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import openpyxl
import pytest

from sitewatch.domains.attendance import idcard
from sitewatch.domains.attendance.export import (
    COLUMNS,
    NOTHING,
    SIGN_OFF,
    TOTAL,
    sheets_csv,
    sheets_xlsx,
)
from sitewatch.domains.attendance.hours import Flag, Session, WorkerDay
from sitewatch.domains.attendance.import_errors import RowError
from sitewatch.domains.attendance.importer import ImportResult, read_workers
from sitewatch.domains.attendance.sheets import DayLabourSheet, build_sheets
from sitewatch.domains.attendance.workers import WorkerInfo, WorkerRow

KEY = "test-id-key"
NOW = 1_790_000_000_000
D1, D2 = date(2026, 11, 2), date(2026, 11, 3)


def with_check(first17: str) -> str:
    """A valid 18-character ID number: GB 11643's check character for 17 digits."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return (
        first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]
    )


ID_X = "11010519491231002X"  # the standard's own example
ID_A = with_check("44030619880808123")
ID_B = with_check("32010219900101456")
ID_OLD = "110105491231002"  # a 15-digit number of the first generation of cards
ALL_IDS = (ID_X, ID_A, ID_B, ID_OLD)
#: ID_A with a check character that does not match
BAD_CHECK = ID_A[:-1] + ("1" if ID_A[-1] != "1" else "2")


def read_csv(text: str, encoding: str = "utf-8-sig") -> ImportResult:
    return read_workers(text.encode(encoding), "workers.csv", site="S1", id_key=KEY, now_ms=NOW)


def read_xlsx(rows: Iterable[Sequence[Any]]) -> ImportResult:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(list(row))
    buf = io.BytesIO()
    book.save(buf)
    return read_workers(buf.getvalue(), "花名册.xlsx", site="S1", id_key=KEY, now_ms=NOW)


def only_error(result: ImportResult) -> RowError:
    assert len(result.errors) == 1, result.errors
    return result.errors[0]


def hidden(number: str, texts: Iterable[str], run: int = 5) -> bool:
    """No text shows ``run`` characters of ``number`` in a row: its mask shows at most
    four (the last), so five are more than the mask. (Files full of other digits, such
    as an XLSX's XML, are checked for a longer run.)"""
    windows = {number[i : i + run] for i in range(len(number) - run + 1)}
    return not any(w in t for t in texts for w in windows)


def error_texts(result: ImportResult) -> list[str]:
    return [f"{e.row} {e.column} {e.message}" for e in result.errors] + [repr(result)]


HEADER = "工号,姓名,班组,日工资"


# -- reading files ---------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "gbk", "gb18030"])
def test_csv_in_utf8_with_or_without_bom_and_in_gbk(encoding: str) -> None:
    text = (
        "工号,姓名,班组,日工资,分包单位,工种,班组长,培训有效期,证书有效期,身份证号\r\n"
        f"W001,张三,钢筋一班,￥350,中建劳务,钢筋工,是,2027年3月1日,2026.12.31,{ID_X}\r\n"
        "W002,李四,钢筋一班,320.5元,中建劳务,钢筋工,否,,,\r\n"
    )
    result = read_csv(text, encoding)
    assert result.errors == []
    a, b = result.rows
    assert (a.site, a.id, a.name, a.team, a.subcontractor, a.trade) == (
        "S1",
        "W001",
        "张三",
        "钢筋一班",
        "中建劳务",
        "钢筋工",
    )
    assert a.day_rate == Decimal("350.00") and b.day_rate == Decimal("320.50")
    assert (a.team_lead, b.team_lead) == (True, False)
    assert (a.training_expires, a.certificate_expires) == (date(2027, 3, 1), date(2026, 12, 31))
    assert (b.training_expires, b.certificate_expires, b.id_hash, b.id_masked) == (
        None,
        None,
        None,
        None,
    )
    assert a.id_hash == idcard.keyed_hash(ID_X, KEY)
    assert a.id_masked == "110***********002X"
    assert all(r.active and r.updated_at == NOW for r in result.rows)


def test_english_headers_ignore_case_spaces_and_underscores() -> None:
    text = (
        "Worker ID, NAME ,Team,Day Rate,SUBCONTRACTOR,trade,Team-Lead,"
        "training_expires,Certificate Expires,ID Card\n"
        "A-1,Wang Wu,Formwork,400,Acme,carpenter,Yes,2027-01-31,2027/2/1,\n"
        "a_2,Zhao Liu,Formwork,400.00,Acme,carpenter,n,,,\n"
    )
    result = read_csv(text)
    assert result.errors == []
    assert [(r.id, r.team_lead) for r in result.rows] == [("A-1", True), ("a_2", False)]
    assert result.rows[0].certificate_expires == date(2027, 2, 1)
    assert result.rows[0].training_expires == date(2027, 1, 31)


def test_xlsx_with_date_cells_numbers_and_empty_rows() -> None:
    result = read_xlsx(
        [
            [
                "工号",
                "姓名",
                "班组",
                "日工资",
                "班组长",
                "培训有效期",
                "上岗证有效期",
                "身份证号码",
            ],
            [1001, "张三", "木工班", 350, True, date(2027, 3, 1), datetime(2027, 6, 30), ID_A],
            [],  # skipped, and row numbers stay those Excel shows
            ["W2", "李四", "木工班", 350.5, 0, "2027-04-01", None, ID_B.lower()],
            ["W3", "王五", "木工班", 12.345, None, None, None, None],
        ]
    )
    assert only_error(result) == RowError(
        5, "日工资", "day_rate '12.345' has more than 2 decimal places"
    )
    a, b = result.rows
    assert (a.id, a.day_rate, a.team_lead) == ("1001", Decimal("350.00"), True)
    assert (a.training_expires, a.certificate_expires) == (date(2027, 3, 1), date(2027, 6, 30))
    assert (b.id, b.day_rate, b.team_lead, b.training_expires) == (
        "W2",
        Decimal("350.50"),
        False,
        date(2027, 4, 1),
    )
    assert a.id_hash == idcard.keyed_hash(ID_A, KEY) and a.id_masked == idcard.mask(ID_A)
    # lower-case x or not, the same number hashes the same
    assert b.id_hash == idcard.keyed_hash(ID_B, KEY)


def test_an_xlsx_merged_cell_is_explained() -> None:
    result = read_xlsx(
        [
            ["工号", "姓名", "班组", "日工资"],
            ["W1", "张三", "木工班", 300],
            ["W2", "李四", None, 300],
        ]
    )
    e = only_error(result)
    assert (e.row, e.column) == (3, "班组")
    assert e.message.startswith("team is empty") and "merged cell" in e.message


@pytest.mark.parametrize("filename", ["workers.xls", "workers.txt", "workers"])
def test_only_csv_and_xlsx_are_read(filename: str) -> None:
    with pytest.raises(ValueError, match="unsupported file type") as info:
        read_workers(b"x", filename, site="S1", id_key=KEY, now_ms=NOW)
    ext = filename.partition(".")[2]
    named = f"'.{ext}'" if ext else "(none)"
    assert str(info.value).startswith(f"unsupported file type {named}: ")


def test_extension_case_does_not_matter() -> None:
    result = read_workers(
        f"{HEADER}\nW1,张三,A,300\n".encode(), "WORKERS.CSV", site="S1", id_key=KEY, now_ms=NOW
    )
    assert result.errors == [] and len(result.rows) == 1


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [
        (b"", "w.csv", RowError(1, None, "the file is empty: no header row")),
        (b"\n,,,\n", "w.csv", RowError(1, None, "the file is empty: no header row")),
        (
            HEADER.encode(),
            "w.csv",
            RowError(1, None, "no workers below the header (the list is on another worksheet?)"),
        ),
        (
            b"\xff\xfe\x00\x81\xff",
            "w.csv",
            RowError(
                0,
                None,
                "the file is neither UTF-8 nor "
                "GBK/GB18030 text: save it from Excel as "
                '"CSV UTF-8" or as .xlsx',
            ),
        ),
        (
            "工号\t姓名".encode("utf-16"),
            "w.csv",
            RowError(
                0,
                None,
                "the file is neither UTF-8 nor "
                "GBK/GB18030 text: save it from Excel "
                'as "CSV UTF-8" or as .xlsx',
            ),
        ),
        # a cell past the csv module's limit (131072 characters): not read, not an exception
        (
            f"{HEADER}\nW1,{'x' * 140_000},A,300\n".encode(),
            "w.csv",
            RowError(2, None, "malformed CSV (a quote left open, a cell too long?) near line 2"),
        ),
        (
            b"PK not really a zip",
            "w.xlsx",
            RowError(
                0,
                None,
                "not a readable .xlsx workbook (an "
                ".xls saved with a .xlsx name, or a "
                "damaged file?)",
            ),
        ),
    ],
)
def test_unreadable_or_empty_files_are_errors_not_exceptions(
    data: bytes, filename: str, expected: RowError
) -> None:
    result = read_workers(data, filename, site="S1", id_key=KEY, now_ms=NOW)
    assert result.errors == [expected] and result.rows == []


# -- header errors ---------------------------------------------------------------------


def test_an_unknown_column_is_named() -> None:
    result = read_csv("工号,姓名,班组,日工资,备注,Phone\nW1,张三,A,300,x,y\n")
    assert [(e.row, e.column) for e in result.errors] == [(1, "备注"), (1, "Phone")]
    assert result.errors[0].message.startswith("unknown column '备注': the columns are id: ")
    assert result.errors[1].message == "unknown column 'Phone'"
    assert result.rows == []


@pytest.mark.parametrize("missing", ["id", "name", "team", "day_rate"])
def test_a_missing_required_column_is_named(missing: str) -> None:
    columns = {"id": "工号", "name": "姓名", "team": "班组", "day_rate": "日工资"}
    values = {"id": "W1", "name": "张三", "team": "A", "day_rate": "300"}
    del columns[missing], values[missing]
    result = read_csv(",".join(columns.values()) + "\n" + ",".join(values.values()) + "\n")
    e = only_error(result)
    assert (e.row, e.column) == (1, missing)
    assert e.message.startswith(f"missing required column {missing} (headed ")


def test_two_headers_for_one_column() -> None:
    e = only_error(read_csv("工号,姓名,班组,日工资,Name\nW1,张三,A,300,张三\n"))
    assert e == RowError(1, "Name", "column 'Name' is the same as column '姓名' (name)")


def test_a_value_under_no_header() -> None:
    e = only_error(read_csv(f"{HEADER},\nW1,张三,A,300,\nW2,李四,A,300,oops\n"))
    assert (e.row, e.column) == (3, "column E")
    # the same in a CSV line longer than its header
    e = only_error(read_csv(f"{HEADER}\nW1,张三,A,300,oops\n"))
    assert (e.row, e.column) == (2, "column E")


# -- cell errors -----------------------------------------------------------------------

FULL = "工号,姓名,班组,日工资,班组长,培训有效期,证书有效期,身份证号,工种,分包单位"
GOOD = {
    "工号": "W1",
    "姓名": "张三",
    "班组": "A",
    "日工资": "300",
    "班组长": "",
    "培训有效期": "",
    "证书有效期": "",
    "身份证号": "",
    "工种": "",
    "分包单位": "",
}


def one_row(**changes: str) -> ImportResult:
    values = {**GOOD, **changes}
    line = io.StringIO()
    csv.writer(line).writerow(values[c] for c in FULL.split(","))
    return read_csv(f"{FULL}\n{line.getvalue()}")


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("工号", "", "worker id is empty"),
        (
            "工号",
            "W 1",
            "worker id 'W 1' is not 1-64 characters of A-Z a-z 0-9 _ - "
            "(the identifier the gates send)",
        ),
        ("工号", "张三", "worker id '张三' is not 1-64 characters"),
        ("工号", "W" * 65, "worker id '" + "W" * 65 + "' is not 1-64 characters"),
        (
            "工号",
            ID_X,
            "worker id '110***********002X' is an ID-card number: number workers otherwise",
        ),
        ("姓名", "", "name is empty"),
        ("姓名", "名" * 101, "name has 101 characters, at most 100"),
        ("班组", " ", "team is empty"),
        ("日工资", "", "day_rate is empty"),
        ("日工资", "-350", "day_rate '-350' is negative"),
        ("日工资", "350.555", "day_rate '350.555' has more than 2 decimal places"),
        ("日工资", "三百", "day_rate '三百' is not an amount (like 350 or 350.50)"),
        ("日工资", "3,50", "day_rate '3,50' is not an amount"),
        ("日工资", "1e3", "day_rate '1e3' is not an amount"),
        ("日工资", "100000000", "day_rate '100000000' is more than 99999999.99"),
        ("班组长", "maybe", "team_lead 'maybe' is not one of 是/否, Y/N, yes/no, true/false, 1/0"),
        (
            "培训有效期",
            "31/12/2026",
            "training_expires '31/12/2026' is not a date (like "
            "2026-03-31, 2026/3/31, 2026.3.31 or 2026年3月31日)",
        ),
        ("培训有效期", "2026-12/31", "training_expires '2026-12/31' is not a date"),
        (
            "证书有效期",
            "2026-02-30",
            "certificate_expires '2026-02-30' is not a day of the calendar",
        ),
        ("证书有效期", "2026年13月1日", "certificate_expires '2026年13月1日' is not a day"),
        ("身份证号", "12345", "id_number: not an ID-card number: 5 characters, want 18"),
        (
            "身份证号",
            BAD_CHECK,
            "id_number: ID-card number's check character does not match (GB 11643)",
        ),
        ("工种", "钢" * 65, "trade has 65 characters, at most 64"),
        ("分包单位", "a\x07b", "subcontractor contains a line break or other control character"),
    ],
)
def test_a_bad_cell_is_named_by_row_and_column(column: str, value: str, message: str) -> None:
    e = only_error(one_row(**{column: value}))
    assert (e.row, e.column) == (2, column)
    assert e.message.startswith(message), e.message


def test_every_bad_cell_of_a_file_is_reported_in_one_pass() -> None:
    result = read_csv(f"{HEADER},班组长\nW1,张三,A,300,是\nW 2,,A,-1,是\nW3,王五,,x,y\n")
    assert [(e.row, e.column) for e in result.errors] == [
        (3, "工号"),
        (3, "姓名"),
        (3, "日工资"),
        (4, "班组"),
        (4, "日工资"),
    ]
    # callers import only an error-free file; rows with errors are not even built
    assert [r.id for r in result.rows] == ["W1"]


@pytest.mark.parametrize(
    ("raw", "rate"),
    [
        ("350", "350.00"),
        ("350.5", "350.50"),
        ("350.50", "350.50"),
        ("¥350", "350.00"),
        ("￥ 350.5", "350.50"),
        ("350元", "350.00"),
        ("350 元", "350.00"),
        ("0", "0.00"),
        ("350.500", "350.50"),
    ],
)
def test_day_rates_as_offices_write_them(raw: str, rate: str) -> None:
    result = one_row(日工资=raw)
    assert result.errors == []
    assert str(result.rows[0].day_rate) == rate


@pytest.mark.parametrize(
    ("raw", "lead"),
    [
        ("是", True),
        ("否", False),
        ("Y", True),
        ("n", False),
        ("YES", True),
        ("no", False),
        ("True", True),
        ("false", False),
        ("1", True),
        ("0", False),
        ("", False),
    ],
)
def test_team_lead_values(raw: str, lead: bool) -> None:
    result = one_row(班组长=raw)
    assert result.errors == [] and result.rows[0].team_lead is lead


@pytest.mark.parametrize(
    "raw", ["2027-03-01", "2027/03/01", "2027.3.1", "2027/3/1", "2027年3月1日", "2027年03月01日"]
)
def test_date_forms(raw: str) -> None:
    result = one_row(培训有效期=raw)
    assert result.errors == [] and result.rows[0].training_expires == date(2027, 3, 1)


def test_a_number_in_an_xlsx_date_column_is_not_a_date() -> None:
    e = only_error(
        read_xlsx(
            [["工号", "姓名", "班组", "日工资", "培训有效期"], ["W1", "张三", "A", 300, 46082]]
        )
    )
    assert e == RowError(
        2,
        "培训有效期",
        "training_expires '46082' is a number, not a date: format the cell as a date",
    )


def test_the_same_worker_id_twice_names_both_rows() -> None:
    result = read_csv(f"{HEADER}\nW1,张三,A,300\nW2,李四,A,300\nW1,王五,A,300\n")
    assert only_error(result) == RowError(4, "工号", "worker id 'W1' is on rows 2 and 4")


def test_the_same_id_number_twice_names_both_rows_never_the_number() -> None:
    result = read_csv(
        f"{HEADER},身份证号\nW1,张三,A,300,{ID_X}\nW2,李四,A,300,{ID_A}\n"
        f"W3,张三,B,300,{ID_X.lower()}\n"
    )
    assert only_error(result) == RowError(
        4, "身份证号", "the same ID-card number is on rows 2 and 4"
    )


def test_a_15_digit_number_is_accepted() -> None:
    result = one_row(身份证号=ID_OLD)
    assert result.errors == []
    assert result.rows[0].id_masked == "110********1002"
    assert result.rows[0].id_hash == idcard.keyed_hash(ID_OLD, KEY)


# -- ID numbers never shown --------------------------------------------------------------


def test_id_numbers_are_only_hashed_and_masked_on_rows() -> None:
    result = read_csv(f"{HEADER},身份证号\nW1,张三,A,300,{ID_X}\nW2,李四,A,300,{ID_A}\n")
    assert result.errors == []
    for row, number in zip(result.rows, (ID_X, ID_A), strict=True):
        fields = [str(getattr(row, c)) for c in WorkerRow.__table__.columns.keys()]
        assert hidden(number, [*fields, repr(row), repr(result.rows), repr(result)])
        assert row.id_masked == idcard.mask(number)


def test_id_numbers_in_the_wrong_places_are_masked_in_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # a list without its header row: the first worker's cells read as headers
    no_header = read_csv(f"W1,张三,A,300,{ID_A}\nW2,李四,A,300,{ID_B}\n")
    assert (1, idcard.mask(ID_A)) in [(e.row, e.column) for e in no_header.errors]
    # numbers pasted into every other column, and broken numbers in their own
    misplaced = read_csv(
        f"{FULL}\n"
        f"{ID_X} ,张三,A,{ID_A},{ID_B},{ID_OLD},x{ID_X},{BAD_CHECK},,\n"
        f"W2,李四,A,300,,,,{ID_B}1,,\n"
        f"W3,{ID_A}{'x' * 90},A,300,,,,{ID_OLD[:-2]} {ID_OLD[-2:]}x,,\n"
    )
    assert {(e.row, e.column) for e in misplaced.errors} == {
        (2, "工号"),
        (2, "日工资"),
        (2, "班组长"),
        (2, "培训有效期"),
        (2, "证书有效期"),
        (2, "身份证号"),
        (3, "身份证号"),
        (4, "姓名"),
        (4, "身份证号"),
    }
    texts = [
        *error_texts(no_header),
        *error_texts(misplaced),
        *(r.getMessage() for r in caplog.records),
    ]
    for number in ALL_IDS:
        assert hidden(number, texts), number


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (ID_A[:14], "'440*******0808'"),  # region and birth date: more than the mask shows
        ("13812345678", "'138****5678'"),  # a phone number: masked as phone numbers are
        ("2026年12月31号", "'2026年12月31号'"),  # a date's 8 digits stay readable
    ],
)
def test_quoted_values_with_many_digits_are_masked(value: str, shown: str) -> None:
    e = only_error(one_row(培训有效期=value))
    assert e.message.startswith(f"training_expires {shown} is not a date")


def test_an_id_number_in_an_xlsx_number_cell() -> None:
    # Excel keeps 15 digits of a number: the last three of an 18-digit one are lost
    e = only_error(
        read_xlsx(
            [["工号", "姓名", "班组", "日工资", "身份证号"], ["W1", "张三", "A", 300, float(ID_A)]]
        )
    )
    assert (e.row, e.column) == (2, "身份证号")
    assert e.message.startswith("id_number is a number cell, and Excel keeps only 15 digits")
    assert hidden(ID_A, [e.message])
    # a 15-digit number fits in a number cell
    result = read_xlsx(
        [["工号", "姓名", "班组", "日工资", "身份证号"], ["W1", "张三", "A", 300, int(ID_OLD)]]
    )
    assert result.errors == [] and result.rows[0].id_hash == idcard.keyed_hash(ID_OLD, KEY)


def test_an_unsupported_file_named_after_an_id_number() -> None:
    with pytest.raises(ValueError) as info:
        read_workers(b"", f"list.{ID_X}", site="S1", id_key=KEY, now_ms=NOW)
    assert hidden(ID_X, [str(info.value)])


# -- exporting sheets --------------------------------------------------------------------

WORKERS = {
    "W1": WorkerInfo(
        "W1", "张三", "钢筋一班", True, "中建劳务", "钢筋工", Decimal("350"), None, None
    ),
    "W2": WorkerInfo(
        "W2", "李四", "钢筋一班", False, "中建劳务", "钢筋工", Decimal("320.50"), None, None
    ),
    "W3": WorkerInfo("W3", "王五", "木工班", False, "", "木工", Decimal("400"), None, None),
}


def day(worker: str, d: date, minutes: int, flag: Flag | None = None) -> WorkerDay:
    return WorkerDay(worker, d, [Session(0, minutes * 60_000, flag)])


def make_sheets() -> list[DayLabourSheet]:
    days = [
        day("W1", D1, 600),
        day("W2", D1, 555, Flag.NO_EXIT),
        day("W1", D2, 480),
        day("W3", D2, 250, Flag.EXIT_WITHOUT_ENTRY),
    ]
    days[1].noted[Flag.DUPLICATE] = 1
    return build_sheets(
        "S1", "万科城三期", {(d.worker, d.day): d for d in days}, WORKERS, D1, D2, Decimal(8)
    )


def csv_blocks(data: bytes) -> list[list[list[str]]]:
    """The CSV's lines, split into one block per sheet at the blank line after the
    sign-off."""
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    blocks: list[list[list[str]]] = [[]]
    for line in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")):
        if not line and blocks[-1] and blocks[-1][-1] == [SIGN_OFF[-1]]:
            blocks.append([])
        else:
            blocks[-1].append(line)
    return blocks


def money(x: Decimal) -> str:
    return f"{x:.2f}"


def test_the_sheets_as_csv_read_back() -> None:
    sheets = make_sheets()
    assert [s.team for s in sheets] == ["木工班", "钢筋一班"]  # by team
    blocks = csv_blocks(sheets_csv(sheets))
    assert len(blocks) == 2
    for block, sheet in zip(blocks, sheets, strict=True):
        info = {line[0]: line[1] for line in block[:6]}
        assert info == {
            "项目 Site": "万科城三期 (S1)",
            "班组 Team": sheet.team,
            "班组长 Team lead": ", ".join(sheet.leads) or "-",
            "分包单位 Subcontractor": ", ".join(sheet.subcontractors) or "-",
            "期间 Period": "2026-11-02–2026-11-03",
            "每工日工时 Hours per day": "8.00",
        }
        header = block.index(list(COLUMNS))
        table = block[header + 1 : header + 1 + len(sheet.rows)]
        assert table == [
            [
                r.day.isoformat(),
                r.worker,
                r.name,
                r.trade,
                money(r.hours),
                money(r.day_equivalents),
                money(r.day_rate),
                money(r.amount),
                ";".join(r.remarks),
                "",
            ]
            for r in sheet.rows
        ]
        t = sheet.totals
        assert block[header + 1 + len(sheet.rows)] == [
            TOTAL,
            "",
            "",
            "",
            money(t.hours),
            money(t.day_equivalents),
            "",
            money(t.amount),
            "",
            "",
        ]
        assert block[-3:] == [[label] for label in SIGN_OFF]
    carpentry, rebar = blocks
    assert carpentry[2][1] == "-" and carpentry[3][1] == "-"  # no lead, no subcontractor
    assert rebar[2][1] == "张三" and rebar[3][1] == "中建劳务"
    # by hand: W1 600 min = 1.25 day-eq. x 350 = 437.50 and 480 min = 350.00; W2 555 min
    # = 1.15625 -> 1.16 x 320.50 = 371.78, remarks in the order of the rules
    w2 = next(line for line in rebar if line[1:2] == ["W2"])
    assert w2[4:9] == ["9.25", "1.16", "320.50", "371.78", "duplicate;no_exit"]
    assert next(line for line in rebar if line[:1] == [TOTAL])[7] == "1159.28"


def test_csv_cells_never_become_formulas() -> None:
    workers = {
        "W1": WorkerInfo(
            "W1",
            '=HYPERLINK("http://x","y")',
            "+team",
            True,
            "@sub",
            "-1+1",
            Decimal(300),
            None,
            None,
        )
    }
    sheets = build_sheets(
        "S1", "Site", {("W1", D1): day("W1", D1, 480)}, workers, D1, D1, Decimal(8)
    )
    [block] = csv_blocks(sheets_csv(sheets))
    cells = [c for line in block for c in line]
    assert '\'=HYPERLINK("http://x","y")' in cells
    assert {"'+team", "'@sub", "'-1+1"} <= set(cells)
    assert not any(c and c[0] in "=+@" for c in cells)


def test_no_sheets_say_so() -> None:
    assert csv_blocks(sheets_csv([])) == [[[NOTHING]]]
    book = openpyxl.load_workbook(io.BytesIO(sheets_xlsx([])))
    assert len(book.worksheets) == 1
    assert book.worksheets[0]["A1"].value == NOTHING


def xlsx_table(ws: Any) -> tuple[int, list[tuple[Any, ...]]]:
    """The header's row number and the rows below it down to the totals row."""
    header = next(r for r in range(1, ws.max_row + 1) if ws.cell(r, 1).value == COLUMNS[0])
    rows = []
    for r in range(header + 1, ws.max_row + 1):
        rows.append(tuple(ws.cell(r, c) for c in range(1, len(COLUMNS) + 1)))
        if ws.cell(r, 1).value == TOTAL:
            break
    return header, rows


def as_decimal(value: Any) -> Decimal:
    assert isinstance(value, int | float) and not isinstance(value, bool)
    return Decimal(repr(value)).quantize(Decimal("0.01"))


def test_the_sheets_as_xlsx_read_back() -> None:
    sheets = make_sheets()
    book = openpyxl.load_workbook(io.BytesIO(sheets_xlsx(sheets)))
    assert book.sheetnames == [s.team for s in sheets]
    for ws, sheet in zip(book.worksheets, sheets, strict=True):
        assert ws["A1"].value == "项目 Site" and ws["B1"].value == "万科城三期 (S1)"
        header, rows = xlsx_table(ws)
        assert [ws.cell(header, c).value for c in range(1, 11)] == list(COLUMNS)
        assert all(ws.cell(header, c).font.b for c in range(1, 11))
        *body, total = rows
        assert len(body) == len(sheet.rows)
        for cells, r in zip(body, sheet.rows, strict=True):
            assert cells[0].is_date and cells[0].value.date() == r.day
            assert cells[0].number_format == "yyyy-mm-dd"
            assert [c.value for c in cells[1:4]] == [r.worker, r.name, r.trade]
            numbers = cells[4:8]
            assert [as_decimal(c.value) for c in numbers] == [
                r.hours,
                r.day_equivalents,
                r.day_rate,
                r.amount,
            ]
            assert all(c.number_format == "0.00" for c in numbers)
            assert cells[8].value == (";".join(r.remarks) or None)
        t = sheet.totals
        assert total[0].value == TOTAL and total[0].font.b
        assert [as_decimal(total[i].value) for i in (4, 5, 7)] == [
            t.hours,
            t.day_equivalents,
            t.amount,
        ]
        assert all(c.font.b for c in total)
        # the printed page: landscape, one page wide, the header repeated
        assert ws.page_setup.orientation == "landscape"
        assert ws.page_setup.fitToWidth == 1 and ws.sheet_properties.pageSetUpPr.fitToPage
        assert ws.print_title_rows == f"${header}:${header}"
        assert ws.column_dimensions["I"].width > ws.column_dimensions["E"].width
        signatures = [ws.cell(r, 1).value for r in range(ws.max_row - 2, ws.max_row + 1)]
        assert signatures == list(SIGN_OFF)


def test_xlsx_cells_from_uploads_stay_text() -> None:
    workers = {"W1": WorkerInfo("W1", "=1+2", "A", False, "", "", Decimal(300), None, None)}
    sheets = build_sheets(
        "S1", "Site", {("W1", D1): day("W1", D1, 480)}, workers, D1, D1, Decimal(8)
    )
    ws = openpyxl.load_workbook(io.BytesIO(sheets_xlsx(sheets))).worksheets[0]
    _, rows = xlsx_table(ws)
    assert rows[0][2].value == "=1+2" and rows[0][2].data_type == "s"


def test_worksheet_titles_excel_accepts() -> None:
    long = "第一项目部钢筋加工制作安装一班组（含模板支护及混凝土浇筑配合作业人员）"
    teams = [long, long + "二", "A/B: [x]?*", "a/b: [x]?*", "'quoted'", "History"]
    sheets = [DayLabourSheet("S1", "Site", team, [], [], D1, D1, Decimal(8)) for team in teams]
    titles = openpyxl.load_workbook(io.BytesIO(sheets_xlsx(sheets))).sheetnames
    assert len(titles) == len(teams)
    assert len({t.casefold() for t in titles}) == len(titles)
    assert "history" not in {t.casefold() for t in titles}
    for t in titles:
        assert 1 <= len(t) <= 31 and not set(t) & set("[]:*?/\\")
        assert not t.startswith("'") and not t.endswith("'")
    assert titles[0] == long[:31] and titles[2] == "A_B_ _x___"


def test_id_numbers_are_in_no_exported_file() -> None:
    result = read_csv(
        f"{HEADER},班组长,身份证号\nW1,张三,A,350,是,{ID_X}\nW2,李四,A,300,否,{ID_A}\n"
    )
    assert result.errors == []
    workers = {r.id: WorkerInfo.of(r) for r in result.rows}
    days = {("W1", D1): day("W1", D1, 480), ("W2", D1): day("W2", D1, 300)}
    sheets = build_sheets("S1", "Site", days, workers, D1, D1, Decimal(8))
    assert len(sheets[0].rows) == 2
    csv_text = sheets_csv(sheets).decode("utf-8-sig")
    with zipfile.ZipFile(io.BytesIO(sheets_xlsx(sheets))) as z:
        xml = [z.read(name).decode("utf-8") for name in z.namelist()]
    for number in (ID_X, ID_A):
        assert number not in csv_text and hidden(number, [csv_text, *xml, repr(sheets)], 8)
