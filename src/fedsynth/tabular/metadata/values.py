"""How a column's values read as numbers or labels: the one decision that inference, the checks,
the generators and the restoration of their output share.

A column holds *numbers* (numeric or boolean dtypes, or Python numbers in an object column),
*text* (strings in an object column, a ``string`` dtype of either storage, or an object column
mixing strings and numbers) or *labels* (a categorical dtype, anything else). Text is read here,
once, as numbers when it can be:

* ``"12"``, ``"-3.5"``, ``"1e-3"`` are numbers; ``"1,5"`` is 1.5 when the column writes no
  ``"."`` anywhere (a decimal comma);
* thousands separators are read when the column shows them unambiguously (:func:`_thousands`):
  ``"1,234,567"`` or ``"1,234.5"`` (comma), ``"1.234.567"`` or ``"1.234,5"`` (point, with a
  decimal comma), ``"1 234"`` (space or no-break space) and ``"1'234"`` (apostrophe). A lone
  ``"1,234"`` in a column that shows nothing else stays a decimal comma (1.234), as a
  spreadsheet in a decimal-comma locale reads it;
* ``"<0.1"``, ``">= 100"`` are censored values, read as their bound (the checks warn);
* ``""``, ``"NA"``, ``"n/a"``, ``"NaN"``, ``"null"``, ``"None"``, ``"."`` are missing values;
* dates written in one of :data:`DATE_FORMATS` (``"2021-03-04"``, ``"04/03/2021"``...) are days
  since 1970-01-01.

A ``datetime64`` column (naive or with a time zone) reads as days since 1970-01-01 UTC too, with
the encoding ``{"as": "datetime"}``, and comes back in its dtype (:func:`to_datetimes`); a
``timedelta64`` column (a length of stay, a follow-up) reads as days, with the encoding
``{"as": "timedelta"}``, and comes back as time spans (:func:`to_timedeltas`).

How the text was written (decimal comma, decimal places, date format) is kept as the column's
*encoding* (``ColumnMetadata.extra["text"]``), so that synthetic numbers are written back the
same way (:func:`write_numbers`) and a column reads the same at fit and after a reload.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from fedsynth.tabular.metadata.columns import ColumnMetadata
    from fedsynth.tabular.metadata.table import Metadata

#: Text values read as missing (compared lower-cased, without surrounding spaces); "." is how
#: Stata and SAS write a missing number.
MISSING_TEXT = frozenset({"", "na", "n/a", "nan", "null", "none", "."})
#: Date formats tried, in this order, on text that looks like dates: the first under which
#: every value parses is the column's (day first before month first, as European exports are).
DATE_FORMATS = (
    "%Y-%m-%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%Y/%m/%d",
    "%d-%m-%Y",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d/%m/%Y %H:%M",
)
#: Key of a column's text encoding in ``ColumnMetadata.extra``.
ENCODING_KEY = "text"

_NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?")
_CENSORED = re.compile(r"(<=|>=|<|>|≤|≥)\s*(.+)")
_DATE_LIKE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?")
_DAY = pd.Timedelta(days=1)
_EPOCH = pd.Timestamp(0)


@dataclass
class TextReading:
    """What the text of a column reads as.

    Attributes
    ----------
    numbers : Series of float
        One number per row (same index); NaN where the value is missing or unreadable.
    encoding : dict
        How the text writes numbers: ``{"as": "number", "decimal": "." or ",", "places": k}``
        (with ``"thousands": sep`` when the text groups digits) or
        ``{"as": "date", "format": "%Y-%m-%d"}``.
    unreadable : list of str
        Distinct values that are neither numbers, dates nor missing.
    censored : list of str
        Distinct values such as ``"<0.1"`` read as their bound.
    whole : bool
        Every number is written as a whole number without a decimal separator or exponent (how
        codes are written).
    leading_zeros : bool
        Some number is written with a leading zero (``"007"``): a code, not a quantity.
    unreadable_rows, censored_rows : int
        Rows holding one of the ``unreadable`` or ``censored`` values.
    """

    numbers: pd.Series
    encoding: dict[str, Any]
    unreadable: list[str] = field(default_factory=list)
    censored: list[str] = field(default_factory=list)
    whole: bool = False
    leading_zeros: bool = False
    unreadable_rows: int = 0
    censored_rows: int = 0

    @property
    def all_read(self) -> bool:
        """Every non-missing value was read (as a number or a date)."""
        return not self.unreadable and bool(self.numbers.notna().any())

    @property
    def is_date(self) -> bool:
        """The values are dates."""
        return self.encoding.get("as") == "date"

    def mostly_read(self, share: float = 0.9, distinct: int = 10) -> bool:
        """At least ``share`` of the non-missing values read as numbers, with at least
        ``distinct`` distinct numbers: numbers with a few stray entries."""
        readable = int(self.numbers.notna().sum())
        if readable == 0:
            return False
        return (
            readable / (readable + self.unreadable_rows) >= share
            and self.numbers.nunique() >= distinct
        )


def is_text(series: pd.Series) -> bool:
    """Whether the column is written as text: a string dtype, or an object column holding at
    least one string (an object column mixing strings and numbers is text)."""
    if isinstance(series.dtype, pd.StringDtype):
        return True
    if not pd.api.types.is_object_dtype(series.dtype):
        return False
    # infer_dtype scans in C; only its catch-all answers need a look at each value.
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred == "string":
        return True
    if inferred not in {"mixed", "mixed-integer"}:
        return False
    return bool(series.dropna().map(lambda v: isinstance(v, str)).any())


def as_text(value: Any) -> str:
    """A value of a text column as the string it stands for (``12`` -> ``"12"``, ``12.0`` ->
    ``"12"``: a number in a text column is read as if it had been written as text)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def text_labels(series: pd.Series) -> pd.Series:
    """The labels a discrete column is modelled with: a text column's values as strings (so that
    ``"12"`` and ``12`` are one label), any other column unchanged.

    Examples
    --------
    >>> text_labels(pd.Series(["12", 12, None], dtype=object)).tolist()
    ['12', '12', None]
    """
    if not (pd.api.types.is_object_dtype(series.dtype) and is_text(series)):
        return series
    if pd.api.types.infer_dtype(series, skipna=True) == "string":
        return series
    present = series.notna()
    return series.where(~present, series.map(as_text, na_action="ignore"))


def read_text(series: pd.Series, encoding: dict[str, Any] | None = None) -> TextReading | None:
    """Read a text column as numbers (or dates); ``None`` when the column is not text.

    Parameters
    ----------
    series : Series
        The column.
    encoding : dict, optional
        The encoding recorded at fit (``ColumnMetadata.extra["text"]``): the values are read
        under it instead of guessing again.

    Examples
    --------
    >>> reading = read_text(pd.Series(["1,5", "2", "<0,1", "n/a"]))
    >>> reading.numbers.tolist(), reading.encoding, reading.censored
    ([1.5, 2.0, 0.1, nan], {'as': 'number', 'decimal': ',', 'places': 1}, ['<0,1'])
    """
    if not is_text(series):
        return None
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    distinct = [as_text(v).strip() for v in uniques]
    present = [t for t in distinct if t.lower() not in MISSING_TEXT]
    if encoding is None:
        encoding = _guess_encoding(present)
    if encoding["as"] == "date":
        parsed, unreadable, censored = _read_dates(distinct, encoding["format"])
        whole = leading = False
    else:
        parsed, unreadable, censored, whole, leading = _read_numbers(distinct, encoding)
    values = np.append(np.asarray(parsed, dtype=np.float64), np.nan)
    numbers = pd.Series(values[np.where(codes < 0, len(distinct), codes)], index=series.index)
    return TextReading(
        numbers,
        encoding,
        unreadable,
        censored,
        whole,
        leading,
        _rows(codes, distinct, unreadable),
        _rows(codes, distinct, censored),
    )


def _rows(codes: np.ndarray, distinct: list[str], chosen: list[str]) -> int:
    """Rows (factorized ``codes`` of ``distinct`` values) holding one of ``chosen``."""
    wanted = set(chosen)
    picked = [i for i, text in enumerate(distinct) if text in wanted]
    return int(np.isin(codes, picked).sum()) if picked else 0


def read_numbers(series: pd.Series, encoding: dict[str, Any] | None = None) -> pd.Series | None:
    """The column as floats (NaN = missing) when every non-missing value reads as a number,
    else ``None``. Numbers are read from numeric, boolean and object dtypes, from text
    (:func:`read_text`) and from a categorical's values."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.astype("float64")
    if pd.api.types.is_datetime64_any_dtype(series):
        return days_since_epoch(series)
    if pd.api.types.is_timedelta64_dtype(series):
        return (series / _DAY).astype("float64")
    reading = read_text(series, encoding)
    if reading is not None:
        return reading.numbers if not reading.unreadable else None
    values = series.dropna()
    if pd.api.types.is_object_dtype(series.dtype) and all(
        isinstance(v, (int, float, np.integer, np.floating, bool, np.bool_)) for v in values
    ):
        return pd.to_numeric(series, errors="coerce").astype("float64")
    return None


def encoding_of(col: ColumnMetadata) -> dict[str, Any] | None:
    """The text encoding recorded for a column, or ``None``."""
    return col.extra.get(ENCODING_KEY)


def model_values(series: pd.Series, col: ColumnMetadata) -> pd.Series:
    """The column as generators learn it: floats for a numeric or duration column (read under
    its recorded encoding), labels (:func:`text_labels`) for a discrete one.

    Called on data that passed the checks, so every value reads.
    """
    if col.is_continuous:
        numbers = read_numbers(series, encoding_of(col))
        if numbers is None:
            raise ValueError(f"column {series.name!r} holds values that are not numbers")
        return numbers
    return text_labels(series)


def model_frame(data: pd.DataFrame, metadata: Metadata, columns: list[str]) -> pd.DataFrame:
    """The ``columns`` of ``data`` as generators learn them (:func:`model_values`); columns that
    need no conversion are passed through unchanged (no copy of numeric columns)."""
    out = {}
    for name in columns:
        col = metadata.columns[name]
        series = data[name]
        convert = is_text(series) or (col.is_continuous and not _plain_numbers(series))
        out[name] = model_values(series, col) if convert else series
    return pd.DataFrame(out, index=data.index, columns=columns)


def _plain_numbers(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def days_since_epoch(series: pd.Series) -> pd.Series:
    """Date-times (``datetime64``, naive or with a time zone) as days since 1970-01-01 UTC."""
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return ((series - _EPOCH) / _DAY).astype("float64")


def to_datetimes(numbers: pd.Series, dtype: str) -> pd.Series:
    """Inverse of :func:`days_since_epoch`, in ``dtype`` (e.g. ``datetime64[ns, Europe/Paris]``),
    to the second."""
    seconds = pd.to_timedelta(numbers.to_numpy(dtype=np.float64) * 86_400.0, unit="s")
    stamps = pd.Series(_EPOCH + seconds, index=numbers.index).dt.round("s")
    target = pd.api.types.pandas_dtype(dtype)
    if getattr(target, "tz", None) is not None:
        stamps = stamps.dt.tz_localize("UTC")
    return stamps.astype(target)


def to_timedeltas(numbers: pd.Series, dtype: str) -> pd.Series:
    """Days (floats, NaN = missing) as time spans in ``dtype`` (``timedelta64[ns]``...), to the
    second.

    Examples
    --------
    >>> to_timedeltas(pd.Series([1.5, np.nan]), "timedelta64[ns]").tolist()
    [Timedelta('1 days 12:00:00'), NaT]
    """
    seconds = pd.to_timedelta(numbers.to_numpy(dtype=np.float64) * 86_400.0, unit="s")
    spans = pd.Series(seconds, index=numbers.index).dt.round("s")
    return spans.astype(pd.api.types.pandas_dtype(dtype))


def write_numbers(numbers: pd.Series, encoding: dict[str, Any]) -> pd.Series:
    """Numbers (NaN = missing) written as text in a column's encoding (object dtype).

    Examples
    --------
    >>> write_numbers(pd.Series([1.5, np.nan]), {"as": "number", "decimal": ",", "places": 2})
    0    1,50
    1     NaN
    dtype: object
    """
    present = numbers.notna()
    out = pd.Series(np.nan, index=numbers.index, dtype=object)
    if not present.any():
        return out
    if encoding["as"] == "date":
        stamps = _EPOCH + pd.to_timedelta(numbers[present].to_numpy() * 86_400.0, unit="s")
        written = pd.Series(
            stamps.round("s").strftime(encoding["format"]), index=out[present].index
        )
    else:
        places = encoding.get("places")
        written = numbers[present].map(
            lambda v: (
                f"{v:.{places}f}" if places is not None else np.format_float_positional(v, trim="-")
            )
        )
        thousands = encoding.get("thousands")
        if thousands is not None:
            written = written.map(_group_thousands)
        if encoding.get("decimal") == "," or thousands is not None:
            # Swap through a placeholder: "1,234.5" -> "1.234,5" when the marks trade places.
            decimal = encoding.get("decimal", ".")
            written = written.map(
                lambda t: t.replace(",", "\0").replace(".", decimal).replace("\0", thousands or "")
            )
    out[present] = written.to_numpy(dtype=object)
    return out


def _group_thousands(text: str) -> str:
    """``"-1234567.5"`` -> ``"-1,234,567.5"`` (a comma between groups; swapped after)."""
    sign = "-" if text.startswith("-") else ""
    whole, point, fraction = text.lstrip("-").partition(".")
    if not whole.isdigit():
        return text
    return f"{sign}{int(whole):,}{point}{fraction}"


def _guess_encoding(present: list[str]) -> dict[str, Any]:
    if present and all(_DATE_LIKE.fullmatch(t) for t in present):
        for fmt in DATE_FORMATS:
            if pd.to_datetime(pd.Series(present), format=fmt, errors="coerce").notna().all():
                return {"as": "date", "format": fmt}
    thousands = _thousands(present)
    if thousands is not None:
        decimal = "," if thousands == "." else "."
        if thousands not in ",.":
            decimal = _decimal([t.replace(thousands, "") for t in present])
        bodies = [_number_body(t, thousands) for t in present]
    else:
        decimal = _decimal(present)
        bodies = [_number_body(t) for t in present]
    places = [_places(body, decimal) for body in bodies if body is not None]
    encoding = {"as": "number", "decimal": decimal, "places": None}
    if thousands is not None:
        encoding["thousands"] = thousands
    if None not in places and places:
        encoding["places"] = max(places)
    return encoding


def _decimal(present: list[str]) -> str:
    return "," if any("," in t for t in present) and not any("." in t for t in present) else "."


#: Characters that group thousands, in the order tried ("\u202f" is the narrow no-break space
#: that French locales write).
_GROUPING = (",", ".", " ", "\u00a0", "\u202f", "'")


def _thousands(present: list[str]) -> str | None:
    """The thousands separator the values show unambiguously, or ``None``.

    A separator is read as grouping when every value that writes it is a grouped number
    (``1-3 digits`` then groups of exactly three, optionally followed by a decimal part in the
    other mark) and the values prove it: two or more groups (``"1,234,567"``), a decimal mark
    after the groups (``"1,234.5"``), a space or apostrophe (which never marks decimals), or
    at least two distinct whole numbers under 1,000 beside at least two distinct grouped ones.
    Anything else (``"1,5"``, a lone ``"1,234"``) is left to the decimal rule.
    """
    for sep in _GROUPING:
        holding = [_uncensored(t) for t in present if sep in t]
        if not holding:
            continue
        mark = "," if sep == "." else "." if sep == "," else "[.,]"
        grouped = re.compile(rf"[+-]?[1-9]\d{{0,2}}(?:{re.escape(sep)}\d{{3}})+(?:{mark}\d+)?")
        if not all(grouped.fullmatch(t) for t in holding):
            continue
        plain = {t for t in map(_uncensored, present) if re.fullmatch(r"[+-]?\d{1,3}", t)}
        proof = (
            sep not in ",."
            or any(
                t.count(sep) >= 2 or re.search(rf"{re.escape(sep)}\d{{3}}{mark}", t)
                for t in holding
            )
            # Whole numbers under 1,000 beside grouped ones: a decimal reading would need every
            # fraction to have exactly three digits, and none elsewhere.
            or (len(plain) >= 2 and len(set(holding)) >= 2)
        )
        if proof:
            return sep
    return None


def _uncensored(text: str) -> str:
    censored = _CENSORED.fullmatch(text)
    return censored.group(2).strip() if censored else text


def _number_body(text: str, thousands: str | None = None) -> str | None:
    """The number a value writes, without a censoring mark or thousands separators; ``None``
    when it writes none."""
    body = _uncensored(text)
    if thousands is not None:
        body = body.replace(thousands, "")
    return body if _NUMBER.fullmatch(body) else None


def _places(text: str, decimal: str) -> int | None:
    """Decimal places written (``"12.50"`` -> 2); ``None`` for an exponent or over 6 places,
    which are written back in the shortest form instead."""
    text = text.strip()
    if "e" in text.lower():
        return None
    fraction = text.partition(decimal)[2]
    return len(fraction) if len(fraction) <= 6 else None


def _read_numbers(distinct: list[str], encoding: dict[str, Any]):
    decimal = encoding.get("decimal", ".")
    thousands = encoding.get("thousands")
    parsed, unreadable, censored = [], [], []
    whole, leading = True, False
    for text in distinct:
        if text.lower() in MISSING_TEXT:
            parsed.append(np.nan)
            continue
        bound = _CENSORED.fullmatch(text)
        body = _number_body(text, thousands)
        if body is None or (decimal == "." and "," in body):
            parsed.append(np.nan)
            unreadable.append(text)
            continue
        if bound:
            censored.append(text)
        written = body.lstrip("+-")
        # Digits grouped in thousands write a quantity, never a code.
        grouped = thousands is not None and thousands in text
        whole = whole and not bound and not grouped and written.isdigit()
        leading = leading or (len(written) > 1 and written.startswith("0") and written.isdigit())
        parsed.append(float(body.replace(",", ".")))
    return parsed, unreadable, censored, whole, leading


def _read_dates(distinct: list[str], fmt: str):
    parsed, unreadable = [], []
    stamps = pd.to_datetime(pd.Series(distinct, dtype=object), format=fmt, errors="coerce")
    for text, stamp in zip(distinct, stamps, strict=True):
        if text.lower() in MISSING_TEXT:
            parsed.append(np.nan)
        elif pd.isna(stamp):
            parsed.append(np.nan)
            unreadable.append(text)
        else:
            parsed.append((stamp - _EPOCH) / _DAY)
    return parsed, unreadable, []
