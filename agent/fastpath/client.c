/* Client → upstream: a chunk that is exactly one round trip with a ticket is sent on here,
 * and the round trip's expected responses are set up for backend.c. */
#include "fastpath.h"

/* template_key(text) == key (both len bytes): eight bytes at a time where they are equal
 * (the words and '0's of a statement), byte by byte where a digit was read as 0. */
static int same_template(const unsigned char *text, const unsigned char *key, Py_ssize_t len) {
    Py_ssize_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t a, b;
        memcpy(&a, text + i, 8);
        memcpy(&b, key + i, 8);
        if (a == b) continue;
        for (Py_ssize_t j = i; j < i + 8; j++)
            if (key[j] != ((text[j] >= '1' && text[j] <= '9') ? '0' : text[j])) return 0;
    }
    for (; i < len; i++)
        if (key[i] != ((text[i] >= '1' && text[i] <= '9') ? '0' : text[i])) return 0;
    return 1;
}

/* The ticket key of a Query text (native.template_key: digits 1-9 read as 0), a recent
 * one's bytes object when it is the same (its hash is cached in it). */
static PyObject *template_key(FastPath *self, const unsigned char *text, Py_ssize_t len) {
    PyObject **ways = key_memo_ways(&self->q_keys, len);
    for (int way = 0; way < KEY_WAYS; way++) {
        PyObject *known = ways[way];
        if (known != NULL && PyBytes_GET_SIZE(known) == len &&
            same_template(text, (const unsigned char *)PyBytes_AS_STRING(known), len))
            return Py_NewRef(known);
    }
    PyObject *key = PyBytes_FromStringAndSize(NULL, len);
    if (key == NULL) return NULL;
    char *k = PyBytes_AS_STRING(key);
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char c = text[i];
        k[i] = (c >= '1' && c <= '9') ? '0' : (char)c;
    }
    key_memo_store(&self->q_keys, key);
    return key;
}

/* A Parse payload as a bytes object (the p_tickets key), a recent one's when it is the
 * same (its hash is cached in it). */
static PyObject *parse_key(FastPath *self, const unsigned char *payload, Py_ssize_t len) {
    PyObject **ways = key_memo_ways(&self->p_keys, len);
    for (int way = 0; way < KEY_WAYS; way++) {
        PyObject *known = ways[way];
        if (known != NULL && PyBytes_GET_SIZE(known) == len &&
            memcmp(PyBytes_AS_STRING(known), payload, (size_t)len) == 0)
            return Py_NewRef(known);
    }
    PyObject *key = PyBytes_FromStringAndSize((const char *)payload, len);
    if (key != NULL) key_memo_store(&self->p_keys, key);
    return key;
}

/* A chunk that is exactly one Query.  Returns 1 when handled, 0 to leave it, -1 on error. */
static int client_query(FastPath *self, PyObject *data, const unsigned char *buf,
                        Py_ssize_t size) {
    Py_ssize_t text_len = size - 6; /* kind, length, text, NUL */
    if (text_len < 0 || buf[size - 1] != 0 || memchr(buf + 5, 0, (size_t)text_len) != NULL)
        return 0;
    const unsigned char *text = buf + 5;
    PyObject *key = template_key(self, text, text_len);
    if (key == NULL) return -1;
    PyObject *ticket = PyDict_GetItemWithError(self->q_tickets, key); /* borrowed */
    Py_DECREF(key);
    if (ticket == NULL) return PyErr_Occurred() ? -1 : 0;
    /* native.QueryTicket(fixed pieces, decision, generation) */
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
    PyObject *action = field_get(decision, s_action);
    if (action == NULL) return -1;
    int masked;
    ok = passing_action(action, &masked);
    PyObject *fragment = ok == 1 ? cached_fragment(self, decision, action) : NULL;
    if (fragment == NULL) {
        Py_DECREF(action);
        return PyErr_Occurred() ? -1 : 0;
    }
    if (sink_write(&self->upstream, data) < 0) {
        Py_DECREF(action);
        Py_DECREF(fragment);
        return -1;
    }
    self->mode = SIMPLE;
    self->masked = masked;
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

/* The str of a statement name (UTF-8 bytes), a recent one's object when it is the same
 * (new ref; NULL with an error when it is not UTF-8). */
static PyObject *statement_str(FastPath *self, const unsigned char *name, Py_ssize_t len) {
    for (int slot = 0; slot < MEMO_SLOTS; slot++) {
        PyObject *known = self->names.slots[slot].value;
        if (known == NULL || !PyUnicode_IS_COMPACT_ASCII(known) ||
            PyUnicode_GET_LENGTH(known) != len)
            continue;
        if (memcmp(PyUnicode_DATA(known), name, (size_t)len) == 0) return Py_NewRef(known);
    }
    PyObject *decoded = PyUnicode_DecodeUTF8((const char *)name, len, NULL);
    if (decoded != NULL) memo_store(&self->names, NULL, NULL, decoded);
    return decoded;
}

/* A Bind's n result format codes (big-endian int16 at codes) as a tuple of ints, the last
 * one's tuple when they are the same (new ref). */
static PyObject *format_codes(FastPath *self, const unsigned char *codes, Py_ssize_t n) {
    PyObject *known = self->formats_memo;
    if (known != NULL && PyTuple_GET_SIZE(known) == n) {
        Py_ssize_t i = 0;
        while (i < n && PyLong_AsLong(PyTuple_GET_ITEM(known, i)) == be16(codes + 2 * i)) i++;
        if (i == n) return Py_NewRef(known);
    }
    PyObject *formats = PyTuple_New(n);
    if (formats == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *code = PyLong_FromLong(be16(codes + 2 * i));
        if (code == NULL) {
            Py_DECREF(formats);
            return NULL;
        }
        PyTuple_SET_ITEM(formats, i, code);
    }
    Py_XSETREF(self->formats_memo, Py_NewRef(formats));
    return formats;
}

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

    if (NEXT_MESSAGE(MSG_PARSE, 1)) {
        Py_ssize_t len = be32(buf + pos + 1);
        parse.start = buf + pos + 5;
        parse.len = len - 4;
        end = cstring_end(parse.start, parse.start + parse.len);
        if (end == NULL) goto leave;
        parse_name.start = parse.start;
        parse_name.len = end - parse.start;
        PyObject *payload = parse_key(self, parse.start, parse.len);
        if (payload == NULL) goto fail;
        ticket = PyDict_GetItemWithError(self->p_tickets, payload);
        Py_DECREF(payload);
        if (ticket == NULL) {
            if (PyErr_Occurred()) goto fail;
            goto leave;
        }
        /* native.ParseTicket(name, prepared, decision, generation, describe) */
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
            PyObject *described = field_get(PyTuple_GET_ITEM(ticket, 1), s_described);
            if (described == NULL) goto fail;
            int known = PyBytes_Check(described);
            Py_DECREF(described);
            if (!known) goto leave;
        }
        pos += 1 + len;
    }
    if (!NEXT_MESSAGE(MSG_BIND, 0)) goto leave;
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
            statement_name = statement_str(self, p, end - p);
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
        formats = format_codes(self, p, n);
        if (formats == NULL) goto fail;
        pos += 1 + len;
    }
    if (NEXT_MESSAGE(MSG_DESCRIBE, 1)) { /* Describe of the same portal */
        Py_ssize_t len = be32(buf + pos + 1);
        const unsigned char *p = buf + pos + 5;
        if (len - 4 != portal_span.len + 2 || p[0] != 'P' ||
            memcmp(p + 1, portal_span.start, (size_t)portal_span.len) != 0 ||
            p[1 + portal_span.len] != 0)
            goto leave;
        has_describe = 1;
        pos += 1 + len;
    }
    if (!NEXT_MESSAGE(MSG_EXECUTE, 0)) goto leave;
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
    if (!(size - pos == 5 && buf[pos] == MSG_SYNC && be32(buf + pos + 1) == 4)) goto leave;

    { /* decided under the current bundle and catalog (as ClientHandlers._on_client_fast checks) */
        PyObject *generation = field_get(self->agent, s_generation);
        if (generation == NULL) goto fail;
        int same = attr_equals(prepared, s_generation, generation);
        Py_DECREF(generation);
        if (same < 0) goto fail;
        if (!same) goto leave;
    }
    decision = field_get(prepared, s_decision);
    if (decision == NULL) goto fail;
    {
        int ok = still_valid(decision, wall_now());
        if (ok < 0) goto fail;
        if (!ok) goto leave;
    }
    action = field_get(decision, s_action);
    if (action == NULL) goto fail;
    {
        int ok = passing_action(action, &masked);
        if (ok < 0) goto fail;
        if (!ok) goto leave;
    }
    if (own_describe && !masked) goto leave;
    if (masked) {
        masks_dict = field_get(prepared, s_masks);
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
    portal = Py_NewRef(s_empty); /* the unnamed portal: named ones went to Python above */

    /* Commit: the same state changes the Python fast path makes. */
    if (ticket != NULL) { /* statements[name] = prepared, unless it is that one already */
        PyObject *name = PyTuple_GET_ITEM(ticket, 0), *known;
        known = PyDict_GetItemWithError(self->statements, name); /* borrowed */
        if (known == NULL && PyErr_Occurred()) goto fail;
        if (known != prepared && PyDict_SetItem(self->statements, name, prepared) < 0)
            goto fail;
    }
    {
        /* portals[portal] = (prepared, formats), unless it holds those very objects already */
        PyObject *known = PyDict_GetItemWithError(self->portals, portal); /* borrowed */
        if (known == NULL && PyErr_Occurred()) goto fail;
        if (known == NULL || !PyTuple_CheckExact(known) || PyTuple_GET_SIZE(known) != 2 ||
            PyTuple_GET_ITEM(known, 0) != prepared || PyTuple_GET_ITEM(known, 1) != formats) {
            /* the same (immutable) tuple as the last time this statement was bound */
            portal_entry = Py_XNewRef(memo_find(&self->portal_entries, prepared, formats));
            if (portal_entry == NULL) {
                portal_entry = PyTuple_Pack(2, prepared, formats);
                if (portal_entry == NULL) goto fail;
                memo_store(&self->portal_entries, prepared, formats, portal_entry);
            }
            if (PyDict_SetItem(self->portals, portal, portal_entry) < 0) goto fail;
        }
    }
    if (own_describe) { /* Parse, the agent's own Describe of the statement, the rest */
        Py_ssize_t parse_size = 5 + parse.len, describe_size = 5 + 1 + parse_name.len + 1;
        out = PyBytes_FromStringAndSize(NULL, size + describe_size);
        if (out == NULL) goto fail;
        char *o = PyBytes_AS_STRING(out);
        memcpy(o, buf, (size_t)parse_size);
        o += parse_size;
        o[0] = MSG_DESCRIBE;
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
        if (sink_write(&self->upstream, out) < 0) goto fail;
    } else if (sink_write(&self->upstream, data) < 0) {
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
    self->masked = masked;
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

Py_ssize_t fastpath_client(FastPath *self, PyObject *data) {
    if (!PyBytes_Check(data)) return 0;
    if (self->mode != IDLE) /* more before the answers: Python takes the session over */
        return resume_in_python(self) < 0 ? -1 : 0;
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    if (size < 5 || (buf[0] != MSG_QUERY && buf[0] != MSG_PARSE && buf[0] != MSG_BIND))
        return 0;
    int idle = session_idle(self);
    if (idle != 1) return idle < 0 ? -1 : 0;
    int rc;
    if (buf[0] == MSG_QUERY) {
        if (be32(buf + 1) != size - 1) return 0;
        rc = client_query(self, data, buf, size);
    } else {
        rc = client_extended(self, data, buf, size);
    }
    if (rc <= 0) return rc;
    self->handled_client++;
    return size;
}
