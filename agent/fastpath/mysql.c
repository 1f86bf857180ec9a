/* Masking of MySQL text protocol rows (COM_QUERY results) and binary protocol rows
 * (COM_STMT_EXECUTE / FETCH results), for agent/mysql/results.py: a run of row packets
 * masked and re-framed in one call, not one Python call per row.
 *
 * The methods are the DataRow ones (masking.c's mask_value_into, shared: only the length
 * prefix differs, a length-encoded integer here).  Which method fits which MySQL column
 * type is decided in Python (agent/mysql/rows.py: native_row_mask), which hands over a
 * row mask in the DataRow format with the methods that do not fit marked NULL.
 * agent/mysql/rows.py's mask_text_row and mask_binary_row are the reference:
 * tests/agent_mysql/test_mysql_native_rows.py compares them. */
#include "fastpath.h"

#define MYSQL_MAX_PACKET 0xFFFFFF

/* The bytes a length-encoded string at ``at`` takes (its length and value), -1 if it runs
 * past ``end``; *null is set for the NULL marker 0xfb. */
static Py_ssize_t lenenc_span(const unsigned char *at, const unsigned char *end, int *null) {
    *null = 0;
    if (at >= end) return -1;
    unsigned char first = at[0];
    Py_ssize_t size = 1;
    uint64_t len = 0;
    if (first < 0xfb) {
        len = first;
    } else if (first == 0xfb) {
        *null = 1;
        return 1;
    } else {
        size = first == 0xfc ? 3 : first == 0xfd ? 4 : 9;
        if (end - at < size) return -1;
        for (Py_ssize_t i = size - 1; i >= 1; i--) len = len << 8 | at[i];
    }
    if ((uint64_t)(end - at - size) < len) return -1;
    return size + (Py_ssize_t)len;
}

/* Append one row's payload with its masked columns rewritten (a masked NULL stays NULL,
 * the other columns are copied as bytes). */
static int mask_text_row_into(Buffer *out, const CompiledMask *compiled,
                              const unsigned char *payload, Py_ssize_t len) {
    const unsigned char *end = payload + len, *at = payload, *span = payload;
    Py_ssize_t column = 0;
    int null;
    for (Py_ssize_t m = 0; m < compiled->count; m++) {
        const CellMask *cell = &compiled->cells[m];
        for (; column <= cell->index; column++) {
            Py_ssize_t size = lenenc_span(at, end, &null);
            if (size < 0) {
                PyErr_SetString(PyExc_ValueError, "malformed MySQL text row");
                return -1;
            }
            if (column == cell->index && !null) {
                /* the length's own bytes */
                Py_ssize_t head = at[0] < 0xfb ? 1 : at[0] == 0xfc ? 3 : at[0] == 0xfd ? 4 : 9;
                if (buffer_add(out, span, at - span) < 0 ||
                    mask_value_into(out, cell, at + head, size - head, LENGTH_LENENC) < 0)
                    return -1;
                span = at + size;
            }
            at += size;
        }
    }
    return buffer_add(out, span, end - span);
}

/* Binary protocol values (agent/mysql/rows.py: mask_binary_row is the reference). */
static int binary_text_type(unsigned char type) {
    return type == 15 || type == 245 || (type >= 247 && type <= 254);
}

static int binary_date_type(unsigned char type) { return type == 7 || type == 10 || type == 12; }

/* The bytes the binary value of column type ``type`` at ``at`` takes, -1 past ``end``. */
static Py_ssize_t binary_width(const unsigned char *at, const unsigned char *end,
                               unsigned char type) {
    int null;
    switch (type) {
    case 6: return 0;                           /* NULL */
    case 1: return 1;                           /* TINY */
    case 2: case 13: return 2;                  /* SHORT, YEAR */
    case 3: case 4: case 9: return 4;           /* LONG, FLOAT, INT24 */
    case 5: case 8: return 8;                   /* DOUBLE, LONGLONG */
    case 7: case 10: case 11: case 12:          /* TIMESTAMP, DATE, TIME, DATETIME */
        return at < end ? 1 + (Py_ssize_t)at[0] : -1;
    default:
        return lenenc_span(at, end, &null);
    }
}

/* One masked binary value appended, or 1 when it becomes NULL (nothing appended): text
 * through the shared cell masking, ``year`` on a DATE/DATETIME/TIMESTAMP as January 1st
 * of its year (the only method the row mask lets through for them), anything else NULL. */
static int mask_binary_value_into(Buffer *out, const CellMask *cell, unsigned char type,
                                  const unsigned char *raw, Py_ssize_t width) {
    if (cell->code == -1) return 1;
    if (binary_date_type(type)) {
        if (raw[0] < 4) return 1;
        unsigned char date[5] = {4, raw[1], raw[2], 1, 1};
        return buffer_add(out, date, 5);
    }
    if (!binary_text_type(type)) return 1;
    Py_ssize_t head = raw[0] <= 0xfb ? 1 : raw[0] == 0xfc ? 3 : raw[0] == 0xfd ? 4 : 9;
    Py_ssize_t mark = out->len;
    if (mask_value_into(out, cell, raw + head, width - head, LENGTH_LENENC) < 0) return -1;
    if ((unsigned char)PyBytes_AS_STRING(out->bytes)[mark] != 0xfb) return 0;
    out->len = mark; /* the method gave NULL: the bitmap says so, no value */
    return 1;
}

/* Append one binary row (0x00, the NULL bitmap at bit offset 2, the non-NULL values) with
 * its masked columns rewritten; a value masked to NULL sets its bit. */
static int mask_binary_row_into(Buffer *out, const CompiledMask *compiled,
                                const unsigned char *types, Py_ssize_t columns,
                                const unsigned char *payload, Py_ssize_t len) {
    Py_ssize_t bitmap = (columns + 9) / 8, start = out->len, column = 0;
    if (len < 1 + bitmap) goto malformed;
    if (buffer_add(out, "\0", 1) < 0 || buffer_add(out, payload + 1, bitmap) < 0) return -1;
    const unsigned char *end = payload + len, *at = payload + 1 + bitmap, *span = at;
    for (Py_ssize_t m = 0; m < compiled->count; m++) {
        const CellMask *cell = &compiled->cells[m];
        if (cell->index >= columns) goto malformed;
        for (; column <= cell->index; column++) {
            Py_ssize_t bit = column + 2;
            if (payload[1 + bit / 8] & (1 << (bit % 8))) continue; /* NULL: no value */
            Py_ssize_t width = binary_width(at, end, types[column]);
            if (width < 0 || end - at < width) goto malformed;
            if (column == cell->index) {
                if (buffer_add(out, span, at - span) < 0) return -1;
                int null = mask_binary_value_into(out, cell, types[column], at, width);
                if (null < 0) return -1;
                if (null) PyBytes_AS_STRING(out->bytes)[start + 1 + bit / 8] |= (char)(1 << (bit % 8));
                span = at + width;
            }
            at += width;
        }
    }
    return buffer_add(out, span, end - span);
malformed:
    PyErr_SetString(PyExc_ValueError, "malformed MySQL binary row");
    return -1;
}

/* The run of row packets of a result from ``pos`` on, masked (text rows, or binary rows of
 * ``types``: NULL for text) and framed from ``seq`` on: mysql_mask_rows and
 * mysql_mask_binary_rows. */
static PyObject *mask_rows(const unsigned char *buf, Py_ssize_t size, Py_ssize_t pos,
                           Py_ssize_t seq, PyObject *row_mask, Py_buffer *types, PyObject *key) {
    static CompiledMask compiled = {NULL, NULL, 0}; /* the last row_mask, compiled */
    Py_ssize_t rows = 0, sent = 0;
    Buffer out = {NULL, 0};
    PyObject *result = NULL;
    if (pos < 0 || pos > size) {
        PyErr_SetString(PyExc_IndexError, "position out of range");
        goto done;
    }
    if (compile_mask(&compiled, row_mask) < 0 || hmac_prepare(key) < 0) goto done;
    while (size - pos >= 5) {
        Py_ssize_t length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16;
        unsigned char head = buf[pos + 4];
        if (size - pos - 4 < length || length == 0 || length >= MYSQL_MAX_PACKET ||
            head == 0xff || (head == 0xfe && length < 9))
            break;
        Py_ssize_t start = out.len;
        if (out.bytes == NULL) { /* the run's rows grown by half at once, not 4 KiB or more */
            out.bytes = PyBytes_FromStringAndSize(NULL, 64 + (size - pos) + (size - pos) / 2);
            if (out.bytes == NULL) goto done;
        }
        if (buffer_add(&out, "\0\0\0\0", 4) < 0) goto done;
        if (types == NULL ? mask_text_row_into(&out, &compiled, buf + pos + 4, length) < 0
                          : mask_binary_row_into(&out, &compiled, types->buf, types->len,
                                                 buf + pos + 4, length) < 0)
            goto done;
        Py_ssize_t masked = out.len - start - 4;
        if (masked >= MYSQL_MAX_PACKET) { /* the caller splits it */
            out.len = start;
            break;
        }
        char *header = PyBytes_AS_STRING(out.bytes) + start;
        header[0] = (char)masked;
        header[1] = (char)(masked >> 8);
        header[2] = (char)(masked >> 16);
        header[3] = (char)(seq & 0xff);
        seq++;
        sent += masked;
        pos += 4 + length;
        rows++;
    }
    if (rows == 0) {
        result = Py_BuildValue("(Onnnn)", Py_None, pos, rows, seq, sent);
    } else {
        PyObject *masked = buffer_finish(&out);
        if (masked != NULL) result = Py_BuildValue("(Nnnnn)", masked, pos, rows, seq, sent);
    }
done:
    buffer_free(&out);
    return result;
}

/* mysql_mask_rows(data, pos, seq, row_mask, key) -> (packets or None, end, rows, seq,
 * payload bytes): the run of whole row packets of ``data`` from ``pos`` on (up to a
 * result's EOF or ERR packet, a split packet, or what is not buffered whole), masked by
 * ``row_mask`` ([(index, (method, param, 0, null)), ...]: null True, the cell becomes
 * NULL) and framed from sequence id ``seq`` on; where the run ends, how many rows it
 * holds, the next sequence id, and the masked payloads' bytes.  A row whose masked payload
 * would need a split packet ends the run before it (the caller frames that one). */
PyObject *module_mysql_mask_rows(PyObject *module, PyObject *args) {
    Py_buffer data;
    Py_ssize_t pos, seq;
    PyObject *row_mask, *key;
    if (!PyArg_ParseTuple(args, "y*nnOO", &data, &pos, &seq, &row_mask, &key)) return NULL;
    PyObject *result = mask_rows(data.buf, data.len, pos, seq, row_mask, NULL, key);
    PyBuffer_Release(&data);
    return result;
}

/* mysql_mask_binary_rows(data, pos, seq, row_mask, types, key) -> as mysql_mask_rows, for
 * binary protocol rows (COM_STMT_EXECUTE and COM_STMT_FETCH results); ``types``: each
 * column's type byte, which gives its values' widths. */
PyObject *module_mysql_mask_binary_rows(PyObject *module, PyObject *args) {
    Py_buffer data, types;
    Py_ssize_t pos, seq;
    PyObject *row_mask, *key;
    if (!PyArg_ParseTuple(args, "y*nnOy*O", &data, &pos, &seq, &row_mask, &types, &key))
        return NULL;
    PyObject *result = mask_rows(data.buf, data.len, pos, seq, row_mask, &types, key);
    PyBuffer_Release(&types);
    PyBuffer_Release(&data);
    return result;
}

/* The payload length of the packet at ``pos`` when it is buffered whole and not part of a
 * split payload, else -1. */
static Py_ssize_t whole_packet(const unsigned char *buf, Py_ssize_t size, Py_ssize_t pos) {
    if (size - pos < 4) return -1;
    Py_ssize_t length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16;
    if (length >= MYSQL_MAX_PACKET || size - pos - 4 < length) return -1;
    return length;
}

/* A result set with rows (column count, definitions, EOF, rows, then an EOF or ERR packet)
 * buffered whole from ``pos`` on, every packet whole and none split: 1 with *scan filled,
 * 0 for anything else (an OK or ERR packet, a result not buffered whole). */
typedef struct {
    Py_ssize_t columns, key_len, header_end, rows_end, rows, end;
    int numbered; /* every packet before the last numbered on from the caller's seq */
} Scan;

static int scan_result(const unsigned char *buf, Py_ssize_t size, Py_ssize_t pos, Py_ssize_t seq,
                       Scan *scan) {
    Py_ssize_t at = pos, length, rows = 0, key_len = 0;
    int numbered = 1;
    length = whole_packet(buf, size, at);
    /* a column count below 251 (one byte): OK, ERR, LOCAL INFILE and wide results differ */
    if (length != 1 || buf[at + 4] == 0 || buf[at + 4] >= 0xfb) return 0;
    Py_ssize_t columns = buf[at + 4];
    for (Py_ssize_t i = 0; i <= columns + 1; i++) { /* count, definitions, EOF */
        length = whole_packet(buf, size, at);
        if (length < 0) return 0;
        numbered &= buf[at + 3] == ((seq + i) & 0xff);
        if (i > 0 && i <= columns) key_len += length + (i > 1);
        at += 4 + length;
    }
    if (length < 1 || buf[at - length] != 0xfe || length >= 9) return 0; /* not an EOF */
    scan->header_end = at;
    for (;;) {
        length = whole_packet(buf, size, at);
        if (length < 1) return 0;
        unsigned char head = buf[at + 4];
        if (head == 0xff || (head == 0xfe && length < 9)) break;
        numbered &= buf[at + 3] == ((seq + columns + 2 + rows) & 0xff);
        rows++;
        at += 4 + length;
    }
    scan->rows_end = at;
    scan->end = at + 4 + length;
    scan->columns = columns;
    scan->key_len = key_len;
    scan->rows = rows;
    scan->numbered = numbered;
    return 1;
}

/* The column definitions of a scanned result joined by b"\0": the key of its masks. */
static PyObject *definitions_key(const unsigned char *buf, Py_ssize_t pos, const Scan *scan) {
    PyObject *key = PyBytes_FromStringAndSize(NULL, scan->key_len);
    if (key == NULL) return NULL;
    char *k = PyBytes_AS_STRING(key);
    Py_ssize_t d = pos + 5; /* past the column count */
    for (Py_ssize_t i = 0; i < scan->columns; i++) {
        Py_ssize_t len = buf[d] | buf[d + 1] << 8 | buf[d + 2] << 16;
        if (i > 0) *k++ = 0;
        memcpy(k, buf + d + 4, (size_t)len);
        k += len;
        d += 4 + len;
    }
    return key;
}

/* mysql_scan_result(data, pos, seq) -> None or (definitions, header_end, rows_end, rows,
 * end, numbered): a result set with rows (column count, definitions, EOF, rows, then an
 * EOF or ERR packet) buffered whole from ``pos`` on, every packet whole and none split:
 * its column definitions joined by b"\0" (the key of its masks), where its header and
 * its rows end, how many rows, where its last packet ends, and whether every packet before
 * that one is numbered on from sequence id ``seq``.  None: anything else (an OK or ERR
 * packet, a result not buffered whole); the caller reads it packet by packet. */
PyObject *module_mysql_scan_result(PyObject *module, PyObject *args) {
    Py_buffer data;
    Py_ssize_t pos, seq;
    if (!PyArg_ParseTuple(args, "y*nn", &data, &pos, &seq)) return NULL;
    PyObject *result = NULL, *key;
    Scan scan;
    if (pos < 0 || pos > data.len) {
        PyErr_SetString(PyExc_IndexError, "position out of range");
    } else if (!scan_result(data.buf, data.len, pos, seq, &scan)) {
        result = Py_NewRef(Py_None);
    } else if ((key = definitions_key(data.buf, pos, &scan)) != NULL) {
        result = Py_BuildValue("(NnnnnO)", key, scan.header_end, scan.rows_end, scan.rows,
                               scan.end, scan.numbered ? Py_True : Py_False);
    }
    PyBuffer_Release(&data);
    return result;
}

/* Whether ``key`` holds the column definitions of a scanned result joined by b"\0". */
static int definitions_equal(const unsigned char *buf, Py_ssize_t pos, const Scan *scan,
                             PyObject *key) {
    if (PyBytes_GET_SIZE(key) != scan->key_len) return 0;
    const char *k = PyBytes_AS_STRING(key);
    Py_ssize_t d = pos + 5; /* past the column count */
    for (Py_ssize_t i = 0; i < scan->columns; i++) {
        Py_ssize_t len = buf[d] | buf[d + 1] << 8 | buf[d + 2] << 16;
        if (i > 0 && *k++ != 0) return 0;
        if (memcmp(k, buf + d + 4, (size_t)len) != 0) return 0;
        k += len;
        d += 4 + len;
    }
    return 1;
}

/* The shape (masks, types, native masks) the session cached for (decision, definitions)
 * (agent.mysql.masks.ResultMasks.cached_shape_of: ``masks`` maps (id(decision), key) to
 * (decision, shape)); borrowed, or NULL without an error when it is not cached.  The last
 * key looked up is kept (its decision held alive, so its id stays its own): a repeat's
 * result has the same definitions every time, and their hash is then computed once. */
static PyObject *cached_shape(PyObject *masks, PyObject *decision, const unsigned char *buf,
                              Py_ssize_t pos, const Scan *scan) {
    static PyObject *last_decision = NULL, *last_key = NULL; /* (id(decision), definitions) */
    if (last_decision != decision || last_key == NULL ||
        !definitions_equal(buf, pos, scan, PyTuple_GET_ITEM(last_key, 1))) {
        PyObject *definitions = definitions_key(buf, pos, scan);
        PyObject *id = definitions ? PyLong_FromVoidPtr(decision) : NULL;
        PyObject *key = id ? PyTuple_Pack(2, id, definitions) : NULL;
        Py_XDECREF(definitions);
        Py_XDECREF(id);
        if (key == NULL) return NULL;
        Py_XSETREF(last_key, key);
        Py_XSETREF(last_decision, Py_NewRef(decision));
    }
    PyObject *found = PyDict_GetItemWithError(masks, last_key);
    if (found == NULL || !PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 2 ||
        PyTuple_GET_ITEM(found, 0) != decision)
        return NULL;
    PyObject *shape = PyTuple_GET_ITEM(found, 1);
    return PyTuple_Check(shape) && PyTuple_GET_SIZE(shape) == 3 ? shape : NULL;
}

/* ``data[start:end]`` appended to *out (a new bytes object or a concatenation). */
static int append_slice(PyObject **out, PyObject *data, Py_ssize_t start, Py_ssize_t end) {
    const char *from = PyBytes_AS_STRING(data) + start;
    if (*out == NULL) {
        *out = start == 0 && end == PyBytes_GET_SIZE(data)
                   ? Py_NewRef(data)
                   : PyBytes_FromStringAndSize(from, end - start);
        return *out == NULL ? -1 : 0;
    }
    Py_ssize_t had = PyBytes_GET_SIZE(*out);
    if (_PyBytes_Resize(out, had + end - start) < 0) return -1;
    memcpy(PyBytes_AS_STRING(*out) + had, from, (size_t)(end - start));
    return 0;
}

int mysql_whole_result(PyObject *data, Py_ssize_t pos, Py_ssize_t seq, PyObject *masks,
                       PyObject *decision, PyObject *masking_key, WholeResult *whole) {
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    Scan scan;
    whole->out = NULL;
    if (pos < 0 || pos > size) {
        PyErr_SetString(PyExc_IndexError, "position out of range");
        return -1;
    }
    if (!scan_result(buf, size, pos, seq, &scan) || !scan.numbered) return 0;
    PyObject *shape = cached_shape(masks, decision, buf, pos, &scan);
    if (shape == NULL) return PyErr_Occurred() ? -1 : 0;
    Py_ssize_t rows_end = scan.rows_end, end = scan.end, rows = scan.rows;
    Py_ssize_t sent = rows_end - scan.header_end - 4 * rows;
    seq += buf[pos + 4] + 2 + rows; /* column count, definitions, EOF, rows */
    /* An EOF numbered as the client's (with its status flags) goes out as it came. */
    int eof = buf[rows_end + 4] == 0xfe && buf[rows_end + 3] == (seq & 0xff) && end - rows_end >= 9;
    PyObject *found = PyTuple_GET_ITEM(shape, 0), *native = PyTuple_GET_ITEM(shape, 2);
    if (found == Py_None) {
        if (append_slice(&whole->out, data, pos, eof ? end : rows_end) < 0) return -1;
    } else if (native == Py_None) {
        return 0; /* masks without a native form: Python masks the rows */
    } else {
        PyObject *run = mask_rows(buf, size, scan.header_end, seq - rows, native, NULL,
                                  masking_key);
        if (run == NULL) return -1;
        if (PyLong_AsSsize_t(PyTuple_GET_ITEM(run, 1)) != rows_end) { /* a row left to Python */
            Py_DECREF(run);
            return PyErr_Occurred() ? -1 : 0;
        }
        PyObject *masked = PyTuple_GET_ITEM(run, 0);
        sent = PyLong_AsSsize_t(PyTuple_GET_ITEM(run, 4));
        int failed = append_slice(&whole->out, data, pos, scan.header_end) < 0 ||
                     (masked != Py_None &&
                      append_slice(&whole->out, masked, 0, PyBytes_GET_SIZE(masked)) < 0) ||
                     (eof && append_slice(&whole->out, data, rows_end, end) < 0);
        Py_DECREF(run);
        if (failed) {
            Py_CLEAR(whole->out);
            return -1;
        }
    }
    whole->end = end;
    whole->rows_end = rows_end;
    whole->rows = rows;
    whole->sent = sent;
    whole->seq = eof ? seq + 1 : seq;
    whole->status = eof ? (long)(buf[rows_end + 7] | buf[rows_end + 8] << 8) : -1;
    return 1;
}

/* mysql_whole_result(data, pos, seq, masks, decision, masking_key) -> None or (packets,
 * end, rows_end, rows, sent, seq, status): a text result set buffered whole in ``data``
 * from ``pos`` on and numbered as the client's from ``seq`` on, its shape cached in the
 * session's ``masks`` under ``decision`` (agent.mysql.results.Results._whole_result): the
 * packets to send (its rows masked), where it ends and its rows end, how many rows and
 * their payload bytes (after masking), the next sequence id, and the status flags of its
 * EOF, which went out with it (-1: the last packet, data[rows_end:end], is not among the
 * packets: the caller relays it).  None: read it packet by packet. */
PyObject *module_mysql_whole_result(PyObject *module, PyObject *args) {
    PyObject *data, *masks, *decision, *key;
    Py_ssize_t pos, seq;
    WholeResult whole;
    if (!PyArg_ParseTuple(args, "SnnO!OO", &data, &pos, &seq, &PyDict_Type, &masks, &decision,
                          &key))
        return NULL;
    int found = mysql_whole_result(data, pos, seq, masks, decision, key, &whole);
    if (found <= 0) return found < 0 ? NULL : Py_NewRef(Py_None);
    return Py_BuildValue("(Nnnnnnl)", whole.out, whole.end, whole.rows_end, whole.rows,
                         whole.sent, whole.seq, whole.status);
}
