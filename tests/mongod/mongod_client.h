/*
 * mongod_client.h — what a C test needs to use the mock mongod of this
 * folder: its ports, and one command on its control port.  The server's
 * run directory comes from $PERSISTOR_MONGOD_DIR (persistor_use_mongod).
 */
#ifndef PERSISTOR_TESTS_MONGOD_CLIENT_H
#define PERSISTOR_TESTS_MONGOD_CLIENT_H

/* The number in $PERSISTOR_MONGOD_DIR/<name> ("port", "control_port"),
 * or 0 when it cannot be read. */
int mongod_read_int(const char *name);

/* Send one control command (printf-style, without the newline) and return
 * the reply line ("ok...", "error ..."), in a static buffer overwritten by
 * the next call.  Bounded: 60 s to answer. */
const char *mongod_control(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
