"""Rules that guess a column's kind from its name and values.

The rules are deliberately conservative: a wrong guess that hides an identifier or a survival pair
is worse than asking the user, so ambiguous survival columns are left as plain numerics and the
user names them (``duration=``/``event=``) instead.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from fedsynth.exceptions import Problem
from fedsynth.tabular.metadata.columns import ColumnMetadata, dtype_name
from fedsynth.tabular.metadata.values import (
    ENCODING_KEY,
    TextReading,
    days_since_epoch,
    read_numbers,
    read_text,
    text_labels,
)

#: Text codes distinct for at least this share of at least this many rows are identifiers.
NEAR_DISTINCT_SHARE = 0.9
NEAR_DISTINCT_ROWS = 50

# Name tokens that mark personal data on their own, whatever the values look like (but only with
# many distinct values: "drug_name" with five levels is a category, not a person's name).
STRONG_IDENTIFIER_TOKENS = frozenset(
    {
        "name", "firstname", "lastname", "surname", "forename", "fullname", "dob", "birthdate",
        "dateofbirth", "birthday", "ssn", "nhs", "nhsnumber", "mrn", "email", "phone",
        "telephone", "address", "postcode", "zipcode", "zip", "passport", "insurance",
    }
)  # fmt: skip
# Names hospitals give record numbers: identifiers whatever their values look like.
RECORD_NUMBER_TOKENS = frozenset(
    {
        "mrn", "umrn", "urn", "recordno", "recordnumber", "recno", "recnum", "medicalrecord",
        "hospitalno", "hospitalnumber", "hospno", "chart", "chartno", "chartnumber", "episode",
        "episodeid", "episodeno", "encounter", "encounterid", "accession", "accessionno",
        "accessionnumber", "nhsno", "chi", "chinumber", "admissionno", "admissionid", "visitid",
        "patientno", "patientnumber", "caseno", "casenumber", "labno", "specimenid",
    }
)  # fmt: skip
# Labels of a survival event written as text: one censored label and one event label.
CENSORED_LABELS = frozenset({"no", "n", "false", "f", "alive", "living", "censored", "0"})
EVENT_LABELS = frozenset(
    {"yes", "y", "true", "t", "dead", "deceased", "died", "death", "event", "relapse", "1"}
)
# Tokens that mark an identifier only when the values are (nearly) unique per row.
WEAK_IDENTIFIER_TOKENS = frozenset(
    {"id", "pid", "patient", "patientid", "uuid", "guid", "record", "subject", "subjectid", "key",
     "accession", "barcode", "sample", "sampleid", "case", "caseid"}
)  # fmt: skip
DURATION_TOKENS = frozenset(
    {"time", "duration", "survival", "os", "pfs", "efs", "rfs", "dfs", "futime", "stime",
     "followup", "tte"}
)  # fmt: skip
# Units mark a duration only as the last word ("os_months", not "yearsSmoking").
TIME_UNITS = frozenset({"months", "days", "weeks", "years"})
EVENT_TOKENS = frozenset(
    {"event", "status", "death", "dead", "died", "fustat", "vital", "deceased", "relapse"}
)
SITE_TOKENS = frozenset({"site", "centre", "center", "hospital", "institution", "node", "clinic"})

# Genes of the myeloid and common solid-tumour panels: binary flags named after them are put in the
# "genomic" group. Users with other panels pass ``genomic=[...]``.
KNOWN_GENES = frozenset(
    """
    ASXL1 ASXL2 ATM ATRX BCOR BCORL1 BRAF BRCA1 BRCA2 CALR CBL CBLB CDKN2A CEBPA CREBBP CSF3R CUX1
    DDX41 DNMT3A EGFR ETNK1 ETV6 EZH2 FBXW7 FLT3 GATA1 GATA2 GNAS GNB1 IDH1 IDH2 IKZF1 JAK2 JAK3
    KDM6A KIT KMT2A KMT2C KMT2D KRAS MLL MPL MYC MYD88 NF1 NOTCH1 NPM1 NRAS PDGFRA PHF6 PIK3CA
    PPM1D PRPF8 PTEN PTPN11 RAD21 RB1 RUNX1 SETBP1 SF3B1 SMC1A SMC3 SRSF2 STAG2 STAT3 SUZ12 TET2
    TP53 U2AF1 U2AF2 WT1 ZRSR2 ZBTB33 BCL2 BCL6 APC SMAD4 ARID1A CTNNB1 ERBB2 FGFR3 HRAS MET
    """.split()
)
#: Largest integer float64 holds exactly: beyond it neighbouring integers share one float.
EXACT_FLOAT_INTEGER = 2**53
#: An integer column beyond :data:`EXACT_FLOAT_INTEGER` with at most this many distinct values
#: is taken for codes (categories, kept exactly); with more it is refused by the checks.
MAX_BIG_INTEGER_CODES = 50
#: Whole numbers written as text (``"1"`` ... ``"24"``) with at most this many distinct values
#: are codes (district, hospital, diagnosis codes): categories kept as their text. With more,
#: or with a decimal separator, they are a quantity read as text: numeric, written back as text.
MAX_TEXT_CODES = 30
_GENE_AFFIXES = re.compile(r"^(mut|mutation|gene)[_\-.]|[_\-.](mut|mutated|mutation|status)$", re.I)


def name_tokens(name: str) -> set[str]:
    """Lower-case word tokens of a name (``"PatientID"`` -> ``{"patient", "id", "patientid"}``)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if p]
    tokens = set(parts)
    tokens.add("".join(parts))
    return tokens


def gene_symbol(name: str) -> str | None:
    """The gene a column is named after (``"TP53"``, ``"mut_tp53"``), or ``None``."""
    stripped = _GENE_AFFIXES.sub("", str(name)).upper()
    return stripped if stripped in KNOWN_GENES else None


def numeric_view(series: pd.Series) -> pd.Series | None:
    """The column as floats when every non-missing value is a number (or bool), else ``None``."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.astype("float64")
    if series.dtype == object:
        values = series.dropna()
        if len(values) and all(
            isinstance(v, (int, float, np.integer, np.floating, bool, np.bool_)) for v in values
        ):
            return pd.to_numeric(series, errors="coerce").astype("float64")
    return None


def big_integers(series: pd.Series) -> list[int] | None:
    """The distinct values, as Python ints, of an integer column (int/uint/Int dtypes or
    Python ints in an object column) holding any value beyond ±2**53, else ``None``.

    Such values cannot pass through float64 unchanged, so they are modelled as categories
    (few distinct) or refused (:func:`~fedsynth.tabular.metadata.checks.check_table`).
    """
    values = series.dropna()
    if not len(values) or pd.api.types.is_bool_dtype(series):
        return None
    if pd.api.types.is_integer_dtype(series):
        distinct = [int(v) for v in pd.unique(values)]
    elif series.dtype == object and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values
    ):
        distinct = list({int(v) for v in values})
    else:
        return None
    if max(abs(v) for v in distinct) <= EXACT_FLOAT_INTEGER:
        return None
    return distinct


def is_identifier(name: str, series: pd.Series) -> bool:
    """Whether a column identifies patients (see :func:`identifier_reason`)."""
    return identifier_reason(name, series) is not None


def identifier_reason(name: str, series: pd.Series) -> str | None:
    """Why a column is taken for an identifier, or ``None`` when it is not one.

    A column is an identifier when its name marks personal data or a record number (``mrn``,
    ``record_no``, ``hospital_number``, ``encounter``...) with mostly distinct values; when a
    name such as ``id`` or ``patient`` comes with a distinct value per row; when it is a row
    counter, text distinct per row, or free text; when it holds one-word text codes distinct
    for at least 90 % of 50 or more rows (specimen codes with a few repeats); or when it holds
    random codes: integers of
    four or more digits, distinct per row and in no order (a measurement is not written that
    way, a hospital's record number is).
    """
    values = series.dropna()
    n = len(values)
    if n == 0:
        return None
    unique_ratio = values.nunique() / n
    tokens = name_tokens(name)
    is_float = pd.api.types.is_float_dtype(series)
    marked = sorted(tokens & (STRONG_IDENTIFIER_TOKENS | RECORD_NUMBER_TOKENS))
    if marked and unique_ratio > 0.5:
        return f"its name marks personal data or a record number ({marked[0]})"
    if tokens & WEAK_IDENTIFIER_TOKENS and not is_float and unique_ratio >= 0.95 and n >= 10:
        return "a distinct value per row under an identifier's name"
    if _is_free_text(values):
        return "free text (mostly distinct multi-word values), which would be re-emitted verbatim"
    if n >= NEAR_DISTINCT_ROWS and unique_ratio >= NEAR_DISTINCT_SHARE and _is_code_text(values):
        # Specimen or accession codes with a few repeats (a patient sampled twice): as a
        # category of hundreds of levels, each real code would be emitted verbatim.
        return f"codes distinct for almost every row ({values.nunique()} in {n} rows)"
    if n < 20 or unique_ratio < 1.0:
        return None
    # No telling name: text unique per row, a row counter or random codes are identifiers;
    # unique floats are ordinary measurements.
    if pd.api.types.is_integer_dtype(series):
        ordered = np.sort(values.to_numpy())
        if np.all(np.diff(ordered) == 1):
            return "a row counter (consecutive integers, one per row)"
        if _is_random_code(values):
            return "random codes (distinct integers of 4+ digits in no order), like record numbers"
        return None
    if pd.api.types.is_numeric_dtype(series) or numeric_view(series) is not None:
        return None
    if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series):
        return None  # dates of diagnosis, lengths of stay: measurements
    if _reads_as_numbers(values):  # unique numbers or dates read as text are measurements
        return None
    return "text with a distinct value per row"


def _is_code_text(values: pd.Series) -> bool:
    """Text (not numbers or dates written as text) of single tokens: how codes are written."""
    if not pd.api.types.is_object_dtype(values.dtype) and not isinstance(
        values.dtype, pd.StringDtype
    ):
        return False
    if not values.map(lambda v: isinstance(v, str)).all() or _reads_as_numbers(values):
        return False
    return bool((values.str.split().str.len() == 1).mean() >= 0.95)


def _is_random_code(values: pd.Series) -> bool:
    # Python ints: uint64 beyond int64's range would overflow a cast to int64.
    numbers = np.array([abs(int(v)) for v in values], dtype=object)
    digits = pd.Series([len(str(v)) for v in numbers])
    if (digits >= 4).mean() < 0.95 or digits.value_counts(normalize=True).iloc[0] < 0.85:
        return False
    # Codes sorted with the rows (a running number with gaps, a date stamp) are left alone.
    ranks = pd.Series(values.to_numpy()).rank()
    order = pd.Series(np.arange(len(numbers))).corr(ranks, method="pearson")
    return bool(abs(order) < 0.5)


def _is_free_text(values: pd.Series) -> bool:
    if values.dtype != object or len(values) < 10 or not values.map(type).eq(str).all():
        return False
    words = values.str.split().str.len()
    return bool(values.nunique() >= 10 and values.nunique() / len(values) >= 0.5) and bool(
        words.median() >= 4
    )


def event_labels(series: pd.Series) -> list | None:
    """``[censored, event]`` labels of a text column holding one of the pairs hospitals code
    events with (no/yes, false/true, alive/dead, censored/event...), else ``None``."""
    values = series.dropna()
    if values.dtype != object or not values.map(type).eq(str).all():
        return None
    distinct = list(pd.unique(values))
    if len(distinct) != 2:
        return None
    lower = [value.strip().lower() for value in distinct]
    for negative, positive in ((0, 1), (1, 0)):
        if lower[negative] in CENSORED_LABELS and lower[positive] in EVENT_LABELS:
            return [distinct[negative], distinct[positive]]
    return None


#: Most causes a whole-number event column is read as (0 = censored, 1..K = causes).
MAX_CAUSES = 9


def competing_codes(series: pd.Series) -> list[int] | None:
    """``[0, 1, ..., K]`` when ``series`` holds whole numbers 0..K with every code present and
    ``2 <= K <= MAX_CAUSES`` (competing risks: 0 = censored, 1..K = causes), else ``None``."""
    numbers = numeric_view(series)
    if numbers is None or pd.api.types.is_bool_dtype(series):
        return None
    values = numbers.dropna()
    if len(values) == 0 or not (values == np.round(values)).all():
        return None
    codes = sorted(int(v) for v in np.unique(values))
    if codes != list(range(len(codes))) or not 3 <= len(codes) <= MAX_CAUSES + 1:
        return None
    return codes


def competing_notes(columns: dict[str, ColumnMetadata]) -> list[Problem]:
    """A note for an event column with several causes: it was taken as competing risks."""
    durations = [c for c, m in columns.items() if m.kind == "duration"]
    duration = durations[0] if durations else None
    notes = []
    for name, col in columns.items():
        if col.kind != "event" or len(col.categories or ()) <= 2:
            continue
        causes = list(col.categories[1:])
        notes.append(
            Problem(
                name,
                f"was taken as a competing-risks event with {len(causes)} causes {causes} "
                f"({col.categories[0]!r} = censored); it is generated as one column and "
                "validated with per-cause cumulative incidence (Aalen-Johansen). For a single "
                f"event make a 0/1 column, e.g. (df[{name!r}] == {causes[0]!r}).astype(int), "
                f"and declare it with event=...; for no survival pair, override both kinds: "
                f"overrides={{{name!r}: 'categorical', {duration!r}: 'numeric'}}",
            )
        )
    return notes


def infer_column(name: str, series: pd.Series) -> ColumnMetadata:
    """Kind and restoration facts of one column, from its values and name.

    Survival pairs and sites are recognised by :func:`infer_roles`, which sees all columns.
    """
    dtype = dtype_name(series)
    if is_identifier(name, series):
        return ColumnMetadata(kind="identifier", dtype=dtype)
    values = series.dropna()
    big = big_integers(series)
    if big is not None and len(big) <= MAX_BIG_INTEGER_CODES:
        # Codes beyond float64's exact integers: categories keep every digit.
        return ColumnMetadata(kind="categorical", dtype=dtype, categories=sorted(big))
    if pd.api.types.is_datetime64_any_dtype(series):  # dates: days, back in the dtype
        col = numeric_metadata(dtype, days_since_epoch(values))
        col.extra[ENCODING_KEY] = {"as": "datetime"}
        return col
    if pd.api.types.is_timedelta64_dtype(series):  # time spans: days, back in the dtype
        col = numeric_metadata(dtype, read_numbers(values))
        col.extra[ENCODING_KEY] = {"as": "timedelta"}
        return col
    as_numbers = numeric_view(series)
    if as_numbers is not None:
        distinct = set(np.unique(as_numbers.dropna().to_numpy()))
        if pd.api.types.is_bool_dtype(series) or (distinct and distinct <= {0.0, 1.0}):
            group = "genomic" if gene_symbol(name) else None
            categories = [False, True] if pd.api.types.is_bool_dtype(series) else [0, 1]
            return ColumnMetadata(kind="binary", dtype=dtype, categories=categories, group=group)
        return numeric_metadata(dtype, as_numbers)
    reading = read_text(series)
    if reading is not None and text_kind(reading) == "numeric":
        return text_numeric_metadata(dtype, reading)
    labels = text_labels(values)
    if reading is not None and reading.all_read:
        # Codes written as text: categories in the order of the numbers ("2" before "10"),
        # then any missing-value marker ("n/a") the column writes as text.
        numbers = reading.numbers[series.notna()]
        order = numbers.groupby(labels).first().sort_values(kind="stable", na_position="last")
        return ColumnMetadata(kind="categorical", dtype=dtype, categories=list(order.index))
    return ColumnMetadata(kind="categorical", dtype=dtype, categories=sorted_categories(labels))


def text_kind(reading: TextReading) -> str:
    """The kind of a text column from how its values read (:func:`read_text`).

    ``"numeric"`` for dates, for numbers written with decimals or censoring marks, for whole
    numbers with more than :data:`MAX_TEXT_CODES` distinct values and no leading zero, and for
    numbers with a few stray entries (the checks then name those); ``"categorical"`` for codes
    (few whole numbers, or leading zeros) and for other text.
    """
    if reading.all_read:
        if reading.is_date or not reading.whole:
            return "numeric"
        codes = reading.leading_zeros or reading.numbers.nunique() <= MAX_TEXT_CODES
        return "categorical" if codes else "numeric"
    # Numbers read as text because of a few stray entries ("haemolysed"): call the column
    # numeric so that the checks name the stray entries instead of learning 500 categories.
    return "numeric" if reading.mostly_read() else "categorical"


def text_numeric_metadata(dtype: str, reading: TextReading) -> ColumnMetadata:
    """Numeric column facts of a text column read as numbers, with the text's encoding."""
    col = numeric_metadata(dtype, reading.numbers.dropna())
    col.extra[ENCODING_KEY] = dict(reading.encoding)
    return col


def _reads_as_numbers(series: pd.Series) -> bool:
    """Text that reads as numbers or dates (mostly): measurements, not identifiers."""
    reading = read_text(series)
    return reading is not None and (reading.all_read or reading.mostly_read())


def numeric_metadata(dtype: str, values: pd.Series) -> ColumnMetadata:
    """Numeric column facts (bounds, whole numbers) of float values."""
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return ColumnMetadata(kind="numeric", dtype=dtype, integer=False)
    whole = bool(np.all(np.mod(finite.to_numpy(), 1.0) == 0.0))
    return ColumnMetadata(
        kind="numeric",
        dtype=dtype,
        integer=whole,
        decimals=0 if whole else recorded_decimals(finite.to_numpy()),
        bounds=(float(finite.min()), float(finite.max())),
    )


def recorded_decimals(values: np.ndarray, max_decimals: int = 4) -> int | None:
    """Decimals to which the values were recorded (``None`` beyond ``max_decimals``)."""
    sample = values[:10_000]
    for decimals in range(max_decimals + 1):
        scaled = sample * 10.0**decimals
        if np.allclose(scaled, np.round(scaled), rtol=0, atol=1e-6 * max(1.0, 10.0**decimals)):
            return decimals
    return None


def sorted_categories(values: pd.Series) -> list:
    """Distinct values in a stable order: the declared order of a categorical, else sorted."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        present = set(values.unique())
        return [c for c in values.cat.categories if c in present]
    unique = list(pd.unique(values))
    try:
        return sorted(unique)
    except TypeError:  # mixed types: keep first-seen order, the checks report the mix
        return unique


def infer_roles(
    df: pd.DataFrame, columns: dict[str, ColumnMetadata]
) -> tuple[str | None, str | None, str | None]:
    """Find the survival pair and the site column by name among the inferred columns.

    Returns ``(duration, event, site)``; a role is ``None`` when no column, or more than one,
    fits it (the user then names it).
    """
    event_candidates = [
        c
        for c, m in columns.items()
        if name_tokens(c) & EVENT_TOKENS
        and (
            m.kind == "binary"
            or (m.kind == "categorical" and event_labels(df[c]) is not None)
            or (_only_survival_words(c) and competing_codes(df[c]) is not None)
        )
    ]
    # A 0..K event column is numeric and may be named like a duration ("os_status").
    duration_candidates = [
        c
        for c, m in columns.items()
        if m.kind == "numeric" and not m.group and _names_duration(c) and c not in event_candidates
    ]
    if len(event_candidates) > 1:
        # "NodalStatus" is a clinical variable: keep names made only of survival words.
        event_candidates = [c for c in event_candidates if _only_survival_words(c)]
    if len(duration_candidates) > 1:
        exact = [c for c in duration_candidates if _only_survival_words(c)]
        duration_candidates = exact or duration_candidates
    duration = event = None
    if len(event_candidates) == 1 and len(duration_candidates) == 1:
        duration, event = duration_candidates[0], event_candidates[0]
    elif len(event_candidates) == 1 and len(duration_candidates) > 1:
        # Prefer the duration that shares a prefix with the event ("os_months" with "os_status").
        prefix = _name_parts(event_candidates[0])[:1]
        same = [c for c in duration_candidates if _name_parts(c)[:1] == prefix]
        if len(same) == 1:
            duration, event = same[0], event_candidates[0]
    site_candidates = [
        c
        for c, m in columns.items()
        if m.kind in {"categorical", "numeric", "binary"}
        and name_tokens(c) & SITE_TOKENS
        and df[c].nunique(dropna=True) <= max(50, int(0.05 * len(df)))
    ]
    site = site_candidates[0] if len(site_candidates) == 1 else None
    return duration, event, site


def survival_notes(df: pd.DataFrame, columns: dict[str, ColumnMetadata]) -> list[Problem]:
    """Warnings for a survival pair the rules could not set: an event-named column next to a
    duration whose values are not one censored and one event code (0/1/2 competing risks, R's
    1/2, free labels). Each says how to declare the pair; none when the pair is set."""
    kinds = {c: m.kind for c, m in columns.items()}
    if "event" in kinds.values():
        return []
    durations = [c for c, k in kinds.items() if k == "duration"] or [
        c for c, m in columns.items() if m.kind == "numeric" and not m.group and _names_duration(c)
    ]
    if not durations:
        return []
    duration = durations[0]
    notes = []
    for name, col in columns.items():
        if col.kind not in {"numeric", "categorical", "binary"} or name == duration:
            continue
        if not (name_tokens(name) & EVENT_TOKENS and _only_survival_words(name)):
            continue
        codes = sorted((_plain(v) for v in pd.unique(df[name].dropna())), key=str)[:8]
        numbers = numeric_view(df[name])
        usable = event_labels(df[name]) is not None or competing_codes(df[name]) is not None
        if usable or len(codes) < 2 or set(codes) <= {0, 1}:
            continue  # a usable event: the pair is only ambiguous (two durations...)
        if numbers is None:
            event_code = codes[-1]
        else:  # R's survival codes 1 = censored, 2 = event; else the first code above 0
            event_code = 2 if set(codes) == {1, 2} else min(c for c in codes if c > 0)
        recoded = f"{name}_event"
        notes.append(
            Problem(
                name,
                f"looks like a survival event next to the duration {duration!r}, but its "
                f"values {codes} are not one censored and one event code (0 = censored, "
                "1 = event), so no survival pair is set"
                + (
                    " (competing risks need codes 0 = censored, 1..K = causes)"
                    if len(codes) > 2
                    else ""
                )
                + f". Make a 0/1 column for the event of interest, e.g. df[{recoded!r}] = "
                f"(df[{name!r}] == {event_code!r}).astype(int), and declare the pair: "
                f"Metadata.infer(df, duration={duration!r}, event={recoded!r}) (command line: "
                f"--duration {duration} --event {recoded}; web app: set the kinds to duration "
                "and event)",
            )
        )
    return notes


def _plain(value: object) -> object:
    """A NumPy scalar as the Python value it holds (``1``, not ``np.int64(1)``, in messages)."""
    return value.item() if isinstance(value, np.generic) else value


def _name_parts(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    return [p for p in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if p]


def _names_duration(name: str) -> bool:
    parts = _name_parts(name)
    return bool(set(parts) & DURATION_TOKENS or "".join(parts) in DURATION_TOKENS) or (
        bool(parts) and parts[-1] in TIME_UNITS
    )


def _only_survival_words(name: str) -> bool:
    words = DURATION_TOKENS | TIME_UNITS | EVENT_TOKENS | {"overall", "free", "progression"}
    return all(part in words for part in _name_parts(name))
