/* Native data path of the Warden agent (agent/postgres/native.py is its Python side).
 *
 * One whole round trip of an idle session runs here when every decision it needs is
 * already cached.  The Python session stays the authority: it registers "tickets" for
 * statements it has decided (native.QueryTicket, native.ParseTicket), and this extension
 * only replays what the Python handlers would do with them:
 *
 *   client → upstream  a chunk that is exactly one simple Query, or one extended round
 *                      trip [Parse] Bind [Describe portal] Execute Sync, whose decision,
 *                      audit fragment and row masks are all in the caches (client.c).
 *                      Anything else, or a session with responses outstanding, returns 0
 *                      before changing any state and Python handles the chunk.
 *   upstream → client  the responses of that round trip (backend.c): DataRows are passed
 *                      through or masked (masking.c), CommandComplete queues the audit
 *                      event.  On any message it does not expect (an error, a suspended
 *                      portal, a changed result shape…) it hands the rest of the round trip
 *                      back to Python (bridge.hand_back_*) and Python continues from there.
 *
 * So a statement is never decided here, and nothing here can allow what Python would not:
 * a ticket is used only while its decision is valid under the current engine.
 *
 * Everything read or written of Python objects goes through one object, the session's
 * native.Bridge (see its docstring for the contract), checked at construction by
 * FASTPATH_ABI_VERSION: a bridge of another version is refused and the session runs the
 * pure-Python path.
 */
#ifndef WARDEN_FASTPATH_H
#define WARDEN_FASTPATH_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* Bump with every change to what this extension reads or writes through the bridge, and
 * ABI_VERSION in agent/extension.py with it. */
#define FASTPATH_ABI_VERSION 16

/* PostgreSQL message types (agent/postgres/messages.py names them the same way). */
enum {
    /* frontend */
    MSG_BIND = 'B',
    MSG_DESCRIBE = 'D',
    MSG_EXECUTE = 'E',
    MSG_PARSE = 'P',
    MSG_QUERY = 'Q',
    MSG_SYNC = 'S',
};
enum {
    /* backend */
    MSG_PARSE_COMPLETE = '1',
    MSG_BIND_COMPLETE = '2',
    MSG_NOTIFICATION = 'A',
    MSG_COMMAND_COMPLETE = 'C',
    MSG_DATA_ROW = 'D',
    MSG_NO_DATA = 'n',
    MSG_PARAMETER_DESCRIPTION = 't',
    MSG_ROW_DESCRIPTION = 'T',
    MSG_READY_FOR_QUERY = 'Z',
};

static inline int32_t be32(const unsigned char *p) {
    return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
                     (uint32_t)p[3]);
}

static inline int16_t be16(const unsigned char *p) {
    return (int16_t)(((uint16_t)p[0] << 8) | (uint16_t)p[1]);
}

/* ------------------------------------------------------------------ output (masking.c) */

typedef struct {
    const char *ptr;
    Py_ssize_t len;
} Segment;

/* Bytes to write, gathered as segments of the input and of replacement objects. */
typedef struct {
    Segment *items;
    PyObject **keep;
    Py_ssize_t count, capacity, total;
} Output;

int output_add(Output *out, const char *ptr, Py_ssize_t len, PyObject *keep);
void output_free(Output *out);

/* ------------------------------------------------------------------ masking (masking.c) */

/* A bytes object grown in place: a chunk's output written once (masking.c). */
typedef struct {
    PyObject *bytes; /* NULL until the first write */
    Py_ssize_t len;
} Buffer;

char *buffer_room(Buffer *buffer, Py_ssize_t extra);
int buffer_add(Buffer *buffer, const void *data, Py_ssize_t len);
PyObject *buffer_finish(Buffer *buffer);
void buffer_free(Buffer *buffer);

/* One compiled row mask: the masked columns in order, with their method. */
typedef struct {
    Py_ssize_t index;
    int code; /* M_*, or -1: NULL (binary cell, or the method does not fit the type) */
    long param;
    int has_param;
} CellMask;

typedef struct {
    PyObject *source; /* the row_mask list this was compiled from (strong ref) */
    CellMask *cells;
    Py_ssize_t count;
} CompiledMask;

void compiled_clear(CompiledMask *compiled);
int compile_mask(CompiledMask *compiled, PyObject *row_mask);
int mask_data_row_into(Buffer *out, CompiledMask *compiled, const unsigned char *payload,
                       Py_ssize_t len, PyObject *key);
/* hash.c: the hash mask's token under the key hmac_prepare last took. */
#define HASH_TOKEN_LEN 26
int hmac_prepare(PyObject *key);
void hash_token(const char *text, Py_ssize_t len, char *token); /* HASH_TOKEN_LEN bytes */
int mask_cell_into(Buffer *out, const CellMask *cell, const unsigned char *raw, Py_ssize_t len);
/* How a masked value's length goes before it: a DataRow cell's, or a MySQL text row's. */
typedef enum { LENGTH_BE32, LENGTH_LENENC } LengthStyle;
int mask_value_into(Buffer *out, const CellMask *cell, const unsigned char *raw, Py_ssize_t len,
                    LengthStyle style);
PyObject *module_mask_row(PyObject *module, PyObject *args);
PyObject *module_mask_rows(PyObject *module, PyObject *args);

/* ------------------------------------------------------------------ MySQL text rows (mysql.c) */

PyObject *module_mysql_mask_rows(PyObject *module, PyObject *args);
PyObject *module_mysql_mask_binary_rows(PyObject *module, PyObject *args);
PyObject *module_mysql_scan_result(PyObject *module, PyObject *args);

/* ------------------------------------------------------------------ MySQL repeats (mysql.c,
 * mysql_session.c): a repeated COM_QUERY and its text result relayed in C. */

/* A text result set buffered whole, its shape cached, relayed at once (mysql_whole_result). */
typedef struct {
    PyObject *out; /* the packets to send (new reference) */
    Py_ssize_t end, rows_end, rows, sent, seq;
    long status; /* its EOF's status flags, or -1: data[rows_end:end] is left to the caller */
} WholeResult;

int mysql_whole_result(PyObject *data, Py_ssize_t pos, Py_ssize_t seq, PyObject *masks,
                       PyObject *decision, PyObject *masking_key, WholeResult *whole);
PyObject *module_mysql_whole_result(PyObject *module, PyObject *args);
PyObject *module_mysql_repeat(PyObject *module, PyObject *args);
extern PyTypeObject MySqlPathType;

/* ------------------------------------------------------------------ COPY rows (copy.c) */

PyObject *module_mask_copy_rows(PyObject *module, PyObject *args);

/* ------------------------------------------------------------------ audit (events.c) */

PyObject *encode_events(PyObject *module, PyObject *args);

/* ------------------------------------------------------------------ journal (journal.c) */

/* Bytes written in place and grown by doubling: an audit batch's JSON, a journal record
 * (reused: grown, never shrunk). */
typedef struct {
    char *data;
    Py_ssize_t len, capacity;
} ByteBuffer;

/* Room for `extra` more bytes after len; -1 with MemoryError set. */
static inline int byte_buffer_reserve(ByteBuffer *buffer, Py_ssize_t extra) {
    if (buffer->len + extra <= buffer->capacity) return 0;
    Py_ssize_t capacity = buffer->capacity ? buffer->capacity : 1024;
    while (capacity < buffer->len + extra) capacity *= 2;
    char *data = PyMem_Realloc(buffer->data, (size_t)capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    buffer->data = data;
    buffer->capacity = capacity;
    return 0;
}

void journal_record_free(ByteBuffer *record);
PyObject *module_journal_append(PyObject *module, PyObject *args);
PyObject *module_journal_record(PyObject *module, PyObject *args);

/* A relay callback's pending exception (with its traceback) handed to ``failed(exc)``,
 * which ends the session (roundtrip.c; both protocols' data_received). */
PyObject *fastpath_report_failure(PyObject *failed);

/* ------------------------------------------------------------------ round trips */

/* A few recent results of a pure function, each with the objects it is a function of (held
 * alive by strong references, so an identity cannot be reused): a TPC-B-like transaction
 * cycles through several statements, and one last result missed on every one of them. */
#define MEMO_SLOTS 8
typedef struct {
    PyObject *key, *extra, *value; /* key or value NULL: an empty slot */
} MemoSlot;
typedef struct {
    MemoSlot slots[MEMO_SLOTS];
    unsigned int next; /* the slot replaced next (oldest first) */
} Memo;

/* The value memoised for (key, extra): borrowed, or NULL. */
static inline PyObject *memo_find(Memo *memo, PyObject *key, PyObject *extra) {
    for (int i = 0; i < MEMO_SLOTS; i++) {
        MemoSlot *slot = &memo->slots[i];
        if (slot->key == key && slot->extra == extra && slot->value != NULL) return slot->value;
    }
    return NULL;
}

/* value for (key, extra), in place of the oldest. */
static inline void memo_store(Memo *memo, PyObject *key, PyObject *extra, PyObject *value) {
    MemoSlot *slot = &memo->slots[memo->next++ % MEMO_SLOTS];
    Py_XSETREF(slot->key, Py_XNewRef(key));
    Py_XSETREF(slot->extra, Py_XNewRef(extra));
    Py_XSETREF(slot->value, Py_XNewRef(value));
}

static inline void memo_clear(Memo *memo) {
    for (int i = 0; i < MEMO_SLOTS; i++) {
        Py_CLEAR(memo->slots[i].key);
        Py_CLEAR(memo->slots[i].extra);
        Py_CLEAR(memo->slots[i].value);
    }
}

static inline int memo_traverse(Memo *memo, visitproc visit, void *arg) {
    for (int i = 0; i < MEMO_SLOTS; i++) {
        Py_VISIT(memo->slots[i].key);
        Py_VISIT(memo->slots[i].extra);
        Py_VISIT(memo->slots[i].value);
    }
    return 0;
}

/* Recent ticket keys (bytes objects, their hashes cached in them), placed by length: four
 * ways per length bucket, the newest first.  A TPC-B-like transaction cycles through a dozen
 * or more Query templates (numbers of other lengths, deltas of either sign) and seven Parse
 * payloads: a FIFO of MEMO_SLOTS missed on most of them, and each miss built, hashed and
 * freed a key (~400 instructions a round trip). */
#define KEY_BUCKETS 64
#define KEY_WAYS 4
typedef struct {
    PyObject *ways[KEY_BUCKETS][KEY_WAYS];
} KeyMemo;

/* The ways a key of this length may sit in. */
static inline PyObject **key_memo_ways(KeyMemo *memo, Py_ssize_t len) {
    return memo->ways[(size_t)len % KEY_BUCKETS];
}

/* key (new reference taken) as the newest of its bucket; the oldest one dropped. */
static inline void key_memo_store(KeyMemo *memo, PyObject *key) {
    PyObject **ways = key_memo_ways(memo, PyBytes_GET_SIZE(key));
    Py_XDECREF(ways[KEY_WAYS - 1]);
    memmove(ways + 1, ways, (KEY_WAYS - 1) * sizeof(PyObject *));
    ways[0] = Py_NewRef(key);
}

static inline void key_memo_clear(KeyMemo *memo) {
    for (int i = 0; i < KEY_BUCKETS; i++)
        for (int way = 0; way < KEY_WAYS; way++) Py_CLEAR(memo->ways[i][way]);
}

static inline int key_memo_traverse(KeyMemo *memo, visitproc visit, void *arg) {
    for (int i = 0; i < KEY_BUCKETS; i++)
        for (int way = 0; way < KEY_WAYS; way++) Py_VISIT(memo->ways[i][way]);
    return 0;
}

enum { IDLE = 0, SIMPLE = 1, EXTENDED = 2 };
/* Expected responses of an extended round trip, in order (the letters native.py's
 * hand_back_extended reads). */
enum { R_PARSE = 'P', R_OWN_DESCRIBE = 'd', R_BIND = 'B', R_DESCRIBE = 'D', R_EXECUTE = 'E',
       R_SYNC = 'S' };

/* A transport the round trip writes to: its bound write method and, for a plain TCP
 * transport, its socket, sent on directly while nothing waits in the transport (sink_write). */
typedef struct {
    PyObject *write;   /* transport.write */
    PyObject *pending; /* transport.get_write_buffer_size (with fd >= 0) */
    PyObject *closing; /* transport.is_closing (with fd >= 0) */
    int fd;            /* its socket, or -1: everything goes through write */
    long long sent, queued; /* stats: writes sent whole on the socket here; writes the
                               transport took, all or the rest (it held bytes, was
                               closing, or the socket took less) */
} Sink;

/* A socket the session reads itself (reader.c): a dup of a plain transport's, whose own
 * reading is paused meanwhile (agent.relay_core.RelayCore.read_itself). */
typedef struct {
    int fd;          /* -1: the transport reads */
    PyObject *ended; /* ended(errno): the end of input (0) or an error; reading goes back */
    long long reads; /* stats: chunks read here */
} Reader;

typedef struct {
    PyObject_HEAD
    PyObject *bridge;
    /* Read from the bridge once, at construction (the session never rebinds them). */
    PyObject *session, *agent, *client_relay, *backend_relay; /* their plain fields, per trip */
    Sink upstream, client; /* where each direction's bytes go */
    Reader client_reader, backend_reader; /* where they come from, when read here */
    PyObject *expect, *statements, *portals, *origin_masks, *audit_fragments, *audit_queue;
    PyObject *hand_back_simple, *hand_back_extended, *audit_wakeup;
    PyObject *audit_journal; /* the AuditJournal, or None (no journal) */
    Py_buffer journal_view;  /* its state (fd, mark, first_seq, torn): journal_state, or NULL */
    long long *journal_state;
    PyObject *client_python, *backend_python, *client_rest, *backend_rest;
    PyObject *client_failed, *backend_failed;
    PyObject *mask_value, *masking_key; /* masking.mask_wire_value and its key (hash) */
    Py_ssize_t batch_size;
    int journal_due; /* events queued that audit_journal has not written yet */
    ByteBuffer journal_record;
    /* agent.metrics.StatementStats.native and .native_seconds, held as buffers for the
     * process's lifetime of the stats (they are never resized), and the slots to count in */
    Py_buffer counts_view, seconds_view;
    long long *counts;
    double *seconds_total;
    Py_ssize_t slot_allow, slot_mask, slot_buckets, slot_statements, slot_handbacks;
    double bounds[32]; /* agent.metrics.LATENCY_BUCKETS */
    Py_ssize_t n_bounds;
    /* The tickets, owned here (native.py registers them through q_tickets/p_tickets). */
    PyObject *q_tickets, *p_tickets;
    CompiledMask compiled;
    /* Memos of pure functions of their keys (each held alive by a strong reference, so an
     * identity cannot be reused): the audit fragment of (decision, index 0, action) in this
     * session; the row mask of (decision, RowDescription) under one engine; a statement
     * name's str; a Bind's result format codes as a tuple; the tickets' keys; the portal
     * entry (prepared, formats). */
    Memo fragments;
    PyObject *om_decision, *om_engine, *om_description, *om_mask;
    Memo names, portal_entries;
    KeyMemo q_keys, p_keys; /* the tickets' keys */
    PyObject *formats_memo;
    /* the round trip in flight */
    int mode;
    char entries[8];
    int n_entries, head;
    int q_stage; /* SIMPLE: 0 before RowDescription, 1 in rows, 2 after CommandComplete */
    int masked;  /* its decision masks (counted as such) */
    PyObject *decision, *fragment, *action, *prepared, *formats, *portal;
    PyObject *row_mask;  /* armed for the current result set, or NULL */
    PyObject *exec_mask; /* the Execute's masks, armed when it becomes the head */
    double started;
    /* Result data sent to the client for the statement in flight: DataRows and their
     * payload bytes (after masking); its audit event records them (backend.c). */
    long long sent_rows, sent_bytes;
    long long handled_client, handled_backend, resumed;
} FastPath;

extern PyTypeObject FastPathType;
extern PyTypeObject ReadersType; /* readers.c: the sockets native paths read, one loop reader */

/* Attribute names, interned once (roundtrip.c): of the bridge (live values), of the
 * Decision and Prepared objects tickets carry, of agent.metrics.StatementStats. */
extern PyObject *s_buffer, *s_busy, *s_discarding, *s_origin_engine, *s_engine, *s_generation,
    *s_valid_until, *s_action, *s_decision, *s_described, *s_masks, *s_allow, *s_mask,
    *s_zero, *s_id_prefix, *s_catch_up, *s_empty;
int intern_names(void);

double monotonic_now(void);
double wall_now(void);
/* Where a __slots__ member lives in instances of one type (found by _PyType_Lookup), so
 * obj.name is read from the instance without a generic attribute lookup.  A type's version
 * tag changes with any change to it or its bases (a property replacing the member, say), and
 * tags are never reused: an entry for another type or version is never used. */
typedef struct {
    PyTypeObject *type; /* compared only, never dereferenced: no reference held */
    unsigned int version;
    PyObject *name;     /* interned (intern_names) */
    Py_ssize_t offset;  /* 0: obj.name is not a slot of this type (generic lookup) */
} FieldPlace;

/* Two ways per (type, name) hash: one or two probes per field read (a scan of every entry
 * cost more than the read it saved), and two hot pairs that hash alike both stay.  A pair
 * pushed out is only looked up again. */
#define FIELD_PLACES 128
extern FieldPlace field_places[FIELD_PLACES];

static inline FieldPlace *field_ways(PyTypeObject *type, PyObject *name) {
    uintptr_t mix = ((uintptr_t)type >> 4) * 31u + ((uintptr_t)name >> 4);
    return &field_places[(mix ^ (mix >> 7)) & (FIELD_PLACES - 2)];
}

/* field_get for a pair not placed yet, a member that is unset, or no member at all. */
PyObject *field_get_slow(PyObject *obj, PyObject *name);

/* obj.name (new reference; NULL with an error), as PyObject_GetAttr, read straight from the
 * instance when it is a __slots__ member of obj's type (the bridge's per-trip fields are).
 * Inline: ~11 reads a round trip, each a call that saved and restored six registers. */
static inline PyObject *field_get(PyObject *obj, PyObject *name) {
    PyTypeObject *type = Py_TYPE(obj);
    FieldPlace *ways = field_ways(type, name);
    for (int way = 0; way < 2; way++) {
        FieldPlace *place = &ways[way];
        if (place->type == type && place->name == name && place->offset > 0 &&
            place->version == type->tp_version_tag &&
            (type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)) {
            PyObject *value = *(PyObject **)((char *)obj + place->offset);
            if (value != NULL) return Py_NewRef(value);
            break;
        }
    }
    return field_get_slow(obj, name);
}
int attr_true(PyObject *obj, PyObject *name);
int attr_is(PyObject *obj, PyObject *name, PyObject *target);
int attr_equals(PyObject *obj, PyObject *name, PyObject *target);
int still_valid(PyObject *decision, double now);
PyObject *cached_fragment(FastPath *self, PyObject *decision, PyObject *action);
int passing_action(PyObject *action, int *masked);
int session_idle(FastPath *self);
int relay_waiting(PyObject *relay);
PyObject *active_masks(PyObject *specs);
int bridge_take(PyObject *bridge, const char *name, PyObject **field);
/* sink.c */
int write_to(PyObject *write, PyObject *data);
int take_sink(PyObject *bridge, const char *side, Sink *sink);
int sink_write(Sink *sink, PyObject *data);
void observe(FastPath *self, double seconds);
void clear_flight(FastPath *self);
int resume_in_python(FastPath *self);
int journal_catch_up(FastPath *self); /* journal.c */

/* reader.c: the relays' data_received and the session's own socket reads (FastPath methods) */
PyObject *FastPath_client_received(FastPath *self, PyObject *data);
PyObject *FastPath_backend_received(FastPath *self, PyObject *data);
PyObject *FastPath_client_readable(FastPath *self, PyObject *ignored);
PyObject *FastPath_backend_readable(FastPath *self, PyObject *ignored);
PyObject *FastPath_read_from(FastPath *self, PyObject *args);

/* The bytes of data consumed (0: Python handles them), or -1 with an error. */
Py_ssize_t fastpath_client(FastPath *self, PyObject *data);  /* client.c */
Py_ssize_t fastpath_backend(FastPath *self, PyObject *data); /* backend.c */

/* Methods of a FastPath whose __init__ did not run (or failed) raise instead of crashing. */
#define REQUIRE_INIT(self)                                                        \
    do {                                                                          \
        if ((self)->bridge == NULL || (self)->expect == NULL) {                   \
            PyErr_SetString(PyExc_RuntimeError, "FastPath is not initialized"); \
            return NULL;                                                          \
        }                                                                         \
    } while (0)

#endif
