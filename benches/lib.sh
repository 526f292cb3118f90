# Shell functions shared by the bench scripts (sourced by run.sh and repl.sh).

# wait_ready FILE PID LOG TRIES PAUSE EXITED UNREADY: waits for the server PID
# to write its ready file FILE, looking TRIES times, PAUSE seconds apart. When
# the server dies first, prints its LOG and the message EXITED and exits the
# script; when FILE is still missing after the last look, prints UNREADY and
# exits.
wait_ready() {
    local file=$1 pid=$2 log=$3 tries=$4 pause=$5 exited=$6 unready=$7
    for _ in $(seq 1 "$tries"); do
        [[ -s $file ]] && break
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "$exited" >&2; exit 1; }
        sleep "$pause"
    done
    [[ -s $file ]] || { echo "$unready" >&2; exit 1; }
}
