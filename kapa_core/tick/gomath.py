"""Go's pure-Go ``math`` functions, for lambdas whose results must equal Kapacitor's to
the last digit.

Go computes sin, cos, tan, asin, acos, atan, atan2, sinh, cosh, tanh and gamma with its
own Cephes-derived polynomials rather than the C library, and for some inputs the last
digit differs from Python's ``math`` (``cos(0.7)``, ``acos(0.5)``, ``gamma(2.5)``). The
algorithms below follow Go's, operation for operation (no fused multiply-add, as Go's
amd64 build compiles pure Go). Sqrt and Floor agree with the C
library; Exp and Log are Go's amd64 assembly (Exp with the fused multiply-adds it uses on
CPUs that have FMA); arguments of sin/cos/tan beyond 2**29 (Go's Payne-Hanek reduction)
fall back to ``math``.
"""

from __future__ import annotations

import math
import struct
from decimal import Decimal, localcontext

PI = math.pi
_PI_DIGITS = "3.14159265358979323846264338327950288419716939937510582097494459230781640"
with localcontext() as _ctx:
    _ctx.prec = 60
    FOUR_OVER_PI = float(Decimal(4) / Decimal(_PI_DIGITS))  # Go folds 4/Pi exactly
    THREE_PI_OVER_4 = float(Decimal(3) * Decimal(_PI_DIGITS) / Decimal(4))

_PI4A = 7.85398125648498535156e-1
_PI4B = 3.77489470793079817668e-8
_PI4C = 2.69515142907905952645e-15
_REDUCE_THRESHOLD = float(1 << 29)

_SIN = (1.58962301576546568060e-10, -2.50507477628578072866e-8, 2.75573136213857245213e-6,
        -1.98412698295895385996e-4, 8.33333333332211858878e-3, -1.66666666666666307295e-1)
_COS = (-1.13585365213876817300e-11, 2.08757008419747316778e-9, -2.75573141792967388112e-7,
        2.48015872888517045348e-5, -1.38888888888730564116e-3, 4.16666666666665929218e-2)


def _octant(x: float) -> tuple[int, float]:
    j = int(x * FOUR_OVER_PI)
    y = float(j)
    if j & 1:
        j += 1
        y += 1
    j &= 7
    return j, ((x - y * _PI4A) - y * _PI4B) - y * _PI4C


def _sin_poly(z: float, zz: float) -> float:
    s = _SIN
    return z + z * zz * ((((((s[0] * zz) + s[1]) * zz + s[2]) * zz + s[3]) * zz + s[4]) * zz
                         + s[5])


def _cos_poly(zz: float) -> float:
    c = _COS
    return 1.0 - 0.5 * zz + zz * zz * ((((((c[0] * zz) + c[1]) * zz + c[2]) * zz + c[3]) * zz
                                        + c[4]) * zz + c[5])


def cos(x: float) -> float:
    if math.isnan(x) or math.isinf(x):
        return math.nan
    x = abs(x)
    if x >= _REDUCE_THRESHOLD:
        return math.cos(x)
    j, z = _octant(x)
    sign = False
    if j > 3:
        j -= 4
        sign = not sign
    if j > 1:
        sign = not sign
    zz = z * z
    y = _sin_poly(z, zz) if j in (1, 2) else _cos_poly(zz)
    return -y if sign else y


def sin(x: float) -> float:
    if x == 0 or math.isnan(x):
        return x
    if math.isinf(x):
        return math.nan
    sign = x < 0
    x = abs(x)
    if x >= _REDUCE_THRESHOLD:
        return math.sin(-x if sign else x)
    j, z = _octant(x)
    if j > 3:
        sign = not sign
        j -= 4
    zz = z * z
    y = _cos_poly(zz) if j in (1, 2) else _sin_poly(z, zz)
    return -y if sign else y


_TAN_P = (-1.30936939181383777646e4, 1.15351664838587416140e6, -1.79565251976484877988e7)
_TAN_Q = (1.0, 1.36812963470692954678e4, -1.32089234440210967447e6,
          2.50083801823357915839e7, -5.38695755929454629881e7)


def tan(x: float) -> float:
    if x == 0 or math.isnan(x):
        return x
    if math.isinf(x):
        return math.nan
    sign = x < 0
    x = abs(x)
    if x >= _REDUCE_THRESHOLD:
        return math.tan(-x if sign else x)
    j = int(x * FOUR_OVER_PI)
    y = float(j)
    if j & 1:
        j += 1
        y += 1
    z = ((x - y * _PI4A) - y * _PI4B) - y * _PI4C
    zz = z * z
    if zz > 1e-14:
        p, q = _TAN_P, _TAN_Q
        y = z + z * (zz * (((p[0] * zz) + p[1]) * zz + p[2])
                     / ((((zz + q[1]) * zz + q[2]) * zz + q[3]) * zz + q[4]))
    else:
        y = z
    if j & 2:
        y = -1 / y
    return -y if sign else y


def _xatan(x: float) -> float:
    p0, p1, p2, p3, p4 = (-8.750608600031904122785e-01, -1.615753718733365076637e+01,
                          -7.500855792314704667340e+01, -1.228866684490136173410e+02,
                          -6.485021904942025371773e+01)
    q0, q1, q2, q3, q4 = (2.485846490142306297962e+01, 1.650270098316988542046e+02,
                          4.328810604912902668951e+02, 4.853903996359136964868e+02,
                          1.945506571482613964425e+02)
    z = x * x
    z = z * ((((p0 * z + p1) * z + p2) * z + p3) * z + p4) / (
        ((((z + q0) * z + q1) * z + q2) * z + q3) * z + q4)
    return x * z + x


_MOREBITS = 6.123233995736765886130e-17
_TAN3PIO8 = 2.41421356237309504880


def _satan(x: float) -> float:
    if x <= 0.66:
        return _xatan(x)
    if x > _TAN3PIO8:
        return PI / 2 - _xatan(1 / x) + _MOREBITS
    return PI / 4 + _xatan((x - 1) / (x + 1)) + 0.5 * _MOREBITS


def atan(x: float) -> float:
    if x == 0 or math.isnan(x):
        return x
    return _satan(x) if x > 0 else -_satan(-x)


def asin(x: float) -> float:
    if x == 0 or math.isnan(x):
        return x
    sign = x < 0
    x = abs(x)
    if x > 1:
        return math.nan
    temp = math.sqrt(1 - x * x)
    temp = PI / 2 - _satan(temp / x) if x > 0.7 else _satan(x / temp)
    return -temp if sign else temp


def acos(x: float) -> float:
    return PI / 2 - asin(x)


def atan2(y: float, x: float) -> float:
    if math.isnan(y) or math.isnan(x):
        return math.nan
    if y == 0:
        if x >= 0 and math.copysign(1, x) > 0:
            return math.copysign(0, y)
        return math.copysign(PI, y)
    if x == 0:
        return math.copysign(PI / 2, y)
    if math.isinf(x):
        if x > 0:
            return math.copysign(PI / 4, y) if math.isinf(y) else math.copysign(0, y)
        return math.copysign(THREE_PI_OVER_4, y) if math.isinf(y) else math.copysign(PI, y)
    if math.isinf(y):
        return math.copysign(PI / 2, y)
    q = atan(y / x)
    if x < 0:
        return q + PI if q <= 0 else q - PI
    return q


def _exp(x: float) -> float:
    return exp(x)


def sinh(x: float) -> float:
    p0, p1, p2, p3 = (-0.6307673640497716991184787251e+6, -0.8991272022039509355398013511e+5,
                      -0.2894211355989563807284660366e+4, -0.2630563213397497062819489e+2)
    q0, q1, q2 = (-0.6307673640497716991212077277e+6, 0.1521517378790019070696485176e+5,
                  -0.173678953558233699533450911e+3)
    sign = x < 0
    x = abs(x)
    if x > 21:
        temp = _exp(x) * 0.5
    elif x > 0.5:
        ex = _exp(x)
        temp = (ex - 1 / ex) * 0.5
    else:
        sq = x * x
        temp = (((p3 * sq + p2) * sq + p1) * sq + p0) * x
        temp = temp / (((sq + q2) * sq + q1) * sq + q0)
    return -temp if sign else temp


def cosh(x: float) -> float:
    x = abs(x)
    if x > 21:
        return _exp(x) * 0.5
    ex = _exp(x)
    return (ex + 1 / ex) * 0.5


_TANH_P = (-9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3)
_TANH_Q = (1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3)
_MAXLOG = 8.8029691931113054295988e+01


def tanh(x: float) -> float:
    z = abs(x)
    if z > 0.5 * _MAXLOG:
        return -1.0 if x < 0 else 1.0
    if z >= 0.625:
        s = _exp(2 * z)
        z = 1 - 2 / (s + 1)
        return -z if x < 0 else z
    if x == 0:
        return x
    s = x * x
    p, q = _TANH_P, _TANH_Q
    return x + x * s * ((p[0] * s + p[1]) * s + p[2]) / (((s + q[0]) * s + q[1]) * s + q[2])


_GAM_P = (1.60119522476751861407e-04, 1.19135147006586384913e-03, 1.04213797561761569935e-02,
          4.76367800457137231464e-02, 2.07448227648435975150e-01, 4.94214826801497100753e-01,
          9.99999999999999996796e-01)
_GAM_Q = (-2.31581873324120129819e-05, 5.39605580493303397842e-04, -4.45641913851797240494e-03,
          1.18139785222060435552e-02, 3.58236398605498653373e-02, -2.34591795718243348568e-01,
          7.14304917030273074085e-02, 1.00000000000000000320e+00)
_GAM_S = (7.87311395793093628397e-04, -2.29549961613378126380e-04, -2.68132617805781232825e-03,
          3.47222221605458667310e-03, 8.33333333333482257126e-02)
_EULER = 0.57721566490153286060651209008240243104215933593992


def _pow(x: float, y: float) -> float:
    return pow(x, y)


def _stirling(x: float) -> tuple[float, float]:
    if x > 200:
        return math.inf, 1.0
    s = _GAM_S
    w = 1 / x
    w = 1 + w * ((((s[0] * w + s[1]) * w + s[2]) * w + s[3]) * w + s[4])
    y1 = _exp(x)
    y2 = 1.0
    if x > 143.01608:
        v = _pow(x, 0.5 * x - 0.25)
        y1, y2 = v, v / y1
    else:
        y1 = _pow(x, x - 0.5) / y1
    return y1, 2.506628274631000502417 * w * y2


def gamma(x: float) -> float:
    if (x < 0 and math.modf(x)[0] == 0) or x == -math.inf or math.isnan(x):
        return math.nan
    if x == math.inf:
        return math.inf
    if x == 0:
        return -math.inf if math.copysign(1, x) < 0 else math.inf
    q = abs(x)
    p = float(math.floor(q))
    if q > 33:
        if x >= 0:
            y1, y2 = _stirling(x)
            return y1 * y2
        signgam = -1 if int(p) & 1 == 0 else 1
        z = q - p
        if z > 0.5:
            p = p + 1
            z = q - p
        z = q * sin(PI * z)
        if z == 0:
            return math.copysign(math.inf, signgam)
        sq1, sq2 = _stirling(q)
        absz = abs(z)
        d = absz * sq1 * sq2
        z = PI / absz / sq1 / sq2 if math.isinf(d) else PI / d
        return signgam * z
    z = 1.0
    while x >= 3:
        x = x - 1
        z = z * x
    while x < 0:
        if x > -1e-09:
            return math.inf if x == 0 else z / ((1 + _EULER * x) * x)
        z = z / x
        x = x + 1
    while x < 2:
        if x < 1e-09:
            return math.inf if x == 0 else z / ((1 + _EULER * x) * x)
        z = z / x
        x = x + 1
    if x == 2:
        return z
    x = x - 2
    gp, gq = _GAM_P, _GAM_Q
    p = (((((x * gp[0] + gp[1]) * x + gp[2]) * x + gp[3]) * x + gp[4]) * x + gp[5]) * x + gp[6]
    q = ((((((x * gq[0] + gq[1]) * x + gq[2]) * x + gq[3]) * x + gq[4]) * x + gq[5]) * x
         + gq[6]) * x + gq[7]
    return z * p / q


# -- Exp, Log and Pow: Go's amd64 assembly and pure-Go pow -----------------------------------
def _fma(a: float, b: float, c: float) -> float:
    """a*b + c rounded once (the FMA instruction Go's Exp uses on CPUs that have it)."""
    an, ad = a.as_integer_ratio()  # exact; the denominators are powers of two
    bn, bd = b.as_integer_ratio()
    cn, cd = c.as_integer_ratio()
    return (an * bn * cd + cn * ad * bd) / (ad * bd * cd)  # int / int rounds once


_LOG2E = 1.4426950408889634073599246810018920
_LN2U = 0.69314718055966295651160180568695068359375
_LN2L = 0.28235290563031577122588448175013436025525412068e-12
_EXP_OVERFLOW = 7.09782712893384e+02
_EXP_C = (2.4801587301587301587e-5, 1.9841269841269841270e-4, 1.3888888888888888889e-3,
          8.3333333333333333333e-3, 4.1666666666666666667e-2, 1.6666666666666666667e-1,
          0.5, 1.0)


def exp(x: float) -> float:
    """Go's math.Exp on amd64 (its assembly, FMA path)."""
    if math.isnan(x) or x == math.inf:
        return x
    if x == -math.inf:
        return 0.0
    if x > _EXP_OVERFLOW:
        return math.inf
    t = _LOG2E * x
    if not -2147483648.0 <= t < 2147483648.0:
        k = -2147483648
    else:
        k = round(t)  # CVTSD2SL rounds to nearest even
    kf = float(k)
    r = _fma(-_LN2U, kf, x)
    r = _fma(-_LN2L, kf, r)
    r *= 0.0625
    c = _EXP_C
    p = c[0]
    for coefficient in c[1:]:
        p = _fma(p, r, coefficient)
    r = p * r
    for _ in range(3):
        r = r * (r + 2.0)
    r = _fma(r, r + 2.0, 1.0)
    biased = k + 0x3FF
    if biased <= 0:
        if biased < -52:
            return 0.0
        return (r * math.ldexp(1.0, biased + 0x3FE - 1023)) * math.ldexp(1.0, -1022)
    if biased >= 0x7FF:
        return math.inf
    return r * math.ldexp(1.0, biased - 1023)


_HSQRT2 = 7.07106781186547524401e-01
_LN2HI = 6.93147180369123816490e-01
_LN2LO = 1.90821492927058770002e-10
_L1, _L2, _L3, _L4, _L5, _L6, _L7 = (6.666666666666735130e-01, 3.999999999940941908e-01,
                                     2.857142874366239149e-01, 2.222219843214978396e-01,
                                     1.818357216161805012e-01, 1.531383769920937332e-01,
                                     1.479819860511658591e-01)


def log(x: float) -> float:
    """Go's math.Log on amd64 (its assembly)."""
    bits: int = struct.unpack("<Q", struct.pack("<d", x))[0]
    if bits & ~(1 << 63) == 0:
        return -math.inf
    if bits >> 63:
        return math.nan
    if math.isinf(x) or math.isnan(x):
        return x
    f1: float = struct.unpack("<d", struct.pack("<Q", (bits & 0x000FFFFFFFFFFFFF)
                                                | 0x3FE0000000000000))[0]
    k = float(((bits >> 52) & 0x7FF) - 0x3FE)
    if not _HSQRT2 < f1:
        k -= 1.0
        f1 *= 2.0
    f = f1 - 1.0
    s = f / (2.0 + f)
    s2 = s * s
    s4 = s2 * s2
    t1 = s2 * (((_L7 * s4 + _L5) * s4 + _L3) * s4 + _L1)
    t2 = s4 * ((_L6 * s4 + _L4) * s4 + _L2)
    hfsq = 0.5 * f * f
    r = s * (hfsq + (t1 + t2)) + k * _LN2LO
    return k * _LN2HI - ((hfsq - r) - f)


with localcontext() as _ctx:
    _ctx.prec = 60
    _INV_LN10 = float(1 / Decimal(
        "2.30258509299404568401799145468436420760110148862877297603332790"))
    _INV_LN2 = float(1 / Decimal(
        "0.693147180559945309417232121458176568075500134360255254120680009"))


def log10(x: float) -> float:
    return log(x) * _INV_LN10


def log2(x: float) -> float:
    frac, e = math.frexp(x)
    if frac == 0.5:
        return float(e - 1)
    return log(frac) * _INV_LN2 + float(e)


def _is_odd_int(x: float) -> bool:
    if abs(x) >= 1 << 53:
        return False
    xi, xf = math.modf(x)
    return xf == 0 and int(xi) & 1 == 1


def pow(x: float, y: float) -> float:  # noqa: A001 - Go's name
    """Go's math.Pow (pure Go on amd64)."""
    if y == 0 or x == 1:
        return 1.0
    if y == 1:
        return x
    if math.isnan(x) or math.isnan(y):
        return math.nan
    if x == 0:
        if y < 0:
            return math.copysign(math.inf, x) if _is_odd_int(y) else math.inf
        return x if _is_odd_int(y) else 0.0
    if math.isinf(y):
        if x == -1:
            return 1.0
        return 0.0 if (abs(x) < 1) == (y > 0) else math.inf
    if math.isinf(x):
        if x < 0:
            return pow(1 / x, -y)
        return 0.0 if y < 0 else math.inf
    if y == 0.5:
        return math.sqrt(x)
    if y == -0.5:
        return 1 / math.sqrt(x)
    yf, yi = math.modf(abs(y))
    if yf != 0 and x < 0:
        return math.nan
    if yi >= 1 << 63:
        if x == -1:
            return 1.0
        return 0.0 if (abs(x) < 1) == (y > 0) else math.inf
    a1 = 1.0
    ae = 0
    if yf != 0:
        if yf > 0.5:
            yf -= 1
            yi += 1
        a1 = exp(yf * log(x))
    x1, xe = math.frexp(x)
    i = int(yi)
    while i != 0:
        if xe < -(1 << 12) or (1 << 12) < xe:
            ae += xe
            break
        if i & 1 == 1:
            a1 *= x1
            ae += xe
        x1 *= x1
        xe <<= 1
        if x1 < 0.5:
            x1 += x1
            xe -= 1
        i >>= 1
    if y < 0:
        a1 = 1 / a1
        ae = -ae
    try:
        return math.ldexp(a1, ae)
    except OverflowError:
        return math.copysign(math.inf, a1)


# -- the rest of Go's pure-Go functions that lambdas offer ------------------------------------
def _bits(x: float) -> int:
    bits: int = struct.unpack("<Q", struct.pack("<d", x))[0]
    return bits


def _from_bits(b: int) -> float:
    x: float = struct.unpack("<d", struct.pack("<Q", b & 0xFFFFFFFFFFFFFFFF))[0]
    return x


def _ldexp(x: float, e: int) -> float:
    try:
        return math.ldexp(x, e)
    except OverflowError:
        return math.copysign(math.inf, x)


def hypot(p: float, q: float) -> float:
    """Go's math.Hypot on amd64 (its assembly)."""
    p, q = abs(p), abs(q)
    if math.isinf(p) or math.isinf(q):
        return math.inf
    if math.isnan(p) or math.isnan(q):
        return math.nan
    if p == 0 and q == 0:
        return 0.0
    big, small = (p, q) if p >= q else (q, p)
    small = small / big
    return big * math.sqrt(small * small + 1.0)


def cbrt(x: float) -> float:
    if x == 0 or math.isnan(x) or math.isinf(x):
        return x
    sign = x < 0
    x = abs(x)
    t = _from_bits(_bits(x) // 3 + (715094163 << 32))
    if x < 2.22507385850720138309e-308:
        t = float(1 << 54) * x
        t = _from_bits(_bits(t) // 3 + (696219795 << 32))
    r = t * t / x
    s = 5.42857142857142815906e-01 + r * t
    t *= 3.57142857142857150787e-01 + 1.60714285714285720630e+00 / (
        s + 1.41428571428571436819e+00 + -7.05306122448979611050e-01 / s)
    t = _from_bits((_bits(t) & (0xFFFFFFFFC << 28)) + (1 << 30))
    s = t * t
    r = x / s
    w = t + t
    r = (r - t) / (w + r)
    t = t + t * r
    return -t if sign else t


def exp2(x: float) -> float:
    if math.isnan(x) or x == math.inf:
        return x
    if x == -math.inf or x < -1.0740e+03:
        return 0.0
    if x > 1.0239999999999999e+03:
        return math.inf
    k = int(x + 0.5) if x > 0 else int(x - 0.5) if x < 0 else 0
    t = x - float(k)
    hi = t * _LN2HI
    lo = -t * _LN2LO
    r = hi - lo
    tt = r * r
    c = r - tt * (1.66666666666666657415e-01 + tt * (-2.77777777770155933842e-03 + tt * (
        6.61375632143793436117e-05 + tt * (-1.65339022054652515390e-06
                                           + tt * 4.13813679705723846039e-08))))
    y = 1 - ((lo - (r * c) / (2 - c)) - hi)
    return _ldexp(y, k)


def expm1(x: float) -> float:
    if x == math.inf or math.isnan(x):
        return x
    if x == -math.inf:
        return -1.0
    absx = abs(x)
    sign = x < 0
    if absx >= 3.88162421113569373274e+01:
        if sign:
            return -1.0
        if absx >= 7.09782712893383973096e+02:
            return math.inf
    c = 0.0
    k = 0
    if absx > 3.46573590279972654709e-01:
        if absx < 1.03972077083991796413e+00:
            if not sign:
                hi, lo, k = x - _LN2HI, _LN2LO, 1
            else:
                hi, lo, k = x + _LN2HI, -_LN2LO, -1
        else:
            k = int(1.44269504088896338700e+00 * x + (0.5 if not sign else -0.5))
            t = float(k)
            hi = x - t * _LN2HI
            lo = t * _LN2LO
        x = hi - lo
        c = (hi - x) - lo
    elif absx < 1.0 / (1 << 54):
        return x
    hfx = 0.5 * x
    hxs = x * hfx
    r1 = 1 + hxs * (-3.33333333333331316428e-02 + hxs * (1.58730158725481460165e-03 + hxs * (
        -7.93650757867487942473e-05 + hxs * (4.00821782732936239552e-06
                                             + hxs * -2.01099218183624371326e-07))))
    t = 3 - r1 * hfx
    e = hxs * ((r1 - t) / (6.0 - x * t))
    if k == 0:
        return x - (x * e - hxs)
    e = x * (e - c) - c
    e -= hxs
    if k == -1:
        return 0.5 * (x - e) - 0.5
    if k == 1:
        if x < -0.25:
            return -2 * (e - (x + 0.5))
        return 1 + 2 * (x - e)
    if k <= -2 or k > 56:
        y = 1 - (e - x)
        y = _from_bits(_bits(y) + (k << 52))
        return y - 1
    if k < 20:
        t = _from_bits(0x3FF0000000000000 - (0x20000000000000 >> k))
        y = t - (e - x)
        return _from_bits(_bits(y) + (k << 52))
    t = _from_bits((0x3FF - k) << 52)
    y = x - (e + t)
    y += 1
    return _from_bits(_bits(y) + (k << 52))


_LP = (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
       2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
       1.479819860511658591e-01)


def log1p(x: float) -> float:
    if x < -1 or math.isnan(x):
        return math.nan
    if x == -1:
        return -math.inf
    if x == math.inf:
        return math.inf
    absx = abs(x)
    f = 0.0
    iu = 0
    k = 1
    if absx < 4.142135623730950488017e-01:
        if absx < 1.0 / (1 << 29):
            if absx < 1.0 / (1 << 54):
                return x
            return x - x * x * 0.5
        if x > -2.928932188134524755992e-01:
            k = 0
            f = x
            iu = 1
    c = 0.0
    if k != 0:
        if absx < float(1 << 53):
            u = 1.0 + x
            iu = _bits(u)
            k = (iu >> 52) - 1023
            c = 1.0 - (u - x) if k > 0 else x - (u - 1.0)
            c /= u
        else:
            u = x
            iu = _bits(u)
            k = (iu >> 52) - 1023
            c = 0.0
        iu &= 0x000FFFFFFFFFFFFF
        if iu < 0x0006A09E667F3BCD:
            u = _from_bits(iu | 0x3FF0000000000000)
        else:
            k += 1
            u = _from_bits(iu | 0x3FE0000000000000)
            iu = (0x0010000000000000 - iu) >> 2
        f = u - 1.0
    hfsq = 0.5 * f * f
    if iu == 0:
        if f == 0:
            if k == 0:
                return 0.0
            c += float(k) * _LN2LO
            return float(k) * _LN2HI + c
        big_r = hfsq * (1.0 - 0.66666666666666666 * f)
        if k == 0:
            return f - big_r
        return float(k) * _LN2HI - ((big_r - (float(k) * _LN2LO + c)) - f)
    s = f / (2.0 + f)
    z = s * s
    lp = _LP
    big_r = z * (lp[0] + z * (lp[1] + z * (lp[2] + z * (lp[3] + z * (lp[4] + z * (
        lp[5] + z * lp[6]))))))
    if k == 0:
        return f - (hfsq - s * (hfsq + big_r))
    return float(k) * _LN2HI - ((hfsq - (s * (hfsq + big_r) + (float(k) * _LN2LO + c))) - f)


_LN2 = 6.93147180559945286227e-01


def acosh(x: float) -> float:
    if x < 1 or math.isnan(x):
        return math.nan
    if x == 1:
        return 0.0
    if x >= float(1 << 28):
        return log(x) + _LN2
    if x > 2:
        return log(2 * x - 1 / (x + math.sqrt(x * x - 1)))
    t = x - 1
    return log1p(t + math.sqrt(2 * t + t * t))


def asinh(x: float) -> float:
    if math.isnan(x) or math.isinf(x):
        return x
    sign = x < 0
    x = abs(x)
    if x > float(1 << 28):
        temp = log(x) + _LN2
    elif x > 2:
        temp = log(2 * x + 1 / (math.sqrt(x * x + 1) + x))
    elif x < 1.0 / (1 << 28):
        temp = x
    else:
        temp = log1p(x + x * x / (1 + math.sqrt(1 + x * x)))
    return -temp if sign else temp


def atanh(x: float) -> float:
    if x < -1 or x > 1 or math.isnan(x):
        return math.nan
    if x == 1:
        return math.inf
    if x == -1:
        return -math.inf
    sign = x < 0
    x = abs(x)
    if x < 1.0 / (1 << 28):
        temp = x
    elif x < 0.5:
        temp = x + x
        temp = 0.5 * log1p(temp + temp * x / (1 - x))
    else:
        temp = 0.5 * log1p((x + x) / (1 - x))
    return -temp if sign else temp


_ERX = 8.45062911510467529297e-01
_EFX = 1.28379167095512586316e-01
_EFX8 = 1.02703333676410069053e+00
_PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
       -5.77027029648944159157e-03, -2.37630166566501626084e-05)
_QQ = (0.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02,
       5.08130628187576562776e-03, 1.32494738004321644526e-04, -3.96022827877536812320e-06)
_PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
       3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
       -2.16637559486879084300e-03)
_QA = (0.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01,
       7.18286544141962662868e-02, 1.26171219808761642112e-01, 1.36370839120290507362e-02,
       1.19844998467991074170e-02)
_RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
       -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
       -8.12874355063065934246e+01, -9.81432934416914548592e+00)
_SA = (0.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02,
       4.34565877475229228821e+02, 6.45387271733267880336e+02, 4.29008140027567833386e+02,
       1.08635005541779435134e+02, 6.57024977031928170135e+00, -6.04244152148580987438e-02)
_RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
       -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
       -4.83519191608651397019e+02)
_SB = (0.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02,
       1.53672958608443695994e+03, 3.19985821950859553908e+03, 2.55305040643316442583e+03,
       4.74528541206955367215e+02, -2.24409524465858183362e+01)
_ONE_OVER_035 = float(Decimal(1) / Decimal("0.35"))


def _horner(coefficients: tuple[float, ...], s: float) -> float:
    """c0 + s*(c1 + s*(c2 + ...)), innermost first, as Go's nested expressions."""
    acc = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        acc = c + s * acc
    return acc


def _one_plus(coefficients: tuple[float, ...], s: float) -> float:
    """1 + s*(c1 + s*(c2 + ...)) (coefficients[0] unused)."""
    return 1 + s * _horner(coefficients[1:], s)


def _erf_tail(x: float) -> tuple[float, float]:
    s = 1 / (x * x)
    if x < _ONE_OVER_035:
        return _horner(_RA, s), _one_plus(_SA, s)
    return _horner(_RB, s), _one_plus(_SB, s)


def _erf_exp(x: float, big_r: float, big_s: float) -> float:
    z = _from_bits(_bits(x) & 0xFFFFFFFF00000000)
    return exp(-z * z - 0.5625) * exp((z - x) * (z + x) + big_r / big_s)


def erf(x: float) -> float:
    if math.isnan(x):
        return math.nan
    if math.isinf(x):
        return 1.0 if x > 0 else -1.0
    sign = x < 0
    x = abs(x)
    if x < 0.84375:
        if x < 1.0 / (1 << 28):
            if x < 2.848094538889218e-306:
                temp = 0.125 * (8.0 * x + _EFX8 * x)
            else:
                temp = x + _EFX * x
        else:
            z = x * x
            temp = x + x * (_horner(_PP, z) / _one_plus(_QQ, z))
        return -temp if sign else temp
    if x < 1.25:
        s = x - 1
        p, q = _horner(_PA, s), _one_plus(_QA, s)
        return -_ERX - p / q if sign else _ERX + p / q
    if x >= 6:
        return -1.0 if sign else 1.0
    big_r, big_s = _erf_tail(x)
    r = _erf_exp(x, big_r, big_s)
    return r / x - 1 if sign else 1 - r / x


def erfc(x: float) -> float:
    if math.isnan(x):
        return math.nan
    if math.isinf(x):
        return 0.0 if x > 0 else 2.0
    sign = x < 0
    x = abs(x)
    if x < 0.84375:
        if x < 1.0 / (1 << 56):
            temp = x
        else:
            z = x * x
            y = _horner(_PP, z) / _one_plus(_QQ, z)
            temp = x + x * y if x < 0.25 else 0.5 + (x * y + (x - 0.5))
        return 1 + temp if sign else 1 - temp
    if x < 1.25:
        s = x - 1
        p, q = _horner(_PA, s), _one_plus(_QA, s)
        return 1 + _ERX + p / q if sign else 1 - _ERX - p / q
    if x < 28:
        if sign and x > 6 and x >= _ONE_OVER_035:
            return 2.0
        big_r, big_s = _erf_tail(x)
        r = _erf_exp(x, big_r, big_s)
        return 2 - r / x if sign else r / x
    return 2.0 if sign else 0.0


def fmax(x: float, y: float) -> float:
    """Go's math.Max: +Inf wins over NaN, NaN over numbers, +0 over -0."""
    if x == math.inf or y == math.inf:
        return math.inf
    if math.isnan(x) or math.isnan(y):
        return math.nan
    if x == 0 and y == 0:
        return y if math.copysign(1, x) < 0 else x
    return x if x > y else y


def fmin(x: float, y: float) -> float:
    """Go's math.Min: -Inf wins over NaN, NaN over numbers, -0 over +0."""
    if x == -math.inf or y == -math.inf:
        return -math.inf
    if math.isnan(x) or math.isnan(y):
        return math.nan
    if x == 0 and y == 0:
        return x if math.copysign(1, x) < 0 else y
    return x if x < y else y


_POW10 = tuple(float(f"1e{i}") for i in range(32))
_POW10_POS32 = tuple(float(f"1e{32 * i}") for i in range(10))
_POW10_NEG32 = tuple(float(f"1e-{32 * i}") for i in range(11))


def pow10(n: int) -> float:
    """Go's math.Pow10: a product (or quotient) of two table entries."""
    if 0 <= n <= 308:
        return _POW10_POS32[n // 32] * _POW10[n % 32]
    if -323 <= n <= 0:
        return _POW10_NEG32[-n // 32] / _POW10[-n % 32]
    return math.inf if n > 0 else 0.0


def logb(x: float) -> float:
    if x == 0:
        return -math.inf
    if math.isinf(x):
        return math.inf
    if math.isnan(x):
        return x
    return float(math.frexp(x)[1] - 1)
