/* A relay's input: data_received (the transport read the chunk) and, for a plain socket,
 * the session's own reads (read_from, *_readable), which feed the same entry. */
#include "fastpath.h"
#include <errno.h>
#include <sys/socket.h>

/* data_received of a relay: the native path first, Python for the rest (or for a relay
 * that holds buffered bytes or waits on a slow handler).  Errors end the session like the
 * Python relay's: bridge.client_failed / backend_failed(exc). */
PyObject *fastpath_report_failure(PyObject *failed) {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value != NULL && traceback != NULL) PyException_SetTraceback(value, traceback);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    if (value == NULL) Py_RETURN_NONE;
    PyObject *finished = PyObject_CallOneArg(failed, value);
    Py_DECREF(value);
    return finished;
}

static PyObject *received(FastPath *self, PyObject *data, int backend) {
    int waiting = relay_waiting(backend ? self->backend_relay : self->client_relay);
    if (waiting < 0) goto error;
    if (waiting || !PyBytes_Check(data))
        return PyObject_CallOneArg(backend ? self->backend_python : self->client_python, data);
    Py_ssize_t count = backend ? fastpath_backend(self, data) : fastpath_client(self, data);
    if (count < 0) goto error;
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    if (count == size) Py_RETURN_NONE;
    PyObject *rest = count == 0 ? Py_NewRef(data)
                                : PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + count,
                                                            size - count);
    if (rest == NULL) goto error;
    PyObject *result =
        PyObject_CallOneArg(backend ? self->backend_rest : self->client_rest, rest);
    Py_DECREF(rest);
    return result;
error:;
    return fastpath_report_failure(backend ? self->backend_failed : self->client_failed);
}

PyObject *FastPath_client_received(FastPath *self, PyObject *data) {
    REQUIRE_INIT(self);
    return received(self, data, 0);
}

PyObject *FastPath_backend_received(FastPath *self, PyObject *data) {
    REQUIRE_INIT(self);
    return received(self, data, 1);
}

/* One buffer for every session's reads, as uvloop's loop-wide one: a chunk is copied out
 * (into the bytes object the relays get) before anything else can read, and the event loop
 * runs one callback at a time under the GIL.  Its size is uvloop's (a large result arrives
 * in as many chunks as it did). */
#define READ_SIZE 256000
static char read_buffer[READ_SIZE];

/* The socket is readable (the event loop's reader for a plain transport whose own reading
 * is paused): one recv() into the shared buffer, then the chunk as data_received.  At the
 * end of input or on an error the relay's ended(errno, 0 at EOF) gives reading back to the
 * transport, which then sees the end itself. */
static PyObject *readable(FastPath *self, int backend) {
    REQUIRE_INIT(self);
    Reader *reader = backend ? &self->backend_reader : &self->client_reader;
    if (reader->fd < 0) Py_RETURN_NONE; /* stopped: a callback already queued */
    ssize_t got = recv(reader->fd, read_buffer, READ_SIZE, MSG_DONTWAIT);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        Py_RETURN_NONE;
    if (got <= 0)
        return PyObject_CallFunction(reader->ended, "i", got == 0 ? 0 : errno);
    reader->reads++;
    PyObject *data = PyBytes_FromStringAndSize(read_buffer, got);
    if (data == NULL)
        return fastpath_report_failure(backend ? self->backend_failed : self->client_failed);
    PyObject *result = received(self, data, backend);
    Py_DECREF(data);
    return result;
}

PyObject *FastPath_client_readable(FastPath *self, PyObject *Py_UNUSED(ignored)) {
    return readable(self, 0);
}

PyObject *FastPath_backend_readable(FastPath *self, PyObject *Py_UNUSED(ignored)) {
    return readable(self, 1);
}

/* read_from(backend, fd, ended): the socket *_readable reads (fd -1: none, ended None). */
PyObject *FastPath_read_from(FastPath *self, PyObject *args) {
    REQUIRE_INIT(self);
    int backend, fd;
    PyObject *ended;
    if (!PyArg_ParseTuple(args, "piO", &backend, &fd, &ended)) return NULL;
    Reader *reader = backend ? &self->backend_reader : &self->client_reader;
    reader->fd = fd < 0 ? -1 : fd;
    Py_XSETREF(reader->ended, fd < 0 ? NULL : Py_NewRef(ended));
    Py_RETURN_NONE;
}
