/* Masking of MySQL text protocol rows (COM_QUERY results), for agent/mysql/results.py: a
 * run of row packets masked and re-framed in one call, not one Python call per row.
 *
 * The methods are the DataRow ones (masking.c's mask_value_into, shared: only the length
 * prefix differs, a length-encoded integer here).  Which method fits which MySQL column
 * type is decided in Python (agent/mysql/rows.py: native_row_mask), which hands over a
 * row mask in the DataRow format with the methods that do not fit replaced by "null".
 * agent/mysql/rows.py's mask_text_row is the reference: tests/agent_mysql compare them. */
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

/* mysql_mask_rows(data, pos, seq, row_mask, key) -> (packets or None, end, rows, seq,
 * payload bytes): the run of whole row packets of ``data`` from ``pos`` on (up to a
 * result's EOF or ERR packet, a split packet, or what is not buffered whole), masked by
 * ``row_mask`` ([(index, (method, param, 0, False)), ...]) and framed from sequence id
 * ``seq`` on; where the run ends, how many rows it holds, the next sequence id, and the
 * masked payloads' bytes.  A row whose masked payload would need a split packet ends the
 * run before it (the caller frames that one). */
PyObject *module_mysql_mask_rows(PyObject *module, PyObject *args) {
    static CompiledMask compiled = {NULL, NULL, 0}; /* the last row_mask, compiled */
    Py_buffer data;
    Py_ssize_t pos, seq;
    PyObject *row_mask, *key;
    if (!PyArg_ParseTuple(args, "y*nnOO", &data, &pos, &seq, &row_mask, &key)) return NULL;
    const unsigned char *buf = data.buf;
    Py_ssize_t size = data.len, rows = 0, sent = 0;
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
        if (buffer_add(&out, "\0\0\0\0", 4) < 0 ||
            mask_text_row_into(&out, &compiled, buf + pos + 4, length) < 0)
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
    const unsigned char *buf = data.buf;
    Py_ssize_t size = data.len, at = pos, length, rows = 0, key_len = 0, header_end, rows_end;
    int numbered = 1;
    PyObject *result = NULL;
    if (pos < 0 || pos > size) {
        PyErr_SetString(PyExc_IndexError, "position out of range");
        goto done;
    }
    length = whole_packet(buf, size, at);
    /* a column count below 251 (one byte): OK, ERR, LOCAL INFILE and wide results differ */
    if (length != 1 || buf[at + 4] == 0 || buf[at + 4] >= 0xfb) goto none;
    Py_ssize_t columns = buf[at + 4];
    for (Py_ssize_t i = 0; i <= columns + 1; i++) { /* count, definitions, EOF */
        length = whole_packet(buf, size, at);
        if (length < 0) goto none;
        numbered &= buf[at + 3] == ((seq + i) & 0xff);
        if (i > 0 && i <= columns) key_len += length + (i > 1);
        at += 4 + length;
    }
    if (length < 1 || buf[at - length] != 0xfe || length >= 9) goto none; /* not an EOF */
    header_end = at;
    for (;;) {
        length = whole_packet(buf, size, at);
        if (length < 1) goto none;
        unsigned char head = buf[at + 4];
        if (head == 0xff || (head == 0xfe && length < 9)) break;
        numbered &= buf[at + 3] == ((seq + columns + 2 + rows) & 0xff);
        rows++;
        at += 4 + length;
    }
    rows_end = at;
    at += 4 + length;
    PyObject *key = PyBytes_FromStringAndSize(NULL, key_len);
    if (key == NULL) goto done;
    char *k = PyBytes_AS_STRING(key);
    Py_ssize_t d = pos + 5; /* past the column count */
    for (Py_ssize_t i = 0; i < columns; i++) {
        Py_ssize_t len = buf[d] | buf[d + 1] << 8 | buf[d + 2] << 16;
        if (i > 0) *k++ = 0;
        memcpy(k, buf + d + 4, (size_t)len);
        k += len;
        d += 4 + len;
    }
    result = Py_BuildValue("(NnnnnO)", key, header_end, rows_end, rows, at,
                           numbered ? Py_True : Py_False);
    goto done;
none:
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&data);
    return result;
}
