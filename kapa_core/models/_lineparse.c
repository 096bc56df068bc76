/* The compiled fast path of kapa_core.models.lineprotocol.
 *
 * Why it exists: parsing was three quarters of the ingest row (docs/performance.md).
 * What it does: it reads the UTF-8 bytes of a body line by line and turns every line it
 * can read *exactly* as the pure-Python parser reads it into a Point; at the first line
 * it is not sure about (a backslash or a quote, odd spacing, a number near a limit,
 * anything unusual) it stops and returns that line's offset. lineprotocol.py then parses
 * that line with the pure-Python code, which owns every error message, and calls back
 * in from the next line. So this file never decides that a line is bad: "stop" is its
 * only answer to a doubt, and the rules below are a strict subset of the Python ones.
 *
 * The accepted grammar (bytes; a line is what lies between two '\n'):
 *   empty line                        skipped (spaces, tabs and NULs first are skipped)
 *   '#' ... without '"' or '\\'       a comment, skipped
 *   name[,tkey=tval...] fkey=value[,fkey=value...][ -?digits]
 *     where names and keys are one or more bytes above ' ' other than , = " \ DEL, and
 *     the whole line is valid UTF-8 (as strict as Python's decoder);
 *   value: a float -?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)? whose decimal exponent is below 308
 *     (so it cannot overflow) and of at most 63 characters, -?\d+i within int64, \d+u
 *     within uint64, one of t T true True TRUE f F false False FALSE, or a string: "..."
 *     closed on the same line, without a backslash, followed by ',', ' ' or the end
 *     (what _parse_quoted reads; a line with quotes is never joined to the next one
 *     when that reading succeeds).
 *   The timestamp times the precision's scale lies within [MIN_TIME, MAX_TIME].
 *
 * Two modes share that one scanner (so they accept exactly the same lines):
 *   build: points is a list; a Point is appended per accepted line (GIL held);
 *   check: points is None; nothing is created and the GIL is released while scanning.
 *
 * Memory: points of one series share their name string and tags dict (a cache keyed by
 * the bytes before the first space), and field keys share their strings. The caches are
 * dicts owned by lineprotocol.py, emptied when they pass CACHE_LIMIT entries.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#ifndef Py_T_OBJECT_EX
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif
#ifndef Py_READONLY
#define Py_READONLY READONLY
#endif

#define MAX_TAGS 64
#define MAX_FIELDS 256
#define MAX_NUMBER 63          /* longest float text copied for PyOS_string_to_double */
#define LONG_KEY (65535 / 4)   /* lineprotocol._LONG_KEY: longer keys go to Python */
#define CACHE_LIMIT 100000
#define MEMO_FIELDS 16

static const int64_t MIN_TIME = -INT64_MAX + 1; /* -9223372036854775806 */
static const int64_t MAX_TIME = INT64_MAX - 1;  /*  9223372036854775806 */

/* F_FLOAT: d holds the value when exact is set, else text goes to PyOS_string_to_double */
enum { F_FLOAT, F_INT, F_UINT, F_BOOL, F_STRING };

typedef struct {
    Py_ssize_t start, len;
} Span;

typedef struct {
    Span key, value;
} Tag;

typedef struct {
    Span key, text;
    int kind;
    int exact;
    int64_t i;
    uint64_t u;
    double d;
} Field;

typedef struct {
    Span series, name;
    int ntags, nfields, has_time;
    int64_t time;
    Tag tags[MAX_TAGS];
    Field fields[MAX_FIELDS];
} Line;

/* Point's slots, in this order; their offsets come from setup(). */
static const char *const SLOT_NAMES[8] = {
    "name", "tags", "fields", "time", "database", "retention_policy", "group", "dims"};
enum { S_NAME, S_TAGS, S_FIELDS, S_TIME, S_DATABASE, S_RP, S_GROUP, S_DIMS };

static PyTypeObject *point_type = NULL;
static Py_ssize_t slot_offset[8];
static PyObject *series_cache = NULL;   /* bytes -> (name, tags) */
static PyObject *strings_cache = NULL;  /* bytes -> str (tag and field keys) */
static PyObject *empty_str = NULL;
static PyObject *empty_tuple = NULL;
/* The last series and field keys seen: most lines repeat the line before them. */
static PyObject *memo_series_key = NULL;    /* bytes */
static PyObject *memo_series_value = NULL;  /* (name, tags) */
static PyObject *memo_field_keys[MEMO_FIELDS];
/* The last timestamp: the lines of one batch often share theirs. */
static int64_t memo_time_value;
static PyObject *memo_time = NULL;

/* -- scanning (no Python objects: runs without the GIL in check mode) ------------------ */

static int
valid_utf8(const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80)
                return 0;
            i += 2;
            continue;
        }
        if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n)
                return 0;
            unsigned c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80)
                return 0;
            if (c == 0xE0 && c1 < 0xA0)  /* overlong */
                return 0;
            if (c == 0xED && c1 > 0x9F)  /* a surrogate */
                return 0;
            i += 3;
            continue;
        }
        if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n)
                return 0;
            unsigned c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
                (s[i + 3] & 0xC0) != 0x80)
                return 0;
            if (c == 0xF0 && c1 < 0x90)  /* overlong */
                return 0;
            if (c == 0xF4 && c1 > 0x8F)  /* past U+10FFFF */
                return 0;
            i += 4;
            continue;
        }
        return 0;
    }
    return 1;
}

/* A byte of a name, tag or field key on the fast path. */
static inline int
key_byte(unsigned char c)
{
    return c > ' ' && c != ',' && c != '=' && c != '"' && c != '\\' && c != 0x7F;
}

static inline int
is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Digits [p, q) as a magnitude; 0 when it does not fit in uint64. */
static int
magnitude(const unsigned char *s, Py_ssize_t p, Py_ssize_t q, uint64_t *out)
{
    uint64_t m = 0;
    for (; p < q; p++) {
        unsigned d = s[p] - '0';
        if (m > (UINT64_MAX - d) / 10)
            return 0;
        m = m * 10 + d;
    }
    *out = m;
    return 1;
}

static const double POW10[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The double of a decimal with at most 15 digits and a power of ten within 10^±22, the
   way strtod's own fast path computes it: both factors are exact doubles, so the one
   multiplication or division rounds correctly (SSE2 arithmetic, no extended precision).
   0 when the number is outside that case (PyOS_string_to_double reads it then). */
static int
exact_double(const unsigned char *s, Py_ssize_t sign_at, Py_ssize_t int_start,
             Py_ssize_t int_digits, Py_ssize_t frac_start, Py_ssize_t frac_digits,
             int64_t exponent, double *out)
{
#if defined(__FLT_EVAL_METHOD__) && __FLT_EVAL_METHOD__ != 0
    return 0;  /* extended-precision intermediates could round twice */
#else
    if (int_digits + frac_digits > 15)
        return 0;
    uint64_t m = 0;
    for (Py_ssize_t k = int_start; k < int_start + int_digits; k++)
        m = m * 10 + (uint64_t)(s[k] - '0');
    for (Py_ssize_t k = frac_start; k < frac_start + frac_digits; k++)
        m = m * 10 + (uint64_t)(s[k] - '0');
    int64_t e = exponent - (int64_t)frac_digits;
    if (e < -22 || e > 22)
        return 0;
    double d = (double)m;
    d = e >= 0 ? d * POW10[e] : d / POW10[-e];
    *out = s[sign_at] == '-' ? -d : d;
    return 1;
#endif
}

static const char *const BOOL_WORDS[10] = {
    "t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"};

/* The value [p, q) of a field; 1 when it is read exactly, 0 to stop. */
static int
scan_value(const unsigned char *s, Py_ssize_t p, Py_ssize_t q, Field *f)
{
    Py_ssize_t n = q - p;
    if (n <= 0)
        return 0;
    unsigned char last = s[q - 1];
    if (is_digit(last) || last == '.') {
        /* -?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)? */
        if (n > MAX_NUMBER)
            return 0;
        Py_ssize_t i = p;
        if (s[i] == '-')
            i++;
        Py_ssize_t int_start = i;
        while (i < q && is_digit(s[i]))
            i++;
        Py_ssize_t int_digits = i - int_start, frac_start = i, frac_digits = 0;
        if (i < q && s[i] == '.') {
            i++;
            frac_start = i;
            while (i < q && is_digit(s[i]))
                i++;
            frac_digits = i - frac_start;
        }
        if (int_digits + frac_digits == 0)
            return 0;
        int64_t exponent = 0;
        if (i < q && (s[i] == 'e' || s[i] == 'E')) {
            i++;
            int negative = 0;
            if (i < q && (s[i] == '+' || s[i] == '-')) {
                negative = s[i] == '-';
                i++;
            }
            if (i >= q)
                return 0;
            for (; i < q && is_digit(s[i]); i++) {
                if (exponent < 100000)  /* saturates: far past any double either way */
                    exponent = exponent * 10 + (s[i] - '0');
            }
            if (negative)
                exponent = -exponent;
        }
        if (i != q)
            return 0;
        /* The decimal exponent of the first significant digit: 308 or more may overflow
           to infinity (Python answers "invalid float"), so stop there. */
        Py_ssize_t k;
        int64_t lead = 0;
        int zero = 1;
        for (k = int_start; k < int_start + int_digits; k++) {
            if (s[k] != '0') {
                lead = (int64_t)(int_start + int_digits - 1 - k);
                zero = 0;
                break;
            }
        }
        if (zero) {
            for (k = frac_start; k < frac_start + frac_digits; k++) {
                if (s[k] != '0') {
                    lead = -(int64_t)(k - frac_start + 1);
                    zero = 0;
                    break;
                }
            }
        }
        if (!zero && lead + exponent >= 308)
            return 0;
        f->kind = F_FLOAT;
        f->text.start = p;
        f->text.len = n;
        f->exact = exact_double(s, p, int_start, int_digits, frac_start, frac_digits,
                                exponent, &f->d);
        return 1;
    }
    if (last == 'i') {
        Py_ssize_t i = p;
        int negative = s[i] == '-';
        if (negative)
            i++;
        if (i >= q - 1)
            return 0;
        for (Py_ssize_t k = i; k < q - 1; k++) {
            if (!is_digit(s[k]))
                return 0;
        }
        uint64_t m;
        if (!magnitude(s, i, q - 1, &m))
            return 0;
        if (negative ? m > (uint64_t)INT64_MAX + 1 : m > (uint64_t)INT64_MAX)
            return 0;
        f->kind = F_INT;
        f->i = negative ? (m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m)
                        : (int64_t)m;
        return 1;
    }
    if (last == 'u') {
        if (n < 2)
            return 0;
        for (Py_ssize_t k = p; k < q - 1; k++) {
            if (!is_digit(s[k]))
                return 0;
        }
        if (!magnitude(s, p, q - 1, &f->u))
            return 0;
        f->kind = F_UINT;
        return 1;
    }
    for (int w = 0; w < 10; w++) {
        const char *word = BOOL_WORDS[w];
        if ((Py_ssize_t)strlen(word) == n && memcmp(word, s + p, (size_t)n) == 0) {
            f->kind = F_BOOL;
            f->i = w < 5;
            return 1;
        }
    }
    return 0;
}

static int
compare_spans(const unsigned char *s, Span a, Span b)
{
    Py_ssize_t n = a.len < b.len ? a.len : b.len;
    int c = memcmp(s + a.start, s + b.start, (size_t)n);
    if (c)
        return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

/* Sort the tags by key (bytewise order of UTF-8 is code point order, as Python sorts);
   0 when two keys are equal (Python reports duplicate tags). */
static int
sort_tags(const unsigned char *s, Line *ln)
{
    for (int i = 1; i < ln->ntags; i++) {
        Tag t = ln->tags[i];
        int j = i - 1;
        while (j >= 0) {
            int c = compare_spans(s, ln->tags[j].key, t.key);
            if (c == 0)
                return 0;
            if (c < 0)
                break;
            ln->tags[j + 1] = ln->tags[j];
            j--;
        }
        ln->tags[j + 1] = t;
    }
    return 1;
}

/* The line [a, b) (its newline excluded): 1 = a point in *ln, 0 = nothing (blank or
   comment), -1 = stop (Python reads this line). Reads nothing outside [a, b). */
static int
scan_line(const unsigned char *s, Py_ssize_t a, Py_ssize_t b, int64_t scale, Line *ln)
{
    while (a < b && (s[a] == ' ' || s[a] == '\t' || s[a] == '\0'))
        a++;  /* Python strips these first, then reads the rest as a line of its own */
    if (a >= b)
        return 0;
    unsigned char c = s[a];
    if (c == '#') {
        for (Py_ssize_t i = a; i < b; i++) {
            if (s[i] == '"' || s[i] == '\\')
                return -1;  /* a quote or a backslash may join the next line */
        }
        return 0;
    }
    int high = 0;
    Py_ssize_t i = a;
    /* measurement */
    while (i < b && s[i] != ',' && s[i] != ' ') {
        if (!key_byte(s[i]))
            return -1;
        high |= s[i] & 0x80;
        i++;
    }
    if (i == a || i >= b)
        return -1;
    ln->name.start = a;
    ln->name.len = i - a;
    ln->ntags = 0;
    if (s[i] == ',') {
        for (;;) {
            i++;
            Py_ssize_t k = i;
            while (i < b && s[i] != '=' && s[i] != ',' && s[i] != ' ') {
                if (!key_byte(s[i]))
                    return -1;
                high |= s[i] & 0x80;
                i++;
            }
            if (i == k || i >= b || s[i] != '=')
                return -1;
            Py_ssize_t eq = i++;
            Py_ssize_t v = i;
            while (i < b && s[i] != '=' && s[i] != ',' && s[i] != ' ') {
                if (!key_byte(s[i]))
                    return -1;
                high |= s[i] & 0x80;
                i++;
            }
            if (i == v || i >= b || s[i] == '=' || ln->ntags >= MAX_TAGS)
                return -1;
            Tag *t = &ln->tags[ln->ntags++];
            t->key.start = k;
            t->key.len = eq - k;
            t->value.start = v;
            t->value.len = i - v;
            if (s[i] == ' ')
                break;
        }
    }
    ln->series.start = a;
    ln->series.len = i - a;
    if (ln->series.len > LONG_KEY)
        return -1;
    /* fields: s[i] is the space after the key */
    ln->nfields = 0;
    for (;;) {
        i++;
        Py_ssize_t k = i;
        while (i < b && s[i] != '=' && s[i] != ',' && s[i] != ' ') {
            if (!key_byte(s[i]))
                return -1;
            high |= s[i] & 0x80;
            i++;
        }
        if (i == k || i >= b || s[i] != '=' || ln->nfields >= MAX_FIELDS)
            return -1;
        Field *f = &ln->fields[ln->nfields++];
        f->key.start = k;
        f->key.len = i - k;
        i++;
        Py_ssize_t v = i;
        if (i < b && s[i] == '"') {
            /* a string without backslashes: up to the next quote, in this line */
            for (i++; i < b && s[i] != '"'; i++) {
                if (s[i] == '\\')
                    return -1;
                high |= s[i] & 0x80;
            }
            if (i >= b)
                return -1;  /* it may go on on the next line: Python joins them */
            f->kind = F_STRING;
            f->text.start = v + 1;
            f->text.len = i - v - 1;
            i++;
            if (i < b && s[i] != ',' && s[i] != ' ')
                return -1;
        }
        else {
            while (i < b && s[i] != ',' && s[i] != ' ')
                i++;
            if (!scan_value(s, v, i, f))
                return -1;
        }
        if (i >= b || s[i] == ' ')
            break;
    }
    ln->has_time = 0;
    if (i < b) {  /* " -?digits" up to the end of the line */
        i++;
        int negative = i < b && s[i] == '-';
        if (negative)
            i++;
        if (i >= b)
            return -1;
        Py_ssize_t d = i;
        while (i < b && is_digit(s[i]))
            i++;
        if (i != b)
            return -1;
        uint64_t m;
        if (!magnitude(s, d, b, &m) || m > (uint64_t)INT64_MAX)
            return -1;
        int64_t t;
        if (__builtin_mul_overflow(negative ? -(int64_t)m : (int64_t)m, scale, &t))
            return -1;
        if (t < MIN_TIME || t > MAX_TIME)
            return -1;
        ln->has_time = 1;
        ln->time = t;
    }
    if (high && !valid_utf8(s + a, b - a))
        return -1;
    if (ln->ntags > 1 && !sort_tags(s, ln))
        return -1;
    return 1;
}

/* -- building (GIL held) ------------------------------------------------------------- */

/* A new reference to the shared str of key bytes [p, p + n). */
static PyObject *
cached_str(const unsigned char *p, Py_ssize_t n)
{
    PyObject *key = PyBytes_FromStringAndSize((const char *)p, n);
    if (key == NULL)
        return NULL;
    PyObject *value = PyDict_GetItemWithError(strings_cache, key);
    if (value != NULL) {
        Py_INCREF(value);
        Py_DECREF(key);
        return value;
    }
    if (PyErr_Occurred() || (value = PyUnicode_DecodeUTF8((const char *)p, n, NULL)) == NULL) {
        Py_DECREF(key);
        return NULL;
    }
    if (PyDict_GET_SIZE(strings_cache) >= CACHE_LIMIT)
        PyDict_Clear(strings_cache);
    if (PyDict_SetItem(strings_cache, key, value) < 0) {
        Py_DECREF(key);
        Py_DECREF(value);
        return NULL;
    }
    Py_DECREF(key);
    return value;
}

/* A field key, first tried against the key at the same place in the line before. */
static PyObject *
field_key(const unsigned char *s, Span span, int index)
{
    const unsigned char *p = s + span.start;
    if (index < MEMO_FIELDS) {
        PyObject *memo = memo_field_keys[index];
        if (memo != NULL && PyUnicode_IS_COMPACT_ASCII(memo) &&
            PyUnicode_GET_LENGTH(memo) == span.len &&
            memcmp(PyUnicode_1BYTE_DATA(memo), p, (size_t)span.len) == 0) {
            Py_INCREF(memo);
            return memo;
        }
    }
    PyObject *key = cached_str(p, span.len);
    if (key != NULL && index < MEMO_FIELDS) {
        PyObject *old = memo_field_keys[index];
        Py_INCREF(key);
        memo_field_keys[index] = key;
        Py_XDECREF(old);
    }
    return key;
}

/* New references to the series' name and tags dict (shared by its points); -1 on error. */
static int
series(const unsigned char *s, const Line *ln, PyObject **name, PyObject **tags)
{
    const char *p = (const char *)s + ln->series.start;
    Py_ssize_t n = ln->series.len;
    PyObject *entry = memo_series_value;
    if (entry != NULL && PyBytes_GET_SIZE(memo_series_key) == n &&
        memcmp(PyBytes_AS_STRING(memo_series_key), p, (size_t)n) == 0) {
        *name = Py_NewRef(PyTuple_GET_ITEM(entry, 0));
        *tags = Py_NewRef(PyTuple_GET_ITEM(entry, 1));
        return 0;
    }
    PyObject *key = PyBytes_FromStringAndSize(p, n);
    if (key == NULL)
        return -1;
    entry = PyDict_GetItemWithError(series_cache, key);
    if (entry != NULL) {
        Py_INCREF(entry);
    }
    else {
        if (PyErr_Occurred())
            goto error;
        PyObject *name_str = PyUnicode_DecodeUTF8((const char *)s + ln->name.start,
                                                  ln->name.len, NULL);
        PyObject *dict = PyDict_New();
        if (name_str == NULL || dict == NULL) {
            Py_XDECREF(name_str);
            Py_XDECREF(dict);
            goto error;
        }
        for (int t = 0; t < ln->ntags; t++) {  /* already in key order */
            const Tag *tag = &ln->tags[t];
            PyObject *k = cached_str(s + tag->key.start, tag->key.len);
            PyObject *v = k == NULL ? NULL : PyUnicode_DecodeUTF8(
                (const char *)s + tag->value.start, tag->value.len, NULL);
            if (v == NULL || PyDict_SetItem(dict, k, v) < 0) {
                Py_XDECREF(k);
                Py_XDECREF(v);
                Py_DECREF(name_str);
                Py_DECREF(dict);
                goto error;
            }
            Py_DECREF(k);
            Py_DECREF(v);
        }
        entry = PyTuple_New(2);
        if (entry == NULL) {
            Py_DECREF(name_str);
            Py_DECREF(dict);
            goto error;
        }
        PyTuple_SET_ITEM(entry, 0, name_str);
        PyTuple_SET_ITEM(entry, 1, dict);
        if (PyDict_GET_SIZE(series_cache) >= CACHE_LIMIT)
            PyDict_Clear(series_cache);
        if (PyDict_SetItem(series_cache, key, entry) < 0) {
            Py_DECREF(entry);
            goto error;
        }
    }
    /* entry and key are ours: they become the memo */
    PyObject *old_key = memo_series_key, *old_value = memo_series_value;
    memo_series_key = key;
    memo_series_value = entry;
    *name = Py_NewRef(PyTuple_GET_ITEM(entry, 0));
    *tags = Py_NewRef(PyTuple_GET_ITEM(entry, 1));
    Py_XDECREF(old_key);
    Py_XDECREF(old_value);
    return 0;
error:
    Py_DECREF(key);
    return -1;
}

static PyObject *
field_value(const unsigned char *s, const Field *f)
{
    switch (f->kind) {
    case F_INT:
        return PyLong_FromLongLong(f->i);
    case F_UINT:
        return PyLong_FromUnsignedLongLong(f->u);
    case F_BOOL:
        return Py_NewRef(f->i ? Py_True : Py_False);
    case F_STRING:
        return PyUnicode_DecodeUTF8((const char *)s + f->text.start, f->text.len, NULL);
    default: {
        if (f->exact)
            return PyFloat_FromDouble(f->d);
        char text[MAX_NUMBER + 1];
        char *end;
        memcpy(text, s + f->text.start, (size_t)f->text.len);
        text[f->text.len] = '\0';
        double d = PyOS_string_to_double(text, &end, NULL);
        if (d == -1.0 && PyErr_Occurred())
            return NULL;
        if (end != text + f->text.len || !Py_IS_FINITE(d)) {
            PyErr_SetString(PyExc_SystemError, "_lineparse: a float the scanner accepted "
                                               "did not convert");
            return NULL;
        }
        return PyFloat_FromDouble(d);
    }
    }
}

/* Append the point of a scanned line to points; -1 on error. */
static int
build(const unsigned char *s, const Line *ln, PyObject *now, PyObject *database,
      PyObject *rp, PyObject *points)
{
    PyObject *name = NULL, *tags = NULL, *time = NULL;
    PyObject *fields = PyDict_New();
    if (fields == NULL)
        return -1;
    for (int k = 0; k < ln->nfields; k++) {
        const Field *f = &ln->fields[k];
        PyObject *key = field_key(s, f->key, k);
        PyObject *value = key == NULL ? NULL : field_value(s, f);
        if (value == NULL || PyDict_SetItem(fields, key, value) < 0) {
            Py_XDECREF(key);
            Py_XDECREF(value);
            goto error;
        }
        Py_DECREF(key);
        Py_DECREF(value);
    }
    if (!ln->has_time) {
        time = Py_NewRef(now);
    }
    else if (memo_time != NULL && memo_time_value == ln->time) {
        time = Py_NewRef(memo_time);
    }
    else if ((time = PyLong_FromLongLong(ln->time)) != NULL) {
        PyObject *old = memo_time;
        memo_time = Py_NewRef(time);
        memo_time_value = ln->time;
        Py_XDECREF(old);
    }
    if (time == NULL || series(s, ln, &name, &tags) < 0)
        goto error;
    /* Every value exists: allocate and fill the point with nothing in between. */
    PyObject *point = point_type->tp_alloc(point_type, 0);
    if (point == NULL)
        goto error;
    char *base = (char *)point;
    *(PyObject **)(base + slot_offset[S_NAME]) = name;
    *(PyObject **)(base + slot_offset[S_TAGS]) = tags;
    *(PyObject **)(base + slot_offset[S_FIELDS]) = fields;
    *(PyObject **)(base + slot_offset[S_TIME]) = time;
    *(PyObject **)(base + slot_offset[S_DATABASE]) = Py_NewRef(database);
    *(PyObject **)(base + slot_offset[S_RP]) = Py_NewRef(rp);
    *(PyObject **)(base + slot_offset[S_GROUP]) = Py_NewRef(empty_str);
    *(PyObject **)(base + slot_offset[S_DIMS]) = Py_NewRef(empty_tuple);
    /* Out of the cyclic collector's sight: the point refers only to strings, an int, an
     * empty tuple and two dicts of strings and scalars, so it cannot be part of a cycle,
     * and tracking it made the collector walk every point of a body after each parse (a
     * third of the ingest row's time). Code that wants to put containers in a point makes
     * a new Point (tracked as any object). */
    PyObject_GC_UnTrack(point);
    int failed = PyList_Append(points, point);
    Py_DECREF(point);
    return failed;
error:
    Py_DECREF(fields);
    Py_XDECREF(time);
    Py_XDECREF(name);
    Py_XDECREF(tags);
    return -1;
}

/* -- module functions ---------------------------------------------------------------- */

/* Take the buffer of args[0] and the byte range args[1]:args[2] inside it; on success
 * the caller releases the view, on failure nothing is held. */
static int
open_range(PyObject *const *args, Py_buffer *view, Py_ssize_t *start, Py_ssize_t *end)
{
    if (PyObject_GetBuffer(args[0], view, PyBUF_SIMPLE) < 0)
        return -1;
    *start = PyLong_AsSsize_t(args[1]);
    if (*start == -1 && PyErr_Occurred())
        goto error;
    *end = PyLong_AsSsize_t(args[2]);
    if (*end == -1 && PyErr_Occurred())
        goto error;
    if (*start < 0 || *end < *start || *end > view->len) {
        PyErr_Format(PyExc_ValueError, "range %zd:%zd outside a body of %zd bytes", *start,
                     *end, view->len);
        goto error;
    }
    return 0;
error:
    PyBuffer_Release(view);
    return -1;
}

PyDoc_STRVAR(scan_doc,
"scan(body, start, end, scale, now, database, retention_policy, points)\n"
"    -> (stop, newlines)\n\n"
"Read the lines of body[start:end] (a bytes-like object) while they are on the fast\n"
"path. With a list as points, append one Point per line (now is the time of a line\n"
"without one); with points None, only check them, without the GIL. stop is the offset\n"
"of the first line left to Python (end when none), newlines the count of newlines in\n"
"body[start:stop].");

static PyObject *
scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "scan() takes 8 arguments");
        return NULL;
    }
    PyObject *now = args[4], *database = args[5], *rp = args[6], *points = args[7];
    int building = points != Py_None;
    if (building) {
        if (point_type == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "_lineparse.setup() was not called");
            return NULL;
        }
        if (!PyList_Check(points) || !PyLong_Check(now) || !PyUnicode_Check(database) ||
            !PyUnicode_Check(rp)) {
            PyErr_SetString(PyExc_TypeError,
                            "scan(): points must be a list or None, now an int, "
                            "database and retention_policy str");
            return NULL;
        }
    }
    long long scale = PyLong_AsLongLong(args[3]);
    if (scale == -1 && PyErr_Occurred())
        return NULL;
    if (scale <= 0) {
        PyErr_SetString(PyExc_ValueError, "scan(): scale must be positive");
        return NULL;
    }
    Py_buffer view;
    Py_ssize_t start, end;
    if (open_range(args, &view, &start, &end) < 0)
        return NULL;
    Line *ln = PyMem_RawMalloc(sizeof(Line));
    if (ln == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    const unsigned char *s = view.buf;
    Py_ssize_t pos = start, newlines = 0;
    int failed = 0;
    if (!building) {
        Py_BEGIN_ALLOW_THREADS
        while (pos < end) {
            const unsigned char *nl = memchr(s + pos, '\n', (size_t)(end - pos));
            Py_ssize_t line_end = nl == NULL ? end : nl - s;
            if (scan_line(s, pos, line_end, (int64_t)scale, ln) < 0)
                break;
            pos = nl == NULL ? end : line_end + 1;
            newlines += nl != NULL;
        }
        Py_END_ALLOW_THREADS
    }
    else {
        while (pos < end) {
            const unsigned char *nl = memchr(s + pos, '\n', (size_t)(end - pos));
            Py_ssize_t line_end = nl == NULL ? end : nl - s;
            int r = scan_line(s, pos, line_end, (int64_t)scale, ln);
            if (r < 0)
                break;
            if (r > 0 && build(s, ln, now, database, rp, points) < 0) {
                failed = 1;
                break;
            }
            pos = nl == NULL ? end : line_end + 1;
            newlines += nl != NULL;
        }
    }
    PyMem_RawFree(ln);
    PyBuffer_Release(&view);
    if (failed)
        return NULL;
    return Py_BuildValue("(nn)", pos, newlines);
}

PyDoc_STRVAR(line_end_doc,
"line_end(body, pos, end) -> offset of the first newline in body[pos:end], or end");

static PyObject *
line_end(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "line_end() takes 3 arguments");
        return NULL;
    }
    Py_buffer view;
    Py_ssize_t pos, end;
    if (open_range(args, &view, &pos, &end) < 0)
        return NULL;
    const char *s = view.buf;
    const char *nl = pos < end ? memchr(s + pos, '\n', (size_t)(end - pos)) : NULL;
    Py_ssize_t found = nl == NULL ? end : nl - s;
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(found);
}

PyDoc_STRVAR(setup_doc,
"setup(point_type, series_cache, strings_cache)\n\n"
"Learn where Point keeps its eight slots (points are made without calling __init__)\n"
"and which dicts share series and key strings. TypeError when Point is not the\n"
"plain __slots__ class this module knows how to fill.");

static PyObject *
setup(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3 || !PyType_Check(args[0]) || !PyDict_CheckExact(args[1]) ||
        !PyDict_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "setup(point_type, series_cache, strings_cache)");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)args[0];
    /* exactly eight object slots: no __dict__, no __weakref__, nothing else to fill */
    if (type->tp_itemsize != 0 || type->tp_dictoffset != 0 ||
        type->tp_basicsize != (Py_ssize_t)(sizeof(PyObject) + 8 * sizeof(PyObject *)) ||
        type->tp_alloc == NULL) {
        PyErr_Format(PyExc_TypeError, "%s is not a class of exactly 8 slots", type->tp_name);
        return NULL;
    }
    Py_ssize_t offsets[8];
    for (int k = 0; k < 8; k++) {
        PyObject *descr = PyObject_GetAttrString((PyObject *)type, SLOT_NAMES[k]);
        if (descr == NULL)
            return NULL;
        int ok = Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
                 ((PyDescrObject *)descr)->d_type == type;
        if (ok) {
            PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
            ok = member->type == Py_T_OBJECT_EX && !(member->flags & Py_READONLY) &&
                 member->offset >= (Py_ssize_t)sizeof(PyObject) &&
                 member->offset + (Py_ssize_t)sizeof(PyObject *) <= type->tp_basicsize;
            offsets[k] = member->offset;
        }
        Py_DECREF(descr);
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "%s.%s is not a slot of that class",
                         type->tp_name, SLOT_NAMES[k]);
            return NULL;
        }
        for (int j = 0; j < k; j++) {
            if (offsets[j] == offsets[k]) {
                PyErr_Format(PyExc_TypeError, "%s: two slots share an offset",
                             type->tp_name);
                return NULL;
            }
        }
    }
    memcpy(slot_offset, offsets, sizeof(offsets));
    Py_INCREF(type);
    Py_XSETREF(point_type, type);
    Py_INCREF(args[1]);
    Py_XSETREF(series_cache, args[1]);
    Py_INCREF(args[2]);
    Py_XSETREF(strings_cache, args[2]);
    Py_CLEAR(memo_series_key);
    Py_CLEAR(memo_series_value);
    for (int k = 0; k < MEMO_FIELDS; k++)
        Py_CLEAR(memo_field_keys[k]);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL, scan_doc},
    {"line_end", (PyCFunction)(void (*)(void))line_end, METH_FASTCALL, line_end_doc},
    {"setup", (PyCFunction)(void (*)(void))setup, METH_FASTCALL, setup_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "kapa_core.models._lineparse",
    "The compiled fast path of kapa_core.models.lineprotocol (see _lineparse.c).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__lineparse(void)
{
    empty_str = PyUnicode_New(0, 0);
    empty_tuple = PyTuple_New(0);
    if (empty_str == NULL || empty_tuple == NULL)
        return NULL;
    return PyModule_Create(&module_def);
}
