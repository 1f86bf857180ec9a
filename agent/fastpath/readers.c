/* Readers: the sockets native paths read themselves, behind one of the event loop's readers.
 *
 * A native session reads its sockets with its own recv() (reader.c).  Registered one by one
 * with loop.add_reader, each readable socket costs the loop a Python callback of its own
 * (uvloop's poll callback, a Handle run in its context, the call): about as much as the
 * relay's own work on a cached round trip, twice a round trip.  Here the sockets are in an
 * epoll set of their own, which is one reader of the loop (epoll descriptors are pollable):
 * when it is ready, one call runs the callbacks of every socket ready in it.
 *
 * Both sets are level-triggered: a socket still readable after its callback (a callback reads
 * one chunk) is reported again at the loop's next poll, as with the loop's own readers.  A
 * callback may remove readers, its own or another's; a removed one is not called after. */
#include "fastpath.h"
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#define READY_MAX 64 /* sockets handled per call; the rest stay ready for the next */

typedef struct {
    PyObject_HEAD
    int epfd;               /* -1 once closed */
    PyObject **callbacks;   /* by fd: a strong reference, or NULL */
    int capacity;
    long long calls, ready; /* stats */
} Readers;

static int Readers_traverse(Readers *self, visitproc visit, void *arg) {
    for (int fd = 0; fd < self->capacity; fd++) Py_VISIT(self->callbacks[fd]);
    return 0;
}

static int Readers_clear(Readers *self) {
    for (int fd = 0; fd < self->capacity; fd++) Py_CLEAR(self->callbacks[fd]);
    return 0;
}

static void readers_close(Readers *self) {
    Readers_clear(self);
    if (self->epfd >= 0) close(self->epfd);
    self->epfd = -1;
}

static void Readers_dealloc(Readers *self) {
    PyObject_GC_UnTrack(self);
    readers_close(self);
    PyMem_Free(self->callbacks);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Readers_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    if (!_PyArg_NoPositional("Readers", args) || !_PyArg_NoKeywords("Readers", kwds))
        return NULL;
    Readers *self = (Readers *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (self->epfd < 0) {
        Py_DECREF(self);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return (PyObject *)self;
}

static int readers_open(Readers *self) {
    if (self->epfd >= 0) return 0;
    PyErr_SetString(PyExc_RuntimeError, "the readers are closed");
    return -1;
}

/* add_reader(fd, callback): callback() whenever fd is readable (replacing an earlier one). */
static PyObject *Readers_add_reader(Readers *self, PyObject *args) {
    int fd;
    PyObject *callback;
    if (!PyArg_ParseTuple(args, "iO:add_reader", &fd, &callback)) return NULL;
    if (readers_open(self) < 0) return NULL;
    if (fd < 0 || !PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_ValueError, "add_reader takes a file descriptor and a callable");
        return NULL;
    }
    if (fd >= self->capacity) {
        int capacity = self->capacity ? self->capacity : 64;
        while (capacity <= fd) capacity *= 2;
        PyObject **callbacks =
            PyMem_Realloc(self->callbacks, (size_t)capacity * sizeof(PyObject *));
        if (callbacks == NULL) return PyErr_NoMemory();
        memset(callbacks + self->capacity, 0,
               (size_t)(capacity - self->capacity) * sizeof(PyObject *));
        self->callbacks = callbacks;
        self->capacity = capacity;
    }
    if (self->callbacks[fd] == NULL) {
        struct epoll_event event = {.events = EPOLLIN, .data.fd = fd};
        if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &event) < 0)
            return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_XSETREF(self->callbacks[fd], Py_NewRef(callback));
    Py_RETURN_NONE;
}

/* remove_reader(fd) -> whether fd had a reader.  Before fd is closed: epoll keeps a closed
 * descriptor's registration while a dup of it is open. */
static PyObject *Readers_remove_reader(Readers *self, PyObject *arg) {
    long number = PyLong_AsLong(arg);
    if (number == -1 && PyErr_Occurred()) return NULL;
    int fd = number > INT_MAX ? -1 : (int)number;
    if (fd < 0 || fd >= self->capacity || self->callbacks[fd] == NULL) Py_RETURN_FALSE;
    Py_CLEAR(self->callbacks[fd]);
    if (self->epfd >= 0 && epoll_ctl(self->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != EBADF &&
        errno != ENOENT)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_TRUE;
}

/* ready(): the loop's reader of the set: the callback of every socket ready now.  An error
 * a callback raises is raised here, after it (the sockets after it stay ready). */
static PyObject *Readers_ready(Readers *self, PyObject *Py_UNUSED(ignored)) {
    if (self->epfd < 0) Py_RETURN_NONE;
    struct epoll_event events[READY_MAX];
    int count = epoll_wait(self->epfd, events, READY_MAX, 0);
    if (count < 0) {
        if (errno == EINTR) Py_RETURN_NONE;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    self->calls++;
    self->ready += count;
    for (int i = 0; i < count; i++) {
        int fd = events[i].data.fd;
        if (fd >= self->capacity || self->callbacks[fd] == NULL) continue; /* removed */
        PyObject *callback = Py_NewRef(self->callbacks[fd]);
        PyObject *result = PyObject_CallNoArgs(callback);
        Py_DECREF(callback);
        if (result == NULL) return NULL;
        Py_DECREF(result);
    }
    Py_RETURN_NONE;
}

static PyObject *Readers_fileno(Readers *self, PyObject *Py_UNUSED(ignored)) {
    if (readers_open(self) < 0) return NULL;
    return PyLong_FromLong(self->epfd);
}

static PyObject *Readers_close(Readers *self, PyObject *Py_UNUSED(ignored)) {
    readers_close(self);
    Py_RETURN_NONE;
}

static PyObject *Readers_get_stats(Readers *self, void *closure) {
    int registered = 0;
    for (int fd = 0; fd < self->capacity; fd++) registered += self->callbacks[fd] != NULL;
    return Py_BuildValue("{sLsLsi}", "calls", self->calls, "ready", self->ready, "readers",
                         registered);
}

static PyMethodDef Readers_methods[] = {
    {"add_reader", (PyCFunction)Readers_add_reader, METH_VARARGS,
     "add_reader(fd, callback): callback() whenever fd is readable."},
    {"remove_reader", (PyCFunction)Readers_remove_reader, METH_O,
     "remove_reader(fd) -> whether fd had a reader (call it before closing fd)."},
    {"ready", (PyCFunction)Readers_ready, METH_NOARGS,
     "Run the callback of every socket readable now (the event loop's reader of fileno())."},
    {"fileno", (PyCFunction)Readers_fileno, METH_NOARGS, "The epoll descriptor of the set."},
    {"close", (PyCFunction)Readers_close, METH_NOARGS, "Drop every reader; close the set."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Readers_getset[] = {
    {"stats", (getter)Readers_get_stats, NULL,
     "Calls of ready(), sockets found ready by them, readers registered now.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject ReadersType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "agent._fastpath.Readers",
    .tp_basicsize = sizeof(Readers),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Readers(): sockets native paths read themselves, in one epoll set that is one "
              "reader of the event loop (agent/relay_core.py).",
    .tp_new = Readers_new,
    .tp_dealloc = (destructor)Readers_dealloc,
    .tp_traverse = (traverseproc)Readers_traverse,
    .tp_clear = (inquiry)Readers_clear,
    .tp_methods = Readers_methods,
    .tp_getset = Readers_getset,
};
