#!/bin/sh
# start.sh RUN_DIR — start the mock mongod in the background, wait (at most
# 20 s) until it has written RUN_DIR/port and its wire port accepts.
# A server left in RUN_DIR by an earlier run is stopped first.
set -eu
dir=${1:?usage: start.sh RUN_DIR}
here=$(cd "$(dirname "$0")" && pwd)
py=${PERSISTOR_MOCK_PYTHON:-/usr/bin/python3}
mkdir -p "$dir"
"$here/stop.sh" "$dir" >/dev/null 2>&1 || true
rm -f "$dir/port" "$dir/control_port" "$dir/pid"
# Every descriptor away from ctest's pipes, or ctest waits for the server.
# --idle-timeout: a server nobody stops (an interrupted ctest) exits by
# itself after 15 idle minutes.
setsid "$py" "$here/server.py" --dir "$dir" --idle-timeout 900 \
    </dev/null >>"$dir/server.out" 2>&1 &
i=0
while [ $i -lt 200 ]; do
  if [ -s "$dir/port" ] && [ -s "$dir/control_port" ] && [ -s "$dir/pid" ]; then
    port=$(cat "$dir/port")
    if "$py" -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1).close()" "$port" 2>/dev/null; then
      echo "mock mongod: pid $(cat "$dir/pid"), wire 127.0.0.1:$port, control 127.0.0.1:$(cat "$dir/control_port")"
      exit 0
    fi
  fi
  sleep 0.1
  i=$((i + 1))
done
echo "mock mongod did not start within 20 s; $dir/server.out says:" >&2
tail -n 30 "$dir/server.out" >&2 || true
tail -n 30 "$dir/server.log" >&2 || true
exit 1
