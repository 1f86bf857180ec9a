/* Masking of DataRow cells (agent/masking.py's methods over the text form of a value) and
 * the output buffers the round trips write through.
 *
 * Every method runs here, ``hash`` included (its token: hash.c).  A value that is all ASCII
 * is masked byte by byte straight into the output buffer (no allocation); any other value
 * is decoded as Python does (errors="replace") and masked code point by code point, so the
 * two paths agree on every input (tests/agent/test_native.py compares them with
 * masking.py). */
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

/* ------------------------------------------------------------------ buffers
 * A bytes object grown in place (doubling): a whole chunk's output is built in one. */

char *buffer_room(Buffer *buffer, Py_ssize_t extra) {
    Py_ssize_t need = buffer->len + extra;
    if (extra < 0 || need < buffer->len) {
        PyErr_NoMemory();
        return NULL;
    }
    Py_ssize_t capacity = buffer->bytes ? PyBytes_GET_SIZE(buffer->bytes) : 0;
    if (need > capacity) {
        Py_ssize_t grown = capacity < 4096 ? 4096 : capacity;
        while (grown < need) grown = grown > PY_SSIZE_T_MAX / 2 ? need : grown * 2;
        if (buffer->bytes == NULL) {
            buffer->bytes = PyBytes_FromStringAndSize(NULL, grown);
            if (buffer->bytes == NULL) return NULL;
        } else if (_PyBytes_Resize(&buffer->bytes, grown) < 0) {
            return NULL; /* _PyBytes_Resize released it */
        }
    }
    return PyBytes_AS_STRING(buffer->bytes) + buffer->len;
}

int buffer_add(Buffer *buffer, const void *data, Py_ssize_t len) {
    if (len <= 0) return 0;
    char *room = buffer_room(buffer, len);
    if (room == NULL) return -1;
    memcpy(room, data, (size_t)len);
    buffer->len += len;
    return 0;
}

/* The bytes written so far (a new reference; the buffer is emptied). */
PyObject *buffer_finish(Buffer *buffer) {
    PyObject *bytes = buffer->bytes;
    buffer->bytes = NULL;
    if (bytes == NULL) return PyBytes_FromStringAndSize(NULL, 0);
    if (PyBytes_GET_SIZE(bytes) != buffer->len && _PyBytes_Resize(&bytes, buffer->len) < 0)
        return NULL;
    buffer->len = 0;
    return bytes;
}

void buffer_free(Buffer *buffer) {
    Py_CLEAR(buffer->bytes);
    buffer->len = 0;
}

static void put_be32(char *at, int32_t value) {
    at[0] = (char)((uint32_t)value >> 24);
    at[1] = (char)((uint32_t)value >> 16);
    at[2] = (char)((uint32_t)value >> 8);
    at[3] = (char)value;
}

/* ------------------------------------------------------------------ methods */

enum { M_REDACT, M_NULL, M_LAST_N, M_EMAIL, M_YEAR, M_PARTIAL, M_HASH };

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
    if (strcmp(name, "hash") == 0) return M_HASH;
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

static int is_ascii(const unsigned char *raw, Py_ssize_t len) {
    for (Py_ssize_t i = 0; i < len; i++)
        if (raw[i] >= 0x80) return 0;
    return 1;
}

static int ascii_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int ascii_alnum(unsigned char c) {
    return ascii_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Length of masking.year's output for an ASCII value (-1: no date prefix, NULL) and the
 * year's digits in *digits. */
static Py_ssize_t year_shape(const unsigned char *raw, Py_ssize_t len, Py_ssize_t *digits,
                             int *with_time) {
    Py_ssize_t d = 0;
    while (d < len && ascii_digit(raw[d])) d++;
    if (d < 4 || len < d + 6 || raw[d] != '-' || !ascii_digit(raw[d + 1]) ||
        !ascii_digit(raw[d + 2]) || raw[d + 3] != '-' || !ascii_digit(raw[d + 4]) ||
        !ascii_digit(raw[d + 5]))
        return -1;
    *digits = d;
    *with_time = d + 6 < len && (raw[d + 6] == ' ' || raw[d + 6] == 'T');
    return d + 6 + (*with_time ? 9 : 0);
}

/* ------------------------------------------------------------------ length prefixes
 * A masked value goes out after its length: a DataRow's 4-byte big-endian length (-1:
 * NULL), or a MySQL text row's length-encoded integer (0xfb: NULL). */

static int length_size(LengthStyle style, Py_ssize_t len) {
    if (style == LENGTH_BE32) return 4;
    return len < 251 ? 1 : len < (1 << 16) ? 3 : len < (1 << 24) ? 4 : 9;
}

static void put_length(char *at, LengthStyle style, Py_ssize_t len) {
    if (style == LENGTH_BE32) {
        put_be32(at, (int32_t)len);
        return;
    }
    int size = length_size(style, len);
    if (size == 1) {
        at[0] = (char)len;
        return;
    }
    at[0] = (char)(size == 3 ? 0xfc : size == 4 ? 0xfd : 0xfe);
    for (int i = 1; i < size; i++) at[i] = (char)((uint64_t)len >> (8 * (i - 1)));
}

static int add_null(Buffer *out, LengthStyle style) {
    return style == LENGTH_BE32 ? buffer_add(out, "\xff\xff\xff\xff", 4) : buffer_add(out, "\xfb", 1);
}

/* Room for a value of ``len`` bytes after its length, which is written: where the value
 * goes (the buffer's len is not advanced). */
static char *room_after_length(Buffer *out, LengthStyle style, Py_ssize_t len) {
    int size = length_size(style, len);
    char *room = buffer_room(out, size + len);
    if (room == NULL) return NULL;
    put_length(room, style, len);
    out->len += size;
    return room + size;
}

/* Write one ASCII value's mask (its length, then the text) at the buffer's end. */
static int mask_ascii_into(Buffer *out, const CellMask *cell, const unsigned char *raw,
                           Py_ssize_t len, LengthStyle style) {
    Py_ssize_t result_len = len, at = -1, digits = 0;
    int with_time = 0;
    long n = cell->has_param ? cell->param : 4;
    switch (cell->code) {
    case M_EMAIL:
        for (Py_ssize_t i = len - 1; i >= 0; i--)
            if (raw[i] == '@') {
                at = i;
                break;
            }
        result_len = at <= 0 ? 4 : 5 + len - at - 1;
        break;
    case M_YEAR:
        result_len = year_shape(raw, len, &digits, &with_time);
        break;
    case M_HASH:
        result_len = HASH_TOKEN_LEN;
        break;
    }
    if (result_len < 0) return add_null(out, style);
    char *o = room_after_length(out, style, result_len);
    if (o == NULL) return -1;
    switch (cell->code) {
    case M_LAST_N: {
        long floor = n < 0 ? 0 : n;
        Py_ssize_t keep = len <= floor ? 0 : floor; /* a value that short: all stars */
        memset(o, '*', (size_t)(len - keep));
        memcpy(o + len - keep, raw + len - keep, (size_t)keep);
        break;
    }
    case M_EMAIL:
        if (at <= 0) {
            memcpy(o, "****", 4);
        } else {
            memcpy(o, "****@", 5);
            memcpy(o + 5, raw + at + 1, (size_t)(len - at - 1));
        }
        break;
    case M_YEAR:
        memcpy(o, raw, (size_t)digits);
        memcpy(o + digits, with_time ? "-01-01 00:00:00" : "-01-01", with_time ? 15 : 6);
        break;
    case M_PARTIAL: {
        long kept = 0;
        for (Py_ssize_t i = len - 1; i >= 0; i--) { /* right to left: the last digits */
            unsigned char c = raw[i];
            if (n > 0 && kept < n && ascii_digit(c)) {
                kept++;
                o[i] = (char)c;
            } else {
                o[i] = ascii_alnum(c) ? 'X' : (char)c;
            }
        }
        break;
    }
    case M_HASH:
        hash_token((const char *)raw, len, o);
        break;
    }
    out->len += result_len;
    return 0;
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

/* A value with non-ASCII bytes, as Python masks it: the masked text (new ref to bytes),
 * Py_None for SQL NULL, NULL on error. */
static PyObject *mask_unicode(int code, const char *raw, Py_ssize_t raw_len, long param,
                              int has_param) {
    PyObject *value = PyUnicode_DecodeUTF8(raw, raw_len, "replace");
    if (value == NULL) return NULL;
    Py_ssize_t length = PyUnicode_GET_LENGTH(value);
    int kind = PyUnicode_KIND(value);
    const void *data = PyUnicode_DATA(value);
    PyObject *result = NULL;
    if (code == M_HASH) {
        PyObject *text = PyUnicode_AsUTF8String(value);
        if (text != NULL) {
            result = PyBytes_FromStringAndSize(NULL, HASH_TOKEN_LEN);
            if (result != NULL)
                hash_token(PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text), PyBytes_AS_STRING(result));
            Py_DECREF(text);
        }
    } else if (code == M_LAST_N) {
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

/* One masked cell (its length in ``style``, or NULL, then its text) at the buffer's end. */
int mask_value_into(Buffer *out, const CellMask *cell, const unsigned char *raw,
                    Py_ssize_t len, LengthStyle style) {
    if (cell->code == -1 || cell->code == M_NULL) return add_null(out, style);
    if (cell->code == M_REDACT) {
        char *o = room_after_length(out, style, 4);
        if (o == NULL) return -1;
        memcpy(o, "****", 4);
        out->len += 4;
        return 0;
    }
    if (is_ascii(raw, len)) return mask_ascii_into(out, cell, raw, len, style);
    PyObject *masked = mask_unicode(cell->code, (const char *)raw, len, cell->param, cell->has_param);
    if (masked == NULL) return -1;
    int failed;
    if (masked == Py_None) {
        failed = add_null(out, style);
    } else if (style == LENGTH_BE32 && PyBytes_GET_SIZE(masked) > INT32_MAX - 64) {
        PyErr_SetString(PyExc_ValueError, "a masked value does not fit in a DataRow");
        failed = -1;
    } else {
        Py_ssize_t size = PyBytes_GET_SIZE(masked);
        char *o = room_after_length(out, style, size);
        failed = o == NULL;
        if (!failed) {
            memcpy(o, PyBytes_AS_STRING(masked), (size_t)size);
            out->len += size;
        }
    }
    Py_DECREF(masked);
    return failed ? -1 : 0;
}

/* One masked DataRow cell (its 4-byte length, -1 for NULL, then its text). */
int mask_cell_into(Buffer *out, const CellMask *cell, const unsigned char *raw,
                          Py_ssize_t len) {
    return mask_value_into(out, cell, raw, len, LENGTH_BE32);
}

/* ------------------------------------------------------------------ rows */

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
    }
    compiled->source = Py_NewRef(row_mask);
    compiled->cells = cells;
    compiled->count = count;
    return 0;
}

/* Append the DataRow message with its masked cells rewritten (the other cells copied as
 * bytes, NULL stays NULL), as agent.postgres.masks.ResultMasks._mask_row.  On error the
 * buffer is left as it was. */
int mask_data_row_into(Buffer *out, CompiledMask *compiled, const unsigned char *payload,
                       Py_ssize_t len, PyObject *key) {
    if (len < 2) {
        PyErr_SetString(PyExc_ValueError, "DataRow too short");
        return -1;
    }
    if (hmac_prepare(key) < 0) return -1;
    Py_ssize_t start = out->len, columns = be16(payload), offset = 2, column = 0, span = 0;
    if (buffer_add(out, "D\0\0\0\0", 5) < 0) return -1;
    for (Py_ssize_t m = 0; m < compiled->count; m++) {
        const CellMask *cell = &compiled->cells[m];
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
        if (buffer_add(out, payload + span, offset - span) < 0 ||
            mask_cell_into(out, cell, payload + offset + 4, cell_len) < 0)
            goto error;
        offset += 4 + cell_len;
        span = offset;
    }
    if (offset > len) goto malformed;
    if (buffer_add(out, payload + span, len - span) < 0) goto error;
    if (out->len - start - 1 > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "the masked DataRow is longer than a message can be");
        goto error;
    }
    put_be32(PyBytes_AS_STRING(out->bytes) + start + 1, (int32_t)(out->len - start - 1));
    return 0;
malformed:
    PyErr_SetString(PyExc_ValueError, "malformed DataRow");
error:
    out->len = start;
    return -1;
}

/* mask_row(payload, row_mask, key) -> DataRow message: for tests. */
PyObject *module_mask_row(PyObject *module, PyObject *args) {
    Py_buffer payload;
    PyObject *row_mask, *key;
    if (!PyArg_ParseTuple(args, "y*OO", &payload, &row_mask, &key)) return NULL;
    CompiledMask compiled = {NULL, NULL, 0};
    Buffer out = {NULL, 0};
    PyObject *result = NULL;
    if (compile_mask(&compiled, row_mask) == 0 &&
        mask_data_row_into(&out, &compiled, payload.buf, payload.len, key) == 0)
        result = buffer_finish(&out);
    buffer_free(&out);
    compiled_clear(&compiled);
    PyBuffer_Release(&payload);
    return result;
}

/* mask_rows(data, pos, row_mask, key) -> (replacement or None, end, rows): the run of
 * whole DataRow messages of ``data`` from ``pos`` on, masked (None: no row_mask, they pass as
 * they are), where the run ends and how many rows it holds.  The Python data path's hot
 * loop: one call per chunk, not per row. */
PyObject *module_mask_rows(PyObject *module, PyObject *args) {
    static CompiledMask compiled = {NULL, NULL, 0}; /* the last row_mask, compiled */
    Py_buffer data;
    Py_ssize_t pos;
    PyObject *row_mask, *key;
    if (!PyArg_ParseTuple(args, "y*nOO", &data, &pos, &row_mask, &key)) return NULL;
    const unsigned char *buf = data.buf;
    Py_ssize_t size = data.len, start = pos, rows = 0;
    Buffer out = {NULL, 0};
    PyObject *result = NULL;
    int masking = row_mask != Py_None;
    if (pos < 0 || pos > size) {
        PyErr_SetString(PyExc_IndexError, "position out of range");
        goto done;
    }
    if (masking && compile_mask(&compiled, row_mask) < 0) goto done;
    /* room for the chunk's rows grown by half (a hash token is longer than most values)
     * at once: no doubling, copying and faulting in of new pages as the output grows */
    if (masking && buffer_room(&out, (size - pos) + (size - pos) / 2) == NULL) goto done;
    while (size - pos >= 5 && buf[pos] == MSG_DATA_ROW) {
        int32_t length = be32(buf + pos + 1);
        if (length < 4 || size - pos - 1 < length) break; /* partial, or not a message */
        if (masking &&
            mask_data_row_into(&out, &compiled, buf + pos + 5, length - 4, key) < 0)
            goto done;
        pos += 1 + (Py_ssize_t)length;
        rows++;
    }
    if (!masking || pos == start) {
        result = Py_BuildValue("(Onn)", Py_None, pos, rows);
    } else {
        PyObject *masked = buffer_finish(&out);
        if (masked != NULL) result = Py_BuildValue("(Nnn)", masked, pos, rows);
    }
done:
    buffer_free(&out);
    PyBuffer_Release(&data);
    return result;
}
