# Shared by cluster.sh and realnode/up.sh: background processes and waiting with a deadline.
# The caller sets $state (a directory with logs/ and pids/).

wait_for() { # description seconds command...
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      printf '>> timed out after %ss waiting for %s; logs in %s/logs\n' "$secs" "$what" "$state" >&2
      tail -n 25 "$state"/logs/*.log >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

# The daemons do not inherit fd 9, cluster.sh's lock: holding it, they would block every
# later `cluster.sh up` (the test session's own, after `make test`'s) for ever.
start() { # name command...
  local name=$1; shift
  setsid "$@" >>"$state/logs/$name.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$state/pids/$name.pid"
}
