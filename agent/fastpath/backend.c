/* Upstream → client: the responses of the round trip client.c started, stepped against the
 * entries it expects; anything else hands the round trip back to Python. */
#include "fastpath.h"

/* Queue the audit event and the latency metric of one finished statement. */
static int statement_done(FastPath *self, const unsigned char *payload, Py_ssize_t len) {
    /* rows: the tag's last word when it is a number (agent.postgres.codec.rows_from_tag) */
    const unsigned char *tag_end = memchr(payload, 0, (size_t)len);
    Py_ssize_t tag_len = tag_end ? tag_end - payload : len;
    Py_ssize_t word = tag_len;
    while (word > 0 && payload[word - 1] != ' ') word--;
    PyObject *rows;
    int digits = word < tag_len;
    long long count = 0;
    for (Py_ssize_t i = word; i < tag_len && digits; i++) {
        if (payload[i] < '0' || payload[i] > '9' || count > (1LL << 58))
            digits = 0;
        else
            count = count * 10 + (payload[i] - '0');
    }
    rows = digits ? PyLong_FromLongLong(count) : Py_NewRef(Py_None);
    if (rows == NULL) return -1;
    double seconds = monotonic_now() - self->started;
    PyObject *event = PyTuple_New(6), *moment = PyFloat_FromDouble(wall_now()),
             *duration = PyFloat_FromDouble(seconds * 1000.0),
             *sent = PyLong_FromLongLong(self->sent_bytes);
    self->sent_rows = self->sent_bytes = 0; /* the next statement counts from zero */
    if (event == NULL || moment == NULL || duration == NULL || sent == NULL) {
        Py_XDECREF(event);
        Py_XDECREF(moment);
        Py_XDECREF(duration);
        Py_XDECREF(sent);
        Py_DECREF(rows);
        return -1;
    }
    /* agent.audit.QueuedEvent */
    PyTuple_SET_ITEM(event, 0, Py_NewRef(self->fragment));
    PyTuple_SET_ITEM(event, 1, moment);
    PyTuple_SET_ITEM(event, 2, rows);
    PyTuple_SET_ITEM(event, 3, duration);
    PyTuple_SET_ITEM(event, 4, Py_NewRef(Py_False));
    PyTuple_SET_ITEM(event, 5, sent);
    /* Atoms only, so never part of a cycle: kept out of the collector's young generation,
     * which thousands of queued events would otherwise make every collection walk. */
    PyObject_GC_UnTrack(event);
    int failed = PyList_Append(self->audit_queue, event) < 0;
    Py_DECREF(event);
    if (failed) return -1;
    self->journal_due = 1;
    Py_ssize_t length = PyList_GET_SIZE(self->audit_queue);
    if (length % self->batch_size == 0) { /* a full batch: wake the shipper (once) */
        PyObject *result = PyObject_CallNoArgs(self->audit_wakeup);
        if (result == NULL) return -1;
        Py_DECREF(result);
    }
    observe(self, seconds);
    return 0;
}

/* The simple-protocol RowDescription: its masks from the bridge's origin_masks.  1 armed,
 * 0 not cached.  The masks of (decision, RowDescription) under one engine never change, so
 * the last ones found are memoised with their keys (held alive: identities stay theirs). */
static int arm_origin_masks(FastPath *self, const unsigned char *payload, Py_ssize_t len) {
    PyObject *engine = field_get(self->agent, s_engine);
    if (engine == NULL) return -1;
    PyObject *mask;
    if (self->om_decision == self->decision && self->om_engine == engine &&
        PyBytes_GET_SIZE(self->om_description) == len &&
        memcmp(PyBytes_AS_STRING(self->om_description), payload, (size_t)len) == 0) {
        mask = self->om_mask; /* found under this engine before: the same masks */
    } else {
        /* the session's cache holds masks of the engine in force only */
        int current = attr_is(self->session, s_origin_engine, engine);
        if (current != 1) {
            Py_DECREF(engine);
            return current;
        }
        PyObject *id = PyLong_FromVoidPtr(self->decision);
        PyObject *bytes = PyBytes_FromStringAndSize((const char *)payload, len);
        PyObject *key = (id && bytes) ? PyTuple_Pack(2, id, bytes) : NULL;
        Py_XDECREF(id);
        PyObject *found = key ? PyDict_GetItemWithError(self->origin_masks, key) : NULL;
        Py_XDECREF(key);
        if (found == NULL || !PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 2 ||
            PyTuple_GET_ITEM(found, 0) != self->decision) {
            Py_XDECREF(bytes);
            Py_DECREF(engine);
            return PyErr_Occurred() ? -1 : 0;
        }
        mask = PyTuple_GET_ITEM(found, 1);
        Py_XSETREF(self->om_decision, Py_NewRef(self->decision));
        Py_XSETREF(self->om_engine, Py_NewRef(engine));
        Py_XSETREF(self->om_description, bytes);
        Py_XSETREF(self->om_mask, Py_NewRef(mask));
    }
    Py_DECREF(engine);
    Py_CLEAR(self->row_mask);
    if (mask != Py_None) self->row_mask = Py_NewRef(mask);
    return 1;
}

enum { PASS, SWALLOW, REPLACE, FALLBACK, DONE, ERROR };

static int step_simple(FastPath *self, int kind, const unsigned char *payload, Py_ssize_t len) {
    switch (kind) {
    case MSG_DATA_ROW:
        if (self->q_stage != 1) return FALLBACK;
        return self->row_mask ? REPLACE : PASS;
    case MSG_ROW_DESCRIPTION: {
        if (self->q_stage != 0) return FALLBACK;
        int armed = arm_origin_masks(self, payload, len);
        if (armed < 0) return ERROR;
        if (!armed) return FALLBACK;
        self->q_stage = 1;
        return PASS;
    }
    case MSG_COMMAND_COMPLETE:
        if (self->q_stage == 2) return FALLBACK;
        if (statement_done(self, payload, len) < 0) return ERROR;
        Py_CLEAR(self->row_mask);
        self->q_stage = 2;
        return PASS;
    case MSG_READY_FOR_QUERY:
        return self->q_stage == 2 ? DONE : FALLBACK;
    case MSG_NOTIFICATION:
        return PASS;
    default: /* also 'S' ParameterStatus (Python checks the settings it pins) and 'N' notices
                (Python withholds their text for statements touching restricted columns) */
        return FALLBACK;
    }
}

static void pop_entry(FastPath *self) {
    self->head++;
    Py_CLEAR(self->row_mask);
    if (self->head < self->n_entries && self->entries[self->head] == R_EXECUTE &&
        self->exec_mask != NULL)
        self->row_mask = Py_NewRef(self->exec_mask);
}

static int step_extended(FastPath *self, int kind, const unsigned char *payload,
                         Py_ssize_t len) {
    if (kind == MSG_NOTIFICATION) return PASS; /* ParameterStatus and notices fall back */
    if (self->head >= self->n_entries) return FALLBACK;
    switch (self->entries[self->head]) {
    case R_PARSE:
        if (kind != MSG_PARSE_COMPLETE) return FALLBACK;
        pop_entry(self);
        return PASS;
    case R_OWN_DESCRIBE:
        if (kind == MSG_PARAMETER_DESCRIPTION) return SWALLOW;
        if (kind == MSG_ROW_DESCRIPTION) {
            PyObject *described = field_get(self->prepared, s_described);
            if (described == NULL) return ERROR;
            int same = PyBytes_Check(described) && PyBytes_GET_SIZE(described) == len &&
                       memcmp(PyBytes_AS_STRING(described), payload, (size_t)len) == 0;
            Py_DECREF(described);
            if (!same) return FALLBACK; /* a new shape: Python learns it */
            pop_entry(self);
            return SWALLOW;
        }
        return FALLBACK;
    case R_BIND:
        if (kind != MSG_BIND_COMPLETE) return FALLBACK;
        pop_entry(self);
        return PASS;
    case R_DESCRIBE:
        if (kind != MSG_ROW_DESCRIPTION && kind != MSG_NO_DATA) return FALLBACK;
        pop_entry(self);
        return PASS;
    case R_EXECUTE:
        if (kind == MSG_DATA_ROW) return self->row_mask ? REPLACE : PASS;
        if (kind != MSG_COMMAND_COMPLETE) return FALLBACK;
        if (statement_done(self, payload, len) < 0) return ERROR;
        pop_entry(self);
        return PASS;
    case R_SYNC:
        return kind == MSG_READY_FOR_QUERY ? DONE : FALLBACK;
    }
    return FALLBACK;
}

Py_ssize_t fastpath_backend(FastPath *self, PyObject *data) {
    if (self->mode == IDLE || !PyBytes_Check(data)) return 0;
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data), pos = 0, span = 0;
    Buffer out = {NULL, 0}; /* the chunk as it goes out, once a message is replaced */
    int replaced = 0, outcome = PASS;
    while (size - pos >= 5) {
        int32_t length = be32(buf + pos + 1);
        if (length < 4) { /* not a message: Python reports the protocol error */
            outcome = FALLBACK;
            break;
        }
        Py_ssize_t end = pos + 1 + length;
        if (end > size) break;
        int kind = buf[pos];
        const unsigned char *payload = buf + pos + 5;
        outcome = self->mode == SIMPLE ? step_simple(self, kind, payload, length - 4)
                                       : step_extended(self, kind, payload, length - 4);
        if (outcome == ERROR) goto error;
        if (outcome == FALLBACK) break;
        if (outcome == SWALLOW || outcome == REPLACE) {
            /* the first masked row reserves the whole chunk grown by half (a hash token is
             * longer than most values): one allocation, not a doubling per few rows */
            if (out.bytes == NULL && outcome == REPLACE &&
                buffer_room(&out, size + size / 2) == NULL)
                goto error;
            if (buffer_add(&out, buf + span, pos - span) < 0) goto error;
            Py_ssize_t before = out.len;
            if (outcome == REPLACE &&
                (compile_mask(&self->compiled, self->row_mask) < 0 ||
                 mask_data_row_into(&out, &self->compiled, payload, length - 4,
                                    self->masking_key) < 0))
                goto error;
            if (outcome == REPLACE) { /* a masked row: its payload as it goes out */
                self->sent_rows++;
                self->sent_bytes += out.len - before - 5;
            }
            replaced = 1;
            span = end;
        } else if (kind == MSG_DATA_ROW && outcome == PASS) {
            self->sent_rows++;
            self->sent_bytes += length - 4;
        }
        pos = end;
        if (outcome == DONE) {
            clear_flight(self);
            break;
        }
    }
    /* the audit journal has this chunk's events before the client has their results */
    if (self->journal_due && journal_catch_up(self) < 0) goto error;
    /* write what was processed, in order, before Python sees anything after it */
    if (pos > 0 || replaced) {
        PyObject *chunk;
        if (!replaced) {
            chunk = pos == size ? Py_NewRef(data)
                                : PyBytes_FromStringAndSize((const char *)buf, pos);
        } else {
            if (buffer_add(&out, buf + span, pos - span) < 0) goto error;
            chunk = buffer_finish(&out);
        }
        if (chunk == NULL) goto error;
        int failed = PyBytes_GET_SIZE(chunk) == 0 ? 0 : sink_write(&self->client, chunk);
        Py_DECREF(chunk);
        if (failed < 0) goto error;
    }
    buffer_free(&out);
    if (outcome == FALLBACK && resume_in_python(self) < 0) return -1;
    self->handled_backend++;
    return pos;
error:
    buffer_free(&out);
    return -1;
}
