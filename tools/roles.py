"""Column roles: what each column *means*, so tools aggregate it the way its meaning allows.

A number is not automatically something to add up. Summing revenue over a month is right;
summing a temperature, a unit price or an account balance over a month is a wrong number that
looks plausible. So every column gets a role, inferred from its name (split into words, so
``unitPrice``, ``unit_price`` and ``Unit Price`` read alike) and checked against its values:

========================  ==============================================  ===================
role                      examples                                        aggregation
========================  ==============================================  ===================
``identifier``            ``order_id``, ``sku``, ``sensor_id``            rows / distinct
``category``              ``region``, ``station``, ``ticker``             group-by key
``time``                  ``order_date``, ``timestamp``, ``year``         period key
``additive``              revenue, amount, quantity, count, rainfall      **sum** (and mean)
``non_additive``          price, rate, temperature, humidity, score       **mean** / median
``level``                 balance, stock on hand, closing price           **first / last / change**
``text``                  free text                                       none
========================  ==============================================  ===================

A numeric column with no hint is ``non_additive``: its mean is always a meaningful number,
its sum often is not, and the reason says so. Levels (snapshots of a stock) carry ``across``:
how rows at the *same* moment combine — balances and inventory add across accounts or
warehouses (``sum``), closing prices of several tickers do not (``mean``).

The rules are a small, stated table rather than a library: no maintained package infers
additivity from column names, and a reader must be able to check a role by reading this file.
Where they guess wrong, a role the user declared (:mod:`relaygraph.tools.declared`) wins, and
its reason says it was declared.
"""

from __future__ import annotations

import dataclasses

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pandas as pd
from relaygraph.tools import frames
from relaygraph.tools.declared import ATTRS_KEY, ROLES, DeclaredRoleError, Role, check_columns, parse_roles

__all__ = ["ROLES", "ColumnRole", "Role", "column_role", "declare", "declared_roles", "infer_roles", "role_of"]

MEASURES: tuple[Role, ...] = ("additive", "non_additive", "level")

IDENTIFIER_WORDS = {"id", "uuid", "guid", "sku", "code", "zip", "zipcode", "postcode", "ean", "isbn", "key"}
TIME_WORDS = {"year", "month", "week", "day", "hour", "minute", "quarter", "weekday", "epoch", "timestamp", "unix"}
#: Words that make any measure an average or ratio, whatever noun follows ("avg_revenue").
RATIO_MODIFIERS = {"avg", "average", "mean", "median", "rate", "ratio", "pct", "percent", "percentage",
                   "per", "share", "index", "unit"}
ADDITIVE_WORDS = {
    "revenue", "sales", "amount", "amt", "total", "sum", "cost", "costs", "spend", "spent", "expense",
    "expenses", "profit", "income", "loss", "losses", "fee", "fees", "tax", "taxes", "paid", "payment",
    "payments", "refund", "refunds", "quantity", "qty", "units", "count", "counts", "cnt", "num", "orders",
    "visits", "views", "clicks", "impressions", "sessions", "downloads", "calls", "transactions", "items",
    "sold", "volume", "precipitation", "rainfall", "rain", "snowfall", "snow", "energy", "kwh", "consumption",
    "usage", "distance", "deaths", "cases", "births", "hours", "minutes", "seconds", "duration", "sent",
    "received", "shipped", "returned", "returns", "gmv", "turnover", "earnings", "salary", "wages", "donations",
}
LEVEL_SUMMABLE = {"balance", "balances", "inventory", "stock", "onhand", "holdings", "headcount", "population",
                  "backlog", "outstanding", "equity", "reserves", "cumulative"}
LEVEL_AVERAGED = {"close", "closing", "adjclose", "nav", "level", "odometer", "meter"}
NON_ADDITIVE_WORDS = {
    "price", "prices", "temperature", "temp", "celsius", "fahrenheit", "dewpoint", "dew", "humidity",
    "pressure", "speed", "velocity", "wind", "gust", "rating", "score", "age", "latitude", "lat",
    "longitude", "lon", "lng", "discount", "margin", "ph", "voltage", "battery", "signal", "rssi",
    "density", "concentration", "ppm", "pm25", "pm10", "co2", "aqi", "bpm", "heartrate", "efficiency",
    "utilization", "utilisation", "occupancy", "probability", "elevation", "altitude", "depth", "yield",
    "apr", "interest", "open", "high", "low", "weight", "height", "width", "length", "size", "reading",
    "value", "visibility", "uv", "cloud", "cover", "rpm", "frequency", "load",
}
#: Names of the things a level is read *of* (a store's stock, a ticker's close, an account's
#: balance): in a long table such a column tells the level's series apart.
SERIES_WORDS = {"ticker", "symbol", "store", "shop", "branch", "outlet", "account", "station", "sensor",
                "device", "warehouse", "site", "location", "plant", "portfolio", "fund", "asset", "sku",
                "product", "item", "customer", "client", "user", "entity", "machine", "vehicle", "patient",
                "country", "state", "city", "region", "company", "bank", "wallet", "team", "member"}
#: Interval scales: a change is meaningful, a percentage change is not (2 °C → 4 °C is not +100%).
INTERVAL_WORDS = {"temperature", "temp", "celsius", "fahrenheit", "dewpoint", "dew", "latitude", "lat",
                  "longitude", "lon", "lng", "elevation", "altitude"}
#: Measures that cannot be negative by what they are: a negative one is a data-entry error.
NON_NEGATIVE_WORDS = {"quantity", "qty", "units", "count", "counts", "cnt", "price", "prices", "age",
                      "precipitation", "rainfall", "rain", "snowfall", "snow", "humidity", "visits", "views",
                      "clicks", "impressions", "sessions", "downloads", "items"}
#: Measures bounded above by what they are (relative humidity is a percentage).
UPPER_BOUNDS = {"humidity": 100.0}


@dataclass(frozen=True)
class ColumnRole:
    """One column's role, why it was chosen, and what that implies for aggregation and cleaning."""

    column: str
    role: Role
    reason: str
    across: Literal["sum", "mean"] | None = None  # levels: how rows at one moment combine
    interval: bool = False  # a percentage change is meaningless (temperatures, coordinates)
    minimum: float | None = None  # a value below is invalid by the column's meaning
    maximum: float | None = None
    declared: bool = False  # the user declared this role (it was not inferred)

    @property
    def rule(self) -> str:
        """The per-group / per-period aggregation this role allows: sum, mean or last."""
        return {"additive": "sum", "non_additive": "mean", "level": "last"}.get(self.role, "rows")

    @property
    def is_measure(self) -> bool:
        return self.role in MEASURES


def words(name: object) -> list[str]:
    """Lower-case words of a column name: ``'unitPrice'``, ``'Unit Price'``, ``'unit_price'`` alike."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    found = [w for w in re.split(r"[^A-Za-z0-9]+", text.lower()) if w]
    joined = "".join(found)
    # compound spellings written as one word
    for compound in ("onhand", "adjclose", "heartrate", "dewpoint", "zipcode", "postcode"):
        if compound in joined and compound not in found:
            found.append(compound)
    return found


def _bounds(tokens: set[str]) -> tuple[float | None, float | None]:
    minimum = 0.0 if tokens & NON_NEGATIVE_WORDS else None
    maximums = [UPPER_BOUNDS[t] for t in tokens if t in UPPER_BOUNDS]
    return minimum, (min(maximums) if maximums else None)


def numeric_role(name: str, series: pd.Series) -> ColumnRole:
    """The role of a numeric column, from its name first and its values second."""
    tokens = words(name)
    present = set(tokens)
    last = tokens[-1] if tokens else ""
    minimum, maximum = _bounds(present)
    interval = bool(present & INTERVAL_WORDS)

    def measure(role: Role, reason: str, across: Literal["sum", "mean"] | None = None) -> ColumnRole:
        return ColumnRole(name, role, reason, across, interval, minimum, maximum)

    if last in IDENTIFIER_WORDS or str(name).lower() == "id":
        return ColumnRole(name, "identifier", f"named like an identifier ({last!r})")
    if present & TIME_WORDS and (series.dropna() % 1 == 0).all():
        return ColumnRole(name, "time", f"a whole-number time component ({min(present & TIME_WORDS)!r})")
    if present & {"stock", "share"} and present & {"price", "prices", "close", "closing"}:
        return measure("level", "a traded price: a level over time", "mean")
    if modifier := present & (RATIO_MODIFIERS - {"unit"}):
        return measure("non_additive", f"a ratio or average ({min(modifier)!r})")
    if "unit" in present and present & {"price", "cost", "prices", "costs", "value", "margin"}:
        return measure("non_additive", "a per-unit value")
    if level := present & LEVEL_SUMMABLE:
        return measure("level", f"a stock held at a moment ({min(level)!r}): adds across items, "
                       "not over time", "sum")
    if level := present & LEVEL_AVERAGED:
        return measure("level", f"a level read at a moment ({min(level)!r})", "mean")
    if additive := present & ADDITIVE_WORDS:
        return measure("additive", f"an amount, count or quantity ({min(additive)!r})")
    if intensive := present & NON_ADDITIVE_WORDS:
        return measure("non_additive", f"an intensive quantity ({min(intensive)!r})")
    values = series.dropna()
    if len(values) and values.between(0, 1).all() and not (values % 1 == 0).all():
        return measure("non_additive", "values between 0 and 1: a rate or share")
    return measure("non_additive", "no name hint: averaged, never summed, because its sum may mean nothing")


def text_role(name: str, series: pd.Series, date_col: str | None) -> ColumnRole:
    if name == date_col:
        return ColumnRole(name, "time", "values parse as dates")
    tokens = words(name)
    values = series.dropna()
    distinct = values.nunique()
    if (tokens and tokens[-1] in IDENTIFIER_WORDS) or str(name).lower() == "id":
        return ColumnRole(name, "identifier", f"named like an identifier ({tokens[-1]!r})")
    if distinct <= 50 or (len(values) and distinct <= 0.5 * len(values)):
        return ColumnRole(name, "category", f"{distinct} distinct values in {len(values)} rows")
    if len(values) and distinct >= 0.9 * len(values):
        return ColumnRole(name, "identifier", "values are (almost) all distinct")
    return ColumnRole(name, "text", "many distinct text values")


def declare(frame: pd.DataFrame, roles: Mapping[str, str] | str, dataset: str = "the dataset") -> pd.DataFrame:
    """``frame`` with ``roles`` declared (they win over inference); an unknown column or role raises
    :class:`~relaygraph.tools.declared.DeclaredRoleError` listing what exists. Returns the frame."""
    checked = parse_roles(roles)
    check_columns(checked, frame.columns, dataset)
    frame.attrs[ATTRS_KEY] = checked
    return frame


def declared_roles(frame: pd.DataFrame) -> dict[str, Role]:
    """The roles declared for ``frame`` (see :func:`declare`)."""
    return dict(frame.attrs.get(ATTRS_KEY) or {})


def declared_role(frame: pd.DataFrame, column: str, role: Role, date_col: str | None) -> ColumnRole:
    """A declared role, with what its name still says (bounds, interval scale, how a level combines).

    A measure must be numeric; a level needs a time column to order its readings — either
    declaration is refused otherwise, with what to declare instead.
    """
    series = frame[column]
    why = f"declared by the user (roles={column}:{role}), not inferred"
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if role in MEASURES and not numeric:
        sample = next((str(v) for v in series.dropna() if str(v).strip()), None)
        such = f" such as {sample!r}" if sample is not None else ""
        raise DeclaredRoleError(f"roles declares {column!r} {role}, but it holds {series.dtype} values{such}, not "
                                f"numbers; write {column!r} as plain numbers (1234.56, no thousands marks) or "
                                "declare it category, identifier, time or text.")
    if role == "level" and date_col is None:
        raise DeclaredRoleError(f"roles declares {column!r} a level, but the dataset has no date column to order its "
                                "readings (latest/first/change would be row order); declare it non_additive.")
    if role not in MEASURES:
        return ColumnRole(column, role, why, declared=True)
    inferred = numeric_role(column, series)
    present = set(words(column))
    across: Literal["sum", "mean"] | None = None
    if role == "level":
        averaged = inferred.across == "mean" or bool(present & (NON_ADDITIVE_WORDS | LEVEL_AVERAGED))
        across = "mean" if averaged else "sum"
        why += f"; several series at one moment are {'averaged' if averaged else 'summed'}"
    return ColumnRole(column, role, why, across, inferred.interval, inferred.minimum, inferred.maximum,
                      declared=True)


def column_role(frame: pd.DataFrame, column: str, date_col: str | None = None) -> ColumnRole:
    declared = declared_roles(frame).get(str(column))
    if declared is not None:
        return declared_role(frame, column, declared, date_col)
    series = frame[column]
    if pd.api.types.is_datetime64_any_dtype(series):
        return ColumnRole(column, "time", "a date/time column")
    if pd.api.types.is_bool_dtype(series):
        return ColumnRole(column, "category", "true/false values")
    if pd.api.types.is_numeric_dtype(series):
        role = numeric_role(column, series)
        if role.role == "level" and date_col is None:
            # latest/first/change of a level need a time order; without one they are row order
            return dataclasses.replace(role, role="non_additive", across=None, reason=(
                f"{role.reason}; no time column to order readings by, so its mean and median "
                "(a latest/first/change would only be row order)"))
        return role
    return text_role(column, series, date_col)


def infer_roles(frame: pd.DataFrame) -> dict[str, ColumnRole]:
    """Every column's role (see the module table)."""
    date_col = frames.date_column(frame)
    return {str(c): column_role(frame, c, date_col) for c in frame.columns}


def role_of(frame: pd.DataFrame, column: str) -> ColumnRole:
    return column_role(frame, column, frames.date_column(frame))


def names_a_series(role: ColumnRole) -> bool:
    """An identifier, or a category named like a thing levels are read of (``ticker``, ``store``)."""
    return role.role == "identifier" or (role.role == "category" and bool(set(words(role.column)) & SERIES_WORDS))


def measure_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c, r in infer_roles(frame).items() if r.is_measure]


#: Preferred default metrics, best first: money, then other additive measures, levels, the rest.
PREFERRED = ("revenue", "sales", "amount", "total", "profit", "cost")


def default_metric(frame: pd.DataFrame) -> str:
    """The measure a report should lead with when nobody said which."""
    roles = [r for r in infer_roles(frame).values() if r.is_measure]
    if not roles:
        raise ValueError("The dataset has no numeric measure column to report on.")

    def rank(r: ColumnRole) -> tuple[int, int]:
        hinted = next((i for i, h in enumerate(PREFERRED) if h in words(r.column)), len(PREFERRED))
        return ({"additive": 0, "level": 1, "non_additive": 2}[r.role], hinted)

    return min(roles, key=rank).column


def category_columns(frame: pd.DataFrame, max_distinct: int = 50) -> list[str]:
    """Group-by keys: category columns with 2..max_distinct values.

    When the frame has none, an identifier whose values repeat — 2..max_distinct distinct values,
    at most half as many as there are rows, e.g. ``sensor_id``, ``store``, ``ticker`` in a long
    table of readings — is the key instead: it names the things the rows are about. An identifier
    of the rows themselves (``order_id``, all distinct) never is."""
    inferred = infer_roles(frame)
    found = [c for c, r in inferred.items()
             if r.role == "category" and 1 < frame[c].nunique(dropna=True) <= max_distinct]
    if found:
        return found
    rows = int(frame.shape[0])
    return [c for c, r in inferred.items()
            if r.role == "identifier" and 1 < (n := frame[c].nunique(dropna=True)) <= max_distinct and 2 * n <= rows]
