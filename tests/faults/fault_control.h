/*
 * fault_control.h — steering the test-only fault adapter (fault.so) at run
 * time, from this process, its forked children or any other process.
 *
 * The fault adapter wraps a real adapter and, before each call, reads a
 * control block: a small file mapped with mmap(MAP_SHARED).  A test maps
 * the same file and arms a fault ("the next 2 writes answer E_RETRY"), a
 * delay, or reads the call counters.  Every field is read and written with
 * __atomic builtins, so several processes may steer and obey one file at
 * once.  Nothing here is for production: fault.so lives in
 * lib/persistor-test/, never beside the real adapters.
 *
 * Kinds of call (the `ops` bits).  One fault and one delay are armed at a
 * time, each for a set of kinds:
 *
 *   FAULT_OP_OPEN   open, ensure_collection
 *   FAULT_OP_PING   ping, describe (a store that does not answer cannot
 *                   describe itself either)
 *   FAULT_OP_WRITE  write, expire
 *   FAULT_OP_READ   get, exists, query, cursor_next, count, stats
 *
 * close and cursor_close are never faulted: they cannot fail in the ABI.
 *
 * File layout (version 1, 64 bytes, native byte order; a new or empty file
 * is zero-filled, which is "healthy, nothing counted"):
 *
 *   offset  0  uint64 magic      FAULT_CONTROL_MAGIC once created
 *   offset  8  uint64 fault      the armed fault, packed in one word so that
 *                                arming and consuming it are single atomic
 *                                steps (a compare-and-swap per call):
 *                                  bits  0..31  calls left (int32; < 0: every
 *                                               call until cleared; 0: none)
 *                                  bits 32..47  the code (int16)
 *                                  bits 48..55  the kinds (FAULT_OP_* bits)
 *                                  bit  56      applied (UNCERTAIN writes)
 *   offset 16  uint64 delay      bits 0..31 delay_ms, bits 32..39 the kinds
 *   offset 24  uint64 calls[4]   calls that reached the adapter, by kind:
 *                                open, ping, write, read
 *   offset 56  uint64 injected   calls answered with an injected code
 */
#ifndef PERSISTOR_TESTS_FAULT_CONTROL_H
#define PERSISTOR_TESTS_FAULT_CONTROL_H

#include <stdint.h>

#define FAULT_OP_OPEN 0x01u  /* open and ensure_collection */
#define FAULT_OP_PING 0x02u  /* ping and describe */
#define FAULT_OP_WRITE 0x04u /* write and expire */
#define FAULT_OP_READ 0x08u  /* get, exists, query, cursor_next, count, stats */
#define FAULT_OP_ALL 0x0fu

/* "PFLT" in the high bytes, the layout version in the low ones. */
#define FAULT_CONTROL_MAGIC 0x50464c5400000001ull

typedef struct fault_control fault_control;

/*
 * Map the control file at `path`, creating it (mode 0600) if missing: a new
 * file is healthy.  Returns a handle freed with fault_control_close, or
 * NULL with errno set (EINVAL: the file exists but is not a control file of
 * this version).  Creation races between processes are safe.  Counters are
 * never reset: for fresh ones, unlink the file before anything maps it (an
 * instance already open keeps the old file's mapping).
 */
fault_control *fault_control_open(const char *path);
void fault_control_close(fault_control *c);

/*
 * Arm a fault, replacing the one armed before: the next `count` calls of a
 * kind in `ops` answer `code`, a PERSISTOR_E_* error (count < 0: every call
 * until fault_clear; count 0 disarms).  For a write with code E_UNCERTAIN,
 * `applied` != 0 first applies the write to the inner store (the answer was
 * lost after the store applied it); applied == 0 applies nothing.  A code
 * that is not an error, or `ops` outside FAULT_OP_ALL, is a bug in the test:
 * it aborts.
 */
void fault_inject(fault_control *c, uint32_t ops, int32_t code, int32_t count, int applied);

/* Calls of a kind in `ops` sleep delay_ms before going on (a store that
 * stops answering); delay_ms 0 clears the delay.  Replaces the one before. */
void fault_set_delay(fault_control *c, uint32_t ops, uint32_t delay_ms);

/* Healthy again: no fault, no delay.  The counters are kept. */
void fault_clear(fault_control *c);

/* Calls that reached the adapter, summed over the kinds in `ops`, since the
 * file was created (whatever process made them). */
uint64_t fault_calls(const fault_control *c, uint32_t ops);

/* Calls answered with an injected code, since the file was created. */
uint64_t fault_injected(const fault_control *c);

/* ---- the adapter's side (fault_adapter.c) ------------------------------ */

/*
 * One call of kind `op` (a single FAULT_OP_* bit) reached the adapter:
 * count it, sleep the delay armed for its kind, and consume one armed fault
 * if one matches.  Returns 0 (go on) or the code to answer, with *applied
 * set for it.
 */
int32_t fault_control_hit(fault_control *c, uint32_t op, int *applied);

#endif
