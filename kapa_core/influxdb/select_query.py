"""A batch task's InfluxQL ``SELECT``, completed for each run the way Kapacitor does it.

Kapacitor parses the query of ``batch|query('SELECT ...')`` with its InfluxQL parser and,
for every run, ANDs ``time >= start AND time < stop`` onto the ``WHERE`` condition,
replaces the ``GROUP BY`` dimensions with those of ``.groupBy()`` (always: a ``GROUP BY``
written in the query text is dropped) and sets ``fill()`` when ``.fill()`` is used.

kapa-core does the same on the query *text*, without a full InfluxQL parser: a small
scanner splits the statement into its top-level clauses (it skips over strings, quoted
identifiers, regexes, comments and anything in parentheses, such as function calls)
and the statement is rebuilt as::

    <SELECT ... FROM ...> WHERE (<condition>) AND time >= '<start>' AND time < '<stop>'
        [GROUP BY <dims>] [fill(...)] [ORDER BY ...] [LIMIT ...] [OFFSET ...]
        [SLIMIT ...] [SOFFSET ...] [tz(...)]

Anything else in the query (field expressions, functions, measurement names) is sent to
InfluxDB untouched, so a mistake there is reported by InfluxDB when the query runs.
What Kapacitor's parser refuses is refused when the task starts (see
``kapa_core/engine/nodes/query.py``): not one SELECT, no FROM, a subquery (the InfluxQL
of Kapacitor 1.5.7 has none), and a transformation (``derivative`` of ``mean``...)
without a ``GROUP BY time()`` in the query's own text, which InfluxQL checks before the
task's dimensions replace that GROUP BY.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kapa_core.models.batch import format_time

#: Clauses after FROM, in InfluxQL grammar order.
_CLAUSES = ("where", "group", "fill", "order", "limit", "offset", "slimit", "soffset", "tz")
#: Words after which a ``/`` starts a regex rather than a division.
_REGEX_AFTER = {"from", "select", "where", "and", "or", "by", "=~", "!~", ",", ".", "(",
                "not"}

_UNITS = (("w", 7 * 86_400_000_000_000), ("d", 86_400_000_000_000),
          ("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000),
          ("ms", 1_000_000), ("u", 1_000), ("ns", 1))


class QueryTextError(ValueError):
    """The query cannot be used by a batch task; the message says why. ``parsed``: the
    text is a query, just not one a batch task can run (Kapacitor's own words then)."""

    def __init__(self, message: str, *, parsed: bool = False) -> None:
        super().__init__(message)
        self.parsed = parsed


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class _Token:
    text: str
    start: int
    end: int
    depth: int


def _scan(text: str, *, unclosed: bool = False) -> list[_Token]:
    """Significant tokens (words, quoted text, operators) with their paren depth; with
    ``unclosed``, a ``(`` left open is not an error."""
    tokens: list[_Token] = []
    i, depth, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise QueryTextError("unterminated /* comment in query")
            i = end + 2
            continue
        start = i
        if c in "'\"" or (c == "/" and (not tokens or tokens[-1].text.lower() in
                                         _REGEX_AFTER)):
            i += 1
            while i < n and text[i] != c:
                i += 2 if text[i] == "\\" else 1
            if i >= n:
                what = {"'": "string", '"': "quoted identifier", "/": "regex"}[c]
                raise QueryTextError(f"unterminated {what} in query at character {start}")
            i += 1
        elif c.isalnum() or c == "_":
            while i < n and (text[i].isalnum() or text[i] in "_."):
                # a dot joins numbers (1.5) but separates identifiers (db.rp.m)
                if text[i] == "." and not text[start].isdigit():
                    break
                i += 1
        elif text.startswith(("=~", "!~", "!=", "<>", "<=", ">="), i):
            i += 2
        else:
            i += 1
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth < 0:
                    raise QueryTextError(f"unbalanced ')' in query at character {start}")
        tokens.append(_Token(text[start:i], start, i, depth if c != "(" else depth - 1))
    if depth and not unclosed:
        raise QueryTextError("unbalanced '(' in query")
    return tokens


def _word(token: _Token) -> str:
    return token.text.lower()


def format_duration(ns: int) -> str:
    """An InfluxQL duration literal: the largest unit that divides ``ns`` (``90s``)."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    magnitude = abs(ns)
    for unit, size in _UNITS:
        if magnitude % size == 0:
            return f"{sign}{magnitude // size}{unit}"
    return f"{sign}{magnitude}ns"  # pragma: no cover - ns always divides


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return text


def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_fill(fill: Any) -> str:
    if isinstance(fill, str):
        return f"fill({fill})"
    if isinstance(fill, float) and fill.is_integer():
        return f"fill({int(fill)})"
    return f"fill({fill!r})"


#: InfluxQL keywords, which cannot stand where an identifier is expected.
_KEYWORDS = frozenset("""all alter any as asc begin by create continuous database databases
default delete desc destinations diagnostics distinct drop duration end every explain
field for from grant grants group groups in inf insert into key keys kill limit
measurement measurements name offset on order password policy policies privileges
queries query read replication resample retention revoke select series set show shard
shards slimit soffset stats subscription subscriptions tag to user users values where
with write and or""".split())
_OPERATORS = frozenset(["+", "-", "*", "/", "%", "&", "|", "^", "=", "!=", "<>", "<",
                        "<=", ">", ">=", "=~", "!~", "and", "or"])


class _Reader:
    """Reads InfluxQL expressions over the scanned tokens as InfluxQL's parser does:
    operands (names, literals, calls, parenthesized expressions, unary signs) joined by
    binary operators. What the parser would refuse is refused with its words."""

    def __init__(self, original: str, tokens: list[_Token]) -> None:
        self.original = original
        self.tokens = tokens
        self.n = len(tokens)

    def at(self, i: int) -> _Token | None:
        return self.tokens[i] if i < self.n else None

    def expected(self, i: int, what: str) -> QueryTextError:
        return QueryTextError(_found(self.original, self.at(i), what))

    def expr(self, i: int) -> int:
        """The index after the expression starting at ``i``."""
        i = self.operand(i)
        while i < self.n and _word(self.tokens[i]) in _OPERATORS:
            i = self.operand(i + 1)
        return i

    def operand(self, i: int) -> int:
        tokens, n = self.tokens, self.n
        while i < n and tokens[i].text in ("-", "+"):
            i += 1
        if i < n and _word(tokens[i]) == "distinct":
            i += 1
        if i >= n or _word(tokens[i]) in _KEYWORDS or tokens[i].text in (",", ")", ";"):
            raise self.expected(i, "identifier, string, number, bool")
        token = tokens[i]
        i += 1
        if token.text == "(":
            i = self.expr(i)
            if i >= n or tokens[i].text != ")":
                raise self.expected(i, ")")
            return i + 1
        if i < n and tokens[i].text == "(" and token.text[:1].isalnum():
            i += 1
            if i < n and tokens[i].text == ")":
                return i + 1
            while True:
                i = self.expr(i)
                if i < n and tokens[i].text == ",":
                    i += 1
                    continue
                if i < n and tokens[i].text == ")":
                    return i + 1
                raise self.expected(i, ")")
        if i + 2 < n and tokens[i].text == tokens[i + 1].text == ":" and \
                tokens[i + 1].start == tokens[i].end:
            i += 3  # a name::type cast (not allowed after a call)
        return i

    def fields(self) -> _Token | None:
        """The first token after the field list of a SELECT: expressions with an
        optional ``AS alias``, separated by commas."""
        i = 1
        while True:
            i = self.expr(i)
            if i < self.n and _word(self.tokens[i]) == "as":
                if i + 1 >= self.n or _word(self.tokens[i + 1]) in _KEYWORDS:
                    raise self.expected(i + 1, "identifier")
                i += 2
            if i < self.n and self.tokens[i].text == ",":
                i += 1
                continue
            return self.at(i)


def _field_list_end(original: str, tokens: list[_Token]) -> _Token | None:
    return _Reader(original, tokens).fields()


def _found(original: str, token: _Token | None, expected: str) -> str:
    """InfluxQL's parse error: ``found X, expected Y at line L, char C`` (1-based, in
    the query as the task gave it)."""
    lead = len(original) - len(original.lstrip())
    if token is None:  # InfluxQL's scanner places EOF one past the end of the text
        where, shown = len(original) + 1, "EOF"
    else:
        where = lead + token.start
        shown = token.text
        if shown[:1] == '"' and shown[-1:] == '"' and len(shown) > 1:
            shown = _unquote(shown)
        elif shown[:1] == "'" and shown[-1:] == "'" and len(shown) > 1:
            shown = shown[1:-1].replace("\\'", "'")
            where -= 1  # InfluxQL places a string one character before its quote
        elif shown.lower() in _KEYWORDS:
            shown = shown.upper()
        elif shown == ":" and original[where + 1:where + 2] == ":":
            shown = "::"
    line = original.count("\n", 0, where) + 1
    char = where - (original.rfind("\n", 0, where) + 1) + 1
    return f"found {shown}, expected {expected} at line {line}, char {char}"


#: InfluxQL functions applied to the series of another function's buckets.
_TRANSFORMATIONS = ("derivative", "non_negative_derivative", "difference", "moving_average",
                    "cumulative_sum", "elapsed", "holt_winters", "holt_winters_with_fit")
_GROUP_BY_TIME = re.compile(r"(?:^|,)\s*time\s*\(", re.IGNORECASE)


def _check_aggregates(fields: list[_Token], group_by: str, condition: str) -> None:
    """InfluxQL's checks, done when the query is parsed (so on the query's own text, whose
    GROUP BY a batch task then replaces): a transformation of an aggregate needs a
    ``GROUP BY time()``, and with one, a transformation needs an aggregate inside; a
    ``GROUP BY time()`` needs an aggregate, and then a condition on time."""
    by_time = bool(_GROUP_BY_TIME.search(group_by))
    for i, token in enumerate(fields[:-1]):
        name = _word(token)
        if name not in _TRANSFORMATIONS or fields[i + 1].text != "(":
            continue
        nested = i + 3 < len(fields) and fields[i + 3].text == "(" and \
            fields[i + 2].text[:1].isalpha()
        if nested and not by_time:
            raise QueryTextError(f"{name} aggregate requires a GROUP BY interval")
        if not nested and name.startswith("holt_winters"):
            raise QueryTextError(f"must use aggregate function with {name}")
        if not nested and by_time:
            raise QueryTextError(f"aggregate function required inside the call to {name}")
    if not by_time:
        return
    calls = any(fields[i + 1].text == "(" and fields[i].text[:1].isalpha()
                for i in range(len(fields) - 1))
    if not calls:
        raise QueryTextError("GROUP BY requires at least one aggregate function")
    if not any(_word(t) in ("time", '"time"') for t in _scan(condition)):
        raise QueryTextError("aggregate functions with GROUP BY time require a WHERE time "
                             "clause")


@dataclass(frozen=True)
class TimeGroup:
    """``GROUP BY time(interval, offset)``."""

    interval: int
    offset: int = 0


class SelectQuery:
    """A batch query's text split into clauses, ready to be rendered for each run.

    ``dimensions`` holds tag names, ``"*"`` and at most one :class:`TimeGroup`;
    ``fill`` is None (keep the query's own), a fill keyword or a number;
    ``align_group`` sets the time group's offset to ``start`` modulo its interval.
    """

    def __init__(self, text: str, dimensions: list[str | TimeGroup] | None = None,
                 fill: Any = None, *, align_group: bool = False) -> None:
        self.text = text.strip().rstrip(";").strip()
        tokens = _scan(self.text, unclosed=True)
        if tokens and _word(tokens[0]) == "select":
            _field_list_end(text, tokens)  # InfluxQL's words for broken fields
        tokens = _scan(self.text)
        statements = 1 + sum(1 for i, t in enumerate(tokens) if t.text == ";"
                             and t.depth == 0 and i + 1 < len(tokens)
                             and tokens[i + 1].text != ";")
        if statements != 1:
            raise QueryTextError("query must be a single select statement, got "
                                 f"{statements} statements", parsed=True)
        if not tokens or _word(tokens[0]) != "select":
            raise QueryTextError("query is not a select statement "
                                 f"{_go_quote(self.text)}", parsed=True)
        clauses: dict[str, tuple[int, int]] = {}  # name -> (keyword start, body start)
        seen_from = False
        from_index = len(tokens)
        for i, token in enumerate(tokens):
            if token.depth:
                continue
            word = _word(token)
            if word == "from" and not seen_from:
                seen_from = True
                from_index = i
                following = tokens[i + 1] if i + 1 < len(tokens) else None
                if following is not None and following.text == "(":
                    # InfluxQL as Kapacitor 1.5.7 parses it has no subqueries.
                    line = self.text.count("\n", 0, following.start) + 1
                    column = following.start - self.text.rfind("\n", 0, following.start)
                    raise QueryTextError(f"found (, expected identifier at line {line}, "
                                         f"char {column}")
                continue
            if not seen_from or word not in _CLAUSES or word in clauses:
                continue
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            if word in ("group", "order"):
                if following is None or _word(following) != "by":
                    continue
                clauses[word] = (token.start, following.end)
            elif word in ("fill", "tz"):
                if following is None or following.text != "(":
                    continue
                clauses[word] = (token.start, token.start)
            else:
                clauses[word] = (token.start, token.end)
        found = _field_list_end(text, tokens)
        if found is None or _word(found) != "from":
            raise QueryTextError(_found(text, found, "FROM"))
        if from_index + 1 >= len(tokens) or _word(tokens[from_index + 1]) in _KEYWORDS:
            found = tokens[from_index + 1] if from_index + 1 < len(tokens) else None
            raise QueryTextError(_found(text, found, "identifier"))
        order = sorted(clauses.items(), key=lambda item: item[1][0])
        bounds: dict[str, str] = {}
        for index, (name, (_, body)) in enumerate(order):
            end = order[index + 1][1][0] if index + 1 < len(order) else len(self.text)
            bounds[name] = self.text[body:end].strip()
        self.head = self.text[:order[0][1][0]].strip() if order else self.text
        _check_aggregates(tokens[1:from_index], bounds.get("group", ""),
                          bounds.get("where", ""))
        self.condition = bounds.get("where", "")
        if "where" in clauses:
            after = next((k for k, t in enumerate(tokens) if t.start >= clauses["where"][1]),
                         len(tokens))
            end = _Reader(text, tokens).expr(after)
            if end < len(tokens) and _word(tokens[end]) not in _CLAUSES:
                raise QueryTextError(_found(text, tokens[end], ";"))
        for name in ("limit", "offset", "slimit", "soffset"):
            if name in clauses:
                value = next((t for t in tokens if t.start >= clauses[name][1]), None)
                if value is None or not value.text.isdigit():
                    raise QueryTextError(_found(text, value, "integer"))
        self.own_fill = bounds.get("fill", "")
        self.tail = " ".join(bounds[name] if name in ("fill", "tz") else
                             f"{name.upper()}{' BY' if name == 'order' else ''} "
                             f"{bounds[name]}"
                             for name, _ in order if name in ("order", "limit", "offset",
                                                             "slimit", "soffset", "tz"))
        self.dimensions = list(dimensions or [])
        times = [d for d in self.dimensions if isinstance(d, TimeGroup)]
        if len(times) > 1:
            raise QueryTextError("groupBy cannot have more than one time dimension")
        self.time_group = times[0] if times else None
        self.fill = fill
        self.align_group = align_group

    def sources(self) -> list[tuple[str, str] | None]:
        """The database and retention policy each ``FROM`` source names: ``(db, rp)``
        for a ``db.rp.m`` name (``rp`` "" in ``db..m``), None for a source that names no
        database (``m``, ``rp.m``, a subquery)."""
        tokens = _scan(self.head)
        start = next((i for i, t in enumerate(tokens) if t.depth == 0
                      and _word(t) == "from"), len(tokens))
        sources: list[list[_Token]] = [[]]
        for token in tokens[start + 1:]:
            if token.text == "," and token.depth == 0:
                sources.append([])
            else:
                sources[-1].append(token)
        out: list[tuple[str, str] | None] = []
        for source in sources:
            if any(t.text in "()" for t in source):
                out.append(None)
                continue
            parts = [""]
            for token in source:
                if token.text == ".":
                    parts.append("")
                else:
                    parts[-1] += _unquote(token.text)
            out.append((parts[0], parts[1]) if len(parts) == 3 else None)
        return out

    @property
    def grouped_by_time(self) -> bool:
        return self.time_group is not None

    def render(self, start: int, stop: int) -> str:
        """The statement for the run covering ``[start, stop)`` (Unix nanoseconds)."""
        window = f"time >= '{format_time(start)}' AND time < '{format_time(stop)}'"
        where = f"({self.condition}) AND {window}" if self.condition else window
        parts = [self.head, "WHERE", where]
        if self.dimensions:
            dims = []
            for d in self.dimensions:
                if isinstance(d, TimeGroup):
                    offset = start % d.interval if self.align_group else d.offset
                    dims.append(f"time({format_duration(d.interval)}, "
                                f"{format_duration(offset)})")
                elif d == "*":
                    dims.append("*")
                else:
                    dims.append(quote_ident(d))
            parts.append("GROUP BY " + ", ".join(dims))
        if self.fill is not None:
            parts.append(format_fill(self.fill))
        elif self.own_fill:
            parts.append(self.own_fill)
        if self.tail:
            parts.append(self.tail)
        return " ".join(parts)
