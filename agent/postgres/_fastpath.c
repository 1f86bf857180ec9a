/* Native data path of the Warden agent: one whole round trip of an idle session, when
 * every decision it needs is already cached.
 *
 * The Python relay (agent/session.py) stays the authority.  It registers "tickets" for
 * statements it has decided (see Session._fast_ticket_*), and this module only replays
 * what the Python fast path would do with them:
 *
 *   client → upstream  a chunk that is exactly one simple Query, or one extended round
 *                      trip [Parse] Bind [Describe portal] Execute Sync, whose decision,
 *                      audit fragment and row masks are all in the caches.  Anything else,
 *                      or a session with responses outstanding, returns 0 before changing
 *                      any state and Python handles the chunk.
 *   upstream → client  the responses of that round trip: DataRows are passed through or
 *                      masked (by Session._mask_row), CommandComplete queues the audit
 *                      event.  On any message it does not expect (an error, a suspended
 *                      portal, a changed result shape…) it hands the rest of the round trip
 *                      back to Python as ordinary Pending entries (Session._fast_resume) and
 *                      Python continues from that message.
 *
 * So a statement is never decided here, and nothing here can allow what Python would
 * not: a ticket is used only while its decision is valid under the current engine.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <time.h>

static PyObject *s_expect, *s_discarding, *s_busy, *s_statements, *s_portals, *s_origin_masks,
    *s_origin_engine, *s_engine, *s_generation, *s_valid_until, *s_decision, *s_described, *s_masks,
    *s_queued, *s_audit_fragments, *s_action, *s_write, *s_allow, *s_mask, *s_zero,
    *s_by_decision, *s_bucket_counts, *s_seconds_total, *s_native_statements, *s_native_handbacks,
    *s_buffer, *s_process_safely, *s_finish;

enum { IDLE = 0, SIMPLE = 1, EXTENDED = 2 };
/* Expected responses of an extended round trip, in order. */
enum { R_PARSE = 'P', R_OWN_DESCRIBE = 'd', R_BIND = 'B', R_DESCRIBE = 'D', R_EXECUTE = 'E',
       R_SYNC = 'S' };

/* One compiled row mask: the masked columns in order, with their method. */
typedef struct {
    Py_ssize_t index;
    int code; /* M_*, or -1: NULL (binary cell, or the method does not fit the type) */
    long param;
    int has_param;
    PyObject *spec; /* (method, param, type oid, binary) for the Python methods */
} CellMask;

typedef struct {
    PyObject *source; /* the row_mask list this was compiled from (strong ref) */
    CellMask *cells;
    Py_ssize_t count;
} CompiledMask;

static void compiled_clear(CompiledMask *compiled) {
    Py_CLEAR(compiled->source);
    PyMem_Free(compiled->cells);
    compiled->cells = NULL;
    compiled->count = 0;
}

typedef struct {
    PyObject_HEAD
    PyObject *session, *agent, *audit, *client_relay, *backend_relay;
    PyObject *upstream_sink, *client_sink;
    PyObject *q_tickets, *p_tickets;
    /* The session's containers, read once: Session never rebinds them (see its __init__). */
    PyObject *expect, *statements, *portals, *origin_masks, *audit_fragments;
    PyObject *resume, *stats, *buckets, *wakeup;
    PyObject *python_received; /* _Relay.data_received, for relays with buffered bytes */
    PyObject *python_mask, *masking_key; /* masking.mask_wire_value and its key (hash) */
    CompiledMask compiled;
    Py_ssize_t batch_size;
    /* the round trip in flight */
    int mode;
    char entries[8];
    int n_entries, head;
    int q_stage; /* SIMPLE: 0 before RowDescription, 1 in rows, 2 after CommandComplete */
    PyObject *decision, *fragment, *action, *prepared, *formats, *portal;
    PyObject *row_mask;  /* armed for the current result set, or NULL */
    PyObject *exec_mask; /* the Execute's masks, armed when it becomes the head */
    double started;
    long long handled_client, handled_backend, resumed;
} FastPath;

static double monotonic_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int32_t be32(const unsigned char *p) {
    return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
                     (uint32_t)p[3]);
}

static inline int16_t be16(const unsigned char *p) {
    return (int16_t)(((uint16_t)p[0] << 8) | (uint16_t)p[1]);
}

/* ------------------------------------------------------------------ object lifecycle */

static void clear_flight(FastPath *self) {
    self->mode = IDLE;
    self->n_entries = self->head = self->q_stage = 0;
    Py_CLEAR(self->decision);
    Py_CLEAR(self->fragment);
    Py_CLEAR(self->action);
    Py_CLEAR(self->prepared);
    Py_CLEAR(self->formats);
    Py_CLEAR(self->portal);
    Py_CLEAR(self->row_mask);
    Py_CLEAR(self->exec_mask);
}

static int FastPath_traverse(FastPath *self, visitproc visit, void *arg) {
    Py_VISIT(self->session);
    Py_VISIT(self->agent);
    Py_VISIT(self->audit);
    Py_VISIT(self->client_relay);
    Py_VISIT(self->backend_relay);
    Py_VISIT(self->upstream_sink);
    Py_VISIT(self->client_sink);
    Py_VISIT(self->q_tickets);
    Py_VISIT(self->expect);
    Py_VISIT(self->statements);
    Py_VISIT(self->portals);
    Py_VISIT(self->origin_masks);
    Py_VISIT(self->audit_fragments);
    Py_VISIT(self->p_tickets);
    Py_VISIT(self->python_mask);
    Py_VISIT(self->masking_key);
    Py_VISIT(self->compiled.source);
    Py_VISIT(self->resume);
    Py_VISIT(self->stats);
    Py_VISIT(self->buckets);
    Py_VISIT(self->wakeup);
    Py_VISIT(self->python_received);
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
    Py_CLEAR(self->session);
    Py_CLEAR(self->agent);
    Py_CLEAR(self->audit);
    Py_CLEAR(self->client_relay);
    Py_CLEAR(self->backend_relay);
    Py_CLEAR(self->upstream_sink);
    Py_CLEAR(self->client_sink);
    Py_CLEAR(self->q_tickets);
    Py_CLEAR(self->expect);
    Py_CLEAR(self->statements);
    Py_CLEAR(self->portals);
    Py_CLEAR(self->origin_masks);
    Py_CLEAR(self->audit_fragments);
    Py_CLEAR(self->p_tickets);
    Py_CLEAR(self->python_mask);
    Py_CLEAR(self->masking_key);
    compiled_clear(&self->compiled);
    Py_CLEAR(self->resume);
    Py_CLEAR(self->stats);
    Py_CLEAR(self->buckets);
    Py_CLEAR(self->wakeup);
    Py_CLEAR(self->python_received);
    return 0;
}

static void FastPath_dealloc(FastPath *self) {
    PyObject_GC_UnTrack(self);
    FastPath_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int FastPath_init(FastPath *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"session",     "agent",  "client_relay", "backend_relay",
                             "python_mask", "masking_key", "resume", "stats",
                             "buckets",     "wakeup", "batch_size",   "python_received",
                             NULL};
    PyObject *session, *agent, *client_relay, *backend_relay, *python_mask, *masking_key,
        *resume, *stats, *buckets, *wakeup, *python_received;
    Py_ssize_t batch_size;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOOOO!OnO", kwlist, &session, &agent,
                                     &client_relay, &backend_relay, &python_mask, &masking_key,
                                     &resume, &stats, &PyTuple_Type, &buckets, &wakeup,
                                     &batch_size, &python_received))
        return -1;
    PyObject *audit = PyObject_GetAttrString(agent, "audit");
    if (audit == NULL) return -1;
    PyObject *upstream_sink = PyObject_GetAttrString(client_relay, "sink");
    PyObject *client_sink = upstream_sink ? PyObject_GetAttrString(backend_relay, "sink") : NULL;
    if (client_sink == NULL) {
        Py_DECREF(audit);
        Py_XDECREF(upstream_sink);
        return -1;
    }
    FastPath_clear(self);
    self->audit = audit;
    self->upstream_sink = upstream_sink;
    self->client_sink = client_sink;
    self->session = Py_NewRef(session);
    self->agent = Py_NewRef(agent);
    self->client_relay = Py_NewRef(client_relay);
    self->backend_relay = Py_NewRef(backend_relay);
    self->python_mask = Py_NewRef(python_mask);
    self->masking_key = Py_NewRef(masking_key);
    self->resume = Py_NewRef(resume);
    self->stats = Py_NewRef(stats);
    self->buckets = Py_NewRef(buckets);
    self->wakeup = Py_NewRef(wakeup);
    self->python_received = Py_NewRef(python_received);
    if (batch_size < 1) {
        PyErr_SetString(PyExc_ValueError, "batch_size must be at least 1");
        return -1;
    }
    self->batch_size = batch_size;
    self->q_tickets = PyDict_New();
    self->p_tickets = PyDict_New();
    if (self->q_tickets == NULL || self->p_tickets == NULL) return -1;
    if ((self->expect = PyObject_GetAttr(session, s_expect)) == NULL ||
        (self->statements = PyObject_GetAttr(session, s_statements)) == NULL ||
        (self->portals = PyObject_GetAttr(session, s_portals)) == NULL ||
        (self->origin_masks = PyObject_GetAttr(session, s_origin_masks)) == NULL ||
        (self->audit_fragments = PyObject_GetAttr(session, s_audit_fragments)) == NULL)
        return -1;
    if (!PyDict_Check(self->statements) || !PyDict_Check(self->portals) ||
        !PyDict_Check(self->origin_masks) || !PyDict_Check(self->audit_fragments)) {
        PyErr_SetString(PyExc_TypeError, "session caches must be dicts");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ helpers */

/* 1 when obj.attr is truthy, 0 when not, -1 on error. */
static int attr_true(PyObject *obj, PyObject *name) {
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) return -1;
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* 1 when decision.valid_until > now, 0 when not, -1 on error. */
static int still_valid(PyObject *decision, double now) {
    PyObject *value = PyObject_GetAttr(decision, s_valid_until);
    if (value == NULL) return -1;
    double until = PyFloat_AsDouble(value);
    Py_DECREF(value);
    if (until == -1.0 && PyErr_Occurred()) return -1;
    return until > now;
}

/* 1 when obj.attr is target (identity), 0 when not, -1 on error. */
static int attr_is(PyObject *obj, PyObject *name, PyObject *target) {
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) return -1;
    int same = value == target;
    Py_DECREF(value);
    return same;
}

/* 1 when obj.attr == target, 0 when not, -1 on error. */
static int attr_equals(PyObject *obj, PyObject *name, PyObject *target) {
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) return -1;
    int same = PyObject_RichCompareBool(value, target, Py_EQ);
    Py_DECREF(value);
    return same;
}

/* The audit fragment Session._audit cached for (decision, index 0, action), new ref or
 * NULL (without an error) when it is not cached. */
static PyObject *cached_fragment(FastPath *self, PyObject *decision, PyObject *action) {
    PyObject *id = PyLong_FromVoidPtr(decision);
    PyObject *key = id ? PyTuple_Pack(3, id, s_zero, action) : NULL;
    Py_XDECREF(id);
    PyObject *found = key ? PyDict_GetItemWithError(self->audit_fragments, key) : NULL;
    Py_XDECREF(key);
    if (found == NULL || !PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 2 ||
        PyTuple_GET_ITEM(found, 0) != decision)
        return NULL;
    return Py_NewRef(PyTuple_GET_ITEM(found, 1));
}

/* 1 when the action is allow or mask (sets *masked), 0 otherwise, -1 on error. */
static int passing_action(PyObject *action, int *masked) {
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

/* A session with nothing outstanding, nothing being discarded and no relay mid-chunk. */
static int session_idle(FastPath *self) {
    Py_ssize_t pending = PyObject_Length(self->expect);
    if (pending != 0) return pending < 0 ? -1 : 0;
    int flag = attr_true(self->session, s_discarding);
    if (flag != 0) return flag < 0 ? -1 : 0;
    flag = attr_true(self->client_relay, s_busy);
    if (flag != 0) return flag < 0 ? -1 : 0;
    flag = attr_true(self->backend_relay, s_busy);
    if (flag != 0) return flag < 0 ? -1 : 0;
    return 1;
}

/* Only active (index, spec) pairs of a per-column mask list, as agent.session._active. */
static PyObject *active_masks(PyObject *specs) {
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

static int write_to(PyObject *sink, PyObject *data) {
    PyObject *result = PyObject_CallMethodOneArg(sink, s_write, data);
    if (result == NULL) return -1;
    Py_DECREF(result);
    return 0;
}

/* obj.name += delta for an int attribute. */
static int add_to_attr(PyObject *obj, PyObject *name, long delta) {
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) return -1;
    long current = PyLong_AsLong(value);
    Py_DECREF(value);
    if (current == -1 && PyErr_Occurred()) return -1;
    PyObject *updated = PyLong_FromLong(current + delta);
    if (updated == NULL) return -1;
    int rc = PyObject_SetAttr(obj, name, updated);
    Py_DECREF(updated);
    return rc;
}

/* agent.metrics.StatementStats.observe(action, seconds), and one native statement. */
static int observe(FastPath *self, double seconds) {
    PyObject *by_decision = PyObject_GetAttr(self->stats, s_by_decision);
    if (by_decision == NULL) return -1;
    PyObject *count = PyDict_GetItemWithError(by_decision, self->action);
    long current = count ? PyLong_AsLong(count) : 0;
    PyObject *updated = (PyErr_Occurred()) ? NULL : PyLong_FromLong(current + 1);
    int failed = updated == NULL || PyDict_SetItem(by_decision, self->action, updated) < 0;
    Py_XDECREF(updated);
    Py_DECREF(by_decision);
    if (failed) return -1;
    /* bisect_left: the first bucket bound >= seconds, else the +Inf slot */
    Py_ssize_t slot = 0, bounds = PyTuple_GET_SIZE(self->buckets);
    while (slot < bounds && PyFloat_AsDouble(PyTuple_GET_ITEM(self->buckets, slot)) < seconds)
        slot++;
    PyObject *counts = PyObject_GetAttr(self->stats, s_bucket_counts);
    if (counts == NULL) return -1;
    failed = !PyList_Check(counts) || PyList_GET_SIZE(counts) <= slot;
    if (!failed) {
        long bucket = PyLong_AsLong(PyList_GET_ITEM(counts, slot));
        PyObject *next = bucket == -1 && PyErr_Occurred() ? NULL : PyLong_FromLong(bucket + 1);
        failed = next == NULL || PyList_SetItem(counts, slot, next) < 0; /* steals next */
    } else {
        PyErr_SetString(PyExc_TypeError, "StatementStats.bucket_counts is too short");
    }
    Py_DECREF(counts);
    if (failed) return -1;
    PyObject *total = PyObject_GetAttr(self->stats, s_seconds_total);
    if (total == NULL) return -1;
    double sum = PyFloat_AsDouble(total);
    Py_DECREF(total);
    if (sum == -1.0 && PyErr_Occurred()) return -1;
    PyObject *new_total = PyFloat_FromDouble(sum + seconds);
    if (new_total == NULL) return -1;
    failed = PyObject_SetAttr(self->stats, s_seconds_total, new_total) < 0;
    Py_DECREF(new_total);
    if (failed) return -1;
    return add_to_attr(self->stats, s_native_statements, 1);
}

/* ------------------------------------------------------------------ client → upstream */

/* A chunk that is exactly one Query.  Returns 1 when handled, 0 to leave it, -1 on error. */
static int client_query(FastPath *self, PyObject *data, const unsigned char *buf,
                        Py_ssize_t size) {
    Py_ssize_t text_len = size - 6; /* kind, length, text, NUL */
    if (text_len < 0 || buf[size - 1] != 0 || memchr(buf + 5, 0, (size_t)text_len) != NULL)
        return 0;
    const unsigned char *text = buf + 5;
    PyObject *key = PyBytes_FromStringAndSize(NULL, text_len);
    if (key == NULL) return -1;
    char *k = PyBytes_AS_STRING(key);
    for (Py_ssize_t i = 0; i < text_len; i++) {
        unsigned char c = text[i];
        k[i] = (c >= '1' && c <= '9') ? '0' : (char)c;
    }
    PyObject *ticket = PyDict_GetItemWithError(self->q_tickets, key); /* borrowed */
    Py_DECREF(key);
    if (ticket == NULL) return PyErr_Occurred() ? -1 : 0;
    /* (fixed pieces, decision, Agent.generation) */
    if (!PyTuple_Check(ticket) || PyTuple_GET_SIZE(ticket) != 3) return 0;
    PyObject *fixed = PyTuple_GET_ITEM(ticket, 0);
    PyObject *decision = PyTuple_GET_ITEM(ticket, 1);
    PyObject *generation = PyTuple_GET_ITEM(ticket, 2);
    if (!PyTuple_Check(fixed)) return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fixed); i++) {
        PyObject *piece = PyTuple_GET_ITEM(fixed, i);
        if (!PyTuple_Check(piece) || PyTuple_GET_SIZE(piece) != 3) return 0;
        Py_ssize_t start = PyLong_AsSsize_t(PyTuple_GET_ITEM(piece, 0));
        Py_ssize_t end = PyLong_AsSsize_t(PyTuple_GET_ITEM(piece, 1));
        PyObject *bytes = PyTuple_GET_ITEM(piece, 2);
        if (PyErr_Occurred()) return -1;
        if (!PyBytes_Check(bytes) || start < 0 || end > text_len || end - start < 0 ||
            PyBytes_GET_SIZE(bytes) != end - start ||
            memcmp(text + start, PyBytes_AS_STRING(bytes), (size_t)(end - start)) != 0)
            return 0;
    }
    int ok = attr_equals(self->agent, s_generation, generation);
    if (ok != 1) return ok;
    ok = still_valid(decision, wall_now());
    if (ok != 1) return ok;
    PyObject *action = PyObject_GetAttr(decision, s_action);
    if (action == NULL) return -1;
    int masked;
    ok = passing_action(action, &masked);
    PyObject *fragment = ok == 1 ? cached_fragment(self, decision, action) : NULL;
    if (fragment == NULL) {
        Py_DECREF(action);
        return PyErr_Occurred() ? -1 : 0;
    }
    if (write_to(self->upstream_sink, data) < 0) {
        Py_DECREF(action);
        Py_DECREF(fragment);
        return -1;
    }
    self->mode = SIMPLE;
    self->q_stage = 0;
    self->decision = Py_NewRef(decision);
    self->action = action;
    self->fragment = fragment;
    self->started = monotonic_now();
    return 1;
}

typedef struct {
    const unsigned char *start;
    Py_ssize_t len;
} Span;

static const unsigned char *cstring_end(const unsigned char *p, const unsigned char *end) {
    const unsigned char *nul = memchr(p, 0, (size_t)(end - p));
    return nul; /* NULL when unterminated */
}

/* [Parse] Bind [Describe portal] Execute Sync, exactly the chunk.  1 handled, 0 leave it. */
static int client_extended(FastPath *self, PyObject *data, const unsigned char *buf,
                           Py_ssize_t size) {
    Py_ssize_t pos = 0;
    Span parse = {NULL, 0}, parse_name = {NULL, 0};
    PyObject *ticket = NULL; /* borrowed */
    int rc = 0;
    PyObject *statement_name = NULL, *prepared = NULL, *decision = NULL, *action = NULL,
             *fragment = NULL, *formats = NULL, *portal = NULL, *exec_mask = NULL,
             *masks_dict = NULL, *portal_entry = NULL, *out = NULL;
    Span portal_span = {NULL, 0};
    int has_describe = 0, own_describe = 0, masked = 0;
    const unsigned char *end;

#define NEXT_MESSAGE(kind_wanted, optional)                                         \
    (size - pos >= 5 && buf[pos] == (kind_wanted) && be32(buf + pos + 1) >= 4 &&    \
     pos + 1 + be32(buf + pos + 1) <= size)

    if (NEXT_MESSAGE('P', 1)) {
        Py_ssize_t len = be32(buf + pos + 1);
        parse.start = buf + pos + 5;
        parse.len = len - 4;
        end = cstring_end(parse.start, parse.start + parse.len);
        if (end == NULL) goto leave;
        parse_name.start = parse.start;
        parse_name.len = end - parse.start;
        PyObject *payload = PyBytes_FromStringAndSize((const char *)parse.start, parse.len);
        if (payload == NULL) goto fail;
        ticket = PyDict_GetItemWithError(self->p_tickets, payload);
        Py_DECREF(payload);
        if (ticket == NULL) {
            if (PyErr_Occurred()) goto fail;
            goto leave;
        }
        /* (statement name, prepared, decision, Agent.generation, describe) */
        if (!PyTuple_Check(ticket) || PyTuple_GET_SIZE(ticket) != 5) goto leave;
        int ok = attr_equals(self->agent, s_generation, PyTuple_GET_ITEM(ticket, 3));
        if (ok < 0) goto fail;
        if (!ok) goto leave;
        ok = attr_is(PyTuple_GET_ITEM(ticket, 1), s_decision, PyTuple_GET_ITEM(ticket, 2));
        if (ok < 0) goto fail;
        if (!ok) goto leave;
        own_describe = PyObject_IsTrue(PyTuple_GET_ITEM(ticket, 4));
        if (own_describe < 0) goto fail;
        if (own_describe) { /* the shape must be known, to check the server's answer */
            PyObject *described = PyObject_GetAttr(PyTuple_GET_ITEM(ticket, 1), s_described);
            if (described == NULL) goto fail;
            int known = PyBytes_Check(described);
            Py_DECREF(described);
            if (!known) goto leave;
        }
        pos += 1 + len;
    }
    if (!NEXT_MESSAGE('B', 0)) goto leave;
    {
        Py_ssize_t len = be32(buf + pos + 1);
        const unsigned char *p = buf + pos + 5, *stop = p + len - 4;
        end = cstring_end(p, stop);
        if (end == NULL) goto leave;
        portal_span.start = p;
        portal_span.len = end - p;
        p = end + 1;
        end = cstring_end(p, stop);
        if (end == NULL) goto leave;
        if (portal_span.len != 0) goto leave; /* named portals: Python (they can fail) */
        if (ticket != NULL) { /* Parse then Bind of another statement: Python */
            if ((Py_ssize_t)(end - p) != parse_name.len ||
                memcmp(p, parse_name.start, (size_t)parse_name.len) != 0)
                goto leave;
            prepared = Py_NewRef(PyTuple_GET_ITEM(ticket, 1));
        } else {
            statement_name = PyUnicode_DecodeUTF8((const char *)p, end - p, NULL);
            if (statement_name == NULL) {
                PyErr_Clear();
                goto leave;
            }
            prepared = PyDict_GetItemWithError(self->statements, statement_name);
            Py_XINCREF(prepared);
            if (prepared == NULL) {
                if (PyErr_Occurred()) goto fail;
                goto leave;
            }
        }
        p = end + 1;
        if (stop - p < 2) goto leave;
        Py_ssize_t n = be16(p);
        if (n < 0 || stop - p < 2 + 2 * n + 2) goto leave;
        p += 2 + 2 * n;
        n = be16(p);
        p += 2;
        if (n < 0) goto leave;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (stop - p < 4) goto leave;
            int32_t value_len = be32(p);
            p += 4;
            if (value_len > 0) {
                if (stop - p < value_len) goto leave;
                p += value_len;
            }
        }
        if (stop - p < 2) goto leave;
        n = be16(p);
        p += 2;
        if (n < 0 || stop - p != 2 * n) goto leave;
        formats = PyTuple_New(n);
        if (formats == NULL) goto fail;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *code = PyLong_FromLong(be16(p + 2 * i));
            if (code == NULL) goto fail;
            PyTuple_SET_ITEM(formats, i, code);
        }
        pos += 1 + len;
    }
    if (NEXT_MESSAGE('D', 1)) { /* Describe of the same portal */
        Py_ssize_t len = be32(buf + pos + 1);
        const unsigned char *p = buf + pos + 5;
        if (len - 4 != portal_span.len + 2 || p[0] != 'P' ||
            memcmp(p + 1, portal_span.start, (size_t)portal_span.len) != 0 ||
            p[1 + portal_span.len] != 0)
            goto leave;
        has_describe = 1;
        pos += 1 + len;
    }
    if (!NEXT_MESSAGE('E', 0)) goto leave;
    {
        Py_ssize_t len = be32(buf + pos + 1);
        const unsigned char *p = buf + pos + 5;
        /* the same portal, all rows (a row limit can suspend it: Python handles that) */
        if (len - 4 != portal_span.len + 5 ||
            memcmp(p, portal_span.start, (size_t)portal_span.len) != 0 ||
            p[portal_span.len] != 0 || be32(p + portal_span.len + 1) != 0)
            goto leave;
        pos += 1 + len;
    }
    if (!(size - pos == 5 && buf[pos] == 'S' && be32(buf + pos + 1) == 4)) goto leave;

    { /* decided under the current bundle and catalog (as Session._on_client_fast checks) */
        PyObject *generation = PyObject_GetAttr(self->agent, s_generation);
        if (generation == NULL) goto fail;
        int same = attr_equals(prepared, s_generation, generation);
        Py_DECREF(generation);
        if (same < 0) goto fail;
        if (!same) goto leave;
    }
    decision = PyObject_GetAttr(prepared, s_decision);
    if (decision == NULL) goto fail;
    {
        int ok = still_valid(decision, wall_now());
        if (ok < 0) goto fail;
        if (!ok) goto leave;
    }
    action = PyObject_GetAttr(decision, s_action);
    if (action == NULL) goto fail;
    {
        int ok = passing_action(action, &masked);
        if (ok < 0) goto fail;
        if (!ok) goto leave;
    }
    if (own_describe && !masked) goto leave;
    if (masked) {
        masks_dict = PyObject_GetAttr(prepared, s_masks);
        if (masks_dict == NULL) goto fail;
        if (!PyDict_Check(masks_dict)) goto leave;
        PyObject *specs = PyDict_GetItemWithError(masks_dict, formats);
        if (specs == NULL) {
            if (PyErr_Occurred()) goto fail;
            goto leave;
        }
        exec_mask = active_masks(specs);
        if (exec_mask == NULL) goto fail;
    }
    fragment = cached_fragment(self, decision, action);
    if (fragment == NULL) {
        if (PyErr_Occurred()) goto fail;
        goto leave;
    }
    portal = PyUnicode_DecodeUTF8((const char *)portal_span.start, portal_span.len, NULL);
    if (portal == NULL) {
        PyErr_Clear();
        goto leave;
    }

    /* Commit: the same state changes the Python fast path makes. */
    if (ticket != NULL) {
        if (PyDict_SetItem(self->statements, PyTuple_GET_ITEM(ticket, 0),
                           PyTuple_GET_ITEM(ticket, 1)) < 0)
            goto fail;
    }
    {
        portal_entry = PyTuple_Pack(2, prepared, formats);
        if (portal_entry == NULL || PyDict_SetItem(self->portals, portal, portal_entry) < 0)
            goto fail;
    }
    if (own_describe) { /* Parse, the agent's own Describe of the statement, the rest */
        Py_ssize_t parse_size = 5 + parse.len, describe_size = 5 + 1 + parse_name.len + 1;
        out = PyBytes_FromStringAndSize(NULL, size + describe_size);
        if (out == NULL) goto fail;
        char *o = PyBytes_AS_STRING(out);
        memcpy(o, buf, (size_t)parse_size);
        o += parse_size;
        o[0] = 'D';
        int32_t describe_len = (int32_t)(describe_size - 1);
        o[1] = (char)(describe_len >> 24);
        o[2] = (char)(describe_len >> 16);
        o[3] = (char)(describe_len >> 8);
        o[4] = (char)describe_len;
        o[5] = 'S';
        memcpy(o + 6, parse_name.start, (size_t)parse_name.len);
        o[6 + parse_name.len] = 0;
        o += describe_size;
        memcpy(o, buf + parse_size, (size_t)(size - parse_size));
        if (write_to(self->upstream_sink, out) < 0) goto fail;
    } else if (write_to(self->upstream_sink, data) < 0) {
        goto fail;
    }
    self->n_entries = 0;
    if (ticket != NULL) {
        self->entries[self->n_entries++] = R_PARSE;
        if (own_describe) self->entries[self->n_entries++] = R_OWN_DESCRIBE;
    }
    self->entries[self->n_entries++] = R_BIND;
    if (has_describe) self->entries[self->n_entries++] = R_DESCRIBE;
    self->entries[self->n_entries++] = R_EXECUTE;
    self->entries[self->n_entries++] = R_SYNC;
    self->head = 0;
    self->mode = EXTENDED;
    self->decision = Py_NewRef(decision);
    self->action = Py_NewRef(action);
    self->fragment = Py_NewRef(fragment);
    self->prepared = Py_NewRef(prepared);
    self->formats = Py_NewRef(formats);
    self->portal = Py_NewRef(portal);
    self->exec_mask = exec_mask == Py_None ? NULL : Py_XNewRef(exec_mask);
    self->started = monotonic_now();
    rc = 1;
    goto leave;
fail:
    rc = -1;
leave:
    Py_XDECREF(statement_name);
    Py_XDECREF(prepared);
    Py_XDECREF(decision);
    Py_XDECREF(action);
    Py_XDECREF(fragment);
    Py_XDECREF(formats);
    Py_XDECREF(portal);
    Py_XDECREF(exec_mask);
    Py_XDECREF(masks_dict);
    Py_XDECREF(portal_entry);
    Py_XDECREF(out);
    return rc;
#undef NEXT_MESSAGE
}

/* Hand the round trip in flight back to Python as Pending entries. */
static int resume_in_python(FastPath *self) {
    if (self->mode == IDLE) return 0;
    PyObject *state;
    PyObject *row_mask = self->row_mask ? self->row_mask : Py_None;
    if (self->mode == SIMPLE) {
        state = Py_BuildValue("(sOdiO)", "Q", self->decision, self->started, self->q_stage,
                              row_mask);
    } else {
        PyObject *remaining = PyUnicode_FromStringAndSize(self->entries + self->head,
                                                          self->n_entries - self->head);
        if (remaining == NULL) return -1;
        state = Py_BuildValue("(sNOOOdOO)", "X", remaining, self->prepared, self->decision,
                              self->formats, self->started, row_mask, self->portal);
    }
    clear_flight(self);
    if (state == NULL) return -1;
    self->resumed++;
    if (add_to_attr(self->stats, s_native_handbacks, 1) < 0) {
        Py_DECREF(state);
        return -1;
    }
    PyObject *result = PyObject_CallOneArg(self->resume, state);
    Py_DECREF(state);
    if (result == NULL) return -1;
    Py_DECREF(result);
    return 0;
}

/* Methods of a FastPath whose __init__ did not run (or failed) raise instead of crashing. */
#define REQUIRE_INIT(self)                                                        \
    do {                                                                          \
        if ((self)->session == NULL || (self)->expect == NULL) {                  \
            PyErr_SetString(PyExc_RuntimeError, "FastPath is not initialized"); \
            return NULL;                                                          \
        }                                                                         \
    } while (0)

static PyObject *FastPath_client(FastPath *self, PyObject *data) {
    REQUIRE_INIT(self);
    if (!PyBytes_Check(data)) return PyLong_FromLong(0);
    if (self->mode != IDLE) { /* more before the answers: Python takes the session over */
        if (resume_in_python(self) < 0) return NULL;
        return PyLong_FromLong(0);
    }
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    if (size < 5 || (buf[0] != 'Q' && buf[0] != 'P' && buf[0] != 'B')) return PyLong_FromLong(0);
    int idle = session_idle(self);
    if (idle != 1) return idle < 0 ? NULL : PyLong_FromLong(0);
    int rc;
    if (buf[0] == 'Q') {
        if (be32(buf + 1) != size - 1) return PyLong_FromLong(0);
        rc = client_query(self, data, buf, size);
    } else {
        rc = client_extended(self, data, buf, size);
    }
    if (rc < 0) return NULL;
    if (rc == 0) return PyLong_FromLong(0);
    self->handled_client++;
    return PyLong_FromSsize_t(size);
}

/* ------------------------------------------------------------------ upstream → client */

typedef struct {
    const char *ptr;
    Py_ssize_t len;
} Segment;

typedef struct {
    Segment *items;
    PyObject **keep;
    Py_ssize_t count, capacity, total;
} Output;

/* Append a segment; `keep` (owned, may be NULL) is released with the output, or at once
 * when this fails. */
static int output_add(Output *out, const char *ptr, Py_ssize_t len, PyObject *keep) {
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

static void output_free(Output *out) {
    for (Py_ssize_t i = 0; i < out->count; i++) Py_XDECREF(out->keep[i]);
    PyMem_Free(out->items);
    PyMem_Free(out->keep);
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

static int compile_mask(CompiledMask *compiled, PyObject *row_mask) {
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
 * NULL stays NULL), as Session._mask_row. */
static PyObject *mask_data_row(CompiledMask *compiled, const unsigned char *payload,
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
static PyObject *module_mask_row(PyObject *module, PyObject *args) {
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

/* Queue the audit event and the latency metric of one finished statement. */
static int statement_done(FastPath *self, const unsigned char *payload, Py_ssize_t len) {
    /* rows: the tag's last word when it is a number (agent.codec.rows_from_tag) */
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
    PyObject *event = PyTuple_New(5), *moment = PyFloat_FromDouble(wall_now()),
             *duration = PyFloat_FromDouble(seconds * 1000.0);
    if (event == NULL || moment == NULL || duration == NULL) {
        Py_XDECREF(event);
        Py_XDECREF(moment);
        Py_XDECREF(duration);
        Py_DECREF(rows);
        return -1;
    }
    PyTuple_SET_ITEM(event, 0, Py_NewRef(self->fragment));
    PyTuple_SET_ITEM(event, 1, moment);
    PyTuple_SET_ITEM(event, 2, rows);
    PyTuple_SET_ITEM(event, 3, duration);
    PyTuple_SET_ITEM(event, 4, Py_NewRef(Py_False));
    PyObject *queued = PyObject_GetAttr(self->audit, s_queued);
    int failed = queued == NULL || PyList_Append(queued, event) < 0;
    Py_DECREF(event);
    if (failed) {
        Py_XDECREF(queued);
        return -1;
    }
    Py_ssize_t length = PyList_GET_SIZE(queued);
    Py_DECREF(queued);
    if (length % self->batch_size == 0) { /* a full batch: wake the shipper (once) */
        PyObject *result = PyObject_CallNoArgs(self->wakeup);
        if (result == NULL) return -1;
        Py_DECREF(result);
    }
    return observe(self, seconds);
}

/* The simple-protocol RowDescription: its masks from Session._origin_masks.  1 armed,
 * 0 not cached. */
static int arm_origin_masks(FastPath *self, const unsigned char *payload, Py_ssize_t len) {
    PyObject *engine = PyObject_GetAttr(self->agent, s_engine);
    if (engine == NULL) return -1;
    int same = attr_is(self->session, s_origin_engine, engine);
    Py_DECREF(engine);
    if (same != 1) return same;
    PyObject *id = PyLong_FromVoidPtr(self->decision);
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)payload, len);
    PyObject *key = (id && bytes) ? PyTuple_Pack(2, id, bytes) : NULL;
    Py_XDECREF(id);
    Py_XDECREF(bytes);
    PyObject *found = key ? PyDict_GetItemWithError(self->origin_masks, key) : NULL;
    Py_XDECREF(key);
    if (found == NULL) return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 2 ||
        PyTuple_GET_ITEM(found, 0) != self->decision)
        return 0;
    PyObject *mask = PyTuple_GET_ITEM(found, 1);
    Py_CLEAR(self->row_mask);
    if (mask != Py_None) self->row_mask = Py_NewRef(mask);
    return 1;
}

enum { PASS, SWALLOW, REPLACE, FALLBACK, DONE, ERROR };

static int step_simple(FastPath *self, int kind, const unsigned char *payload, Py_ssize_t len) {
    switch (kind) {
    case 'D':
        if (self->q_stage != 1) return FALLBACK;
        return self->row_mask ? REPLACE : PASS;
    case 'T': {
        if (self->q_stage != 0) return FALLBACK;
        int armed = arm_origin_masks(self, payload, len);
        if (armed < 0) return ERROR;
        if (!armed) return FALLBACK;
        self->q_stage = 1;
        return PASS;
    }
    case 'C':
        if (self->q_stage == 2) return FALLBACK;
        if (statement_done(self, payload, len) < 0) return ERROR;
        Py_CLEAR(self->row_mask);
        self->q_stage = 2;
        return PASS;
    case 'Z':
        return self->q_stage == 2 ? DONE : FALLBACK;
    case 'A':
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
    if (kind == 'A') return PASS; /* 'S' and 'N' fall back, as above */
    if (self->head >= self->n_entries) return FALLBACK;
    switch (self->entries[self->head]) {
    case R_PARSE:
        if (kind != '1') return FALLBACK;
        pop_entry(self);
        return PASS;
    case R_OWN_DESCRIBE:
        if (kind == 't') return SWALLOW;
        if (kind == 'T') {
            PyObject *described = PyObject_GetAttr(self->prepared, s_described);
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
        if (kind != '2') return FALLBACK;
        pop_entry(self);
        return PASS;
    case R_DESCRIBE:
        if (kind != 'T' && kind != 'n') return FALLBACK;
        pop_entry(self);
        return PASS;
    case R_EXECUTE:
        if (kind == 'D') return self->row_mask ? REPLACE : PASS;
        if (kind != 'C') return FALLBACK;
        if (statement_done(self, payload, len) < 0) return ERROR;
        pop_entry(self);
        return PASS;
    case R_SYNC:
        return kind == 'Z' ? DONE : FALLBACK;
    }
    return FALLBACK;
}

static PyObject *FastPath_backend(FastPath *self, PyObject *data) {
    REQUIRE_INIT(self);
    if (self->mode == IDLE || !PyBytes_Check(data)) return PyLong_FromLong(0);
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data), pos = 0, span = 0;
    Output out = {NULL, NULL, 0, 0, 0};
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
            PyObject *replacement = NULL;
            if (outcome == REPLACE) {
                if (compile_mask(&self->compiled, self->row_mask) < 0) goto error;
                replacement = mask_data_row(&self->compiled, payload, length - 4,
                                            self->python_mask, self->masking_key);
                if (replacement == NULL) goto error;
            }
            if (output_add(&out, (const char *)buf + span, pos - span, NULL) < 0) {
                Py_XDECREF(replacement);
                goto nomemory;
            }
            if (replacement != NULL &&
                output_add(&out, PyBytes_AS_STRING(replacement), PyBytes_GET_SIZE(replacement),
                           replacement) < 0)
                goto nomemory;
            replaced = 1;
            span = end;
        }
        pos = end;
        if (outcome == DONE) {
            clear_flight(self);
            break;
        }
    }
    /* write what was processed, in order, before Python sees anything after it */
    if (pos > 0 || replaced) {
        PyObject *chunk;
        if (!replaced) {
            chunk = pos == size ? Py_NewRef(data)
                                : PyBytes_FromStringAndSize((const char *)buf, pos);
        } else {
            if (output_add(&out, (const char *)buf + span, pos - span, NULL) < 0) goto nomemory;
            chunk = PyBytes_FromStringAndSize(NULL, out.total);
            if (chunk != NULL) {
                char *o = PyBytes_AS_STRING(chunk);
                for (Py_ssize_t i = 0; i < out.count; i++) {
                    memcpy(o, out.items[i].ptr, (size_t)out.items[i].len);
                    o += out.items[i].len;
                }
            }
        }
        if (chunk == NULL) goto error;
        int failed = out.total == 0 && replaced ? 0 : write_to(self->client_sink, chunk);
        Py_DECREF(chunk);
        if (failed < 0) goto error;
    }
    output_free(&out);
    if (outcome == FALLBACK && resume_in_python(self) < 0) return NULL;
    self->handled_backend++;
    return PyLong_FromSsize_t(pos);
nomemory:
    PyErr_NoMemory();
error:
    output_free(&out);
    return NULL;
}

/* data_received of a relay: the native path first, Python for the rest (or for a relay
 * that holds buffered bytes or waits on a slow handler).  Errors end the session like the
 * Python relay's: relay.finish(exc). */
static PyObject *received(FastPath *self, PyObject *relay, PyObject *data, int backend) {
    REQUIRE_INIT(self);
    PyObject *buffer = PyObject_GetAttr(relay, s_buffer);
    if (buffer == NULL) goto error;
    int buffered = PyObject_IsTrue(buffer);
    Py_DECREF(buffer);
    int busy = buffered ? 0 : attr_true(relay, s_busy);
    if (buffered < 0 || busy < 0) goto error;
    if (buffered || busy || !PyBytes_Check(data))
        return PyObject_CallFunctionObjArgs(self->python_received, relay, data, NULL);
    PyObject *consumed = backend ? FastPath_backend(self, data) : FastPath_client(self, data);
    if (consumed == NULL) goto error;
    Py_ssize_t count = PyLong_AsSsize_t(consumed);
    Py_DECREF(consumed);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    if (count == size) Py_RETURN_NONE;
    PyObject *rest = count == 0 ? Py_NewRef(data)
                                : PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + count,
                                                            size - count);
    if (rest == NULL) goto error;
    PyObject *result = PyObject_CallMethodOneArg(relay, s_process_safely, rest);
    Py_DECREF(rest);
    return result;
error:;
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value != NULL && traceback != NULL) PyException_SetTraceback(value, traceback);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    if (value == NULL) Py_RETURN_NONE;
    PyObject *finished = PyObject_CallMethodOneArg(relay, s_finish, value);
    Py_DECREF(value);
    return finished;
}

static PyObject *FastPath_client_received(FastPath *self, PyObject *data) {
    return received(self, self->client_relay, data, 0);
}

static PyObject *FastPath_backend_received(FastPath *self, PyObject *data) {
    return received(self, self->backend_relay, data, 1);
}

static PyObject *FastPath_forget(FastPath *self, PyObject *Py_UNUSED(ignored)) {
    REQUIRE_INIT(self);
    PyDict_Clear(self->q_tickets);
    PyDict_Clear(self->p_tickets);
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
    return Py_BuildValue("{sLsLsL}", "client", self->handled_client, "backend",
                         self->handled_backend, "resumed", self->resumed);
}

static PyObject *FastPath_get_q_tickets(FastPath *self, void *closure) {
    REQUIRE_INIT(self);
    return Py_NewRef(self->q_tickets);
}

static PyObject *FastPath_get_p_tickets(FastPath *self, void *closure) {
    REQUIRE_INIT(self);
    return Py_NewRef(self->p_tickets);
}

/* ------------------------------------------------------------------ audit batches */

typedef struct {
    char *data;
    Py_ssize_t size, capacity;
} Text;

static int text_reserve(Text *text, Py_ssize_t more) {
    if (text->size + more <= text->capacity) return 0;
    Py_ssize_t capacity = text->capacity ? text->capacity : 4096;
    while (capacity < text->size + more) capacity *= 2;
    char *data = PyMem_Realloc(text->data, (size_t)capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    text->data = data;
    text->capacity = capacity;
    return 0;
}

/* Decimal text of an integer at out; returns its length (at most 20). */
static Py_ssize_t decimal_integer(char *out, long long value) {
    Py_ssize_t n = 0;
    unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value
                                             : (unsigned long long)value;
    if (value < 0) out[n++] = '-';
    char digits[24];
    int count = 0;
    do {
        digits[count++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    while (count) out[n++] = digits[--count];
    return n;
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
    for (int i = places - 1; i >= 0; i--) {
        out[n + i] = (char)('0' + fraction % 10);
        fraction /= 10;
    }
    return n + places;
}

/* encode_events(queued, first_seq) -> (fragments in order of first use, events JSON):
 * the hot part of agent.audit.encode_batch. */
static PyObject *encode_events(PyObject *module, PyObject *args) {
    PyObject *queued;
    long long seq;
    if (!PyArg_ParseTuple(args, "O!L", &PyList_Type, &queued, &seq)) return NULL;
    PyObject *index = PyDict_New(), *order = PyList_New(0);
    Text text = {NULL, 0, 0};
    if (index == NULL || order == NULL || text_reserve(&text, 2) < 0) goto error;
    text.data[text.size++] = '[';
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(queued); i++, seq++) {
        PyObject *event = PyList_GET_ITEM(queued, i);
        if (!PyTuple_Check(event) || PyTuple_GET_SIZE(event) != 5) {
            PyErr_SetString(PyExc_TypeError, "a queued audit event is a 5-tuple");
            goto error;
        }
        PyObject *fragment = PyTuple_GET_ITEM(event, 0);
        PyObject *position = PyDict_GetItemWithError(index, fragment);
        if (position == NULL) {
            if (PyErr_Occurred()) goto error;
            PyObject *next = PyLong_FromSsize_t(PyList_GET_SIZE(order));
            if (next == NULL || PyDict_SetItem(index, fragment, next) < 0 ||
                PyList_Append(order, fragment) < 0) {
                Py_XDECREF(next);
                goto error;
            }
            Py_DECREF(next);
            position = PyDict_GetItem(index, fragment);
        }
        double moment = PyFloat_AsDouble(PyTuple_GET_ITEM(event, 1));
        double duration = PyFloat_AsDouble(PyTuple_GET_ITEM(event, 3));
        PyObject *rows = PyTuple_GET_ITEM(event, 2);
        int error = PyObject_IsTrue(PyTuple_GET_ITEM(event, 4));
        long pos = PyLong_AsLong(position);
        if (PyErr_Occurred() || error < 0) goto error;
        long long count = 0;
        if (rows != Py_None) {
            count = PyLong_AsLongLong(rows);
            if (count == -1 && PyErr_Occurred()) goto error;
        }
        if (!isfinite(moment) || !isfinite(duration) || fabs(moment) > 1e12 ||
            fabs(duration) > 1e12) {
            PyErr_SetString(PyExc_ValueError, "audit event time or duration out of range");
            goto error;
        }
        if (text_reserve(&text, 160) < 0) goto error;
        char *o = text.data + text.size;
        Py_ssize_t n = 0;
        if (i) o[n++] = ',';
        o[n++] = '[';
        n += decimal_integer(o + n, pos);
        o[n++] = ',';
        n += decimal_integer(o + n, seq);
        o[n++] = ',';
        n += fixed_decimal(o + n, moment, 6, 1000000);
        o[n++] = ',';
        if (rows == Py_None) {
            memcpy(o + n, "null", 4);
            n += 4;
        } else {
            n += decimal_integer(o + n, count);
        }
        o[n++] = ',';
        n += fixed_decimal(o + n, duration, 3, 1000);
        o[n++] = ',';
        o[n++] = error ? '1' : '0';
        o[n++] = ']';
        text.size += n;
    }
    if (text_reserve(&text, 1) < 0) goto error;
    text.data[text.size++] = ']';
    PyObject *events = PyUnicode_FromStringAndSize(text.data, text.size);
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

static PyMethodDef module_methods[] = {
    {"mask_row", module_mask_row, METH_VARARGS,
     "mask_row(payload, row_mask, python_mask, key) -> the masked DataRow message."},
    {"encode_events", encode_events, METH_VARARGS,
     "encode_events(queued, first_seq) -> (fragments, events JSON) for an audit batch."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef FastPath_methods[] = {
    {"client", (PyCFunction)FastPath_client, METH_O,
     "Handle a client chunk natively when possible; returns the bytes consumed (0 or all)."},
    {"backend", (PyCFunction)FastPath_backend, METH_O,
     "Handle upstream bytes of the round trip in flight; returns the bytes consumed."},
    {"client_received", (PyCFunction)FastPath_client_received, METH_O,
     "data_received of the client relay (native path first)."},
    {"backend_received", (PyCFunction)FastPath_backend_received, METH_O,
     "data_received of the upstream relay (native path first)."},
    {"forget", (PyCFunction)FastPath_forget, METH_NOARGS, "Drop every ticket."},
    {"resume", (PyCFunction)FastPath_resume, METH_NOARGS,
     "Hand the round trip in flight back to Python."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef FastPath_getset[] = {
    {"inflight", (getter)FastPath_get_inflight, NULL, "A native round trip is in flight.", NULL},
    {"stats", (getter)FastPath_get_stats, NULL, "Chunks handled natively, hand-backs.", NULL},
    {"q_tickets", (getter)FastPath_get_q_tickets, NULL, "Simple-query tickets.", NULL},
    {"p_tickets", (getter)FastPath_get_p_tickets, NULL, "Parse tickets.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject FastPathType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "agent.postgres._fastpath.FastPath",
    .tp_basicsize = sizeof(FastPath),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The native data path of one session (see the module docstring).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FastPath_init,
    .tp_dealloc = (destructor)FastPath_dealloc,
    .tp_traverse = (traverseproc)FastPath_traverse,
    .tp_clear = (inquiry)FastPath_clear,
    .tp_methods = FastPath_methods,
    .tp_getset = FastPath_getset,
};

static struct PyModuleDef fastpath_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "agent.postgres._fastpath",
    .m_doc = "Native data path of the Warden agent (see agent/_fastpath.c).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__fastpath(void) {
#define INTERN(var, text)                                  \
    if ((var = PyUnicode_InternFromString(text)) == NULL) \
        return NULL;
    INTERN(s_expect, "expect");
    INTERN(s_discarding, "discarding");
    INTERN(s_busy, "busy");
    INTERN(s_statements, "statements");
    INTERN(s_portals, "portals");
    INTERN(s_origin_masks, "_origin_masks");
    INTERN(s_origin_engine, "_origin_engine");
    INTERN(s_engine, "engine");
    INTERN(s_generation, "generation");
    INTERN(s_valid_until, "valid_until");
    INTERN(s_decision, "decision");
    INTERN(s_described, "described");
    INTERN(s_masks, "masks");
    INTERN(s_queued, "queued");
    INTERN(s_audit_fragments, "_audit_fragments");
    INTERN(s_action, "action");
    INTERN(s_write, "write");
    INTERN(s_allow, "allow");
    INTERN(s_mask, "mask");
    INTERN(s_by_decision, "by_decision");
    INTERN(s_bucket_counts, "bucket_counts");
    INTERN(s_seconds_total, "seconds_total");
    INTERN(s_native_statements, "native_statements");
    INTERN(s_native_handbacks, "native_handbacks");
    INTERN(s_buffer, "buffer");
    INTERN(s_process_safely, "process_safely");
    INTERN(s_finish, "finish");
#undef INTERN
    if ((s_zero = PyLong_FromLong(0)) == NULL) return NULL;
    if (PyType_Ready(&FastPathType) < 0) return NULL;
    PyObject *module = PyModule_Create(&fastpath_module);
    if (module == NULL) return NULL;
    if (PyModule_AddObjectRef(module, "FastPath", (PyObject *)&FastPathType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
