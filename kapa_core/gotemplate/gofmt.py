"""Go's ``fmt`` as templates see it: ``%v`` printing, the verbs, ``Sprint``/``Sprintln``.

``go_format(value)`` is ``fmt.Sprint(value)``: ``<nil>``, ``true``, ``map[a:1 b:2]`` (keys
sorted), ``[1 2 3]``, floats in Go's shortest ``%g`` form (``1``, ``0.5``, ``1e+06``,
``1e-05``, ``+Inf``), and ``value.go_string()`` for values modelling a Go ``fmt.Stringer``
(``Duration`` prints ``1m30s``, ``GoTime`` prints ``1970-01-01 00:00:01 +0000 UTC``).

``print_arg(Fmt(...), value, verb)`` formats one operand as ``fmt`` does for the verbs
``v T t d b o O x X c q U e E f F g G s`` with the flags ``+ - # 0 space``, width and
precision (``funcs.sprintf`` parses the format string around it), including the in-band
error form ``%!d(string=hi)``. Widths count characters; hex of strings uses UTF-8 bytes.
Floats are formatted as ``strconv.FormatFloat`` does (shortest digits from ``repr``).
"""

from __future__ import annotations

import math
import struct
from typing import Any

from kapa_core.gotemplate.gotime import NO_VALUE, type_name
from kapa_core.gotemplate.lexer import can_backquote, go_quote, quote_rune


# -- strconv.FormatFloat ----------------------------------------------------------------------
def _shortest(a: float) -> tuple[str, int]:
    """Shortest round-tripping digits of ``a > 0`` and the decimal point position."""
    mant, _, exp = repr(a).partition("e")
    whole, _, frac = mant.partition(".")
    raw = whole + frac
    digits = raw.lstrip("0")
    point = len(whole) + (int(exp) if exp else 0) - (len(raw) - len(digits))
    return digits.rstrip("0"), point


def _fmt_e(digits: str, point: int, prec: int, ch: str) -> str:
    text = digits[:1] or "0"
    if prec > 0:
        frac = digits[1:prec + 1]
        text += "." + frac + "0" * (prec - len(frac))
    exp = point - 1 if digits else 0
    return f"{text}{ch}{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _fmt_f(digits: str, point: int, prec: int) -> str:
    text = digits[:point] + "0" * (point - len(digits)) if point > 0 else "0"
    if prec > 0:
        text += "." + "".join(digits[j] if 0 <= j < len(digits) else "0"
                              for j in range(point, point + prec))
    return text


def _float_bits(value: float) -> tuple[bool, int, int]:
    bits = struct.unpack("<Q", struct.pack("<d", value))[0]
    exp = (bits >> 52) & 0x7FF
    mant = bits & ((1 << 52) - 1)
    if exp == 0:
        exp = 1
    else:
        mant |= 1 << 52
    return bool(bits >> 63), mant, exp - 1023


def _fmt_x(value: float, prec: int, fmt: str) -> str:
    """Go's ``%x`` of a float: ``-0x1.8p+01``."""
    mask = (1 << 64) - 1
    neg, mant, exp = _float_bits(value)
    if mant == 0:
        exp = 0
    mant = (mant << 8) & mask
    while mant and not mant & (1 << 60):
        mant = (mant << 1) & mask
        exp -= 1
    if 0 <= prec < 15:
        shift = prec * 4
        extra = (mant << shift) & ((1 << 60) - 1)
        mant >>= 60 - shift
        if extra | (mant & 1) > 1 << 59:
            mant += 1
        mant = (mant << (60 - shift)) & mask
        if mant & (1 << 61):
            mant >>= 1
            exp += 1
    hexd = "0123456789ABCDEF" if fmt == "X" else "0123456789abcdef"
    out = ["-" if neg else "", "0", fmt, str((mant >> 60) & 1)]
    mant = (mant << 4) & mask
    if (prec < 0 and mant) or prec > 0:
        out.append(".")
        count = 0
        while (prec < 0 and mant) or count < prec:
            out.append(hexd[(mant >> 60) & 15])
            mant = (mant << 4) & mask
            count += 1
    out.append("P" if fmt == "X" else "p")
    out.append(f"{'-' if exp < 0 else '+'}{abs(exp):02d}")
    return "".join(out)


def format_float(value: float, fmt: str, prec: int) -> str:
    """``strconv.FormatFloat(value, fmt, prec, 64)`` for fmt in ``b e E f g G x X``."""
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "+Inf" if value > 0 else "-Inf"
    if fmt == "b":
        neg, mant, exp = _float_bits(value)
        exp -= 52
        return f"{'-' if neg else ''}{mant}p{'+' if exp >= 0 else ''}{exp}"
    if fmt in "xX":
        return _fmt_x(value, prec, fmt)
    neg = math.copysign(1.0, value) < 0
    sign = "-" if neg else ""
    a = -value if neg else value
    if prec >= 0:
        return sign + format(a, f".{prec}{fmt}")
    digits, point = _shortest(a) if a else ("", 0)
    count = len(digits)
    if fmt in "eE":
        return sign + _fmt_e(digits, point, max(count - 1, 0), fmt)
    if fmt in "gG" and not -4 <= point - 1 < 6:  # shortest %g switches to %e at 1e+06
        return sign + _fmt_e(digits, point, count - 1, "e" if fmt == "g" else "E")
    return sign + _fmt_f(digits, point, max(count - point, 0))


def _sharp(num: str, verb: str, prec: int) -> str:
    """The ``#`` flag on floats: keep a decimal point and trailing zeros."""
    digits = (6 if prec == -1 else prec) if verb in "gGx" else 0
    tail = ""
    has_point = saw_nonzero = False
    for i in range(1, len(num)):
        c = num[i]
        if c == ".":
            has_point = True
        elif c in "pP" or (c in "eE" and verb not in "xX"):
            num, tail = num[:i], num[i:]
            break
        else:
            saw_nonzero = saw_nonzero or c != "0"
            if saw_nonzero:
                digits -= 1
    if not has_point:
        if len(num) == 2 and num[1] == "0":
            digits -= 1
        num += "."
    return num + "0" * max(digits, 0) + tail
# -- the fmt state and padding ----------------------------------------------------------------
class Fmt:
    __slots__ = ("erroring", "minus", "plus", "plus_v", "prec", "sharp", "sharp_v", "space",
                 "wid", "zero")

    def __init__(self) -> None:
        self.wid: int | None = None
        self.prec: int | None = None
        self.minus = self.plus = self.sharp = self.space = self.zero = False
        self.plus_v = self.sharp_v = self.erroring = False


_PLAIN = Fmt()


def _pad(f: Fmt, text: str, zero: bool | None = None) -> str:
    if not f.wid:
        return text
    missing = f.wid - len(text)
    if missing <= 0:
        return text
    fill = ("0" if f.zero else " ") if zero is None else ("0" if zero else " ")
    return text + fill * missing if f.minus else fill * missing + text


def _copy(f: Fmt, **changes: Any) -> Fmt:
    """A changed copy: a Fmt may be shared by cached format plans, so it is never mutated."""
    new = Fmt()
    for slot in Fmt.__slots__:
        setattr(new, slot, changes.get(slot, getattr(f, slot)))
    return new


def _bad_verb(f: Fmt, arg: Any, verb: str) -> str:
    if arg is None or arg is NO_VALUE:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(arg)}={print_arg(_copy(f, erroring=True), arg, 'v', 0)})"


# -- basic kinds ------------------------------------------------------------------------------
def _fmt_bool(f: Fmt, value: bool, verb: str) -> str:
    if verb in "tv":
        return _pad(f, "true" if value else "false")
    return _bad_verb(f, value, verb)


_BASES = {"d": (10, "d"), "v": (10, "d"), "b": (2, "b"), "o": (8, "o"), "O": (8, "o"),
          "x": (16, "x"), "X": (16, "X")}


def _fmt_integer(f: Fmt, value: int, verb: str) -> str:
    if verb in _BASES:
        base, code = _BASES[verb]
        negative = value < 0
        digits = format(-value if negative else value, code)
        prec = 0
        if f.prec is not None:
            prec = f.prec
            if prec == 0 and value == 0:
                return " " * (f.wid or 0)
        elif f.zero and f.wid is not None and not f.minus:
            prec = f.wid - (1 if negative or f.plus or f.space else 0)
        if len(digits) < prec:
            digits = "0" * (prec - len(digits)) + digits
        if f.sharp:
            if base == 2:
                digits = "0b" + digits
            elif base == 8 and digits[0] != "0":
                digits = "0" + digits
            elif base == 16:
                digits = ("0X" if verb == "X" else "0x") + digits
        if verb == "O":
            digits = "0o" + digits
        sign = "-" if negative else "+" if f.plus else " " if f.space else ""
        return _pad(f, sign + digits, zero=False)
    if verb == "c":
        ok = 0 <= value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF
        return _pad(f, chr(value) if ok else "\ufffd")
    if verb == "q":
        return _pad(f, quote_rune(value, f.plus))
    if verb == "U":
        point = value if value >= 0 else value + (1 << 64)
        text = f"U+{point:0{max(4, f.prec or 0)}X}"
        valid = point <= 0x10FFFF and not 0xD800 <= point <= 0xDFFF
        if f.sharp and valid and chr(point).isprintable():
            text += f" '{chr(point)}'"
        return _pad(f, text, zero=False)
    return _bad_verb(f, value, verb)


def _fmt_float(f: Fmt, value: float, verb: str, prec: int) -> str:
    if f.prec is not None:
        prec = f.prec
    num = format_float(value, verb, prec)
    num = num if num[0] in "+-" else "+" + num
    if f.space and num[0] == "+" and not f.plus:
        num = " " + num[1:]
    if num[1] in "IN":  # infinities and NaN are never zero padded
        if num[1] == "N" and not f.space and not f.plus:
            num = num[1:]
        return _pad(f, num, zero=False)
    if f.sharp and verb != "b":
        num = _sharp(num, verb, prec)
    if f.plus or num[0] != "+":
        if f.zero and not f.minus and f.wid is not None and f.wid > len(num):
            return num[0] + "0" * (f.wid - len(num)) + num[1:]
        return _pad(f, num)
    return _pad(f, num[1:])


_FLOAT_VERBS = {"v": ("g", -1), "b": ("b", -1), "g": ("g", -1), "G": ("G", -1), "x": ("x", -1),
                "X": ("X", -1), "f": ("f", 6), "e": ("e", 6), "E": ("E", 6), "F": ("f", 6)}


def _fmt_float_verb(f: Fmt, value: float, verb: str) -> str:
    spec = _FLOAT_VERBS.get(verb)
    if spec is None:
        return _bad_verb(f, value, verb)
    return _fmt_float(f, value, spec[0], spec[1])


def _fmt_complex(f: Fmt, value: complex, verb: str) -> str:
    spec = _FLOAT_VERBS.get(verb)
    if spec is None:
        return _bad_verb(f, value, verb)
    real = _fmt_float(f, value.real, spec[0], spec[1])
    imag = _fmt_float(_copy(f, plus=True), value.imag, spec[0], spec[1])
    return f"({real}{imag}i)"


def _truncate(f: Fmt, text: str) -> str:
    return text if f.prec is None else text[:f.prec]


def _fmt_hex_bytes(f: Fmt, data: bytes, upper: bool) -> str:
    if f.prec is not None:
        data = data[:f.prec]
    if not data:
        return " " * (f.wid or 0)
    digits = data.hex().upper() if upper else data.hex()
    prefix = "0X" if upper else "0x"
    pairs = [digits[i:i + 2] for i in range(0, len(digits), 2)]
    if f.space:
        text = " ".join(prefix + p for p in pairs) if f.sharp else " ".join(pairs)
    else:
        text = (prefix if f.sharp else "") + digits
    return _pad(f, text)


def _fmt_quoted(f: Fmt, text: str) -> str:
    text = _truncate(f, text)
    if f.sharp and can_backquote(text):
        return _pad(f, f"`{text}`")
    return _pad(f, go_quote(text, f.plus))


def _fmt_string(f: Fmt, text: str, verb: str) -> str:
    if verb == "s" or (verb == "v" and not f.sharp_v):
        return _pad(f, _truncate(f, text))
    if verb == "q" or verb == "v":
        return _fmt_quoted(f, text)
    if verb in "xX":
        return _fmt_hex_bytes(f, text.encode("utf-8", "surrogateescape"), verb == "X")
    return _bad_verb(f, text, verb)


# -- printArg / printValue -------------------------------------------------------------------
def sorted_items(mapping: dict[Any, Any]) -> list[tuple[Any, Any]]:
    try:
        return sorted(mapping.items(), key=lambda kv: kv[0])
    except TypeError:
        return sorted(mapping.items(), key=lambda kv: (type(kv[0]).__name__, str(kv[0])))


def _print_elem(f: Fmt, value: Any, verb: str, depth: int) -> str:
    if value is None or value is NO_VALUE:
        return "interface {}(nil)" if f.sharp_v else _pad(f, "<nil>")
    return print_arg(f, value, verb, depth)


def _print_value(f: Fmt, value: Any, verb: str, depth: int) -> str:
    if isinstance(value, bool):
        return _fmt_bool(f, value, verb)
    if isinstance(value, int):
        return _fmt_integer(f, int(value), verb)
    if isinstance(value, float):
        return _fmt_float_verb(f, float(value), verb)
    if isinstance(value, str):
        return _fmt_string(f, str(value), verb)
    if isinstance(value, complex):
        return _fmt_complex(f, value, verb)
    if isinstance(value, bytes | bytearray):
        if verb == "s":
            return _pad(f, _truncate(f, bytes(value).decode("utf-8", "replace")))
        if verb == "q":
            return _fmt_quoted(f, bytes(value).decode("utf-8", "replace"))
        if verb in "xX":
            return _fmt_hex_bytes(f, bytes(value), verb == "X")
        return "[" + " ".join(_fmt_integer(f, b, "d" if verb == "v" else verb)
                              for b in value) + "]"
    if isinstance(value, dict):
        items = sorted_items(value)
        if f.sharp_v:
            inner = ", ".join(f"{_print_elem(f, k, verb, depth + 1)}:"
                              f"{_print_elem(f, v, verb, depth + 1)}" for k, v in items)
            return f"{type_name(value)}{{{inner}}}"
        return "map[" + " ".join(f"{_print_elem(f, k, verb, depth + 1)}:"
                                 f"{_print_elem(f, v, verb, depth + 1)}"
                                 for k, v in items) + "]"
    if isinstance(value, list | tuple):
        if f.sharp_v:
            inner = ", ".join(_print_elem(f, v, verb, depth + 1) for v in value)
            return f"{type_name(value)}{{{inner}}}"
        return "[" + " ".join(_print_elem(f, v, verb, depth + 1) for v in value) + "]"
    if callable(value) and verb in "vp":
        return _pad(f, f"{type_name(value)}({id(value):#x})" if f.sharp_v else f"{id(value):#x}")
    if verb in "vs":
        return _pad(f, _truncate(f, str(value)))
    return _bad_verb(f, value, verb)


def print_arg(f: Fmt, arg: Any, verb: str, depth: int = 0) -> str:
    if arg is None or arg is NO_VALUE:
        return _pad(f, "<nil>") if verb in "Tv" else _bad_verb(f, arg, verb)
    if verb == "T":
        return _pad(f, _truncate(f, type_name(arg)))
    cls = type(arg)
    if cls is str:
        return _fmt_string(f, arg, verb)
    if cls is int:
        return _fmt_integer(f, arg, verb)
    if cls is float:
        return _fmt_float_verb(f, arg, verb)
    if cls is bool:
        return _fmt_bool(f, arg, verb)
    if not f.erroring and verb in "vsxXq" and not f.sharp_v:
        method = getattr(arg, "go_string", None)
        if method is not None and callable(method):
            try:
                text = method()
            except Exception as exc:
                return f"%!{verb}(PANIC=String method: {exc})"
            return _fmt_string(f, str(text), verb)
        if isinstance(arg, BaseException):
            return _fmt_string(f, str(arg), verb)
    return _print_value(f, arg, verb, depth)


def go_format(value: Any) -> str:
    """``fmt.Sprint(value)``: Go's ``%v``."""
    cls = type(value)
    if cls is str:
        text: str = value
        return text
    if cls is int:
        return str(value)
    if cls is float:
        return format_float(value, "g", -1)
    if value is None:
        return "<nil>"
    if cls is bool:
        return "true" if value else "false"
    return print_arg(_PLAIN, value, "v")


def sprint(*args: Any) -> str:
    """``fmt.Sprint``: spaces between operands when neither is a string."""
    out = []
    prev_string = False
    for i, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if i and not is_string and not prev_string:
            out.append(" ")
        out.append(go_format(arg))
        prev_string = is_string
    return "".join(out)


def sprintln(*args: Any) -> str:
    """``fmt.Sprintln``: operands separated by spaces, then a newline."""
    return " ".join(go_format(a) for a in args) + "\n"
