/* The FastPath object of one session: built from its native.Bridge, it owns the tickets
 * and the round trip in flight, and is the relays' data_received (native first, Python for
 * the rest). */
#include "fastpath.h"

PyObject *s_buffer, *s_busy, *s_discarding, *s_origin_engine, *s_engine, *s_generation,
    *s_valid_until, *s_action, *s_decision, *s_described, *s_masks, *s_allow, *s_mask, *s_zero,
    *s_id_prefix, *s_catch_up, *s_empty;

int intern_names(void) {
#define INTERN(var, text)                                  \
    if ((var = PyUnicode_InternFromString(text)) == NULL) \
        return -1;
    INTERN(s_buffer, "buffer");
    INTERN(s_busy, "busy");
    INTERN(s_discarding, "discarding");
    INTERN(s_origin_engine, "origin_engine");
    INTERN(s_engine, "engine");
    INTERN(s_generation, "generation");
    INTERN(s_valid_until, "valid_until");
    INTERN(s_action, "action");
    INTERN(s_decision, "decision");
    INTERN(s_described, "described");
    INTERN(s_masks, "masks");
    INTERN(s_allow, "allow");
    INTERN(s_mask, "mask");
    INTERN(s_id_prefix, "id_prefix");
    INTERN(s_catch_up, "catch_up");
    INTERN(s_empty, "");
#undef INTERN
    return (s_zero = PyLong_FromLong(0)) == NULL ? -1 : 0;
}

double monotonic_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------ object lifecycle */

void clear_flight(FastPath *self) {
    self->mode = IDLE;
    self->n_entries = self->head = self->q_stage = self->masked = 0;
    self->sent_rows = self->sent_bytes = 0;
    Py_CLEAR(self->decision);
    Py_CLEAR(self->fragment);
    Py_CLEAR(self->action);
    Py_CLEAR(self->prepared);
    Py_CLEAR(self->formats);
    Py_CLEAR(self->portal);
    Py_CLEAR(self->row_mask);
    Py_CLEAR(self->exec_mask);
}

/* Every object reference a FastPath holds, for traverse and clear. */
#define FASTPATH_REFERENCES(X)                                                           \
    X(bridge) X(session) X(agent) X(client_relay) X(backend_relay) X(upstream.write)         \
    X(upstream.pending) X(upstream.closing) X(client.write) X(client.pending)               \
    X(client.closing) X(expect) X(statements) X(portals) X(origin_masks) X(audit_fragments)    \
    X(audit_queue) X(hand_back_simple) X(hand_back_extended) X(audit_wakeup) X(audit_journal)  \
    X(client_python) X(backend_python) X(client_rest) X(backend_rest) X(client_failed)       \
    X(backend_failed) X(mask_value) X(masking_key) X(q_tickets) X(p_tickets)                 \
    X(om_decision) X(om_engine) X(om_description) X(om_mask) X(formats_memo)               \
    X(client_reader.ended) X(backend_reader.ended)

/* Every Memo a FastPath holds. */
#define FASTPATH_MEMOS(X) X(fragments) X(names) X(portal_entries)
#define FASTPATH_KEY_MEMOS(X) X(q_keys) X(p_keys)

static void release_buffers(FastPath *self) {
    if (self->counts != NULL) PyBuffer_Release(&self->counts_view);
    if (self->seconds_total != NULL) PyBuffer_Release(&self->seconds_view);
    if (self->journal_state != NULL) PyBuffer_Release(&self->journal_view);
    self->counts = NULL;
    self->seconds_total = NULL;
    self->journal_state = NULL;
}

static int FastPath_traverse(FastPath *self, visitproc visit, void *arg) {
#define VISIT(field) Py_VISIT(self->field);
    FASTPATH_REFERENCES(VISIT)
#undef VISIT
#define VISIT_MEMO(memo)                                              \
    if (memo_traverse(&self->memo, visit, arg) != 0) return -1;
    FASTPATH_MEMOS(VISIT_MEMO)
#undef VISIT_MEMO
#define VISIT_KEYS(memo)                                              \
    if (key_memo_traverse(&self->memo, visit, arg) != 0) return -1;
    FASTPATH_KEY_MEMOS(VISIT_KEYS)
#undef VISIT_KEYS
    Py_VISIT(self->compiled.source);
    Py_VISIT(self->decision);
    Py_VISIT(self->fragment);
    Py_VISIT(self->action);
    Py_VISIT(self->prepared);
    Py_VISIT(self->formats);
    Py_VISIT(self->portal);
    Py_VISIT(self->row_mask);
    Py_VISIT(self->exec_mask);
    return 0;
}

static int FastPath_clear(FastPath *self) {
    clear_flight(self);
#define CLEAR(field) Py_CLEAR(self->field);
    FASTPATH_REFERENCES(CLEAR)
#undef CLEAR
#define CLEAR_MEMO(memo) memo_clear(&self->memo);
    FASTPATH_MEMOS(CLEAR_MEMO)
#undef CLEAR_MEMO
#define CLEAR_KEYS(memo) key_memo_clear(&self->memo);
    FASTPATH_KEY_MEMOS(CLEAR_KEYS)
#undef CLEAR_KEYS
    compiled_clear(&self->compiled);
    journal_record_free(&self->journal_record);
    release_buffers(self);
    return 0;
}

static void FastPath_dealloc(FastPath *self) {
    PyObject_GC_UnTrack(self);
    FastPath_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* bridge.<name> into *field (a new reference); -1 with an error when it is missing. */
int bridge_take(PyObject *bridge, const char *name, PyObject **field) {
    *field = PyObject_GetAttrString(bridge, name);
    return *field == NULL ? -1 : 0;
}

/* A writable buffer of bridge.<name> with items of this struct format ("q", "d"). */
static int take_buffer(PyObject *bridge, const char *name, const char *format,
                       Py_ssize_t itemsize, Py_buffer *view) {
    PyObject *owner = PyObject_GetAttrString(bridge, name);
    if (owner == NULL) return -1;
    int rc = PyObject_GetBuffer(owner, view, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS);
    Py_DECREF(owner);
    if (rc < 0) return -1;
    if (view->itemsize != itemsize || view->format == NULL || strcmp(view->format, format) != 0) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "bridge.%s is not an array of '%s'", name, format);
        return -1;
    }
    return 0;
}

/* The audit journal's state (AuditJournal.state: fd, mark, first_seq, torn), when there is
 * one. */
static int take_journal_state(FastPath *self) {
    if (self->audit_journal == Py_None) return 0;
    if (take_buffer(self->audit_journal, "state", "q", sizeof(long long), &self->journal_view) < 0)
        return -1;
    self->journal_state = self->journal_view.buf;
    if (self->journal_view.len == 4 * (Py_ssize_t)sizeof(long long)) return 0;
    PyErr_SetString(PyExc_ValueError, "the audit journal's state is not fd, mark, first_seq, torn");
    return -1;
}

/* The statement counters (agent.metrics.StatementStats.native, native_seconds), their
 * layout (bridge.native_layout: slots of allow, mask, the first latency bucket, native
 * statements, hand-backs) and the latency bucket bounds, all checked against each other. */
static int take_counters(FastPath *self, PyObject *bridge) {
    if (take_buffer(bridge, "native_counts", "q", sizeof(long long), &self->counts_view) < 0)
        return -1;
    self->counts = self->counts_view.buf;
    if (take_buffer(bridge, "native_seconds", "d", sizeof(double), &self->seconds_view) < 0)
        return -1;
    self->seconds_total = self->seconds_view.buf;
    PyObject *layout = PyObject_GetAttrString(bridge, "native_layout");
    PyObject *bounds = layout ? PyObject_GetAttrString(bridge, "latency_buckets") : NULL;
    int ok = bounds != NULL && PyTuple_Check(layout) && PyTuple_GET_SIZE(layout) == 5 &&
             PyTuple_Check(bounds) && PyTuple_GET_SIZE(bounds) < 32;
    Py_ssize_t *slots[] = {&self->slot_allow, &self->slot_mask, &self->slot_buckets,
                           &self->slot_statements, &self->slot_handbacks};
    Py_ssize_t length = self->counts_view.len / (Py_ssize_t)sizeof(long long);
    for (Py_ssize_t i = 0; ok && i < 5; i++) {
        *slots[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(layout, i));
        ok = *slots[i] >= 0 && *slots[i] < length;
    }
    self->n_bounds = ok ? PyTuple_GET_SIZE(bounds) : 0;
    ok = ok && self->slot_buckets + self->n_bounds < length && self->seconds_view.len >= 8;
    for (Py_ssize_t i = 0; ok && i < self->n_bounds; i++) {
        self->bounds[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(bounds, i));
        ok = !PyErr_Occurred();
    }
    Py_XDECREF(layout);
    Py_XDECREF(bounds);
    if (ok) return 0;
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "the bridge's counter layout does not fit its counters");
    return -1;
}

/* FastPath(bridge): refuses a bridge of another ABI version (RuntimeError) before reading
 * anything else of it. */
static int FastPath_init(FastPath *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"bridge", NULL};
    PyObject *bridge;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O", kwlist, &bridge)) return -1;
    self->client_reader.fd = self->backend_reader.fd = -1; /* the transports read */
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
    FastPath_clear(self);
    self->bridge = Py_NewRef(bridge);
    PyObject *batch_size = NULL;
    if (bridge_take(bridge, "session", &self->session) < 0 || bridge_take(bridge, "agent", &self->agent) < 0 ||
        bridge_take(bridge, "client_relay", &self->client_relay) < 0 ||
        bridge_take(bridge, "backend_relay", &self->backend_relay) < 0 ||
        take_sink(bridge, "upstream", &self->upstream) < 0 ||
        take_sink(bridge, "client", &self->client) < 0 ||
        bridge_take(bridge, "expect", &self->expect) < 0 ||
        bridge_take(bridge, "statements", &self->statements) < 0 ||
        bridge_take(bridge, "portals", &self->portals) < 0 ||
        bridge_take(bridge, "origin_masks", &self->origin_masks) < 0 ||
        bridge_take(bridge, "audit_fragments", &self->audit_fragments) < 0 ||
        bridge_take(bridge, "audit_queue", &self->audit_queue) < 0 ||
        bridge_take(bridge, "audit_wakeup", &self->audit_wakeup) < 0 ||
        bridge_take(bridge, "audit_journal", &self->audit_journal) < 0 ||
        bridge_take(bridge, "hand_back_simple", &self->hand_back_simple) < 0 ||
        bridge_take(bridge, "hand_back_extended", &self->hand_back_extended) < 0 ||
        bridge_take(bridge, "client_python", &self->client_python) < 0 ||
        bridge_take(bridge, "backend_python", &self->backend_python) < 0 ||
        bridge_take(bridge, "client_rest", &self->client_rest) < 0 ||
        bridge_take(bridge, "backend_rest", &self->backend_rest) < 0 ||
        bridge_take(bridge, "client_failed", &self->client_failed) < 0 ||
        bridge_take(bridge, "backend_failed", &self->backend_failed) < 0 ||
        bridge_take(bridge, "mask_value", &self->mask_value) < 0 ||
        bridge_take(bridge, "masking_key", &self->masking_key) < 0 ||
        bridge_take(bridge, "batch_size", &batch_size) < 0 || take_counters(self, bridge) < 0 ||
        take_journal_state(self) < 0)
        goto fail;
    self->batch_size = PyLong_AsSsize_t(batch_size);
    Py_DECREF(batch_size);
    if (self->batch_size == -1 && PyErr_Occurred()) goto fail;
    if (self->batch_size < 1) {
        PyErr_SetString(PyExc_ValueError, "batch_size must be at least 1");
        goto fail;
    }
    if (!PyDict_Check(self->statements) || !PyDict_Check(self->portals) ||
        !PyDict_Check(self->origin_masks) || !PyDict_Check(self->audit_fragments) ||
        !PyList_Check(self->audit_queue)) {
        PyErr_SetString(PyExc_TypeError, "the bridge's caches are dicts, its queue a list");
        goto fail;
    }
    self->q_tickets = PyDict_New();
    self->p_tickets = PyDict_New();
    if (self->q_tickets == NULL || self->p_tickets == NULL) goto fail;
    return 0;
fail:
    FastPath_clear(self); /* a half-built FastPath stays uninitialized (REQUIRE_INIT) */
    return -1;
}

/* ------------------------------------------------------------------ helpers */

/* ------------------------------------------------------------------ field reads */

FieldPlace field_places[FIELD_PLACES];

/* The slot offset of obj.name for a pair field_get did not find, looked up and placed as
 * the newest of its two ways. */
static Py_ssize_t field_offset(PyTypeObject *type, PyObject *name) {
    FieldPlace *ways = field_ways(type, name);
    PyObject *descr = _PyType_Lookup(type, name); /* borrowed; assigns a version tag */
    if (!(type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)) return 0;
    Py_ssize_t offset = 0;
    if (descr != NULL && Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == T_OBJECT_EX && !(member->flags & READ_RESTRICTED) &&
            member->offset > 0)
            offset = member->offset;
    }
    ways[1] = ways[0]; /* the newest first, the one before it kept */
    ways[0].type = type;
    ways[0].version = type->tp_version_tag;
    ways[0].name = name;
    ways[0].offset = offset;
    return offset;
}

PyObject *field_get_slow(PyObject *obj, PyObject *name) {
    PyTypeObject *type = Py_TYPE(obj);
    FieldPlace *ways = field_ways(type, name);
    Py_ssize_t offset = -1;
    for (int way = 0; way < 2 && offset < 0; way++) /* placed, but not a set slot */
        if (ways[way].type == type && ways[way].name == name &&
            ways[way].version == type->tp_version_tag &&
            (type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG))
            offset = ways[way].offset;
    if (offset < 0) offset = field_offset(type, name);
    if (offset > 0) {
        PyObject *value = *(PyObject **)((char *)obj + offset);
        if (value != NULL) return Py_NewRef(value);
    }
    return PyObject_GetAttr(obj, name); /* also raises AttributeError for an unset slot */
}

/* 1 when obj.attr is truthy, 0 when not, -1 on error. */
int attr_true(PyObject *obj, PyObject *name) {
    PyObject *value = field_get(obj, name);
    if (value == NULL) return -1;
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* 1 when decision.valid_until > now, 0 when not, -1 on error. */
int still_valid(PyObject *decision, double now) {
    PyObject *value = field_get(decision, s_valid_until);
    if (value == NULL) return -1;
    double until = PyFloat_AsDouble(value);
    Py_DECREF(value);
    if (until == -1.0 && PyErr_Occurred()) return -1;
    return until > now;
}

/* 1 when obj.attr is target (identity), 0 when not, -1 on error. */
int attr_is(PyObject *obj, PyObject *name, PyObject *target) {
    PyObject *value = field_get(obj, name);
    if (value == NULL) return -1;
    int same = value == target;
    Py_DECREF(value);
    return same;
}

/* 1 when obj.attr == target, 0 when not, -1 on error. */
int attr_equals(PyObject *obj, PyObject *name, PyObject *target) {
    PyObject *value = field_get(obj, name);
    if (value == NULL) return -1;
    int same = PyObject_RichCompareBool(value, target, Py_EQ);
    Py_DECREF(value);
    return same;
}

/* The audit fragment the session's AuditTrail cached for (decision, index 0, action), new ref or
 * NULL (without an error) when it is not cached.  A fragment is a function of the decision
 * and the session's constants, so the ones last found are memoised (their decisions held
 * alive: their ids stay their own). */
PyObject *cached_fragment(FastPath *self, PyObject *decision, PyObject *action) {
    PyObject *known = memo_find(&self->fragments, decision, action);
    if (known != NULL) return Py_NewRef(known);
    PyObject *id = PyLong_FromVoidPtr(decision);
    PyObject *key = id ? PyTuple_Pack(3, id, s_zero, action) : NULL;
    Py_XDECREF(id);
    PyObject *found = key ? PyDict_GetItemWithError(self->audit_fragments, key) : NULL;
    Py_XDECREF(key);
    if (found == NULL || !PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 2 ||
        PyTuple_GET_ITEM(found, 0) != decision)
        return NULL;
    PyObject *fragment = PyTuple_GET_ITEM(found, 1);
    memo_store(&self->fragments, decision, action, fragment);
    return Py_NewRef(fragment);
}

/* 1 when the action is allow or mask (sets *masked), 0 otherwise, -1 on error. */
int passing_action(PyObject *action, int *masked) {
    /* the verdicts are interned literals: the same objects as ours, mostly */
    if (action == s_allow || action == s_mask) {
        *masked = action == s_mask;
        return 1;
    }
    if (!PyUnicode_Check(action)) return 0;
    if (PyUnicode_Compare(action, s_allow) == 0) {
        *masked = 0;
        return 1;
    }
    if (PyUnicode_Compare(action, s_mask) == 0) {
        *masked = 1;
        return 1;
    }
    return PyErr_Occurred() ? -1 : 0;
}

/* 1 when obj.name is True (the owners write plain bools), 0 when not, -1 on error. */
static int field_is_true(PyObject *obj, PyObject *name) {
    PyObject *value = field_get(obj, name);
    if (value == NULL) return -1;
    int truth = value == Py_True ? 1 : value == Py_False ? 0 : PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* The relay holds bytes back or waits on a slow handler: Python goes first. */
int relay_waiting(PyObject *relay) {
    PyObject *buffer = field_get(relay, s_buffer);
    if (buffer == NULL) return -1;
    int held = PyBytes_Check(buffer) ? PyBytes_GET_SIZE(buffer) != 0 : PyObject_IsTrue(buffer);
    Py_DECREF(buffer);
    if (held != 0) return held;
    return field_is_true(relay, s_busy);
}

/* A session with nothing outstanding, nothing being discarded and no relay mid-chunk (the
 * client relay's own busy flag was read by its caller: relay_waiting in received, or the
 * Python relay's data_received, which never calls the native path while busy). */
int session_idle(FastPath *self) {
    Py_ssize_t pending = PyObject_Length(self->expect);
    if (pending != 0) return pending < 0 ? -1 : 0;
    int busy = field_is_true(self->session, s_discarding);
    if (busy == 0) busy = field_is_true(self->backend_relay, s_busy);
    return busy < 0 ? -1 : !busy;
}

/* Only active (index, spec) pairs of a per-column mask list, as agent.postgres.masks.active_masks. */
PyObject *active_masks(PyObject *specs) {
    if (specs == Py_None || !PyList_Check(specs)) Py_RETURN_NONE;
    PyObject *active = PyList_New(0);
    if (active == NULL) return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(specs); i++) {
        PyObject *spec = PyList_GET_ITEM(specs, i);
        if (spec == Py_None) continue;
        PyObject *index = PyLong_FromSsize_t(i);
        PyObject *pair = index ? PyTuple_Pack(2, index, spec) : NULL;
        Py_XDECREF(index);
        if (pair == NULL || PyList_Append(active, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(active);
            return NULL;
        }
        Py_DECREF(pair);
    }
    if (PyList_GET_SIZE(active) == 0) {
        Py_DECREF(active);
        Py_RETURN_NONE;
    }
    return active;
}

/* As agent.metrics.StatementStats.observe(action, seconds), into the native counters, and
 * one native statement. */
void observe(FastPath *self, double seconds) {
    Py_ssize_t slot = 0; /* bisect_left: the first bucket bound >= seconds, else +Inf */
    while (slot < self->n_bounds && self->bounds[slot] < seconds) slot++;
    self->counts[self->masked ? self->slot_mask : self->slot_allow]++;
    self->counts[self->slot_buckets + slot]++;
    self->counts[self->slot_statements]++;
    *self->seconds_total += seconds;
}

/* Hand the round trip in flight back to Python: bridge.hand_back_simple(decision, started,
 * stage, row_mask, sent_rows, sent_bytes) or bridge.hand_back_extended(remaining, prepared,
 * decision, formats, started, row_mask, portal, sent_rows, sent_bytes), which queue the
 * entries the Python path would hold now (sent_*: the statement's rows sent so far). */
int resume_in_python(FastPath *self) {
    if (self->mode == IDLE) return 0;
    PyObject *row_mask = self->row_mask ? self->row_mask : Py_None, *result;
    if (self->mode == SIMPLE) {
        result = PyObject_CallFunction(self->hand_back_simple, "OdiOLL", self->decision,
                                       self->started, self->q_stage, row_mask,
                                       self->sent_rows, self->sent_bytes);
    } else {
        PyObject *remaining = PyUnicode_FromStringAndSize(self->entries + self->head,
                                                          self->n_entries - self->head);
        result = remaining == NULL
                     ? NULL
                     : PyObject_CallFunction(self->hand_back_extended, "NOOOdOOLL", remaining,
                                             self->prepared, self->decision, self->formats,
                                             self->started, row_mask, self->portal,
                                             self->sent_rows, self->sent_bytes);
    }
    clear_flight(self);
    if (result == NULL) return -1;
    Py_DECREF(result);
    self->resumed++;
    self->counts[self->slot_handbacks]++;
    return 0;
}

static PyObject *FastPath_client(FastPath *self, PyObject *data) {
    REQUIRE_INIT(self);
    Py_ssize_t consumed = fastpath_client(self, data);
    return consumed < 0 ? NULL : PyLong_FromSsize_t(consumed);
}

static PyObject *FastPath_backend(FastPath *self, PyObject *data) {
    REQUIRE_INIT(self);
    Py_ssize_t consumed = fastpath_backend(self, data);
    return consumed < 0 ? NULL : PyLong_FromSsize_t(consumed);
}

static PyObject *FastPath_forget(FastPath *self, PyObject *Py_UNUSED(ignored)) {
    REQUIRE_INIT(self);
    PyDict_Clear(self->q_tickets);
    PyDict_Clear(self->p_tickets);
    memo_clear(&self->fragments);
    memo_clear(&self->portal_entries);
    Py_CLEAR(self->om_decision);
    Py_CLEAR(self->om_engine);
    Py_CLEAR(self->om_description);
    Py_CLEAR(self->om_mask);
    Py_RETURN_NONE;
}

static PyObject *FastPath_resume(FastPath *self, PyObject *Py_UNUSED(ignored)) {
    REQUIRE_INIT(self);
    if (resume_in_python(self) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *FastPath_get_inflight(FastPath *self, void *closure) {
    return PyBool_FromLong(self->mode != IDLE);
}

static PyObject *FastPath_get_stats(FastPath *self, void *closure) {
    return Py_BuildValue("{sLsLsLsLsLsLsLsLsL}", "client", self->handled_client, "backend",
                         self->handled_backend, "resumed", self->resumed, "sent_upstream",
                         self->upstream.sent, "queued_upstream", self->upstream.queued,
                         "sent_client", self->client.sent, "queued_client", self->client.queued,
                         "read_client", self->client_reader.reads, "read_upstream",
                         self->backend_reader.reads);
}

static PyObject *FastPath_get_q_tickets(FastPath *self, void *closure) {
    REQUIRE_INIT(self);
    return Py_NewRef(self->q_tickets);
}

static PyObject *FastPath_get_p_tickets(FastPath *self, void *closure) {
    REQUIRE_INIT(self);
    return Py_NewRef(self->p_tickets);
}

static PyMethodDef FastPath_methods[] = {
    {"client", (PyCFunction)FastPath_client, METH_O,
     "Handle a client chunk natively when possible; returns the bytes consumed (0 or all)."},
    {"backend", (PyCFunction)FastPath_backend, METH_O,
     "Handle upstream bytes of the round trip in flight; returns the bytes consumed."},
    {"client_received", (PyCFunction)FastPath_client_received, METH_O,
     "data_received of the client relay (native path first)."},
    {"backend_received", (PyCFunction)FastPath_backend_received, METH_O,
     "data_received of the upstream relay (native path first)."},
    {"client_readable", (PyCFunction)FastPath_client_readable, METH_NOARGS,
     "The client socket is readable: recv() and handle it as client_received (read_from)."},
    {"backend_readable", (PyCFunction)FastPath_backend_readable, METH_NOARGS,
     "The upstream socket is readable: recv() and handle it as backend_received."},
    {"read_from", (PyCFunction)FastPath_read_from, METH_VARARGS,
     "read_from(backend, fd, ended): *_readable reads fd (-1: none); ended(errno) on its end."},
    {"forget", (PyCFunction)FastPath_forget, METH_NOARGS, "Drop every ticket and memo."},
    {"resume", (PyCFunction)FastPath_resume, METH_NOARGS,
     "Hand the round trip in flight back to Python."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef FastPath_getset[] = {
    {"inflight", (getter)FastPath_get_inflight, NULL, "A native round trip is in flight.", NULL},
    {"stats", (getter)FastPath_get_stats, NULL, "Chunks handled natively, hand-backs; writes sent on the sockets here, and handed to "
     "their transports because those held bytes; chunks read from the sockets here.", NULL},
    {"q_tickets", (getter)FastPath_get_q_tickets, NULL, "Simple-query tickets.", NULL},
    {"p_tickets", (getter)FastPath_get_p_tickets, NULL, "Parse tickets.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject FastPathType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "agent._fastpath.FastPath",
    .tp_basicsize = sizeof(FastPath),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "FastPath(bridge): the native data path of one session (agent/postgres/native.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FastPath_init,
    .tp_dealloc = (destructor)FastPath_dealloc,
    .tp_traverse = (traverseproc)FastPath_traverse,
    .tp_clear = (inquiry)FastPath_clear,
    .tp_methods = FastPath_methods,
    .tp_getset = FastPath_getset,
};
