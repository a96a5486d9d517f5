#!/bin/sh
# with-port.sh CMD ARGS... — run CMD with every @PORT@ in ARGS replaced by
# the mock mongod's wire port ($PERSISTOR_MONGOD_DIR/port).
set -eu
: "${PERSISTOR_MONGOD_DIR:?with-port.sh: PERSISTOR_MONGOD_DIR is not set (persistor_use_mongod)}"
portfile=$PERSISTOR_MONGOD_DIR/port
[ -s "$portfile" ] || { echo "with-port.sh: no $portfile: is the mongod fixture running?" >&2; exit 1; }
port=$(cat "$portfile")
[ $# -ge 1 ] || { echo "usage: with-port.sh CMD ARGS..." >&2; exit 2; }
n=$#
i=0
while [ $i -lt $n ]; do
  a=$1
  shift
  out=
  while :; do
    case $a in
      *@PORT@*) out=$out${a%%@PORT@*}$port; a=${a#*@PORT@} ;;
      *) out=$out$a; break ;;
    esac
  done
  set -- "$@" "$out"
  i=$((i + 1))
done
exec "$@"
