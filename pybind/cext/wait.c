/* wait.c: the one wait loop of the fast paths (the Slicer it runs on is
 * in cext.h, for the loops that do more between slices). */
#include "cext.h"

int cext_wait(wait_op op, void *arg, double t, int busy) {
	Slicer sl;
	slicer_start(&sl, t);
	double slice;
	while (!slicer_next(&sl, &slice)) {
		int rc;
		Py_BEGIN_ALLOW_THREADS
		rc = op(arg, slice);
		Py_END_ALLOW_THREADS
		if (rc != busy) return rc;
		if (PyErr_CheckSignals() < 0) return CEXT_RAISED;
	}
	return busy;
}
