/* Audit batches: the hot part of agent.audit.encode_batch (protocol-neutral; it lives in
 * this extension so the agent builds one). */
#include "fastpath.h"
#include <math.h>

static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Decimal text of an integer at out; returns its length (at most 20).  Two digits per
 * division: moments and sequence numbers have 10-16 digits, ~5 per event. */
static Py_ssize_t decimal_integer(char *out, long long value) {
    Py_ssize_t n = 0;
    unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value
                                             : (unsigned long long)value;
    if (value < 0) out[n++] = '-';
    if (magnitude < 10) { /* counts, positions: mostly small */
        out[n] = (char)('0' + magnitude);
        return n + 1;
    }
    if (magnitude < 100) {
        out[n] = digit_pairs[magnitude * 2];
        out[n + 1] = digit_pairs[magnitude * 2 + 1];
        return n + 2;
    }
    char digits[24];
    int at = 24;
    while (magnitude >= 100) {
        unsigned pair = (unsigned)(magnitude % 100) * 2;
        magnitude /= 100;
        digits[--at] = digit_pairs[pair + 1];
        digits[--at] = digit_pairs[pair];
    }
    if (magnitude >= 10) {
        digits[--at] = digit_pairs[magnitude * 2 + 1];
        digits[--at] = digit_pairs[magnitude * 2];
    } else {
        digits[--at] = (char)('0' + magnitude);
    }
    memcpy(out + n, digits + at, (size_t)(24 - at));
    return n + 24 - at;
}

/* JSON null, or the integer's decimal text, at out; returns its length. */
static Py_ssize_t optional_integer(char *out, int is_null, long long value) {
    if (!is_null) return decimal_integer(out, value);
    memcpy(out, "null", 4);
    return 4;
}

/* Decimal text of value with `places` fixed decimals (value rounded to them), at out. */
static Py_ssize_t fixed_decimal(char *out, double value, int places, long long scale) {
    Py_ssize_t n = 0;
    double scaled = nearbyint(value * (double)scale);
    if (scaled < 0) {
        out[n++] = '-';
        scaled = -scaled;
    }
    unsigned long long units = (unsigned long long)scaled; /* |value| <= 1e12: fits */
    unsigned long long fraction = units % (unsigned long long)scale;
    n += decimal_integer(out + n, (long long)(units / (unsigned long long)scale));
    out[n++] = '.';
    int i = places - 1;
    for (; i >= 1; i -= 2) {
        unsigned pair = (unsigned)(fraction % 100) * 2;
        fraction /= 100;
        out[n + i] = digit_pairs[pair + 1];
        out[n + i - 1] = digit_pairs[pair];
    }
    if (i == 0) out[n] = (char)('0' + fraction % 10);
    return n + places;
}

/* The position of a fragment in order (appended at its first use, index maps it to its
 * position), or -1 with an error. */
static long fragment_position(PyObject *index, PyObject *order, PyObject *fragment) {
    PyObject *position = PyDict_GetItemWithError(index, fragment);
    if (position == NULL) {
        if (PyErr_Occurred()) return -1;
        PyObject *next = PyLong_FromSsize_t(PyList_GET_SIZE(order));
        int failed = next == NULL || PyDict_SetItem(index, fragment, next) < 0 ||
                     PyList_Append(order, fragment) < 0;
        Py_XDECREF(next);
        if (failed) return -1;
        return (long)PyList_GET_SIZE(order) - 1;
    }
    return PyLong_AsLong(position);
}

/* encode_events(queued, first_seq) -> (fragments in order of first use, events JSON):
 * the hot part of agent.audit.encode_batch. */
PyObject *encode_events(PyObject *module, PyObject *args) {
    PyObject *queued;
    long long seq;
    if (!PyArg_ParseTuple(args, "O!L", &PyList_Type, &queued, &seq)) return NULL;
    enum { PLACES = 16 };
    typedef struct {
        PyObject *fragment; /* compared only */
        long position;
    } Place;
    Place places[PLACES] = {{NULL, 0}};
    PyObject *index = PyDict_New(), *order = PyList_New(0);
    ByteBuffer text = {NULL, 0, 0};
    if (index == NULL || order == NULL || byte_buffer_reserve(&text, 2) < 0) goto error;
    text.data[text.len++] = '[';
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(queued); i++, seq++) {
        PyObject *event = PyList_GET_ITEM(queued, i);
        if (!PyTuple_Check(event) || PyTuple_GET_SIZE(event) != 6) {
            PyErr_SetString(PyExc_TypeError, "a queued audit event is a 6-tuple");
            goto error;
        }
        PyObject *fragment = PyTuple_GET_ITEM(event, 0);
        /* a batch repeats a few fragments: the positions of recent ones by identity (index
         * holds each alive, so an identity stays its own during this call) */
        Place *place = &places[((uintptr_t)fragment >> 4) % PLACES];
        if (place->fragment != fragment) {
            place->position = fragment_position(index, order, fragment);
            if (place->position < 0) goto error;
            place->fragment = fragment;
        }
        long pos = place->position;
        double moment = PyFloat_AsDouble(PyTuple_GET_ITEM(event, 1));
        double duration = PyFloat_AsDouble(PyTuple_GET_ITEM(event, 3));
        PyObject *rows = PyTuple_GET_ITEM(event, 2), *sent = PyTuple_GET_ITEM(event, 5);
        int error = PyObject_IsTrue(PyTuple_GET_ITEM(event, 4));
        if (PyErr_Occurred() || error < 0) goto error;
        long long count = 0;
        if (rows != Py_None) {
            count = PyLong_AsLongLong(rows);
            if (count == -1 && PyErr_Occurred()) goto error;
        }
        long long sent_bytes = 0;
        if (sent != Py_None) {
            sent_bytes = PyLong_AsLongLong(sent);
            if (sent_bytes == -1 && PyErr_Occurred()) goto error;
        }
        if (!isfinite(moment) || !isfinite(duration) || fabs(moment) > 1e12 ||
            fabs(duration) > 1e12) {
            PyErr_SetString(PyExc_ValueError, "audit event time or duration out of range");
            goto error;
        }
        if (byte_buffer_reserve(&text, 192) < 0) goto error;
        char *o = text.data + text.len;
        Py_ssize_t n = 0;
        if (i) o[n++] = ',';
        o[n++] = '[';
        n += decimal_integer(o + n, pos);
        o[n++] = ',';
        n += decimal_integer(o + n, seq);
        o[n++] = ',';
        n += fixed_decimal(o + n, moment, 6, 1000000);
        o[n++] = ',';
        n += optional_integer(o + n, rows == Py_None, count);
        o[n++] = ',';
        n += fixed_decimal(o + n, duration, 3, 1000);
        o[n++] = ',';
        o[n++] = error ? '1' : '0';
        o[n++] = ',';
        n += optional_integer(o + n, sent == Py_None, sent_bytes);
        o[n++] = ']';
        text.len += n;
    }
    if (byte_buffer_reserve(&text, 1) < 0) goto error;
    text.data[text.len++] = ']';
    PyObject *events = PyUnicode_FromStringAndSize(text.data, text.len);
    PyMem_Free(text.data);
    Py_DECREF(index);
    if (events == NULL) {
        Py_DECREF(order);
        return NULL;
    }
    return Py_BuildValue("(NN)", order, events);
error:
    PyMem_Free(text.data);
    Py_XDECREF(index);
    Py_XDECREF(order);
    return NULL;
}
