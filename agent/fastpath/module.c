/* The extension module agent._fastpath: FastPath (roundtrip.c, client.c,
 * backend.c), Readers (readers.c), mask_row and mask_rows (masking.c), encode_events (events.c) and
 * journal_record (journal.c). */
#include "fastpath.h"

static PyMethodDef module_methods[] = {
    {"mask_row", module_mask_row, METH_VARARGS,
     "mask_row(payload, row_mask, key) -> the masked DataRow message."},
    {"mask_rows", module_mask_rows, METH_VARARGS,
     "mask_rows(data, pos, row_mask, key) -> (masked run of DataRows or None, end)."},
    {"mask_copy_rows", module_mask_copy_rows, METH_VARARGS,
     "mask_copy_rows(data, pos, row_mask, format, key) -> (masked run of CopyData, end)."},
    {"mysql_mask_rows", module_mysql_mask_rows, METH_VARARGS,
     "mysql_mask_rows(data, pos, seq, row_mask, key) -> (masked packets or None, end, rows, "
     "seq, payload bytes) of a run of MySQL text rows."},
    {"mysql_mask_binary_rows", module_mysql_mask_binary_rows, METH_VARARGS,
     "mysql_mask_binary_rows(data, pos, seq, row_mask, types, key) -> as mysql_mask_rows, "
     "for a run of MySQL binary protocol rows."},
    {"mysql_scan_result", module_mysql_scan_result, METH_VARARGS,
     "mysql_scan_result(data, pos, seq) -> None or (definitions, header_end, rows_end, rows, "
     "end, numbered) of a MySQL result set buffered whole."},
    {"mysql_whole_result", module_mysql_whole_result, METH_VARARGS,
     "mysql_whole_result(data, pos, seq, masks, decision, masking_key) -> None or (packets, "
     "end, rows_end, rows, sent, seq, status) of a MySQL text result set buffered whole."},
    {"mysql_repeat", module_mysql_repeat, METH_VARARGS,
     "mysql_repeat(repeats, payload, generation, database) -> the decision a repeated "
     "COM_QUERY runs under, or None."},
    {"encode_events", encode_events, METH_VARARGS,
     "encode_events(queued, first_seq) -> (fragments, events JSON) for an audit batch."},
    {"journal_append", module_journal_append, METH_VARARGS,
     "journal_append(state, queued, id_prefix) -> whether queued[mark:] went to the open "
     "journal file as one record (AuditJournal.catch_up)."},
    {"journal_record", module_journal_record, METH_VARARGS,
     "journal_record(id_prefix, first_seq, events) -> an audit journal record's bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fastpath_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "agent._fastpath",
    .m_doc = "Native data path of the Warden agent (see agent/fastpath/fastpath.h).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__fastpath(void) {
    if (intern_names() < 0) return NULL;
    if (PyType_Ready(&FastPathType) < 0) return NULL;
    if (PyType_Ready(&MySqlPathType) < 0) return NULL;
    if (PyType_Ready(&ReadersType) < 0) return NULL;
    PyObject *module = PyModule_Create(&fastpath_module);
    if (module == NULL) return NULL;
    /* native.py compares it with its own before using FastPath (and FastPath(bridge) with
     * the bridge's). */
    if (PyModule_AddIntConstant(module, "ABI_VERSION", FASTPATH_ABI_VERSION) < 0 ||
        PyModule_AddObjectRef(module, "FastPath", (PyObject *)&FastPathType) < 0 ||
        PyModule_AddObjectRef(module, "MySqlPath", (PyObject *)&MySqlPathType) < 0 ||
        PyModule_AddObjectRef(module, "Readers", (PyObject *)&ReadersType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
