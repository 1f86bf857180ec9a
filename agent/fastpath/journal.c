/* The audit write-ahead journal's records (agent/journal.py) as the native path writes them:
 * no Python frame per chunk.  A call of AuditJournal.catch_up from here cost ~8,000
 * instructions per statement (marshal.dumps alone ~3,500), about as much as the rest of a
 * native pgbench -S round trip; this costs ~600 (the usual event written with one
 * reservation, put_usual_event).
 *
 * The format stays marshal's: a record is the bytes marshal.dumps((id_prefix, first_seq,
 * queued[mark:]), 2) gives, so the Python writer (catch_up) and recovery are unchanged.
 * This writes those bytes itself for the atoms queued events are made of (str, float, int,
 * bool, None in tuples) and hands any other record to CPython's own marshal writer
 * (PyMarshal_WriteObjectToString, which marshal.dumps is); tests/agent/test_journal_native.py
 * compares the two byte for byte over random events.
 *
 * The journal's state stays the AuditJournal's: this reads its id_prefix and, in the
 * array AuditJournal.state it holds as a buffer, fd, mark and first_seq; it writes
 * queued[mark:] with one write() and advances mark, as catch_up would.  A journal whose
 * file is not open (none yet, or just sealed) is caught up by catch_up itself, which opens
 * it: once per flush; so is a record whose write did not go in whole (catch_up writes it
 * again or cuts it off: one implementation of that rule, agent/journal.py's append_whole). */
#include "fastpath.h"
#include <errno.h>
#include <marshal.h>
#include <unistd.h>

#define MARSHAL_VERSION 2 /* agent/journal.py's _MARSHAL */

/* The next `extra` bytes of the record, to fill in; NULL with an error. */
static inline char *record_room(ByteBuffer *record, Py_ssize_t extra) {
    if (byte_buffer_reserve(record, extra) < 0) return NULL;
    char *at = record->data + record->len;
    record->len += extra;
    return at;
}

void journal_record_free(ByteBuffer *record) {
    PyMem_Free(record->data);
    record->data = NULL;
    record->len = record->capacity = 0;
}

/* marshal's w_long: 4 bytes, little-endian */
static inline void put_u32(char *at, uint32_t value) {
    at[0] = (char)(value & 0xff);
    at[1] = (char)((value >> 8) & 0xff);
    at[2] = (char)((value >> 16) & 0xff);
    at[3] = (char)((value >> 24) & 0xff);
}

/* A type code and a 4-byte count or value (TYPE_INT, a tuple's or a list's length). */
static inline int put_coded(ByteBuffer *record, char code, uint32_t value) {
    char *at = record_room(record, 5);
    if (at == NULL) return -1;
    at[0] = code;
    put_u32(at + 1, value);
    return 0;
}

/* An int: TYPE_INT when it fits 32 bits, else TYPE_LONG (15-bit digits, least significant
 * first, their count signed like the value), as marshal writes any int that fits 64 bits. */
static int put_integer(ByteBuffer *record, long long value) {
    if (value >= INT32_MIN && value <= INT32_MAX)
        return put_coded(record, 'i', (uint32_t)(int32_t)value);
    unsigned long long magnitude =
        value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    char digits[5 * 2]; /* 64 bits: at most 5 digits of 15 bits */
    int count = 0;
    for (; magnitude; magnitude >>= 15, count++) {
        digits[2 * count] = (char)(magnitude & 0xff);
        digits[2 * count + 1] = (char)((magnitude >> 8) & 0x7f);
    }
    if (put_coded(record, 'l', (uint32_t)(value < 0 ? -count : count)) < 0) return -1;
    char *at = record_room(record, 2 * count);
    if (at == NULL) return -1;
    memcpy(at, digits, (size_t)(2 * count));
    return 0;
}

/* One atom of a queued event: 1 written, 0 not one written here (the record goes to
 * CPython's marshal instead), -1 with an error. */
static inline int put_atom(ByteBuffer *record, PyObject *atom) {
    char *at;
    if (atom == Py_None || atom == Py_True || atom == Py_False) {
        if ((at = record_room(record, 1)) == NULL) return -1;
        *at = atom == Py_None ? 'N' : atom == Py_True ? 'T' : 'F';
        return 1;
    }
    if (PyLong_CheckExact(atom)) {
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(atom, &overflow);
        if (overflow) return 0;
        if (value == -1 && PyErr_Occurred()) return -1;
        return put_integer(record, value) < 0 ? -1 : 1;
    }
    if (PyFloat_CheckExact(atom)) { /* TYPE_BINARY_FLOAT: 8 bytes, little-endian */
        if ((at = record_room(record, 9)) == NULL) return -1;
        at[0] = 'g';
#if PY_LITTLE_ENDIAN
        double value = PyFloat_AS_DOUBLE(atom); /* the IEEE bytes as they are in memory */
        memcpy(at + 1, &value, 8);
        return 1;
#else
        return PyFloat_Pack8(PyFloat_AS_DOUBLE(atom), at + 1, 1) < 0 ? -1 : 1;
#endif
    }
    if (PyUnicode_CheckExact(atom)) { /* TYPE_UNICODE: the UTF-8 bytes and their length */
        Py_ssize_t size;
        const char *utf8;
        if (PyUnicode_IS_COMPACT_ASCII(atom)) { /* the fragments: ASCII is its own UTF-8 */
            utf8 = PyUnicode_DATA(atom);
            size = PyUnicode_GET_LENGTH(atom);
        } else {
            utf8 = PyUnicode_AsUTF8AndSize(atom, &size);
        }
        if (utf8 == NULL) { /* lone surrogates: marshal writes them ("surrogatepass") */
            if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
            PyErr_Clear();
            return 0;
        }
        if (size > INT32_MAX) return 0;
        if (put_coded(record, 'u', (uint32_t)size) < 0 || (at = record_room(record, size)) == NULL)
            return -1;
        memcpy(at, utf8, (size_t)size);
        return 1;
    }
    return 0;
}

#if PY_LITTLE_ENDIAN /* the usual event's floats are written as they are in memory */
/* An int that fits TYPE_INT (32 bits) or None: its 1 or 5 bytes at `at`; 0 when it is
 * neither (the general path writes it). */
static inline Py_ssize_t small_int_or_none(char *at, PyObject *atom) {
    if (atom == Py_None) {
        *at = 'N';
        return 1;
    }
    if (!PyLong_CheckExact(atom)) return 0;
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(atom, &overflow);
    if (overflow || value < INT32_MIN || value > INT32_MAX) return 0; /* -1: an error */
    at[0] = 'i';
    put_u32(at + 1, (uint32_t)(int32_t)value);
    return 5;
}

/* The usual queued event (ASCII fragment, float, small int or None, float, bool, small
 * int) straight into the record, with one reservation: 1 written, 0 not this shape (nothing
 * written), -1 with an error.  The same bytes as put_atom's, item by item. */
static int put_usual_event(ByteBuffer *record, PyObject *event) {
    if (PyTuple_GET_SIZE(event) != 6) return 0;
    PyObject *fragment = PyTuple_GET_ITEM(event, 0), *moment = PyTuple_GET_ITEM(event, 1),
             *duration = PyTuple_GET_ITEM(event, 3), *error = PyTuple_GET_ITEM(event, 4);
    if (!PyUnicode_CheckExact(fragment) || !PyUnicode_IS_COMPACT_ASCII(fragment) ||
        !PyFloat_CheckExact(moment) || !PyFloat_CheckExact(duration) ||
        (error != Py_True && error != Py_False))
        return 0;
    Py_ssize_t size = PyUnicode_GET_LENGTH(fragment);
    if (size > INT32_MAX - 64) return 0;
    Py_ssize_t start = record->len;
    char *at = record_room(record, 5 + 5 + size + 9 + 5 + 9 + 1 + 5); /* the most it takes */
    if (at == NULL) return -1;
    char *o = at;
    *o = '(';
    put_u32(o + 1, 6);
    o[5] = 'u';
    put_u32(o + 6, (uint32_t)size);
    memcpy(o + 10, PyUnicode_DATA(fragment), (size_t)size);
    o += 10 + size;
    double value = PyFloat_AS_DOUBLE(moment);
    o[0] = 'g';
    memcpy(o + 1, &value, 8);
    o += 9;
    Py_ssize_t n = small_int_or_none(o, PyTuple_GET_ITEM(event, 2));
    if (n == 0) goto other;
    o += n;
    value = PyFloat_AS_DOUBLE(duration);
    o[0] = 'g';
    memcpy(o + 1, &value, 8);
    o[9] = error == Py_True ? 'T' : 'F';
    o += 10;
    n = small_int_or_none(o, PyTuple_GET_ITEM(event, 5));
    if (n == 0) goto other;
    o += n;
    record->len = start + (o - at);
    return 1;
other: /* a large or not-int count: the general path, from this event's start */
    record->len = start;
    return PyErr_Occurred() ? -1 : 0;
}
#endif

/* The record of queued[start:] written here: 1, 0 (not only atoms in tuples), -1. */
static int put_record(ByteBuffer *record, PyObject *prefix, long long first_seq,
                      PyObject *queued, Py_ssize_t start) {
    Py_ssize_t count = PyList_GET_SIZE(queued) - start;
    if (count > INT32_MAX) return 0;
    if (put_coded(record, '(', 3) < 0) return -1;
    int done = put_atom(record, prefix);
    if (done != 1) return done;
    if (put_integer(record, first_seq) < 0 || put_coded(record, '[', (uint32_t)count) < 0)
        return -1;
    for (Py_ssize_t i = start; i < start + count; i++) {
        PyObject *event = PyList_GET_ITEM(queued, i);
        if (!PyTuple_CheckExact(event) || PyTuple_GET_SIZE(event) > INT32_MAX) return 0;
#if PY_LITTLE_ENDIAN
        done = put_usual_event(record, event);
        if (done != 0) {
            if (done < 0) return -1;
            continue;
        }
#endif
        Py_ssize_t size = PyTuple_GET_SIZE(event);
        if (put_coded(record, '(', (uint32_t)size) < 0) return -1;
        for (Py_ssize_t item = 0; item < size; item++) {
            done = put_atom(record, PyTuple_GET_ITEM(event, item));
            if (done != 1) return done;
        }
    }
    return 1;
}

/* record (emptied first) = marshal.dumps((prefix, first_seq, queued[start:]), 2). */
static int encode_record(ByteBuffer *record, PyObject *prefix, long long first_seq,
                         PyObject *queued, Py_ssize_t start) {
    record->len = 0;
    int done = put_record(record, prefix, first_seq, queued, start);
    if (done != 0) return done < 0 ? -1 : 0;
    record->len = 0;
    PyObject *events = PyList_GetSlice(queued, start, PyList_GET_SIZE(queued));
    PyObject *record_object = events ? Py_BuildValue("(OLN)", prefix, first_seq, events) : NULL;
    PyObject *bytes =
        record_object ? PyMarshal_WriteObjectToString(record_object, MARSHAL_VERSION) : NULL;
    Py_XDECREF(record_object);
    if (bytes == NULL) return -1;
    char *at = record_room(record, PyBytes_GET_SIZE(bytes));
    if (at != NULL) memcpy(at, PyBytes_AS_STRING(bytes), (size_t)PyBytes_GET_SIZE(bytes));
    Py_DECREF(bytes);
    return at == NULL ? -1 : 0;
}

/* queued[mark:] as one record to the open file of ``state`` (fd, mark, first_seq, torn),
 * mark advanced: 1; 0 not written whole (a full disk, EIO, a signal: what did go in is
 * left in torn for AuditJournal.catch_up to cut off before it writes the record again, or
 * raises; agent/journal.py's append_whole: the rule lives there once); -1 with an error. */
static int append_queued(long long *state, PyObject *queued, PyObject *prefix,
                         ByteBuffer *record) {
    Py_ssize_t count = PyList_GET_SIZE(queued);
    if (state[1] == count) return 1;
    if (state[3] != 0) return 0; /* torn bytes at the end: catch_up cuts them off first */
    if (encode_record(record, prefix, state[2] + state[1], queued, state[1]) < 0) return -1;
    ssize_t written = write((int)state[0], record->data, (size_t)record->len);
    if (written == record->len) {
        state[1] = count;
        return 1;
    }
    if (written > 0) state[3] = written;
    return 0;
}

/* The events queued since the journal's last record go to its file (agent/journal.py):
 * before the chunk that completed their statements goes to the client. */
int journal_catch_up(FastPath *self) {
    self->journal_due = 0;
    long long *state = self->journal_state; /* AuditJournal.state: fd, mark, first_seq, torn */
    if (state == NULL) return 0;            /* no journal */
    long long fd = state[0], mark = state[1];
    Py_ssize_t queued = PyList_GET_SIZE(self->audit_queue);
    if (mark == queued) return 0;
    if (fd >= 0 && fd <= INT32_MAX && mark >= 0 && mark <= queued) {
        PyObject *prefix = field_get(self->audit_journal, s_id_prefix);
        if (prefix == NULL) return -1;
        int done = append_queued(state, self->audit_queue, prefix, &self->journal_record);
        Py_DECREF(prefix);
        if (done != 0) return done < 0 ? -1 : 0;
    }
    /* no file open yet (catch_up opens it), or a write not finished whole (catch_up writes
     * it again, or cuts it off and raises) */
    PyObject *result = PyObject_CallMethodNoArgs(self->audit_journal, s_catch_up);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

/* journal_append(state, queued, id_prefix) -> False when the journal's file is not open
 * (AuditJournal.catch_up opens it) or the record was not written whole (catch_up writes it
 * again, or cuts it off), else True: what catch_up does, for the Python data paths'
 * statements (its marshal.dumps and os.write cost ~3x this). */
PyObject *module_journal_append(PyObject *module, PyObject *args) {
    static ByteBuffer record = {NULL, 0, 0}; /* reused: one record per statement */
    Py_buffer state;
    PyObject *queued, *prefix;
    if (!PyArg_ParseTuple(args, "w*O!O", &state, &PyList_Type, &queued, &prefix)) return NULL;
    PyObject *result = NULL;
    long long *slots = state.buf;
    if (state.len != 4 * (Py_ssize_t)sizeof(long long) || state.itemsize != sizeof(long long)) {
        PyErr_SetString(PyExc_TypeError, "the journal state is an array('q') of 4 slots");
    } else if (slots[0] < 0 || slots[0] > INT32_MAX || slots[1] < 0 ||
               slots[1] > PyList_GET_SIZE(queued)) {
        result = Py_NewRef(Py_False);
    } else {
        int done = append_queued(slots, queued, prefix, &record);
        if (done >= 0) result = Py_NewRef(done ? Py_True : Py_False);
    }
    if (record.capacity > 1 << 16) journal_record_free(&record); /* a large flush's */
    PyBuffer_Release(&state);
    return result;
}

/* journal_record(id_prefix, first_seq, events) -> the record's bytes, as journal_catch_up
 * writes them (tests compare them with marshal.dumps). */
PyObject *module_journal_record(PyObject *module, PyObject *args) {
    PyObject *prefix, *events;
    long long first_seq;
    if (!PyArg_ParseTuple(args, "OLO!", &prefix, &first_seq, &PyList_Type, &events)) return NULL;
    ByteBuffer record = {NULL, 0, 0};
    PyObject *bytes = NULL;
    if (encode_record(&record, prefix, first_seq, events, 0) == 0)
        bytes = PyBytes_FromStringAndSize(record.data, record.len);
    journal_record_free(&record);
    return bytes;
}
