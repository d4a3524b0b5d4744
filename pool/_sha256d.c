/*
 * Optional accelerator for the hashing core (pool/hashing.py): the coinbase -> merkle root
 * fold and the header hash in one C call each, on OpenSSL's SHA-256 (SHA-NI where the CPU has
 * it). pool/hashing.py has the same logic in Python and uses it when this module is absent;
 * the unit tests check both give identical answers.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED
#include <Python.h>
#include <openssl/sha.h>
#include <string.h>

/* The low-level SHA256_* calls go straight to the block function; OpenSSL 3's one-shot
 * SHA256() goes through a provider lookup per call and is several times slower here. */
static void sha256_raw(const unsigned char *data, size_t len, unsigned char out[32]) {
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, data, len);
    SHA256_Final(out, &ctx);
}

static void sha256d_raw(const unsigned char *data, size_t len, unsigned char out[32]) {
    unsigned char first[32];
    sha256_raw(data, len, first);
    sha256_raw(first, 32, out);
}

/* midstate(prefix) -> opaque bytes: the SHA-256 state after `prefix` */
static PyObject *midstate(PyObject *self, PyObject *args) {
    Py_buffer prefix;
    if (!PyArg_ParseTuple(args, "y*", &prefix)) return NULL;
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, prefix.buf, (size_t)prefix.len);
    PyBuffer_Release(&prefix);
    return PyBytes_FromStringAndSize((const char *)&ctx, sizeof ctx);
}

/* merkle_root(midstate, extranonce2, coinb2, branch) -> 32-byte root (internal order).
 * branch is the concatenation of the 32-byte branch hashes. */
static PyObject *merkle_root(PyObject *self, PyObject *args) {
    Py_buffer state, en2, coinb2, branch;
    if (!PyArg_ParseTuple(args, "y*y*y*y*", &state, &en2, &coinb2, &branch)) return NULL;
    PyObject *result = NULL;
    if (state.len != (Py_ssize_t)sizeof(SHA256_CTX) || branch.len % 32) {
        PyErr_SetString(PyExc_ValueError, "bad midstate or branch length");
        goto done;
    }
    SHA256_CTX ctx;
    unsigned char first[32], pair[64];
    memcpy(&ctx, state.buf, sizeof ctx);
    SHA256_Update(&ctx, en2.buf, (size_t)en2.len);
    SHA256_Update(&ctx, coinb2.buf, (size_t)coinb2.len);
    SHA256_Final(first, &ctx);
    sha256_raw(first, 32, pair);
    const unsigned char *sib = (const unsigned char *)branch.buf;
    for (Py_ssize_t i = 0; i < branch.len; i += 32) {
        memcpy(pair + 32, sib + i, 32);
        sha256d_raw(pair, 64, pair);
    }
    result = PyBytes_FromStringAndSize((const char *)pair, 32);
done:
    PyBuffer_Release(&state);
    PyBuffer_Release(&en2);
    PyBuffer_Release(&coinb2);
    PyBuffer_Release(&branch);
    return result;
}

static void put_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}

/* header_hash(version, prevhash, root, ntime, nbits, nonce) -> 32-byte hash (internal order) */
static PyObject *header_hash(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "header_hash takes 6 arguments");
        return NULL;
    }
    unsigned char header[80], out[32];
    unsigned long v;
    char *buf;
    Py_ssize_t len;
    v = PyLong_AsUnsignedLongMask(args[0]);
    if (PyErr_Occurred()) return NULL;
    put_u32(header, (uint32_t)v);
    if (PyBytes_AsStringAndSize(args[1], &buf, &len) < 0) return NULL;
    if (len != 32) { PyErr_SetString(PyExc_ValueError, "prevhash must be 32 bytes"); return NULL; }
    memcpy(header + 4, buf, 32);
    if (PyBytes_AsStringAndSize(args[2], &buf, &len) < 0) return NULL;
    if (len != 32) { PyErr_SetString(PyExc_ValueError, "root must be 32 bytes"); return NULL; }
    memcpy(header + 36, buf, 32);
    for (int i = 0; i < 3; i++) {
        v = PyLong_AsUnsignedLongMask(args[3 + i]);
        if (PyErr_Occurred()) return NULL;
        put_u32(header + 68 + 4 * i, (uint32_t)v);
    }
    sha256d_raw(header, 80, out);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyObject *sha256d(PyObject *self, PyObject *args) {
    Py_buffer data;
    unsigned char out[32];
    if (!PyArg_ParseTuple(args, "y*", &data)) return NULL;
    sha256d_raw(data.buf, (size_t)data.len, out);
    PyBuffer_Release(&data);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyMethodDef methods[] = {
    {"midstate", midstate, METH_VARARGS, "SHA-256 state after a prefix (opaque bytes)."},
    {"merkle_root", merkle_root, METH_VARARGS, "Coinbase merkle root from a midstate."},
    {"header_hash", (PyCFunction)(void (*)(void))header_hash, METH_FASTCALL,
     "sha256d of the 80-byte header built from its fields."},
    {"sha256d", sha256d, METH_VARARGS, "Double SHA-256."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "pool._sha256d", NULL, -1, methods};

PyMODINIT_FUNC PyInit__sha256d(void) { return PyModule_Create(&module); }
