"""Go's ``sort.Sort`` (pattern-defeating quicksort, Go 1.19) and ``container/heap``, for
the InfluxQL reducers whose result depends on how equal elements end up ordered.

``sort.Sort`` is not stable: percentile() over integers with ties selects one of the
tied points (and so its tags and fields), mode() breaks ties by the time of the first
point of a run. To select the same point as Kapacitor, the same algorithm runs here, on
a Python list with a ``less(x, y)`` function on elements.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Less = Callable[[Any, Any], bool]

_UNKNOWN, _INCREASING, _DECREASING = 0, 1, 2
_MASK64 = (1 << 64) - 1


def go_sort(data: list[Any], less: Less) -> None:
    """Sort ``data`` in place exactly as Go 1.19's sort.Sort orders it."""
    n = len(data)
    if n <= 1:
        return
    _pdqsort(data, less, 0, n, n.bit_length())


def _insertion_sort(data: list[Any], less: Less, a: int, b: int) -> None:
    for i in range(a + 1, b):
        j = i
        while j > a and less(data[j], data[j - 1]):
            data[j], data[j - 1] = data[j - 1], data[j]
            j -= 1


def _sift_down(data: list[Any], less: Less, lo: int, hi: int, first: int) -> None:
    root = lo
    while True:
        child = 2 * root + 1
        if child >= hi:
            return
        if child + 1 < hi and less(data[first + child], data[first + child + 1]):
            child += 1
        if not less(data[first + root], data[first + child]):
            return
        data[first + root], data[first + child] = data[first + child], data[first + root]
        root = child


def _heap_sort(data: list[Any], less: Less, a: int, b: int) -> None:
    first, lo, hi = a, 0, b - a
    for i in range((hi - 1) // 2, -1, -1):
        _sift_down(data, less, i, hi, first)
    for i in range(hi - 1, -1, -1):
        data[first], data[first + i] = data[first + i], data[first]
        _sift_down(data, less, lo, i, first)


def _pdqsort(data: list[Any], less: Less, a: int, b: int, limit: int) -> None:
    was_balanced = was_partitioned = True
    while True:
        length = b - a
        if length <= 12:
            _insertion_sort(data, less, a, b)
            return
        if limit == 0:
            _heap_sort(data, less, a, b)
            return
        if not was_balanced:
            _break_patterns(data, a, b)
            limit -= 1
        pivot, hint = _choose_pivot(data, less, a, b)
        if hint == _DECREASING:
            _reverse(data, a, b)
            pivot = (b - 1) - (pivot - a)
            hint = _INCREASING
        if was_balanced and was_partitioned and hint == _INCREASING:
            if _partial_insertion_sort(data, less, a, b):
                return
        if a > 0 and not less(data[a - 1], data[pivot]):
            a = _partition_equal(data, less, a, b, pivot)
            continue
        mid, was_partitioned = _partition(data, less, a, b, pivot)
        left, right = mid - a, b - mid
        threshold = length // 8
        if left < right:
            was_balanced = left >= threshold
            _pdqsort(data, less, a, mid, limit)
            a = mid + 1
        else:
            was_balanced = right >= threshold
            _pdqsort(data, less, mid + 1, b, limit)
            b = mid


def _partition(data: list[Any], less: Less, a: int, b: int, pivot: int) -> tuple[int, bool]:
    data[a], data[pivot] = data[pivot], data[a]
    i, j = a + 1, b - 1
    while i <= j and less(data[i], data[a]):
        i += 1
    while i <= j and not less(data[j], data[a]):
        j -= 1
    if i > j:
        data[j], data[a] = data[a], data[j]
        return j, True
    data[i], data[j] = data[j], data[i]
    i += 1
    j -= 1
    while True:
        while i <= j and less(data[i], data[a]):
            i += 1
        while i <= j and not less(data[j], data[a]):
            j -= 1
        if i > j:
            break
        data[i], data[j] = data[j], data[i]
        i += 1
        j -= 1
    data[j], data[a] = data[a], data[j]
    return j, False


def _partition_equal(data: list[Any], less: Less, a: int, b: int, pivot: int) -> int:
    data[a], data[pivot] = data[pivot], data[a]
    i, j = a + 1, b - 1
    while True:
        while i <= j and not less(data[a], data[i]):
            i += 1
        while i <= j and less(data[a], data[j]):
            j -= 1
        if i > j:
            break
        data[i], data[j] = data[j], data[i]
        i += 1
        j -= 1
    return i


def _partial_insertion_sort(data: list[Any], less: Less, a: int, b: int) -> bool:
    i = a + 1
    for _ in range(5):
        while i < b and not less(data[i], data[i - 1]):
            i += 1
        if i == b:
            return True
        if b - a < 50:
            return False
        data[i], data[i - 1] = data[i - 1], data[i]
        if i - a >= 2:
            for j in range(i - 1, 0, -1):
                if not less(data[j], data[j - 1]):
                    break
                data[j], data[j - 1] = data[j - 1], data[j]
        if b - i >= 2:
            for j in range(i + 1, b):
                if not less(data[j], data[j - 1]):
                    break
                data[j], data[j - 1] = data[j - 1], data[j]
    return False


def _break_patterns(data: list[Any], a: int, b: int) -> None:
    length = b - a
    if length >= 8:
        random = length
        modulus = 1 << length.bit_length()
        for idx in range(a + (length // 4) * 2 - 1, a + (length // 4) * 2 + 2):
            random ^= (random << 13) & _MASK64
            random ^= random >> 17
            random ^= (random << 5) & _MASK64
            other = random & (modulus - 1)
            if other >= length:
                other -= length
            data[idx], data[a + other] = data[a + other], data[idx]


def _choose_pivot(data: list[Any], less: Less, a: int, b: int) -> tuple[int, int]:
    n = b - a
    swaps = [0]
    i, j, k = a + n // 4 * 1, a + n // 4 * 2, a + n // 4 * 3
    if n >= 8:
        if n >= 50:
            i = _median(data, less, i - 1, i, i + 1, swaps)
            j = _median(data, less, j - 1, j, j + 1, swaps)
            k = _median(data, less, k - 1, k, k + 1, swaps)
        j = _median(data, less, i, j, k, swaps)
    if swaps[0] == 0:
        return j, _INCREASING
    if swaps[0] == 12:
        return j, _DECREASING
    return j, _UNKNOWN


def _median(data: list[Any], less: Less, a: int, b: int, c: int, swaps: list[int]) -> int:
    if less(data[b], data[a]):
        swaps[0] += 1
        a, b = b, a
    if less(data[c], data[b]):
        swaps[0] += 1
        b, c = c, b
    if less(data[b], data[a]):
        swaps[0] += 1
        a, b = b, a
    return b


def _reverse(data: list[Any], a: int, b: int) -> None:
    i, j = a, b - 1
    while i < j:
        data[i], data[j] = data[j], data[i]
        i += 1
        j -= 1


# -- container/heap -------------------------------------------------------------------------
def _down(h: list[Any], less: Less, i0: int, n: int) -> None:
    i = i0
    while True:
        j1 = 2 * i + 1
        if j1 >= n:
            return
        j = j1
        j2 = j1 + 1
        if j2 < n and less(h[j2], h[j1]):
            j = j2
        if not less(h[j], h[i]):
            return
        h[i], h[j] = h[j], h[i]
        i = j


def heap_pop_n(h: list[Any], less: Less, count: int) -> list[Any]:
    """heap.Init then ``count`` heap.Pop calls, as Go's container/heap does them."""
    n = len(h)
    for i in range(n // 2 - 1, -1, -1):
        _down(h, less, i, n)
    out = []
    for _ in range(count):
        n = len(h) - 1
        h[0], h[n] = h[n], h[0]
        _down(h, less, 0, n)
        out.append(h.pop())
    return out
