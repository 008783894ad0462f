/* values.c: the C halves of sharedctypes: SyncValue (Value.value: lock,
 * read or write, unlock in one call) and bulk slices of shared Arrays. */
#include "cext.h"

static int code_size(int code);
static PyObject *item_get(const char *p, int code);
static int item_set(char *p, int code, PyObject *x);

/* ---- SyncValue: the C half of sharedctypes.Synchronized ----
 *
 * CPython's Synchronized.value is a Python property around `with lock:`;
 * here the lock, the ctypes read or write and the unlock are one C call.
 * Any lock works; mpgo's SemLock takes the inline path. */

typedef struct {
	PyObject_HEAD
	PyObject *obj;   /* the ctypes object */
	PyObject *lock;  /* the lock object */
	SemLock *sl;     /* lock._semlock when it is mpgo's, else NULL */
	char *addr;      /* obj's memory, when its type is a plain number */
	int code;        /* ... and that type's struct code, else 0 */
} SyncValue;

static PyObject *str_value, *str_semlock, *str_acquire, *str_release, *str_type_;

static void syncvalue_dealloc(SyncValue *v) {
	PyTypeObject *tp = Py_TYPE(v);
	PyObject_GC_UnTrack(v);
	Py_CLEAR(v->obj);
	Py_CLEAR(v->lock);
	Py_CLEAR(v->sl);
	tp->tp_free((PyObject *)v);
}

static int syncvalue_traverse(SyncValue *v, visitproc visit, void *arg) {
	Py_VISIT(v->obj);
	Py_VISIT(v->lock);
	Py_VISIT(v->sl);
	return 0;
}

static int syncvalue_clear(SyncValue *v) {
	Py_CLEAR(v->obj);
	Py_CLEAR(v->lock);
	Py_CLEAR(v->sl);
	return 0;
}

static int lock_in(SyncValue *v) {
	if (v->sl) return cext_semlock_acquire(v->sl, 1, -1) < 0 ? -1 : 0;
	PyObject *r = PyObject_CallMethodNoArgs(v->lock, str_acquire);
	if (!r) return -1;
	Py_DECREF(r);
	return 0;
}

static int lock_out(SyncValue *v) {
	PyObject *r = v->sl ? cext_semlock_release(v->sl, NULL)
			    : PyObject_CallMethodNoArgs(v->lock, str_release);
	if (!r) return -1;
	Py_DECREF(r);
	return 0;
}

static PyObject *syncvalue_get(SyncValue *v, void *Py_UNUSED(unused)) {
	if (!v->obj || !v->lock) {
		PyErr_SetString(PyExc_AttributeError, "value");
		return NULL;
	}
	if (lock_in(v) < 0) return NULL;
	PyObject *r = v->code ? item_get(v->addr, v->code) : PyObject_GetAttr(v->obj, str_value);
	if (lock_out(v) < 0) Py_CLEAR(r);
	return r;
}

static int syncvalue_set(SyncValue *v, PyObject *x, void *Py_UNUSED(unused)) {
	if (!v->obj || !v->lock) {
		PyErr_SetString(PyExc_AttributeError, "value");
		return -1;
	}
	if (!x) {
		PyErr_SetString(PyExc_AttributeError, "cannot delete value");
		return -1;
	}
	if (lock_in(v) < 0) return -1;
	int r = v->code ? item_set(v->addr, v->code, x) : PyObject_SetAttr(v->obj, str_value, x);
	if (lock_out(v) < 0) r = -1;
	return r;
}

static PyObject *syncvalue_get_obj(SyncValue *v, void *Py_UNUSED(unused)) {
	if (!v->obj) { PyErr_SetString(PyExc_AttributeError, "_obj"); return NULL; }
	return Py_NewRef(v->obj);
}

/* syncvalue_set_obj also finds whether obj is a ctypes number whose value
 * can be read and written straight from its memory, skipping ctypes. */
static int syncvalue_set_obj(SyncValue *v, PyObject *x, void *Py_UNUSED(unused)) {
	Py_XINCREF(x);
	Py_XSETREF(v->obj, x);
	v->addr = NULL;
	v->code = 0;
	if (!x) return 0;
	/* Only ctypes' own native-order types: a byte-swapped type (or a
	 * subclass) has the same code but another layout or value rules. */
	PyObject *le = PyObject_GetAttrString((PyObject *)Py_TYPE(x), "__ctype_le__");
	int native = le == (PyObject *)Py_TYPE(x);
	Py_XDECREF(le);
	PyObject *t = native ? PyObject_GetAttr((PyObject *)Py_TYPE(x), str_type_) : NULL;
	if (t && PyUnicode_Check(t) && PyUnicode_GET_LENGTH(t) == 1) {
		int code = PyUnicode_READ_CHAR(t, 0);
		Py_buffer b;
		if (code_size(code) && PyObject_GetBuffer(x, &b, PyBUF_SIMPLE) == 0) {
			if (b.len == code_size(code)) {
				v->addr = b.buf;  /* lives as long as obj, which we hold */
				v->code = code;
			}
			PyBuffer_Release(&b);
		}
	}
	Py_XDECREF(t);
	PyErr_Clear();
	return 0;
}

static PyObject *syncvalue_get_lock(SyncValue *v, void *Py_UNUSED(unused)) {
	if (!v->lock) { PyErr_SetString(PyExc_AttributeError, "_lock"); return NULL; }
	return Py_NewRef(v->lock);
}

static int syncvalue_set_lock(SyncValue *v, PyObject *x, void *Py_UNUSED(unused)) {
	Py_XINCREF(x);
	Py_XSETREF(v->lock, x);
	Py_CLEAR(v->sl);
	if (x) {
		PyObject *sl = PyObject_GetAttr(x, str_semlock);
		if (sl && PyObject_TypeCheck(sl, &cext_SemLockType)) v->sl = (SemLock *)sl;
		else { Py_XDECREF(sl); PyErr_Clear(); }
	}
	return 0;
}

static PyGetSetDef syncvalue_getset[] = {
	{"value", (getter)syncvalue_get, (setter)syncvalue_set, "the value, read and written under the lock", NULL},
	{"_obj", (getter)syncvalue_get_obj, (setter)syncvalue_set_obj, NULL, NULL},
	{"_lock", (getter)syncvalue_get_lock, (setter)syncvalue_set_lock, NULL, NULL},
	{NULL},
};

static PyTypeObject SyncValueType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "mpgo._native._fast.SyncValue",
	.tp_basicsize = sizeof(SyncValue),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "Base of sharedctypes.Synchronized: value under the lock in one C call.",
	.tp_new = PyType_GenericNew,
	.tp_dealloc = (destructor)syncvalue_dealloc,
	.tp_traverse = (traverseproc)syncvalue_traverse,
	.tp_clear = (inquiry)syncvalue_clear,
	.tp_getset = syncvalue_getset,
};

/* ---- Bulk slices of shared Arrays ----
 *
 * a[i:j] of a ctypes array goes element by element through ctypes getters
 * and setters; these convert a contiguous run straight between the shared
 * memory and a list (or any sequence). */

static int code_size(int code) {
	switch (code) {
	case 'b': case 'B': return 1;
	case 'h': case 'H': return 2;
	case 'i': case 'I': case 'f': return 4;
	case 'l': case 'L': case 'q': case 'Q': case 'd': return 8;
	}
	return 0;
}

static PyObject *item_get(const char *p, int code) {
	switch (code) {
	case 'b': return PyLong_FromLong(*(const int8_t *)p);
	case 'B': return PyLong_FromLong(*(const uint8_t *)p);
	case 'h': return PyLong_FromLong(*(const int16_t *)p);
	case 'H': return PyLong_FromLong(*(const uint16_t *)p);
	case 'i': return PyLong_FromLong(*(const int32_t *)p);
	case 'I': return PyLong_FromUnsignedLong(*(const uint32_t *)p);
	case 'l': case 'q': return PyLong_FromLongLong(*(const int64_t *)p);
	case 'L': case 'Q': return PyLong_FromUnsignedLongLong(*(const uint64_t *)p);
	case 'f': return PyFloat_FromDouble(*(const float *)p);
	case 'd': return PyFloat_FromDouble(*(const double *)p);
	}
	return NULL;
}

/* item_set stores x as code at p, with ctypes' conversions: floats for f/d
 * (ints accepted), ints for the rest (floats refused), wrapping silently on
 * overflow like ctypes. */
static int item_set(char *p, int code, PyObject *x) {
	if (code == 'f' || code == 'd') {
		double v = PyFloat_AsDouble(x);
		if (v == -1.0 && PyErr_Occurred()) return -1;
		if (code == 'f') *(float *)p = (float)v;
		else *(double *)p = v;
		return 0;
	}
	if (PyFloat_Check(x)) {
		PyErr_Format(PyExc_TypeError, "int expected instead of float");
		return -1;
	}
	unsigned long long v = PyLong_AsUnsignedLongLongMask(x);
	if (v == (unsigned long long)-1 && PyErr_Occurred()) return -1;
	switch (code_size(code)) {
	case 1: *(uint8_t *)p = (uint8_t)v; break;
	case 2: *(uint16_t *)p = (uint16_t)v; break;
	case 4: *(uint32_t *)p = (uint32_t)v; break;
	default: *(uint64_t *)p = (uint64_t)v; break;
	}
	return 0;
}

/* array_get(buffer, code, start, stop) -> list of the elements. */
static PyObject *fast_array_get(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
	if (nargs != 4 || !PyUnicode_Check(args[1]) || PyUnicode_GET_LENGTH(args[1]) != 1) {
		PyErr_SetString(PyExc_TypeError, "array_get(buffer, code, start, stop)");
		return NULL;
	}
	int code = PyUnicode_READ_CHAR(args[1], 0), sz = code_size(code);
	Py_ssize_t start = PyLong_AsSsize_t(args[2]), stop = PyLong_AsSsize_t(args[3]);
	if ((start == -1 || stop == -1) && PyErr_Occurred()) return NULL;
	Py_buffer v;
	if (!sz) { PyErr_SetString(PyExc_ValueError, "unsupported code"); return NULL; }
	if (PyObject_GetBuffer(args[0], &v, PyBUF_SIMPLE) < 0) return NULL;
	Py_ssize_t n = stop > start ? stop - start : 0;
	if (start < 0 || (start + n) * sz > v.len) {
		PyBuffer_Release(&v);
		PyErr_SetString(PyExc_IndexError, "slice out of range");
		return NULL;
	}
	PyObject *l = PyList_New(n);
	if (l) {
		const char *p = (const char *)v.buf + start * sz;
		for (Py_ssize_t i = 0; i < n; i++, p += sz) {
			PyObject *x = item_get(p, code);
			if (!x) { Py_CLEAR(l); break; }
			PyList_SET_ITEM(l, i, x);
		}
	}
	PyBuffer_Release(&v);
	return l;
}

/* array_set(buffer, code, start, stop, values): the slice must be as long
 * as values, as ctypes requires. */
static PyObject *fast_array_set(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
	if (nargs != 5 || !PyUnicode_Check(args[1]) || PyUnicode_GET_LENGTH(args[1]) != 1) {
		PyErr_SetString(PyExc_TypeError, "array_set(buffer, code, start, stop, values)");
		return NULL;
	}
	int code = PyUnicode_READ_CHAR(args[1], 0), sz = code_size(code);
	Py_ssize_t start = PyLong_AsSsize_t(args[2]), stop = PyLong_AsSsize_t(args[3]);
	if ((start == -1 || stop == -1) && PyErr_Occurred()) return NULL;
	if (!sz) { PyErr_SetString(PyExc_ValueError, "unsupported code"); return NULL; }
	PyObject *seq = PySequence_Fast(args[4], "can only assign an iterable");
	if (!seq) return NULL;
	Py_ssize_t n = stop > start ? stop - start : 0;
	if (PySequence_Fast_GET_SIZE(seq) != n) {
		Py_DECREF(seq);
		PyErr_SetString(PyExc_ValueError, "Can only assign sequence of same size");
		return NULL;
	}
	Py_buffer v;
	if (PyObject_GetBuffer(args[0], &v, PyBUF_WRITABLE) < 0) { Py_DECREF(seq); return NULL; }
	PyObject *res = NULL;
	if (start < 0 || (start + n) * sz > v.len) {
		PyErr_SetString(PyExc_IndexError, "slice out of range");
		goto out;
	}
	/* Convert into a private copy first, so a bad element leaves the
	 * shared array untouched. */
	char *tmp = PyMem_Malloc(n * sz + 1);
	if (!tmp) { PyErr_NoMemory(); goto out; }
	PyObject **items = PySequence_Fast_ITEMS(seq);
	for (Py_ssize_t i = 0; i < n; i++) {
		if (item_set(tmp + i * sz, code, items[i]) < 0) { PyMem_Free(tmp); goto out; }
	}
	memcpy((char *)v.buf + start * sz, tmp, n * sz);
	PyMem_Free(tmp);
	res = Py_NewRef(Py_None);
out:
	PyBuffer_Release(&v);
	Py_DECREF(seq);
	return res;
}

/* For pool.c, which shares the error and fork handling. */

static PyMethodDef values_functions[] = {
	{"array_get", (PyCFunction)(void (*)(void))fast_array_get, METH_FASTCALL,
	 "array_get(buffer, code, start, stop) -> list"},
	{"array_set", (PyCFunction)(void (*)(void))fast_array_set, METH_FASTCALL,
	 "array_set(buffer, code, start, stop, values)"},
	{NULL, NULL, 0, NULL},
};

int cext_values_add(PyObject *m) {
	if (PyType_Ready(&SyncValueType) < 0) return -1;
	if (!(str_value = PyUnicode_InternFromString("value")) ||
	    !(str_semlock = PyUnicode_InternFromString("_semlock")) ||
	    !(str_acquire = PyUnicode_InternFromString("acquire")) ||
	    !(str_release = PyUnicode_InternFromString("release")) ||
	    !(str_type_ = PyUnicode_InternFromString("_type_"))) return -1;
	Py_INCREF(&SyncValueType);
	if (PyModule_AddObject(m, "SyncValue", (PyObject *)&SyncValueType) < 0) return -1;
	return PyModule_AddFunctions(m, values_functions);
}
