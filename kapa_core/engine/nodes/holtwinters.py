"""Holt-Winters forecasting for ``holtWinters()`` and ``holtWintersWithFit()``.

The damped (additive-trend, multiplicative-season) Holt-Winters method as InfluxQL
computes it, so forecasts equal Kapacitor's for the same data:

1. point times are rounded to ``interval``; a bucket seen twice keeps its first value and
   an empty bucket becomes NaN (skipped when measuring the error);
2. the level, trend and season starting values come from the first seasons;
3. alpha, beta, gamma and phi are fitted by Nelder-Mead from a 2x2x2x2 grid of starting
   guesses, minimising the sum of squared one-step errors;
4. the series is run forward ``h`` buckets with the best parameters.

The objective function clamps its parameter vector and updates the seasonal ring buffer
*in place*, exactly as the reference does: the optimiser's vertices change as they are
evaluated, and the results depend on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

from kapa_core.tick.gomath import pow as go_pow

WEIGHT = 0.5
EPSILON = 1.0e-4
GUESSES = (0.3, 0.7)  # 0.3 up to (not including) 1.0 in steps of 0.4
MAX_ITERATIONS = 1000


def nelder_mead(objective: Callable[[list[float]], float], start: list[float], epsilon: float,
                scale: float = 1.0) -> tuple[float, list[float]]:
    """Minimise ``objective`` from ``start``; returns (minimum, parameters)."""
    n = len(start)
    pn = scale * (math.sqrt(n + 1) - 1 + n) / (n * math.sqrt(2))
    qn = scale * (math.sqrt(n + 1) - 1) / (n * math.sqrt(2))
    v = [list(start)]
    for i in range(1, n + 1):
        v.append([start[j] + (pn if i - 1 == j else qn) for j in range(n)])
    f = [objective(vertex) for vertex in v]
    for _ in range(MAX_ITERATIONS):
        vg = vs = 0
        for i in range(n + 1):
            if f[i] > f[vg]:
                vg = i
            if f[i] < f[vs]:
                vs = i
        vh = vs
        for i in range(n + 1):
            if f[vh] < f[i] < f[vg]:
                vh = i
        vm = [sum(v[m][i] for m in range(n + 1) if m != vg) / n for i in range(n)]
        vr = [vm[i] + (vm[i] - v[vg][i]) for i in range(n)]
        fr = objective(vr)
        if f[vs] <= fr < f[vh]:
            v[vg] = list(vr)
            f[vg] = fr
        if fr < f[vs]:
            ve = [vm[i] + 2.0 * (vr[i] - vm[i]) for i in range(n)]
            fe = objective(ve)
            if fe < fr:
                v[vg] = list(ve)
                f[vg] = fe
            else:
                v[vg] = list(vr)
                f[vg] = fr
        if fr >= f[vh]:
            if f[vh] <= fr < f[vg]:
                vc = [vm[i] + 0.5 * (vr[i] - vm[i]) for i in range(n)]
            else:
                vc = [vm[i] - 0.5 * (vm[i] - v[vg][i]) for i in range(n)]
            fc = objective(vc)
            if fc < f[vg]:
                v[vg] = list(vc)
                f[vg] = fc
            else:
                for row in range(n + 1):
                    if row != vs:
                        v[row] = [v[vs][i] + (v[row][i] - v[vs][i]) / 2.0 for i in range(n)]
                f[vg] = objective(v[vg])
                f[vh] = objective(v[vh])
        favg = sum(f) / (n + 1)
        spread = math.sqrt(sum((x - favg) * (x - favg) / n for x in f))
        if spread < epsilon:
            break
    vs = min(range(n + 1), key=lambda i: (f[i], i))
    best = list(v[vs])
    return objective(v[vs]), best


class HoltWinters:
    """One forecast over a batch of (time ns, value) points."""

    def __init__(self, h: int, m: int, include_fit: bool, interval: int) -> None:
        self.h = h
        self.m = m
        self.seasonal = m >= 2
        self.include_fit = include_fit
        self.interval = interval
        self.y: list[float] = []

    def _round(self, t: int) -> int:
        # Go integer division truncates toward zero
        q = int(t / self.interval) if t < 0 else t // self.interval
        remainder = t - q * self.interval
        if remainder > self.interval // 2:
            return (q + 1) * self.interval
        return q * self.interval

    def forecast_points(self, points: list[tuple[int, float]]) -> list[tuple[int, float]]:
        n = len(points)
        if n < 2 or (self.seasonal and n < self.m) or self.h <= 0 or self.interval <= 0:
            return []
        start, stop = self._round(points[0][0]), self._round(points[-1][0])
        if (stop - start) // self.interval <= 0:
            return []
        y = [float(points[0][1])]
        t = start
        for pt, value in points[1:]:
            rounded = self._round(pt)
            if rounded <= t:
                continue
            t += self.interval
            while rounded != t:
                y.append(math.nan)
                t += self.interval
            y.append(float(value))
        self.y = y
        params = self._starting_parameters()
        best_sse, best = math.inf, None
        for alpha in GUESSES:
            for beta in GUESSES:
                for gamma in GUESSES:
                    for phi in GUESSES:
                        params[0:4] = [alpha, beta, gamma, phi]
                        sse, found = nelder_mead(self._sse, params, EPSILON, 1.0)
                        if sse < best_sse or best is None:
                            best_sse, best = sse, found
        forecasted = self._forecast(self.h, cast(list[float], best))
        if self.include_fit:
            first = points[0][0]
            return [(first + self.interval * i, v) for i, v in enumerate(forecasted)
                    if not math.isnan(v)]
        last = points[-1][0]
        return [(last + self.interval * (i + 1), v)
                for i, v in enumerate(forecasted[len(y):]) if not math.isnan(v)]

    def _starting_parameters(self) -> list[float]:
        y, m = self.y, self.m
        if self.seasonal:
            l0 = sum((1 / m) * y[i] for i in range(m) if not math.isnan(y[i]))
            b0 = 0.0
            for i in range(m):
                if m + i >= len(y):
                    break
                if not math.isnan(y[i]) and not math.isnan(y[m + i]):
                    b0 += 1 / (m * m) * (y[m + i] - y[i])
            seasons = [0.0 if math.isnan(y[i]) else _div(y[i], l0) for i in range(m)]
        else:
            l0 = WEIGHT * y[0]
            b0 = 0.0 if math.isnan(y[1]) else WEIGHT * (y[1] - y[0])
            seasons = []
        return [0.0, 0.0, 0.0, 0.0, l0, b0, *seasons]

    def _forecast(self, h: int, params: list[float]) -> list[float]:
        for i in range(4):
            if params[i] > 1:
                params[i] = 1.0
            if params[i] < 0:
                params[i] = 0.0
        alpha, beta, gamma, phi = params[0], params[1], params[2], params[3]
        y = self.y
        y_t = y[0]
        phi_h = phi
        l_t, b_t = params[4], params[5]
        seasonal = self.seasonal
        m = so = 0
        if seasonal:
            m = len(params) - 6
            if m == 1:
                params[6] = 1.0
            so = m - 1
        total = len(y) + h
        out = [0.0] * total
        out[0] = y_t
        s_tm = s_tmh = 1.0
        for t in range(1, total):
            if seasonal:
                s_tm = params[6 + (t - m + so) % m]
                s_tmh = params[6 + (t - m + t % m + so) % m]
            l_prev = l_t
            trend = l_prev + phi * b_t
            l_t = alpha * _div(y_t, s_tm) + (1 - alpha) * trend
            b_t = beta * (l_t - l_prev) + (1 - beta) * phi * b_t
            s_t = gamma * _div(y_t, trend) + (1 - gamma) * s_tm
            y_t = (l_t + phi_h * b_t) * s_tmh
            phi_h += go_pow(phi, float(t))  # Go rounds as math.Pow, not as C pow
            if seasonal:
                params[6 + (t + so) % m] = s_t
                so += 1
            out[t] = y_t
        return out

    def _sse(self, params: list[float]) -> float:
        forecasted = self._forecast(0, params)
        total = 0.0
        for actual, predicted in zip(self.y, forecasted, strict=True):
            if math.isnan(actual):
                continue
            if math.isnan(predicted):
                return math.inf
            diff = predicted - actual
            total += diff * diff
        return total


def _div(a: float, b: float) -> float:
    """Division with IEEE semantics (Go's float division never raises)."""
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
