#!/bin/sh
# mongodb-real.sh CONFORMANCE ADAPTER.so — the conformance suite against a
# real MongoDB named by $PERSISTOR_TEST_MONGODB_URI, each case in a fresh
# database conf_<random>; skipped (exit 77) when the variable is unset.
set -eu
if [ -z "${PERSISTOR_TEST_MONGODB_URI:-}" ]; then
  echo "SKIPPED: PERSISTOR_TEST_MONGODB_URI is not set"
  exit 77
fi
[ $# -eq 2 ] || { echo "usage: mongodb-real.sh CONFORMANCE ADAPTER.so" >&2; exit 2; }
exec "$1" -o "uri=$PERSISTOR_TEST_MONGODB_URI" -o 'database=conf_{unique}' "$2"
