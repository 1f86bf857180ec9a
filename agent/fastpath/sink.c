/* A session's write side (Sink): the transport's bound write method and, for a plain TCP
 * transport, its socket, which both protocols' native paths send on themselves while the
 * transport holds nothing (roundtrip.c's FastPath, mysql_session.c's MySqlPath). */
#include "fastpath.h"
#include <sys/socket.h>

/* bridge.<side>_write, and bridge.<side>_fd with <side>_pending and <side>_closing when
 * the fd is a socket (>= 0): both protocols' sessions (mysql_session.c too). */
int take_sink(PyObject *bridge, const char *side, Sink *sink) {
    char name[32];
    PyObject *fd;
    snprintf(name, sizeof(name), "%s_write", side);
    if (bridge_take(bridge, name, &sink->write) < 0) return -1;
    snprintf(name, sizeof(name), "%s_fd", side);
    if (bridge_take(bridge, name, &fd) < 0) return -1;
    long number = PyLong_AsLong(fd);
    Py_DECREF(fd);
    if (number == -1 && PyErr_Occurred()) return -1;
    sink->fd = number >= 0 && number <= INT_MAX ? (int)number : -1;
    if (sink->fd < 0) return 0;
    snprintf(name, sizeof(name), "%s_pending", side);
    if (bridge_take(bridge, name, &sink->pending) < 0) return -1;
    snprintf(name, sizeof(name), "%s_closing", side);
    return bridge_take(bridge, name, &sink->closing);
}

/* A sink's bound write method (read once from the bridge) called with data. */
int write_to(PyObject *write, PyObject *data) {
    PyObject *result = PyObject_CallOneArg(write, data);
    if (result == NULL) return -1;
    Py_DECREF(result);
    return 0;
}

/* A bound method called without arguments: its function called with its instance, which
 * skips the bound method's own call layer (~25 instructions; four such calls a round trip). */
static PyObject *call_method(PyObject *method) {
    if (!PyMethod_Check(method)) return PyObject_CallNoArgs(method);
    PyObject *instance = PyMethod_GET_SELF(method); /* borrowed: the method holds both */
    return PyObject_Vectorcall(PyMethod_GET_FUNCTION(method), &instance, 1, NULL);
}

/* 1 when the sink's transport is open and holds nothing to write, 0 when not, -1 on error. */
static int sink_clear(Sink *sink) {
    PyObject *closing = call_method(sink->closing);
    if (closing == NULL) return -1;
    int open = closing == Py_False;
    Py_DECREF(closing);
    if (!open) return 0;
    PyObject *pending = call_method(sink->pending);
    if (pending == NULL) return -1;
    Py_ssize_t size = PyLong_AsSsize_t(pending);
    Py_DECREF(pending);
    if (size == -1 && PyErr_Occurred()) return -1;
    return size == 0;
}

/* data (bytes) to the sink, in order with what its transport was given before.  On a plain
 * TCP socket (fd >= 0) whose transport is open and holds nothing, it is sent here: the
 * transport's write would make that same send() after ~1,000 instructions of its own
 * bookkeeping.  What the socket does not take (a full send buffer, an error) goes to the
 * transport's write, which buffers it, applies back-pressure and reports errors as ever.
 * While the transport is closing its socket may be closed already: never touched then. */
int sink_write(Sink *sink, PyObject *data) {
    if (sink->fd < 0) return write_to(sink->write, data);
    int clear = sink_clear(sink);
    if (clear < 0) return -1;
    if (clear) {
        const char *bytes = PyBytes_AS_STRING(data);
        Py_ssize_t size = PyBytes_GET_SIZE(data);
        ssize_t sent = send(sink->fd, bytes, (size_t)size, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent == size) {
            sink->sent++; /* stats: writes sent whole here ... */
            return 0;
        }
        if (sent > 0) {
            sink->queued++; /* ... and writes the transport took (some or all of) */
            PyObject *rest = PyBytes_FromStringAndSize(bytes + sent, size - sent);
            if (rest == NULL) return -1;
            int rc = write_to(sink->write, rest);
            Py_DECREF(rest);
            return rc;
        }
        /* nothing sent (EAGAIN, EINTR, an error): the transport's to handle */
    }
    sink->queued++;
    return write_to(sink->write, data);
}
