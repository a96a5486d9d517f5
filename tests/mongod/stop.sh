#!/bin/sh
# stop.sh RUN_DIR — stop the mock mongod of RUN_DIR: control `shutdown`,
# then SIGTERM, then SIGKILL, each wait bounded (at most ~8 s in all).
set -u
dir=${1:?usage: stop.sh RUN_DIR}
py=${PERSISTOR_MOCK_PYTHON:-/usr/bin/python3}
[ -s "$dir/pid" ] || { echo "mock mongod: not running in $dir"; exit 0; }
pid=$(cat "$dir/pid")
# Only ever signal our own server, not whatever reused the pid.
ours() { kill -0 "$pid" 2>/dev/null && grep -q 'tests/mongod/server.py' "/proc/$pid/cmdline" 2>/dev/null; }
waitgone() {  # $1: tenths of a second
  n=0
  while [ $n -lt "$1" ]; do ours || return 0; sleep 0.1; n=$((n + 1)); done
  return 1
}
if [ -s "$dir/control_port" ]; then
  "$py" - "$(cat "$dir/control_port")" <<'PY' 2>/dev/null || true
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 2)
s.settimeout(2)
s.sendall(b"shutdown\n")
s.recv(100)
PY
fi
if ! waitgone 30; then
  echo "mock mongod: no exit after shutdown; SIGTERM $pid"
  kill -TERM "$pid" 2>/dev/null || true
  if ! waitgone 30; then
    echo "mock mongod: still alive; SIGKILL $pid"
    kill -KILL "$pid" 2>/dev/null || true
    waitgone 20 || { echo "mock mongod: $pid would not die" >&2; exit 1; }
  fi
fi
rm -f "$dir/port" "$dir/control_port" "$dir/pid"
echo "mock mongod: stopped"
