/* plain.h: pickles of plain values made and read in C (plain.c). */
#ifndef MPGO_PLAIN_H
#define MPGO_PLAIN_H

#include "compat.h"

/* plainbuf is a growable output buffer. */
typedef struct {
	char *p;
	Py_ssize_t n, cap;
} plainbuf;

int plainbuf_put(plainbuf *b, const char *s, Py_ssize_t k);
void plainbuf_free(plainbuf *b);

/* plain_begin/plain_item/plain_end write a pickle piece by piece. */
int plain_begin(plainbuf *b);
int plain_item(plainbuf *b, PyObject *o, int depth);
int plain_int(plainbuf *b, long long v);
/* plain_lists_begin/end bracket a message written with plain_item in which
 * lists may be nested (each met once): no Python code may run between. */
void plain_lists_begin(void);
void plain_lists_end(void);
int plain_end(plainbuf *b);

/* plain_dump appends the pickle of o; 1 if o is plain, 0 if not (b is then
 * left as it was), -1 with an exception set. */
int plain_dump(plainbuf *b, PyObject *o);

/* plain_bytes returns the pickle of o as bytes, or NULL: with an exception
 * set on error, without one when o is not plain. */
PyObject *plain_bytes(PyObject *o);

/* plain_load returns the object of a pickle of plain values, or NULL: with
 * an exception set on error, without one when the pickle has anything
 * else in it (then pickle.loads must read it). */
PyObject *plain_load(const char *p, Py_ssize_t n);

/* plain_load_into reads a pickle of a list of hi - lo plain scalars (as
 * plain_dump or pickle.dumps make it) straight into dst[lo:hi]: 1 if it
 * did; 0 if the pickle is anything else (dst[lo:hi] may then hold some of
 * its items already); -1 with an exception set. */
int plain_load_into(const char *data, Py_ssize_t len, PyObject *dst, Py_ssize_t lo, Py_ssize_t hi);

/* plain_scalar_dumps writes to out (24 bytes) exactly what pickle.dumps
 * writes for None, a bool, a float or an int of 32 bits at protocol proto
 * (4 or 5), and returns its length; 0 for any other object. */
Py_ssize_t plain_scalar_dumps(PyObject *o, char proto, char *out);
/* plain_scalar_loads reads what plain_scalar_dumps writes: the object, or
 * NULL (no error set) for anything else. */
PyObject *plain_scalar_loads(const unsigned char *p, Py_ssize_t n);
/* plain_scalar_proto returns the protocol byte of dumps if
 * plain_scalar_dumps agrees with it on a few values, else 0. */
char plain_scalar_proto(PyObject *dumps);

#endif
