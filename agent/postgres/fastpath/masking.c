/* Masking of DataRow cells (agent/masking.py's methods over the text form of a value) and
 * the output buffer the round trips write through. */
#include "fastpath.h"

/* Append a segment; `keep` (owned, may be NULL) is released with the output, or at once
 * when this fails. */
int output_add(Output *out, const char *ptr, Py_ssize_t len, PyObject *keep) {
    if (len <= 0 && keep == NULL) return 0;
    if (out->total > PY_SSIZE_T_MAX / 2 - len) {
        Py_XDECREF(keep);
        return -1;
    }
    if (out->count == out->capacity) {
        Py_ssize_t capacity = out->capacity ? out->capacity * 2 : 16;
        Segment *items = PyMem_Realloc(out->items, (size_t)capacity * sizeof(Segment));
        if (items == NULL) {
            Py_XDECREF(keep);
            return -1;
        }
        out->items = items;
        PyObject **keep_items = PyMem_Realloc(out->keep, (size_t)capacity * sizeof(PyObject *));
        if (keep_items == NULL) {
            Py_XDECREF(keep);
            return -1;
        }
        out->keep = keep_items;
        out->capacity = capacity;
    }
    out->items[out->count].ptr = ptr;
    out->items[out->count].len = len;
    out->keep[out->count] = keep; /* owned */
    out->count++;
    out->total += len;
    return 0;
}

void output_free(Output *out) {
    for (Py_ssize_t i = 0; i < out->count; i++) Py_XDECREF(out->keep[i]);
    PyMem_Free(out->items);
    PyMem_Free(out->keep);
}

void compiled_clear(CompiledMask *compiled) {
    Py_CLEAR(compiled->source);
    PyMem_Free(compiled->cells);
    compiled->cells = NULL;
    compiled->count = 0;
}

/* ------------------------------------------------------------------ masking
 * agent/masking.py's methods over the text form of a value, code point by code point
 * (as Python's str: \d is isdecimal, [^\W_] is isalnum).  ``hash`` needs the HMAC key and
 * stays in Python.  tests/agent/test_native.py checks these against masking.py. */

enum { M_REDACT, M_NULL, M_LAST_N, M_EMAIL, M_YEAR, M_PARTIAL, M_PYTHON };

static int method_code(PyObject *method) {
    if (!PyUnicode_Check(method)) return M_REDACT;
    const char *name = PyUnicode_AsUTF8(method);
    if (name == NULL) {
        PyErr_Clear();
        return M_REDACT;
    }
    if (strcmp(name, "null") == 0) return M_NULL;
    if (strcmp(name, "last_n") == 0) return M_LAST_N;
    if (strcmp(name, "email") == 0) return M_EMAIL;
    if (strcmp(name, "year") == 0) return M_YEAR;
    if (strcmp(name, "partial") == 0) return M_PARTIAL;
    if (strcmp(name, "hash") == 0) return M_PYTHON;
    return M_REDACT; /* unknown methods redact (fail safe), as mask_text */
}

static int is_text_type(long type_oid) {
    return type_oid == 25 || type_oid == 1043 || type_oid == 1042 || type_oid == 19 ||
           type_oid == 705 || type_oid == 0;
}

static int method_fits(int code, long type_oid) {
    if (code == M_NULL) return 1;
    if (is_text_type(type_oid)) return 1;
    return code == M_YEAR && (type_oid == 1082 || type_oid == 1114 || type_oid == 1184);
}

static PyObject *encoded(PyObject *text) { /* str -> UTF-8 bytes, consuming text */
    if (text == NULL) return NULL;
    PyObject *bytes = PyUnicode_AsUTF8String(text);
    Py_DECREF(text);
    return bytes;
}

static PyObject *stars_then(Py_ssize_t stars, PyObject *value, Py_ssize_t from) {
    Py_ssize_t length = PyUnicode_GET_LENGTH(value);
    Py_UCS4 max = PyUnicode_MAX_CHAR_VALUE(value);
    PyObject *out = PyUnicode_New(stars + length - from, max > '*' ? max : '*');
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < stars; i++) PyUnicode_WRITE(PyUnicode_KIND(out), PyUnicode_DATA(out), i, '*');
    if (length > from && PyUnicode_CopyCharacters(out, stars, value, from, length - from) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

/* The masked text (new ref to bytes), Py_None for SQL NULL, NULL on error. */
static PyObject *mask_cell(int code, const char *raw, Py_ssize_t raw_len, long param,
                           int has_param) {
    if (code == M_NULL) Py_RETURN_NONE;
    if (code == M_REDACT) return PyBytes_FromStringAndSize("****", 4);
    PyObject *value = PyUnicode_DecodeUTF8(raw, raw_len, "replace");
    if (value == NULL) return NULL;
    Py_ssize_t length = PyUnicode_GET_LENGTH(value);
    int kind = PyUnicode_KIND(value);
    const void *data = PyUnicode_DATA(value);
    PyObject *result = NULL;
    if (code == M_LAST_N) {
        long n = has_param ? param : 4;
        if (n < 0) n = 0;
        if (length <= n)
            result = encoded(stars_then(length, value, length));
        else
            result = encoded(stars_then(length - n, value, length - n));
    } else if (code == M_EMAIL) {
        Py_ssize_t at = -1;
        for (Py_ssize_t i = length - 1; i >= 0; i--)
            if (PyUnicode_READ(kind, data, i) == '@') {
                at = i;
                break;
            }
        if (at <= 0) {
            result = PyBytes_FromStringAndSize("****", 4);
        } else {
            PyObject *domain = PyUnicode_Substring(value, at + 1, length);
            PyObject *text = domain ? PyUnicode_FromFormat("****@%U", domain) : NULL;
            Py_XDECREF(domain);
            result = encoded(text);
        }
    } else if (code == M_YEAR) {
        Py_ssize_t digits = 0;
        while (digits < length && Py_UNICODE_ISDECIMAL(PyUnicode_READ(kind, data, digits))) digits++;
        int matches = digits >= 4 && length >= digits + 6;
        if (matches) {
            Py_ssize_t i = digits;
            matches = PyUnicode_READ(kind, data, i) == '-' &&
                      Py_UNICODE_ISDECIMAL(PyUnicode_READ(kind, data, i + 1)) &&
                      Py_UNICODE_ISDECIMAL(PyUnicode_READ(kind, data, i + 2)) &&
                      PyUnicode_READ(kind, data, i + 3) == '-' &&
                      Py_UNICODE_ISDECIMAL(PyUnicode_READ(kind, data, i + 4)) &&
                      Py_UNICODE_ISDECIMAL(PyUnicode_READ(kind, data, i + 5));
        }
        if (!matches) {
            result = Py_NewRef(Py_None);
        } else {
            Py_ssize_t end = digits + 6;
            Py_UCS4 next = end < length ? PyUnicode_READ(kind, data, end) : 0;
            PyObject *year_text = PyUnicode_Substring(value, 0, digits);
            PyObject *text = year_text ? PyUnicode_FromFormat(
                                             "%U-01-01%s", year_text,
                                             (next == ' ' || next == 'T') ? " 00:00:00" : "")
                                       : NULL;
            Py_XDECREF(year_text);
            result = encoded(text);
        }
    } else { /* M_PARTIAL */
        long keep = has_param ? param : 4;
        Py_UCS4 max = PyUnicode_MAX_CHAR_VALUE(value);
        PyObject *out = PyUnicode_New(length, max > 'X' ? max : 'X');
        if (out != NULL) {
            int out_kind = PyUnicode_KIND(out);
            void *out_data = PyUnicode_DATA(out);
            Py_ssize_t kept = 0;
            for (Py_ssize_t i = length - 1; i >= 0; i--) { /* right to left: the last digits */
                Py_UCS4 c = PyUnicode_READ(kind, data, i);
                if (keep > 0 && kept < keep && Py_UNICODE_ISDECIMAL(c)) {
                    kept++;
                    PyUnicode_WRITE(out_kind, out_data, i, c);
                } else {
                    PyUnicode_WRITE(out_kind, out_data, i, Py_UNICODE_ISALNUM(c) ? 'X' : c);
                }
            }
        }
        result = encoded(out);
    }
    Py_DECREF(value);
    return result;
}

int compile_mask(CompiledMask *compiled, PyObject *row_mask) {
    if (compiled->source == row_mask) return 0;
    compiled_clear(compiled);
    if (!PyList_Check(row_mask)) {
        PyErr_SetString(PyExc_TypeError, "row masks are a list of (index, spec)");
        return -1;
    }
    Py_ssize_t count = PyList_GET_SIZE(row_mask);
    CellMask *cells = PyMem_Calloc((size_t)(count ? count : 1), sizeof(CellMask));
    if (cells == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PyList_GET_ITEM(row_mask, i), *spec;
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            !PyTuple_Check(spec = PyTuple_GET_ITEM(pair, 1)) || PyTuple_GET_SIZE(spec) != 4) {
            PyMem_Free(cells);
            PyErr_SetString(PyExc_TypeError, "a row mask entry is (index, (method, param, type, binary))");
            return -1;
        }
        cells[i].index = PyLong_AsSsize_t(PyTuple_GET_ITEM(pair, 0));
        PyObject *param = PyTuple_GET_ITEM(spec, 1);
        cells[i].has_param = param != Py_None;
        cells[i].param = cells[i].has_param ? PyLong_AsLong(param) : 0;
        long type_oid = PyLong_AsLong(PyTuple_GET_ITEM(spec, 2));
        int binary = PyObject_IsTrue(PyTuple_GET_ITEM(spec, 3));
        if (PyErr_Occurred() || binary < 0 || (i > 0 && cells[i].index <= cells[i - 1].index)) {
            PyMem_Free(cells);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "row mask indexes must increase");
            return -1;
        }
        int code = method_code(PyTuple_GET_ITEM(spec, 0));
        cells[i].code = (binary || !method_fits(code, type_oid)) ? -1 : code;
        cells[i].spec = spec; /* borrowed: row_mask is kept alive by compiled->source */
    }
    compiled->source = Py_NewRef(row_mask);
    compiled->cells = cells;
    compiled->count = count;
    return 0;
}

/* The DataRow message with its masked cells rewritten (the other cells copied as bytes,
 * NULL stays NULL), as agent.postgres.masks.ResultMasks._mask_row. */
PyObject *mask_data_row(CompiledMask *compiled, const unsigned char *payload,
                               Py_ssize_t len, PyObject *python_mask, PyObject *key) {
    if (len < 2) {
        PyErr_SetString(PyExc_ValueError, "DataRow too short");
        return NULL;
    }
    Py_ssize_t columns = be16(payload), offset = 2, column = 0, span = 0;
    Output out = {NULL, NULL, 0, 0, 0};
    unsigned char *header = NULL;
    Py_ssize_t headers = 0;
    header = PyMem_Malloc((size_t)(compiled->count * 4 + 4));
    if (header == NULL) return PyErr_NoMemory();
    for (Py_ssize_t m = 0; m < compiled->count; m++) {
        CellMask *cell = &compiled->cells[m];
        if (cell->index >= columns) break;
        while (column < cell->index) { /* skip to the masked column */
            if (len - offset < 4) goto malformed;
            int32_t cell_len = be32(payload + offset);
            offset += 4 + (cell_len > 0 ? cell_len : 0);
            column++;
        }
        if (len - offset < 4) goto malformed;
        int32_t cell_len = be32(payload + offset);
        column++;
        if (cell_len < 0) { /* NULL stays NULL */
            offset += 4;
            continue;
        }
        if (len - offset - 4 < cell_len) goto malformed;
        const char *raw = (const char *)payload + offset + 4;
        PyObject *masked;
        if (cell->code == -1) {
            masked = Py_NewRef(Py_None);
        } else if (cell->code == M_PYTHON) {
            PyObject *raw_bytes = PyBytes_FromStringAndSize(raw, cell_len);
            masked = raw_bytes ? PyObject_CallFunction(python_mask, "OOOOOO", PyTuple_GET_ITEM(cell->spec, 0),
                                                       raw_bytes, PyTuple_GET_ITEM(cell->spec, 2),
                                                       PyTuple_GET_ITEM(cell->spec, 1), key,
                                                       PyTuple_GET_ITEM(cell->spec, 3))
                               : NULL;
            Py_XDECREF(raw_bytes);
            if (masked != NULL && masked != Py_None && !PyBytes_Check(masked)) {
                Py_DECREF(masked);
                PyErr_SetString(PyExc_TypeError, "a mask method must return bytes or None");
                masked = NULL;
            }
        } else {
            masked = mask_cell(cell->code, raw, cell_len, cell->param, cell->has_param);
        }
        if (masked == NULL) goto error;
        if (masked != Py_None && PyBytes_GET_SIZE(masked) > INT32_MAX - 64) {
            Py_DECREF(masked);
            PyErr_SetString(PyExc_ValueError, "a masked value does not fit in a DataRow");
            goto error;
        }
        if (output_add(&out, (const char *)payload + span, offset - span, NULL) < 0) {
            Py_DECREF(masked);
            goto nomemory;
        }
        unsigned char *h = header + 4 * headers++;
        int32_t masked_len = masked == Py_None ? -1 : (int32_t)PyBytes_GET_SIZE(masked);
        h[0] = (unsigned char)((uint32_t)masked_len >> 24);
        h[1] = (unsigned char)((uint32_t)masked_len >> 16);
        h[2] = (unsigned char)((uint32_t)masked_len >> 8);
        h[3] = (unsigned char)masked_len;
        if (output_add(&out, (const char *)h, 4, NULL) < 0) {
            Py_DECREF(masked);
            goto nomemory;
        }
        if (masked == Py_None) {
            Py_DECREF(masked);
        } else if (output_add(&out, PyBytes_AS_STRING(masked), PyBytes_GET_SIZE(masked), masked) < 0) {
            goto nomemory;
        }
        offset += 4 + cell_len;
        span = offset;
    }
    if (output_add(&out, (const char *)payload + span, len - span, NULL) < 0) goto nomemory;
    if (out.total > INT32_MAX - 4) {
        PyErr_SetString(PyExc_ValueError, "the masked DataRow is longer than a message can be");
        goto error;
    }
    PyObject *message = PyBytes_FromStringAndSize(NULL, 5 + out.total);
    if (message != NULL) {
        char *o = PyBytes_AS_STRING(message);
        int32_t message_len = (int32_t)(4 + out.total);
        o[0] = 'D';
        o[1] = (char)(message_len >> 24);
        o[2] = (char)(message_len >> 16);
        o[3] = (char)(message_len >> 8);
        o[4] = (char)message_len;
        o += 5;
        for (Py_ssize_t i = 0; i < out.count; i++) {
            memcpy(o, out.items[i].ptr, (size_t)out.items[i].len);
            o += out.items[i].len;
        }
    }
    output_free(&out);
    PyMem_Free(header);
    return message;
malformed:
    PyErr_SetString(PyExc_ValueError, "malformed DataRow");
    goto error;
nomemory:
    PyErr_NoMemory();
error:
    output_free(&out);
    PyMem_Free(header);
    return NULL;
}

/* mask_row(payload, row_mask, python_mask, key) -> DataRow message: for tests. */
PyObject *module_mask_row(PyObject *module, PyObject *args) {
    Py_buffer payload;
    PyObject *row_mask, *python_mask, *key;
    if (!PyArg_ParseTuple(args, "y*OOO", &payload, &row_mask, &python_mask, &key)) return NULL;
    CompiledMask compiled = {NULL, NULL, 0};
    PyObject *result = NULL;
    if (compile_mask(&compiled, row_mask) == 0)
        result = mask_data_row(&compiled, payload.buf, payload.len, python_mask, key);
    compiled_clear(&compiled);
    PyBuffer_Release(&payload);
    return result;
}
