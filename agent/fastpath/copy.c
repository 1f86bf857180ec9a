/* COPY … TO STDOUT rows (CopyData messages, one row each) in text or CSV format with their
 * masked columns rewritten: agent/postgres/copy.py's algorithm (its docstring gives the
 * format rules), here so a large COPY costs no Python work per row.  The masking of a
 * value is masking.c's; tests/agent/test_copy.py compares this with copy.py. */
#include "fastpath.h"

#define MSG_COPY_DATA 'd'

typedef struct {
    int csv;
    unsigned char delimiter, quote, escape;
    const char *null;
    Py_ssize_t null_len;
    /* The bytes a value written in this format escapes (text) or quotes (CSV) for: a value
     * without any is written as it is, in one copy (parse_format fills it). */
    unsigned char special[256];
} CopyFormat;

static int has_special(const CopyFormat *f, const unsigned char *s, Py_ssize_t len) {
    for (Py_ssize_t i = 0; i < len; i++)
        if (f->special[s[i]]) return 1;
    return 0;
}

typedef struct {
    Py_ssize_t start, end; /* the field as written */
} Field;

/* Split a row (without its newline) into fields as written; returns the count: at most
 * `max`, the last one then holding the rest of the row, untouched. */
static Py_ssize_t split_fields(const CopyFormat *f, const unsigned char *line, Py_ssize_t len,
                               Field *fields, Py_ssize_t max) {
    Py_ssize_t count = 0, start = 0, i = 0;
    int in_quotes = 0;
    while (i < len && count < max - 1) {
        unsigned char c = line[i];
        if (!f->csv) {
            if (c == '\\') {
                i += 2;
                continue;
            }
        } else if (in_quotes && c == f->escape && i + 1 < len &&
                   (line[i + 1] == f->quote || line[i + 1] == f->escape)) {
            i += 2;
            continue;
        } else if (c == f->quote) {
            in_quotes = !in_quotes;
            i++;
            continue;
        }
        if (c == f->delimiter && !in_quotes) {
            fields[count].start = start;
            fields[count].end = i;
            count++;
            start = i + 1;
        }
        i++;
    }
    fields[count].start = start; /* the last field, or the untouched rest of the row */
    fields[count].end = len;
    return count + 1;
}

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The field's value (de-escaped, unquoted) into `out`; *quoted for CSV. */
static int decode_field(const CopyFormat *f, const unsigned char *s, Py_ssize_t len, Buffer *out,
                        int *quoted) {
    *quoted = 0;
    out->len = 0;
    char *o = buffer_room(out, len + 1);
    if (o == NULL) return -1;
    Py_ssize_t n = 0;
    if (f->csv) {
        int in_quotes = 0;
        for (Py_ssize_t i = 0; i < len; i++) {
            unsigned char c = s[i];
            if (in_quotes) {
                if (c == f->escape && i + 1 < len && (s[i + 1] == f->quote || s[i + 1] == f->escape)) {
                    o[n++] = (char)s[++i];
                } else if (c == f->quote) {
                    in_quotes = 0;
                } else {
                    o[n++] = (char)c;
                }
            } else if (c == f->quote) {
                in_quotes = *quoted = 1;
            } else {
                o[n++] = (char)c;
            }
        }
    } else {
        for (Py_ssize_t i = 0; i < len; i++) {
            unsigned char c = s[i];
            if (c != '\\' || i + 1 == len) {
                o[n++] = (char)c;
                continue;
            }
            unsigned char next = s[i + 1];
            if (next >= '0' && next <= '7') { /* \NNN */
                int value = 0;
                Py_ssize_t j = i + 1;
                while (j < len && j < i + 4 && s[j] >= '0' && s[j] <= '7') value = value * 8 + (s[j++] - '0');
                o[n++] = (char)(value & 255);
                i = j - 1;
            } else if (next == 'x' && i + 2 < len && hex_value(s[i + 2]) >= 0) { /* \xHH */
                int value = hex_value(s[i + 2]);
                Py_ssize_t j = i + 3;
                if (j < len && hex_value(s[j]) >= 0) value = value * 16 + hex_value(s[j++]);
                o[n++] = (char)value;
                i = j - 1;
            } else {
                switch (next) {
                case 'b': o[n++] = 8; break;
                case 'f': o[n++] = 12; break;
                case 'n': o[n++] = 10; break;
                case 'r': o[n++] = 13; break;
                case 't': o[n++] = 9; break;
                case 'v': o[n++] = 11; break;
                default: o[n++] = (char)next;
                }
                i++;
            }
        }
    }
    out->len = n;
    return 0;
}

/* A masked value (or NULL) in the row's format at the end of `out`. */
static int encode_field(const CopyFormat *f, const char *value, Py_ssize_t len, int is_null,
                        int quoted, Buffer *out) {
    if (is_null) return buffer_add(out, f->null, f->null_len);
    if (!has_special(f, (const unsigned char *)value, len) &&
        !(f->csv && (quoted || (len == f->null_len && memcmp(value, f->null, (size_t)len) == 0))))
        return buffer_add(out, value, len); /* nothing to escape or quote */
    char *o = buffer_room(out, 2 * len + 2);
    if (o == NULL) return -1;
    Py_ssize_t n = 0;
    if (!f->csv) {
        for (Py_ssize_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)value[i];
            char escaped = 0;
            switch (c) {
            case 8: escaped = 'b'; break;
            case 12: escaped = 'f'; break;
            case 10: escaped = 'n'; break;
            case 13: escaped = 'r'; break;
            case 9: escaped = 't'; break;
            case 11: escaped = 'v'; break;
            case '\\': escaped = '\\'; break;
            }
            if (!escaped && c == f->delimiter) escaped = (char)c;
            if (escaped) {
                o[n++] = '\\';
                o[n++] = escaped;
            } else {
                o[n++] = (char)c;
            }
        }
    } else {
        /* quoted: it was, it reads as the NULL string, or it holds a special byte */
        o[n++] = (char)f->quote;
        for (Py_ssize_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)value[i];
            if (c == f->quote || c == f->escape) o[n++] = (char)f->escape;
            o[n++] = (char)c;
        }
        o[n++] = (char)f->quote;
    }
    out->len += n;
    return 0;
}

/* One CopyData row masked onto the end of `out` (as a whole message). */
static int mask_copy_row(const CopyFormat *f, CompiledMask *mask, const unsigned char *row,
                         Py_ssize_t len, Buffer *out, Buffer *scratch, Buffer *masked,
                         Field *fields) {
    Py_ssize_t start = out->len, body = len, wanted = mask->cells[mask->count - 1].index + 2;
    if (body > 0 && row[body - 1] == '\n') body--;
    Py_ssize_t count = split_fields(f, row, body, fields, wanted);
    if (buffer_add(out, "d\0\0\0\0", 5) < 0) return -1;
    Py_ssize_t span = 0;
    for (Py_ssize_t m = 0; m < mask->count; m++) {
        const CellMask *cell = &mask->cells[m];
        if (cell->index >= count) break;
        Field field = fields[cell->index];
        const unsigned char *raw = row + field.start;
        Py_ssize_t raw_len = field.end - field.start;
        if (!f->csv && raw_len == f->null_len && memcmp(raw, f->null, (size_t)raw_len) == 0)
            continue; /* NULL stays NULL */
        int quoted = 0;
        const char *value = (const char *)raw;
        Py_ssize_t value_len = raw_len;
        /* a field with no quote (CSV) or backslash (text) is its value: no copy */
        if (memchr(raw, f->csv ? f->quote : '\\', (size_t)raw_len) != NULL) {
            if (decode_field(f, raw, raw_len, scratch, &quoted) < 0) goto error;
            value = scratch->bytes ? PyBytes_AS_STRING(scratch->bytes) : "";
            value_len = scratch->len;
        }
        if (f->csv && !quoted && value_len == f->null_len &&
            memcmp(value, f->null, (size_t)f->null_len) == 0)
            continue;
        masked->len = 0;
        if (mask_cell_into(masked, cell, (const unsigned char *)value, value_len) < 0) goto error;
        const char *result = PyBytes_AS_STRING(masked->bytes);
        int32_t result_len = be32((const unsigned char *)result);
        if (buffer_add(out, row + span, field.start - span) < 0 ||
            encode_field(f, result + 4, result_len < 0 ? 0 : result_len, result_len < 0, quoted,
                         out) < 0)
            goto error;
        span = field.end;
    }
    if (buffer_add(out, row + span, len - span) < 0) goto error;
    if (out->len - start - 1 > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "the masked row is longer than a message can be");
        goto error;
    }
    char *header = PyBytes_AS_STRING(out->bytes) + start + 1;
    uint32_t message_len = (uint32_t)(out->len - start - 1);
    header[0] = (char)(message_len >> 24);
    header[1] = (char)(message_len >> 16);
    header[2] = (char)(message_len >> 8);
    header[3] = (char)message_len;
    return 0;
error:
    out->len = start;
    return -1;
}

static int parse_format(PyObject *spec, CopyFormat *f) {
    PyObject *csv;
    Py_buffer parts[4];
    if (!PyArg_ParseTuple(spec, "Oy*y*y*y*", &csv, &parts[0], &parts[1], &parts[2], &parts[3]))
        return -1;
    int ok = parts[0].len == 1 && parts[2].len == 1 && parts[3].len == 1;
    f->csv = PyObject_IsTrue(csv) == 1;
    if (ok) {
        f->delimiter = ((unsigned char *)parts[0].buf)[0];
        f->quote = ((unsigned char *)parts[2].buf)[0];
        f->escape = ((unsigned char *)parts[3].buf)[0];
    }
    /* the NULL string stays alive with the format tuple, which the caller holds */
    f->null = PyBytes_AS_STRING(PyTuple_GET_ITEM(spec, 2));
    f->null_len = PyBytes_GET_SIZE(PyTuple_GET_ITEM(spec, 2));
    for (int i = 0; i < 4; i++) PyBuffer_Release(&parts[i]);
    if (!ok || !PyBytes_Check(PyTuple_GET_ITEM(spec, 2))) {
        PyErr_SetString(PyExc_ValueError, "a COPY format is (csv, delimiter, null, quote, escape)");
        return -1;
    }
    memset(f->special, 0, sizeof f->special);
    f->special[f->delimiter] = f->special['\r'] = f->special['\n'] = 1;
    if (f->csv) {
        f->special[f->quote] = f->special[f->escape] = 1;
    } else {
        static const unsigned char escaped[] = {8, 9, 11, 12, '\\'};
        for (size_t i = 0; i < sizeof escaped; i++) f->special[escaped[i]] = 1;
    }
    return 0;
}

/* mask_copy_rows(data, pos, row_mask, format, key) -> (replacement or None, end, rows): the
 * run of whole CopyData messages from ``pos``, masked (row_mask None: passed as they are);
 * as masking.c's mask_rows. */
PyObject *module_mask_copy_rows(PyObject *module, PyObject *args) {
    static CompiledMask compiled = {NULL, NULL, 0};
    Py_buffer data;
    Py_ssize_t pos;
    PyObject *row_mask, *spec, *key, *result = NULL;
    if (!PyArg_ParseTuple(args, "y*nOO!O", &data, &pos, &row_mask, &PyTuple_Type, &spec, &key))
        return NULL;
    const unsigned char *buf = data.buf;
    Py_ssize_t size = data.len, start = pos, rows = 0;
    Buffer out = {NULL, 0}, scratch = {NULL, 0}, masked = {NULL, 0};
    Field *fields = NULL;
    CopyFormat f;
    if (pos < 0 || pos > size) {
        PyErr_SetString(PyExc_IndexError, "position out of range");
        goto done;
    }
    if (row_mask == Py_None) { /* no masks: only where the run ends */
        while (size - pos >= 5 && buf[pos] == MSG_COPY_DATA) {
            int32_t length = be32(buf + pos + 1);
            if (length < 4 || size - pos - 1 < length) break;
            pos += 1 + (Py_ssize_t)length;
            rows++;
        }
        result = Py_BuildValue("(Onn)", Py_None, pos, rows);
        goto done;
    }
    if (parse_format(spec, &f) < 0 || compile_mask(&compiled, row_mask) < 0 ||
        hmac_prepare(key) < 0)
        goto done;
    if (compiled.count == 0) {
        result = Py_BuildValue("(Onn)", Py_None, start, rows);
        goto done;
    }
    fields = PyMem_Malloc((size_t)(compiled.cells[compiled.count - 1].index + 2) * sizeof(Field));
    if (fields == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (buffer_room(&out, (size - pos) + (size - pos) / 2) == NULL) goto done; /* as mask_rows */
    while (size - pos >= 5 && buf[pos] == MSG_COPY_DATA) {
        int32_t length = be32(buf + pos + 1);
        if (length < 4 || size - pos - 1 < length) break;
        if (mask_copy_row(&f, &compiled, buf + pos + 5, length - 4, &out, &scratch, &masked,
                          fields) < 0)
            goto done;
        pos += 1 + (Py_ssize_t)length;
        rows++;
    }
    if (pos == start) {
        result = Py_BuildValue("(Onn)", Py_None, pos, rows);
    } else {
        PyObject *replacement = buffer_finish(&out);
        if (replacement != NULL) result = Py_BuildValue("(Nnn)", replacement, pos, rows);
    }
done:
    PyMem_Free(fields);
    buffer_free(&out);
    buffer_free(&scratch);
    buffer_free(&masked);
    PyBuffer_Release(&data);
    return result;
}
