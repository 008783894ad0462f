/* Pickles of plain values, made and read in C.
 *
 * Pool tasks and results are mostly small: a tuple of arguments, a chunk of
 * numbers, a list of results. pickle.dumps and pickle.loads make and free a
 * pickler for each, which costs more than the pickling does. These write
 * and read a subset of pickle protocol 4 without one:
 *
 *   plain    None, bool, int (64-bit), float, str, bytes, and tuples of
 *            plain values (nested at most PLAIN_DEPTH deep)
 *   message  a plain value, or a list of plain values; lists inside it too
 *            when each is met once (see plain_lists_begin: without a memo,
 *            a list met twice would come back as two)
 *
 * The output is a valid pickle that pickle.loads reads (no FRAME, no memo:
 * both are optional). plain_load reads these, and pickle.dumps's own output
 * for the same values (it skips FRAME and MEMOIZE); anything else it leaves
 * to pickle.loads. Exact types only: a subclass of int or str may have a
 * reducer of its own.
 *
 * For a Pipe's and a Queue's scalars (plain_scalar_*), the one writer also
 * gives exactly pickle.dumps's bytes, so that either side may read them.
 *
 * This file is the one pickle fast path: no other C file writes or reads
 * pickles. */
#include "plain.h"
#include <stdint.h>
#include <string.h>

#define PLAIN_DEPTH 4
#define PLAIN_MARKS 16

static int grow(plainbuf *b, Py_ssize_t k) {
	Py_ssize_t cap = b->cap ? b->cap : 256;
	while (cap < b->n + k) cap *= 2;
	char *p = PyMem_Realloc(b->p, cap);
	if (!p) { PyErr_NoMemory(); return -1; }
	b->p = p;
	b->cap = cap;
	return 0;
}

/* put_small is plainbuf_put for the few bytes of one opcode, inlined. */
static inline int put_small(plainbuf *b, const char *s, int k) {
	if (b->n + k > b->cap && grow(b, k) < 0) return -1;
	memcpy(b->p + b->n, s, k);
	b->n += k;
	return 0;
}

int plainbuf_put(plainbuf *b, const char *s, Py_ssize_t k) {
	if (b->n + k > b->cap && grow(b, k) < 0) return -1;
	memcpy(b->p + b->n, s, k);
	b->n += k;
	return 0;
}

void plainbuf_free(plainbuf *b) {
	PyMem_Free(b->p);
	b->p = NULL;
	b->n = b->cap = 0;
}

static int put_len(plainbuf *b, char short_op, char long_op, const char *s, Py_ssize_t k) {
	char h[5];
	if (k < 256) {
		h[0] = short_op;
		h[1] = (char)k;
		if (plainbuf_put(b, h, 2) < 0) return -1;
	} else {
		if (k > 0x7fffffff) return 0;
		uint32_t u = (uint32_t)k;
		h[0] = long_op;
		for (int i = 0; i < 4; i++) h[1 + i] = (char)(u >> (8 * i));
		if (plainbuf_put(b, h, 5) < 0) return -1;
	}
	return plainbuf_put(b, s, k) < 0 ? -1 : 1;
}

int plain_int(plainbuf *b, long long v) {
	/* Written straight into the buffer: bytes put in a local array, then
	 * copied out as a word, stall the store-to-load forwarding. */
	if (b->n + 10 > b->cap && grow(b, 10) < 0) return -1;
	unsigned char *h = (unsigned char *)b->p + b->n;
	if (v >= 0 && v <= 0xff) {
		h[0] = 'K';
		h[1] = (unsigned char)v;
		b->n += 2;
	} else if (v >= 0 && v <= 0xffff) {
		h[0] = 'M';
		h[1] = (unsigned char)v;
		h[2] = (unsigned char)(v >> 8);
		b->n += 3;
	} else if (v >= -0x80000000LL && v <= 0x7fffffffLL) {
		uint32_t u = (uint32_t)(int32_t)v;
		h[0] = 'J';
		h[1] = (unsigned char)u;
		h[2] = (unsigned char)(u >> 8);
		h[3] = (unsigned char)(u >> 16);
		h[4] = (unsigned char)(u >> 24);
		b->n += 5;
	} else {
		/* LONG1: 8 bytes of two's complement, little-endian. */
		uint64_t u = (uint64_t)v;
		h[0] = 0x8a;
		h[1] = 8;
		for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)(u >> (8 * i));
		b->n += 10;
	}
	return 1;
}

static inline int put_int(plainbuf *b, PyObject *o) {
	int overflow;
	long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
	if (v == -1 && PyErr_Occurred()) return -1;
	if (overflow) return 0;
	return plain_int(b, v);
}

/* Lists inside a message are plain only while a writer that runs no Python
 * code from start to end has turned lists_on (plain_lists_begin): then each
 * list is recorded, and one met twice is not plain (pickle would keep the
 * two one object). A writer that calls Python between items (stream_map)
 * leaves lists off: the lists it wrote could change before the message is
 * done. Used with the GIL held. */
#define SEEN_BITS 16
#define SEEN_MAX (1 << (SEEN_BITS - 1))   /* lists in one message, at most */
static struct { const void *p; unsigned gen; } *seen;
static unsigned seen_gen;
static Py_ssize_t seen_n;
static int lists_on;

void plain_lists_begin(void) {
	lists_on = 1;
	seen_n = 0;
	if (++seen_gen == 0) {
		if (seen) memset(seen, 0, sizeof *seen << SEEN_BITS);
		seen_gen = 1;
	}
}

void plain_lists_end(void) { lists_on = 0; }

/* seen_add records list o: 1 if new, 0 if met before (or too many), -1 with
 * an exception set. */
static int seen_add(const void *o) {
	if (!seen && !(seen = PyMem_RawCalloc((size_t)1 << SEEN_BITS, sizeof *seen))) {
		PyErr_NoMemory();
		return -1;
	}
	if (seen_n >= SEEN_MAX) return 0;
	size_t mask = ((size_t)1 << SEEN_BITS) - 1;
	size_t h = (size_t)(((uintptr_t)o >> 4) * 0x9E3779B97F4A7C15ULL >> (64 - SEEN_BITS));
	for (;; h = (h + 1) & mask) {
		if (seen[h].gen != seen_gen) {
			seen[h].p = o;
			seen[h].gen = seen_gen;
			seen_n++;
			return 1;
		}
		if (seen[h].p == o) return 0;
	}
}

int plain_item(plainbuf *b, PyObject *o, int depth) {
	PyTypeObject *t = Py_TYPE(o);
	char h[9];
	if (t == &PyLong_Type) return put_int(b, o);
	if (o == Py_None) return put_small(b, "N", 1) < 0 ? -1 : 1;
	if (o == Py_True) return put_small(b, "\x88", 1) < 0 ? -1 : 1;
	if (o == Py_False) return put_small(b, "\x89", 1) < 0 ? -1 : 1;
	if (t == &PyFloat_Type) {
		h[0] = 'G';
		if (PyFloat_Pack8(PyFloat_AS_DOUBLE(o), h + 1, 0) < 0) return -1;
		return plainbuf_put(b, h, 9) < 0 ? -1 : 1;
	}
	if (t == &PyUnicode_Type) {
		Py_ssize_t k;
		const char *s = PyUnicode_AsUTF8AndSize(o, &k);
		if (!s) {
			/* Lone surrogates: pickle writes them, with surrogatepass. */
			if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) { PyErr_Clear(); return 0; }
			return -1;
		}
		return put_len(b, '\x8c', 'X', s, k);
	}
	if (t == &PyBytes_Type)
		return put_len(b, 'C', 'B', PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o));
	int is_list = t == &PyList_Type;
	if (is_list && depth > 0) {
		if (!lists_on || depth >= PLAIN_DEPTH) return 0;
		int s = seen_add(o);
		if (s <= 0) return s;
	}
	if ((t == &PyTuple_Type && depth < PLAIN_DEPTH) || is_list) {
		Py_ssize_t n = is_list ? PyList_GET_SIZE(o) : PyTuple_GET_SIZE(o);
		if (n == 0) return plainbuf_put(b, is_list ? "]" : ")", 1) < 0 ? -1 : 1;
		if (plainbuf_put(b, is_list ? "](" : "(", is_list ? 2 : 1) < 0) return -1;
		/* A list's items are read as it is now: a callee cannot change
		 * it, as nothing here calls back into Python. */
		for (Py_ssize_t i = 0; i < n; i++) {
			PyObject *x = is_list ? PyList_GET_ITEM(o, i) : PyTuple_GET_ITEM(o, i);
			int r = plain_item(b, x, depth + 1);
			if (r <= 0) return r;
		}
		return plainbuf_put(b, is_list ? "e" : "t", 1) < 0 ? -1 : 1;
	}
	return 0;
}

int plain_begin(plainbuf *b) { return plainbuf_put(b, "\x80\x04", 2); }

int plain_end(plainbuf *b) { return plainbuf_put(b, ".", 1); }

int plain_dump(plainbuf *b, PyObject *o) {
	Py_ssize_t mark = b->n;
	int r = plain_begin(b);
	if (r == 0) {
		plain_lists_begin();
		if (PyList_CheckExact(o) && seen_add(o) < 0) r = -1;  /* the top, if it holds itself */
		if (r == 0) r = plain_item(b, o, 0);
		plain_lists_end();
	}
	if (r == 1 && plain_end(b) < 0) r = -1;
	if (r != 1) b->n = mark;
	return r;
}

/* The buffer plain_bytes writes in, kept between calls (used with the GIL
 * held, and no Python code run). */
static plainbuf scratch;

PyObject *plain_bytes(PyObject *o) {
	scratch.n = 0;
	PyObject *res = NULL;
	if (plain_dump(&scratch, o) == 1) res = PyBytes_FromStringAndSize(scratch.p, scratch.n);
	if (scratch.cap > (1 << 20)) plainbuf_free(&scratch);
	return res;
}

/* ---- reading ---- */

/* Ints read recently, by value: results often repeat the same numbers
 * (seed 004's chunks are the same 1000 cubes a thousand times over), and
 * making each one anew is most of the cost of reading them. An int's
 * identity is not part of its value (CPython shares small ones, and
 * constants): equal ints read here may be one object. Direct-mapped; used
 * with the GIL held. */
#define INT_CACHE 4096
static struct { long long v; PyObject *o; } int_cache[INT_CACHE];

static PyObject *read_int(long long v) {
	if (v >= -5 && v <= 256) return PyLong_FromLongLong(v);  /* CPython's own */
	unsigned long long h = (unsigned long long)v * 0x9E3779B97F4A7C15ULL;
	size_t slot = (size_t)(h >> 52) & (INT_CACHE - 1);
	if (int_cache[slot].o && int_cache[slot].v == v) return Py_NewRef(int_cache[slot].o);
	PyObject *o = PyLong_FromLongLong(v);
	if (!o) return NULL;
	Py_XSETREF(int_cache[slot].o, Py_NewRef(o));
	int_cache[slot].v = v;
	return o;
}

typedef struct {
	PyObject **s;
	Py_ssize_t n, cap;
	Py_ssize_t marks[PLAIN_MARKS];
	int nm;
	int heap;  /* s was allocated (else it is on the caller's stack) */
} pstack;

static int push(pstack *st, PyObject *o) {
	if (!o) return -1;
	if (st->n == st->cap) {
		Py_ssize_t cap = st->cap * 2;
		PyObject **s = st->heap ? PyMem_Realloc(st->s, cap * sizeof *s) : PyMem_Malloc(cap * sizeof *s);
		if (!s) { Py_DECREF(o); PyErr_NoMemory(); return -1; }
		if (!st->heap) memcpy(s, st->s, st->n * sizeof *s);
		st->heap = 1;
		st->s = s;
		st->cap = cap;
	}
	st->s[st->n++] = o;
	return 0;
}

static PyObject *tuple_from(pstack *st, Py_ssize_t from) {
	Py_ssize_t k = st->n - from;
	PyObject *t = PyTuple_New(k);
	if (!t) return NULL;
	for (Py_ssize_t i = 0; i < k; i++) PyTuple_SET_ITEM(t, i, st->s[from + i]);
	st->n = from;
	return t;
}

static inline uint32_t rd_u32(const unsigned char *p) {
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A reader's big stack, kept between calls (up to KEEP_STACK entries): a
 * list of results of 100k items needs one that big, and memory freshly
 * mapped for each costs a page fault per page. One for the process: the
 * GIL is held from taking it to giving it back (nothing in between runs
 * Python code). */
#define KEEP_STACK (1 << 20)
static PyObject **kept_stack;
static Py_ssize_t kept_cap;

PyObject *plain_load(const char *data, Py_ssize_t len) {
	const unsigned char *p = (const unsigned char *)data, *end = p + len;
	PyObject *small[64];
	pstack st = {small, 0, 64, {0}, 0, 0};
	if (kept_stack && len > 64 * 4) {
		st.s = kept_stack;
		st.cap = kept_cap;
		st.heap = 1;
		kept_stack = NULL;
	}
	PyObject *res = NULL;
	int failed = 0;  /* 1: not ours, 2: error set */
#define NEED(k) do { if (end - p < (k)) { failed = 1; goto out; } } while (0)
#define PUSH(o) do { if (push(&st, (o)) < 0) { failed = 2; goto out; } } while (0)
	while (p < end) {
		unsigned char op = *p++;
		switch (op) {
		case 0x80: NEED(1); p += 1; break;           /* PROTO */
		case 0x95: NEED(8); p += 8; break;           /* FRAME */
		case 0x94: break;                            /* MEMOIZE */
		case 'N': PUSH(Py_NewRef(Py_None)); break;
		case 0x88: PUSH(Py_NewRef(Py_True)); break;
		case 0x89: PUSH(Py_NewRef(Py_False)); break;
		case 'K': NEED(1); PUSH(PyLong_FromLong(p[0])); p += 1; break;
		case 'M': NEED(2); PUSH(read_int(p[0] | p[1] << 8)); p += 2; break;
		case 'J': NEED(4); PUSH(read_int((int32_t)rd_u32(p))); p += 4; break;
		case 0x8a: {                                 /* LONG1 */
			NEED(1);
			size_t k = p[0];
			NEED(1 + (Py_ssize_t)k);
			PUSH(k ? PyLong_FromNativeBytes(p + 1, k, Py_ASNATIVEBYTES_LITTLE_ENDIAN) : PyLong_FromLong(0));
			p += 1 + k;
			break;
		}
		case 'G': {
			NEED(8);
			double d = PyFloat_Unpack8((const char *)p, 0);
			if (d == -1.0 && PyErr_Occurred()) { failed = 2; goto out; }
			PUSH(PyFloat_FromDouble(d));
			p += 8;
			break;
		}
		case 0x8c: case 'X': case 'C': case 'B': {   /* str, bytes */
			Py_ssize_t k;
			if (op == 0x8c || op == 'C') { NEED(1); k = p[0]; p += 1; }
			else { NEED(4); k = rd_u32(p); p += 4; }
			NEED(k);
			if (op == 0x8c || op == 'X')
				PUSH(PyUnicode_DecodeUTF8((const char *)p, k, "surrogatepass"));
			else
				PUSH(PyBytes_FromStringAndSize((const char *)p, k));
			p += k;
			break;
		}
		case ')': PUSH(PyTuple_New(0)); break;
		case ']': PUSH(PyList_New(0)); break;
		case '(':
			if (st.nm == PLAIN_MARKS) { failed = 1; goto out; }
			st.marks[st.nm++] = st.n;
			break;
		case 't': {
			if (st.nm == 0) { failed = 1; goto out; }
			PyObject *t = tuple_from(&st, st.marks[--st.nm]);
			if (!t) { failed = 2; goto out; }
			st.s[st.n++] = t;  /* room: the mark's items were there */
			break;
		}
		case 0x85: case 0x86: case 0x87: {           /* TUPLE1..3 */
			Py_ssize_t k = op - 0x84;
			if (st.n < k || (st.nm && st.marks[st.nm - 1] > st.n - k)) { failed = 1; goto out; }
			PyObject *t = tuple_from(&st, st.n - k);
			if (!t) { failed = 2; goto out; }
			st.s[st.n++] = t;
			break;
		}
		case 'e': {                                  /* APPENDS */
			if (st.nm == 0) { failed = 1; goto out; }
			Py_ssize_t from = st.marks[--st.nm];
			if (from < 1 || !PyList_CheckExact(st.s[from - 1])) { failed = 1; goto out; }
			PyObject *l = st.s[from - 1];
			Py_ssize_t have = PyList_GET_SIZE(l), k = st.n - from;
			if (have == 0 && Py_REFCNT(l) == 1) {
				/* The usual case, ']' '(' items 'e': a list made of the
				 * items as they are on the stack, which it takes over. */
				PyObject *nl = PyList_New(k);
				if (!nl) { failed = 2; goto out; }
				memcpy(((PyListObject *)nl)->ob_item, st.s + from, k * sizeof(PyObject *));
				st.n = from;
				Py_SETREF(st.s[from - 1], nl);
				break;
			}
			PyObject *t = tuple_from(&st, from);
			if (!t) { failed = 2; goto out; }
			int rc = PyList_SetSlice(l, have, have, t);
			Py_DECREF(t);
			if (rc < 0) { failed = 2; goto out; }
			break;
		}
		case 'a': {                                  /* APPEND */
			if (st.n < 2 || !PyList_CheckExact(st.s[st.n - 2]) ||
			    (st.nm && st.marks[st.nm - 1] > st.n - 2)) { failed = 1; goto out; }
			PyObject *x = st.s[--st.n];
			int rc = PyList_Append(st.s[st.n - 1], x);
			Py_DECREF(x);
			if (rc < 0) { failed = 2; goto out; }
			break;
		}
		case '.':
			if (st.n != 1 || st.nm != 0 || p != end) { failed = 1; goto out; }
			res = st.s[0];
			st.n = 0;
			goto out;
		default:
			failed = 1;
			goto out;
		}
	}
	failed = 1;  /* no STOP */
out:
#undef NEED
#undef PUSH
	while (st.n > 0) Py_DECREF(st.s[--st.n]);
	if (st.heap) {
		if (st.cap <= KEEP_STACK && !kept_stack) {
			kept_stack = st.s;
			kept_cap = st.cap;
		} else {
			PyMem_Free(st.s);
		}
	}
	if (failed == 1) PyErr_Clear();
	return res;
}

/* read_scalar reads one plain scalar at *pp (None, bool, int, float, str,
 * bytes): 1 with *out a new reference and *pp past it; 0 if there is none
 * there (nothing read); -1 with an exception set. */
static int read_scalar(const unsigned char **pp, const unsigned char *end, PyObject **out) {
	const unsigned char *p = *pp;
	if (p >= end) return 0;
	unsigned char op = *p++;
	PyObject *o;
	switch (op) {
	case 'N': o = Py_NewRef(Py_None); break;
	case 0x88: o = Py_NewRef(Py_True); break;
	case 0x89: o = Py_NewRef(Py_False); break;
	case 'K':
		if (end - p < 1) return 0;
		o = PyLong_FromLong(p[0]);
		p += 1;
		break;
	case 'M':
		if (end - p < 2) return 0;
		o = read_int(p[0] | p[1] << 8);
		p += 2;
		break;
	case 'J':
		if (end - p < 4) return 0;
		o = read_int((int32_t)rd_u32(p));
		p += 4;
		break;
	case 0x8a: {
		if (end - p < 1 || end - p < 1 + p[0]) return 0;
		size_t k = p[0];
		o = k ? PyLong_FromNativeBytes(p + 1, k, Py_ASNATIVEBYTES_LITTLE_ENDIAN) : PyLong_FromLong(0);
		p += 1 + k;
		break;
	}
	case 'G': {
		if (end - p < 8) return 0;
		double d = PyFloat_Unpack8((const char *)p, 0);
		if (d == -1.0 && PyErr_Occurred()) return -1;
		o = PyFloat_FromDouble(d);
		p += 8;
		break;
	}
	case 0x8c: case 'X': case 'C': case 'B': {
		Py_ssize_t k;
		if (op == 0x8c || op == 'C') {
			if (end - p < 1) return 0;
			k = p[0];
			p += 1;
		} else {
			if (end - p < 4) return 0;
			k = rd_u32(p);
			p += 4;
		}
		if (end - p < k) return 0;
		o = (op == 0x8c || op == 'X') ? PyUnicode_DecodeUTF8((const char *)p, k, "surrogatepass")
					      : PyBytes_FromStringAndSize((const char *)p, k);
		p += k;
		break;
	}
	default:
		return 0;
	}
	if (!o) return -1;
	*out = o;
	*pp = p;
	return 1;
}

int plain_load_into(const char *data, Py_ssize_t len, PyObject *dst, Py_ssize_t lo, Py_ssize_t hi) {
	const unsigned char *p = (const unsigned char *)data, *end = p + len;
	if (!PyList_CheckExact(dst) || lo < 0 || hi > PyList_GET_SIZE(dst) || lo > hi) return 0;
	if (end - p < 2 || p[0] != 0x80) return 0;
	p += 2;
	if (p < end && *p == 0x95) {
		if (end - p < 9) return 0;
		p += 9;
	}
	if (p >= end || *p++ != ']') return 0;
	if (p < end && *p == 0x94) p++;
	Py_ssize_t k = lo;
	PyObject **items = ((PyListObject *)dst)->ob_item;
	/* Batches of '(' items 'e' (pickle writes one per 1000 items). */
	while (p < end && *p == '(') {
		p++;
		for (;;) {
			if (p < end && *p == 'e') { p++; break; }
			if (p < end && *p == 0x94) { p++; continue; }
			PyObject *o;
			int r = read_scalar(&p, end, &o);
			if (r <= 0) return r;
			if (k >= hi || PyList_GET_SIZE(dst) < hi) { Py_DECREF(o); return 0; }
			PyObject *old = items[k];
			items[k++] = o;
			Py_XDECREF(old);  /* may run Python code: dst is re-read */
			items = ((PyListObject *)dst)->ob_item;
		}
	}
	if (p >= end || *p++ != '.' || p != end || k != hi) return 0;
	return 1;
}

/* ---- Scalars: None, bools, floats and 32-bit ints, as pickle writes them ----
 *
 * A Pipe's ping-pong of small numbers spends more time making and freeing
 * picklers than on the ring. These produce and recognise exactly the bytes
 * pickle.dumps gives at protocols 4 and 5 (configure() checks that against
 * plain_dumps itself): PROTO, a FRAME when the body is 4 bytes or more, the
 * opcode, its argument, STOP. Anything else goes through pickle. */
Py_ssize_t plain_scalar_dumps(PyObject *o, char proto, char *out) {
	char body[10];
	Py_ssize_t k;
	PyTypeObject *t = Py_TYPE(o);
	if (o == Py_None) { body[0] = 'N'; k = 1; }
	else if (o == Py_True) { body[0] = '\x88'; k = 1; }
	else if (o == Py_False) { body[0] = '\x89'; k = 1; }
	else if (t == &PyLong_Type) {
		int overflow;
		long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
		if (overflow || (v == -1 && PyErr_Occurred())) { PyErr_Clear(); return 0; }
		if (v >= 0 && v <= 0xff) { body[0] = 'K'; body[1] = (char)v; k = 2; }
		else if (v >= 0 && v <= 0xffff) { body[0] = 'M'; body[1] = (char)v; body[2] = (char)(v >> 8); k = 3; }
		else if (v >= -0x80000000LL && v <= 0x7fffffffLL) {
			uint32_t u = (uint32_t)(int32_t)v;
			body[0] = 'J';
			for (int i = 0; i < 4; i++) body[1 + i] = (char)(u >> (8 * i));
			k = 5;
		} else return 0;
	} else if (t == &PyFloat_Type) {
		body[0] = 'G';
		if (PyFloat_Pack8(PyFloat_AS_DOUBLE(o), body + 1, 0) < 0) { PyErr_Clear(); return 0; }
		k = 9;
	} else return 0;
	body[k++] = '.';
	Py_ssize_t n = 0;
	out[n++] = '\x80';
	out[n++] = proto;
	if (k >= 4) {
		out[n++] = '\x95';
		for (int i = 0; i < 8; i++) out[n++] = i == 0 ? (char)k : 0;
	}
	memcpy(out + n, body, k);
	return n + k;
}

/* scalar_loads returns the object of a pickle that scalar_dumps could have
 * made, or NULL (no error set) for anything else. */
PyObject *plain_scalar_loads(const unsigned char *p, Py_ssize_t n) {
	if (n < 4 || n > 20 || p[0] != 0x80 || p[1] < 4 || p[1] > 5 || p[n - 1] != '.') return NULL;
	p += 2; n -= 3;  /* the body without STOP */
	if (p[0] == 0x95) {
		if (n < 9 || (Py_ssize_t)p[1] != n - 8) return NULL;
		for (int i = 2; i < 9; i++) if (p[i]) return NULL;
		p += 9; n -= 9;
	}
	switch (p[0]) {
	case 'N': return n == 1 ? Py_NewRef(Py_None) : NULL;
	case 0x88: return n == 1 ? Py_NewRef(Py_True) : NULL;
	case 0x89: return n == 1 ? Py_NewRef(Py_False) : NULL;
	case 'K': return n == 2 ? PyLong_FromLong(p[1]) : NULL;
	case 'M': return n == 3 ? PyLong_FromLong(p[1] | p[2] << 8) : NULL;
	case 'J':
		if (n != 5) return NULL;
		return PyLong_FromLong((int32_t)((uint32_t)p[1] | (uint32_t)p[2] << 8 |
						 (uint32_t)p[3] << 16 | (uint32_t)p[4] << 24));
	case 'G': {
		if (n != 9) return NULL;
		double d = PyFloat_Unpack8((const char *)p + 1, 0);
		if (d == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return NULL; }
		return PyFloat_FromDouble(d);
	}
	}
	return NULL;
}

/* scalar_proto returns the protocol byte of dumps if scalar_dumps agrees
 * with it on a few values, else 0. */
char plain_scalar_proto(PyObject *dumps) {
	PyObject *r = PyObject_CallOneArg(dumps, Py_None);
	if (!r) { PyErr_Clear(); return 0; }
	char proto = 0;
	if (PyBytes_Check(r) && PyBytes_GET_SIZE(r) == 4 && PyBytes_AS_STRING(r)[0] == '\x80' &&
	    (PyBytes_AS_STRING(r)[1] == 4 || PyBytes_AS_STRING(r)[1] == 5))
		proto = PyBytes_AS_STRING(r)[1];
	Py_DECREF(r);
	if (!proto) return 0;
	PyObject *probe = Py_BuildValue("(OOiiiiiLd)", Py_True, Py_False, 0, 255, 256, 65536, -1,
					(long long)0x7fffffff, -2.5);
	if (!probe) { PyErr_Clear(); return 0; }
	for (Py_ssize_t i = 0; proto && i < PyTuple_GET_SIZE(probe); i++) {
		PyObject *o = PyTuple_GET_ITEM(probe, i);
		char buf[24];
		Py_ssize_t k = plain_scalar_dumps(o, proto, buf);
		PyObject *want = PyObject_CallOneArg(dumps, o);
		if (!want) { PyErr_Clear(); proto = 0; break; }
		if (!k || !PyBytes_Check(want) || PyBytes_GET_SIZE(want) != k ||
		    memcmp(PyBytes_AS_STRING(want), buf, k) != 0)
			proto = 0;
		Py_DECREF(want);
	}
	Py_DECREF(probe);
	return proto;
}

/* plain_dumps(obj) -> the pickle plain.c makes of obj, or None if obj is
 * not plain. */
static PyObject *py_plain_dumps(PyObject *Py_UNUSED(self), PyObject *o) {
	PyObject *b = plain_bytes(o);
	if (b || PyErr_Occurred()) return b;
	Py_RETURN_NONE;
}

/* plain_loads(data, loads) -> the object pickled in data, read in C when it
 * is plain, else by loads(data). */
static PyObject *py_plain_loads(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
	if (nargs != 2) {
		PyErr_SetString(PyExc_TypeError, "plain_loads(data, loads)");
		return NULL;
	}
	Py_buffer v;
	if (PyObject_GetBuffer(args[0], &v, PyBUF_SIMPLE) < 0) return NULL;
	PyObject *o = plain_load(v.buf, v.len);
	PyBuffer_Release(&v);
	if (o || PyErr_Occurred()) return o;
	return PyObject_CallOneArg(args[1], args[0]);
}

static PyMethodDef plain_functions[] = {
	{"plain_dumps", (PyCFunction)py_plain_dumps, METH_O,
	 "plain_dumps(obj) -> pickle of obj made in C, or None if obj is not plain."},
	{"plain_loads", (PyCFunction)(void (*)(void))py_plain_loads, METH_FASTCALL,
	 "plain_loads(data, loads) -> obj: read in C when plain, else loads(data)."},
	{NULL, NULL, 0, NULL},
};

int cext_plain_add(PyObject *m) {
	return PyModule_AddFunctions(m, plain_functions);
}
