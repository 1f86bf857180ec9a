/* A MySQL session's repeated COM_QUERY in C (agent/mysql/native.py is its Python side):
 * the MySqlPath object is both relays' data_received.
 *
 *   client → upstream  a chunk that is exactly one COM_QUERY packet, the session idle, whose
 *                      text the session ran before under a decision that still holds
 *                      (mysql_repeat: the same checks as commands.py's _repeat_now, which
 *                      calls this code too): sent upstream as it came, the client relay busy.
 *   upstream → client  its answer when it is one text result set buffered whole in one chunk
 *                      and its shape cached (mysql_whole_result, also what
 *                      results.Results._whole_result calls): its audit event recorded by the
 *                      session's own ``audit``, then its packets (rows masked) sent.
 *
 * Both go out by sink_write (sink.c, as the PostgreSQL path's): sent on a plain TCP
 * socket here while its transport is open and holds nothing, else through the transport.
 *
 * Anything else goes to the Python relays as it came; an answer it does not finish is handed
 * back (bridge.hand_back: the Results the Python path would have made) before Python reads
 * it.  So nothing is decided here: only a decision Python cached, under the same checks. */
#include "fastpath.h"

#define MYSQL_MAX_PACKET 0xFFFFFF
#define COM_QUERY 0x03
#define REPEAT_MAX_BYTES 4096 /* commands.py _REPEAT_MAX_BYTES: longer texts are not kept */
#define SERVER_MORE_RESULTS_EXISTS 0x0008

static PyObject *s_pos, *s_parts, *s_database, *s_eof, *s_reading, *s_resume, *s_index0;

static int intern_mysql_names(void) {
    if (s_pos != NULL) return 0;
    s_pos = PyUnicode_InternFromString("pos");
    s_parts = PyUnicode_InternFromString("_parts");
    s_database = PyUnicode_InternFromString("database");
    s_eof = PyUnicode_InternFromString("eof");
    s_reading = PyUnicode_InternFromString("reading");
    s_resume = PyUnicode_InternFromString("resume");
    s_index0 = PyLong_FromLong(0);
    return s_resume == NULL || s_index0 == NULL ? -1 : 0;
}

/* ------------------------------------------------------------------ the repeat check */

/* The decision (new reference) a COM_QUERY ``payload`` runs under without being decided
 * again, or NULL (an error set, or not: decide it): its template key (digits read as 0,
 * agent.normalize.template_key) names an entry of ``repeats`` (commands.py Repeat: fixed
 * pieces, decision, generation, database) made under the agent's current ``generation``
 * and the session's ``database``, whose decision has not expired and whose fixed pieces
 * the payload holds. */
static PyObject *repeat_decision(PyObject *repeats, const unsigned char *payload,
                                 Py_ssize_t len, PyObject *generation, PyObject *database) {
    /* The last key is kept: a repeat's key is the same bytes every time, and its hash is
     * then computed once. */
    static PyObject *last_key = NULL;
    int same_key = last_key != NULL && PyBytes_GET_SIZE(last_key) == len;
    const unsigned char *known =
        same_key ? (const unsigned char *)PyBytes_AS_STRING(last_key) : NULL;
    for (Py_ssize_t i = 0; same_key && i < len; i++)
        same_key = known[i] == (payload[i] > '0' && payload[i] <= '9' ? '0' : payload[i]);
    if (!same_key) {
        PyObject *key = PyBytes_FromStringAndSize((const char *)payload, len);
        if (key == NULL) return NULL;
        unsigned char *k = (unsigned char *)PyBytes_AS_STRING(key);
        for (Py_ssize_t i = 0; i < len; i++)
            if (k[i] > '0' && k[i] <= '9') k[i] = '0';
        Py_XSETREF(last_key, key);
    }
    PyObject *repeat = PyDict_GetItemWithError(repeats, last_key); /* borrowed */
    if (repeat == NULL || !PyTuple_Check(repeat) || PyTuple_GET_SIZE(repeat) != 4) return NULL;
    PyObject *fixed = PyTuple_GET_ITEM(repeat, 0), *decision = PyTuple_GET_ITEM(repeat, 1);
    int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(repeat, 2), generation, Py_EQ);
    if (same == 1) same = still_valid(decision, wall_now());
    if (same == 1) same = PyObject_RichCompareBool(PyTuple_GET_ITEM(repeat, 3), database, Py_EQ);
    if (same != 1 || !PyTuple_Check(fixed)) return NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fixed); i++) {
        PyObject *piece = PyTuple_GET_ITEM(fixed, i);
        if (!PyTuple_Check(piece) || PyTuple_GET_SIZE(piece) != 3 ||
            !PyBytes_Check(PyTuple_GET_ITEM(piece, 2)))
            return NULL;
        Py_ssize_t start = PyLong_AsSsize_t(PyTuple_GET_ITEM(piece, 0));
        Py_ssize_t end = PyLong_AsSsize_t(PyTuple_GET_ITEM(piece, 1));
        PyObject *bytes = PyTuple_GET_ITEM(piece, 2);
        if (PyErr_Occurred()) return NULL;
        if (start < 0 || end > len || end - start != PyBytes_GET_SIZE(bytes) ||
            memcmp(payload + start, PyBytes_AS_STRING(bytes), (size_t)(end - start)) != 0)
            return NULL;
    }
    return Py_NewRef(decision);
}

/* mysql_repeat(repeats, payload, generation, database) -> the decision or None (commands.py
 * _repeat_now on the native path). */
PyObject *module_mysql_repeat(PyObject *module, PyObject *args) {
    PyObject *repeats, *payload, *generation, *database;
    if (!PyArg_ParseTuple(args, "O!SOO", &PyDict_Type, &repeats, &payload, &generation,
                          &database))
        return NULL;
    PyObject *decision =
        repeat_decision(repeats, (const unsigned char *)PyBytes_AS_STRING(payload),
                        PyBytes_GET_SIZE(payload), generation, database);
    if (decision == NULL && !PyErr_Occurred()) return Py_NewRef(Py_None);
    return decision;
}

/* ------------------------------------------------------------------ the session object */

typedef struct {
    PyObject_HEAD
    /* Read from the bridge once (the session never rebinds them). */
    PyObject *agent, *session, *client_relay, *upstream_relay, *commands, *upstream_packets;
    PyObject *repeats, *masks, *masking_key, *audit;
    Sink upstream, client; /* where each direction's bytes go (sink.c sink_write) */
    /* The audit event's parts (decisions.py audit, agent.audit.AuditShipper.record_statement):
     * the session's fragments by (id(decision), index), the shipper's queue, its wakeup, its
     * journal (or None) and the statement metrics' observe. */
    PyObject *fragments, *audit_queue, *audit_wakeup, *audit_journal, *journal_state, *observe;
    Py_ssize_t batch_size;
    PyObject *client_python, *upstream_python, *client_failed, *upstream_failed, *hand_back;
    /* the command in flight: its decision (NULL: none) and when it was sent */
    PyObject *decision;
    double started;
    long long handled_client, handled_upstream, handed_back;
} MySqlPath;

#define MYSQL_PATH_REFERENCES(X)                                                             \
    X(agent) X(session) X(client_relay) X(upstream_relay) X(commands) X(upstream_packets)     \
    X(repeats) X(masks) X(masking_key) X(audit)                                               \
    X(client_python) X(upstream_python) X(client_failed) X(upstream_failed) X(hand_back)      \
    X(fragments) X(audit_queue) X(audit_wakeup) X(audit_journal) X(journal_state) X(observe)    \
    X(decision)
/* The sinks' references (take_sink reads them). */
#define MYSQL_SINK_REFERENCES(X)                                                             \
    X(upstream.write) X(upstream.pending) X(upstream.closing) X(client.write)                  \
    X(client.pending) X(client.closing)

static int MySqlPath_traverse(MySqlPath *self, visitproc visit, void *arg) {
#define VISIT(field) Py_VISIT(self->field);
    MYSQL_PATH_REFERENCES(VISIT)
    MYSQL_SINK_REFERENCES(VISIT)
#undef VISIT
    return 0;
}

static int MySqlPath_clear(MySqlPath *self) {
#define CLEAR(field) Py_CLEAR(self->field);
    MYSQL_PATH_REFERENCES(CLEAR)
    MYSQL_SINK_REFERENCES(CLEAR)
#undef CLEAR
    return 0;
}

static void MySqlPath_dealloc(MySqlPath *self) {
    PyObject_GC_UnTrack(self);
    MySqlPath_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* MySqlPath(bridge): refuses a bridge of another ABI version before reading the rest. */
static int MySqlPath_init(MySqlPath *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"bridge", NULL};
    PyObject *bridge;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O", kwlist, &bridge)) return -1;
    if (intern_mysql_names() < 0) return -1;
    PyObject *version = PyObject_GetAttrString(bridge, "abi_version");
    if (version == NULL) return -1;
    long abi = PyLong_AsLong(version);
    Py_DECREF(version);
    if (abi == -1 && PyErr_Occurred()) return -1;
    if (abi != FASTPATH_ABI_VERSION) {
        PyErr_Format(PyExc_RuntimeError,
                     "the native data path speaks bridge ABI %d, the agent's bridge is %ld",
                     FASTPATH_ABI_VERSION, abi);
        return -1;
    }
    MySqlPath_clear(self);
#define TAKE(field)                                                         \
    if ((self->field = PyObject_GetAttrString(bridge, #field)) == NULL) \
        goto fail;
    MYSQL_PATH_REFERENCES(TAKE)
#undef TAKE
    if (take_sink(bridge, "upstream", &self->upstream) < 0 ||
        take_sink(bridge, "client", &self->client) < 0)
        goto fail;
    Py_CLEAR(self->decision); /* the bridge's is None: nothing in flight */
    PyObject *batch_size = PyObject_GetAttrString(bridge, "batch_size");
    if (batch_size == NULL) goto fail;
    self->batch_size = PyLong_AsSsize_t(batch_size);
    Py_DECREF(batch_size);
    if (self->batch_size < 1) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "batch_size must be at least 1");
        goto fail;
    }
    if (!PyDict_Check(self->repeats) || !PyDict_Check(self->masks) ||
        !PyDict_Check(self->fragments) || !PyList_Check(self->audit_queue)) {
        PyErr_SetString(PyExc_TypeError, "the bridge's caches are dicts, its queue a list");
        goto fail;
    }
    return 0;
fail:
    MySqlPath_clear(self);
    return -1;
}

/* 1 when the PacketBuffer holds no byte not taken, 0 when it does, -1 on error. */
static int packets_empty(PyObject *packets) {
    PyObject *buffer = field_get(packets, s_buffer);
    if (buffer == NULL) return -1;
    PyObject *pos = field_get(packets, s_pos);
    if (pos == NULL) {
        Py_DECREF(buffer);
        return -1;
    }
    int empty = PyBytes_Check(buffer) && PyLong_Check(pos) &&
                PyLong_AsSsize_t(pos) == PyBytes_GET_SIZE(buffer);
    Py_DECREF(buffer);
    Py_DECREF(pos);
    if (!empty) return PyErr_Occurred() ? -1 : 0;
    PyObject *parts = field_get(packets, s_parts); /* a wide packet's chunks */
    if (parts == NULL) return -1;
    int collecting = PyObject_IsTrue(parts);
    Py_DECREF(parts);
    return collecting < 0 ? -1 : !collecting;
}

/* 1 when obj.name is true, 0 when not, -1 on error. */
static int truth_of(PyObject *obj, PyObject *name) {
    PyObject *value = field_get(obj, name);
    if (value == NULL) return -1;
    int truth = value == Py_True ? 1 : value == Py_False ? 0 : PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* A client chunk: 1 when it was a repeat sent upstream, 0 when Python takes it. */
static int client_chunk(MySqlPath *self, PyObject *data) {
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    if (self->decision != NULL || size < 5 || size - 4 > REPEAT_MAX_BYTES) return 0;
    Py_ssize_t length = buf[0] | buf[1] << 8 | buf[2] << 16;
    if (length != size - 4 || buf[3] != 0 || buf[4] != COM_QUERY) return 0;
    int ready = truth_of(self->client_relay, s_busy);
    if (ready == 0) ready = packets_empty(self->commands);
    else if (ready == 1) ready = 0;
    if (ready != 1) return ready;
    PyObject *generation = field_get(self->agent, s_generation);
    if (generation == NULL) return -1;
    PyObject *database = field_get(self->session, s_database);
    if (database == NULL) {
        Py_DECREF(generation);
        return -1;
    }
    PyObject *decision = repeat_decision(self->repeats, buf + 4, length, generation, database);
    Py_DECREF(generation);
    Py_DECREF(database);
    if (decision == NULL) return PyErr_Occurred() ? -1 : 0;
    /* the next command waits for this answer (commands.py _run_query, state.py _expect) */
    if (PyObject_SetAttr(self->client_relay, s_busy, Py_True) < 0 ||
        sink_write(&self->upstream, data) < 0) {
        Py_DECREF(decision);
        return -1;
    }
    self->decision = decision;
    self->started = monotonic_now();
    self->handled_client++;
    return 1;
}

/* The answer in flight goes on in Python: the Results the Python path holds by now. */
static int hand_back(MySqlPath *self) {
    PyObject *decision = self->decision;
    self->decision = NULL;
    PyObject *result = PyObject_CallFunction(self->hand_back, "Od", decision, self->started);
    Py_DECREF(decision);
    if (result == NULL) return -1;
    Py_DECREF(result);
    self->handed_back++;
    return 0;
}

/* The command's answer went out whole: the next command may start (state.py results_done:
 * the client relay resumes, or only stops being busy when nothing waits on it). */
static int command_done(MySqlPath *self) {
    int quiet = packets_empty(self->commands);
    if (quiet == 1) {
        int ended = truth_of(self->client_relay, s_eof);
        quiet = ended < 0 ? -1 : !ended;
    }
    if (quiet == 1) quiet = truth_of(self->client_relay, s_reading);
    if (quiet < 0) return -1;
    if (quiet) return PyObject_SetAttr(self->client_relay, s_busy, Py_False);
    PyObject *result = PyObject_CallMethodNoArgs(self->client_relay, s_resume);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

/* The audit event of a repeat's result (index 0) and its latency metric, as the session's
 * ``audit`` records them (decisions.py): its fragment cached by the session, the event
 * queued (agent.audit.QueuedEvent), journaled (journal.c, as AuditJournal.catch_up) before
 * the result goes to the client, the shipper woken on a full batch.  A fragment not cached
 * yet: the session's ``audit`` itself. */
static int audit_statement(MySqlPath *self, PyObject *decision, Py_ssize_t rows,
                           double duration_ms, Py_ssize_t sent) {
    PyObject *id = PyLong_FromVoidPtr(decision);
    PyObject *key = id ? PyTuple_Pack(2, id, s_index0) : NULL;
    Py_XDECREF(id);
    if (key == NULL) return -1;
    PyObject *cached = PyDict_GetItemWithError(self->fragments, key); /* borrowed */
    Py_DECREF(key);
    if (cached == NULL || !PyTuple_Check(cached) || PyTuple_GET_SIZE(cached) != 2 ||
        PyTuple_GET_ITEM(cached, 0) != decision) {
        if (PyErr_Occurred()) return -1;
        PyObject *done = PyObject_CallFunction(self->audit, "OindOn", decision, 0, rows,
                                               duration_ms, Py_False, sent);
        Py_XDECREF(done);
        return done == NULL ? -1 : 0;
    }
    PyObject *event = PyTuple_New(6), *moment = PyFloat_FromDouble(wall_now());
    PyObject *count = PyLong_FromSsize_t(rows), *duration = PyFloat_FromDouble(duration_ms);
    PyObject *payload = PyLong_FromSsize_t(sent);
    if (event == NULL || moment == NULL || count == NULL || duration == NULL || payload == NULL) {
        Py_XDECREF(event);
        Py_XDECREF(moment);
        Py_XDECREF(count);
        Py_XDECREF(duration);
        Py_XDECREF(payload);
        return -1;
    }
    /* agent.audit.QueuedEvent: fragment, time, rows, duration_ms, error, sent_bytes */
    PyTuple_SET_ITEM(event, 0, Py_NewRef(PyTuple_GET_ITEM(cached, 1)));
    PyTuple_SET_ITEM(event, 1, moment);
    PyTuple_SET_ITEM(event, 2, count);
    PyTuple_SET_ITEM(event, 3, duration);
    PyTuple_SET_ITEM(event, 4, Py_NewRef(Py_False));
    PyTuple_SET_ITEM(event, 5, payload);
    PyObject_GC_UnTrack(event); /* atoms only: never part of a cycle */
    int failed = PyList_Append(self->audit_queue, event);
    Py_DECREF(event);
    if (failed < 0) return -1;
    if (self->audit_journal != Py_None) {
        PyObject *prefix = field_get(self->audit_journal, s_id_prefix); /* a seal renews it */
        PyObject *args =
            prefix ? PyTuple_Pack(3, self->journal_state, self->audit_queue, prefix) : NULL;
        PyObject *appended = args ? module_journal_append(NULL, args) : NULL;
        Py_XDECREF(prefix);
        Py_XDECREF(args);
        if (appended == Py_False) { /* its file is not open: catch_up opens it */
            Py_DECREF(appended);
            appended = PyObject_CallMethod(self->audit_journal, "catch_up", NULL);
        }
        if (appended == NULL) return -1;
        Py_DECREF(appended);
    }
    if (PyList_GET_SIZE(self->audit_queue) >= self->batch_size) {
        PyObject *woken = PyObject_CallNoArgs(self->audit_wakeup);
        if (woken == NULL) return -1;
        Py_DECREF(woken);
    }
    PyObject *args[2] = {field_get(decision, s_action), PyFloat_FromDouble(duration_ms / 1000.0)};
    PyObject *observed =
        args[0] && args[1] ? PyObject_Vectorcall(self->observe, args, 2, NULL) : NULL;
    Py_XDECREF(args[0]);
    Py_XDECREF(args[1]);
    Py_XDECREF(observed);
    return observed == NULL ? -1 : 0;
}

/* An upstream chunk while a repeat is in flight: 1 when it was its whole answer, relayed
 * and audited; 0 when Python takes it (the answer handed back first). */
static int upstream_chunk(MySqlPath *self, PyObject *data) {
    if (self->decision == NULL) return 0;
    int ready = truth_of(self->upstream_relay, s_busy);
    if (ready == 0) ready = packets_empty(self->upstream_packets);
    else if (ready == 1) ready = 0;
    if (ready < 0) return -1;
    WholeResult whole = {NULL, 0, 0, 0, 0, 0, -1};
    int found = ready ? mysql_whole_result(data, 0, 1, self->masks, self->decision,
                                           self->masking_key, &whole)
                      : 0;
    if (found < 0) return -1;
    if (!found || whole.end != PyBytes_GET_SIZE(data) || whole.status < 0 ||
        whole.status & SERVER_MORE_RESULTS_EXISTS) {
        Py_XDECREF(whole.out);
        return hand_back(self) < 0 ? -1 : 0;
    }
    /* results.py _ended: audited before the packets go to the client */
    double duration_ms = (monotonic_now() - self->started) * 1000.0;
    PyObject *decision = self->decision;
    self->decision = NULL;
    int failed = audit_statement(self, decision, whole.rows, duration_ms, whole.sent) < 0 ||
                 sink_write(&self->client, whole.out) < 0;
    Py_DECREF(decision);
    Py_DECREF(whole.out);
    if (failed || command_done(self) < 0) return -1;
    self->handled_upstream++;
    return 1;
}

/* data_received of a relay: the native path first, Python for the rest.  Errors end the
 * session like the Python relay's (bridge.client_failed / upstream_failed(exc)). */
static PyObject *received(MySqlPath *self, PyObject *data, int upstream) {
    if (self->client_relay == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "MySqlPath is not initialized");
        return NULL;
    }
    int handled = !PyBytes_Check(data) ? 0
                  : upstream           ? upstream_chunk(self, data)
                                       : client_chunk(self, data);
    if (handled == 1) Py_RETURN_NONE;
    if (handled == 0)
        return PyObject_CallOneArg(upstream ? self->upstream_python : self->client_python, data);
    return fastpath_report_failure(upstream ? self->upstream_failed : self->client_failed);
}

static PyObject *MySqlPath_client_received(MySqlPath *self, PyObject *data) {
    return received(self, data, 0);
}

static PyObject *MySqlPath_upstream_received(MySqlPath *self, PyObject *data) {
    return received(self, data, 1);
}

static PyObject *MySqlPath_get_stats(MySqlPath *self, void *closure) {
    return Py_BuildValue("{sLsLsLsLsLsLsL}", "client", self->handled_client, "upstream",
                         self->handled_upstream, "handed_back", self->handed_back,
                         "sent_upstream", self->upstream.sent, "queued_upstream",
                         self->upstream.queued, "sent_client", self->client.sent,
                         "queued_client", self->client.queued);
}

static PyObject *MySqlPath_get_inflight(MySqlPath *self, void *closure) {
    return PyBool_FromLong(self->decision != NULL);
}

static PyMethodDef MySqlPath_methods[] = {
    {"client_received", (PyCFunction)MySqlPath_client_received, METH_O,
     "data_received of the client relay (a repeated COM_QUERY in C, else Python)."},
    {"upstream_received", (PyCFunction)MySqlPath_upstream_received, METH_O,
     "data_received of the upstream relay (a repeat's whole answer in C, else Python)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef MySqlPath_getset[] = {
    {"stats", (getter)MySqlPath_get_stats, NULL,
     "Chunks handled in C, answers handed back; writes sent on the sockets here, and handed "
     "to their transports because those held bytes.",
     NULL},
    {"inflight", (getter)MySqlPath_get_inflight, NULL, "A repeat's answer is awaited in C.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject MySqlPathType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "agent._fastpath.MySqlPath",
    .tp_basicsize = sizeof(MySqlPath),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "MySqlPath(bridge): a MySQL session's repeated queries in C (agent/mysql/native.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)MySqlPath_init,
    .tp_dealloc = (destructor)MySqlPath_dealloc,
    .tp_traverse = (traverseproc)MySqlPath_traverse,
    .tp_clear = (inquiry)MySqlPath_clear,
    .tp_methods = MySqlPath_methods,
    .tp_getset = MySqlPath_getset,
};
