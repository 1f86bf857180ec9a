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
#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#define READY_MAX 64 /* sockets handled per call; the rest stay ready for the next */

/* A socket's reader: its callback, and the set's own dup of the socket, which is what the
 * epoll set watches.  Owning the descriptor it registered, the set always removes it before
 * closing it: a registration outlives the closing of a descriptor while another descriptor
 * of the same socket is open (the transport's), and one nobody can remove any more would
 * keep the set readable for ever. */
typedef struct {
    PyObject *callback; /* a strong reference, or NULL: no reader */
    int own;            /* the set's dup of the socket (-1 without a reader) */
} Watched;

typedef struct {
    PyObject_HEAD
    int epfd;           /* -1 once closed (deallocated) */
    Watched *readers;    /* by the caller's descriptor */
    int capacity;
    long long calls, ready; /* stats */
} Readers;

static int Readers_traverse(Readers *self, visitproc visit, void *arg) {
    for (int fd = 0; fd < self->capacity; fd++) Py_VISIT(self->readers[fd].callback);
    return 0;
}

/* fd's reader dropped: its registration removed, then its descriptor closed. */
static void reader_drop(Readers *self, int fd) {
    Watched *reader = &self->readers[fd];
    if (reader->own >= 0) {
        if (self->epfd >= 0) epoll_ctl(self->epfd, EPOLL_CTL_DEL, reader->own, NULL);
        close(reader->own);
        reader->own = -1;
    }
    Py_CLEAR(reader->callback);
}

static int Readers_clear(Readers *self) {
    for (int fd = 0; fd < self->capacity; fd++) reader_drop(self, fd);
    return 0;
}

static void Readers_dealloc(Readers *self) {
    PyObject_GC_UnTrack(self);
    Readers_clear(self);
    if (self->epfd >= 0) close(self->epfd);
    self->epfd = -1;
    PyMem_Free(self->readers);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Readers_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Readers() takes no arguments");
        return NULL;
    }
    Readers *self = (Readers *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (self->epfd < 0) {
        Py_DECREF(self);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return (PyObject *)self;
}

/* add_reader(fd, callback): callback() whenever fd is readable (replacing an earlier one). */
static PyObject *Readers_add_reader(Readers *self, PyObject *args) {
    int fd;
    PyObject *callback;
    if (!PyArg_ParseTuple(args, "iO:add_reader", &fd, &callback)) return NULL;
    if (fd < 0 || !PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_ValueError, "add_reader takes a file descriptor and a callable");
        return NULL;
    }
    if (fd >= self->capacity) {
        int capacity = self->capacity ? self->capacity : 64;
        while (capacity <= fd) capacity *= 2;
        Watched *readers = PyMem_Realloc(self->readers, (size_t)capacity * sizeof(Watched));
        if (readers == NULL) return PyErr_NoMemory();
        for (int i = self->capacity; i < capacity; i++) readers[i] = (Watched){NULL, -1};
        self->readers = readers;
        self->capacity = capacity;
    }
    /* a replaced reader's socket may not be fd's socket any more: registered afresh */
    reader_drop(self, fd);
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0) return PyErr_SetFromErrno(PyExc_OSError);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, own, &event) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        close(own);
        return NULL;
    }
    self->readers[fd] = (Watched){Py_NewRef(callback), own};
    Py_RETURN_NONE;
}

/* remove_reader(fd) -> whether fd had a reader. */
static PyObject *Readers_remove_reader(Readers *self, PyObject *arg) {
    long number = PyLong_AsLong(arg);
    if (number == -1 && PyErr_Occurred()) return NULL;
    int fd = number > INT_MAX ? -1 : (int)number;
    if (fd < 0 || fd >= self->capacity || self->readers[fd].callback == NULL) Py_RETURN_FALSE;
    reader_drop(self, fd);
    Py_RETURN_TRUE;
}

static PyObject *Readers_ready(Readers *self, PyObject *Py_UNUSED(ignored)) {
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
        if (fd < 0 || fd >= self->capacity || self->readers[fd].callback == NULL)
            continue; /* removed by an earlier callback: its registration went with it */
        PyObject *callback = Py_NewRef(self->readers[fd].callback);
        PyObject *result = PyObject_CallNoArgs(callback);
        Py_DECREF(callback);
        if (result == NULL) return NULL;
        Py_DECREF(result);
    }
    Py_RETURN_NONE;
}

static PyObject *Readers_fileno(Readers *self, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromLong(self->epfd);
}

static PyObject *Readers_get_stats(Readers *self, void *closure) {
    int registered = 0;
    for (int fd = 0; fd < self->capacity; fd++) registered += self->readers[fd].callback != NULL;
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
