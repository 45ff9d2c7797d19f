# failed-tests.awk: from a `go test -v` log of parallel tests, print each failed top-level test's
# own lines, prefixed with its name. Give the log twice (awk -f failed-tests.awk LOG LOG): the
# first pass collects the failed tests, the second prints. A line belongs to the test named by
# the last "=== RUN/CONT/NAME/PAUSE" header before it; the server and emulator logs a failed
# test dumps ("==== last N lines of the … log" to "==== end of the … log") are left out.
NR == FNR { if (match($0, /^--- FAIL: [^ ]+/)) failed[substr($0, 11, RLENGTH - 10)] = 1; next }
/^=== (RUN|CONT|NAME|PAUSE) / { owner = $3; sub(/\/.*/, "", owner); next }
/^--- (PASS|FAIL|SKIP): / { owner = $3; sub(/\/.*/, "", owner) }
/^(ok|FAIL|PASS)([[:space:]]|$)/ { owner = "" }
!(owner in failed) { next }
/==== last [0-9]+ lines of the .* log/ { skipping = 1; print owner ": " $0 " [left out]"; next }
skipping { if (/==== end of the .* log ====/) skipping = 0; next }
{ n[owner]++; if (n[owner] <= 400) print owner ": " $0 }
