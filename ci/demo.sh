#!/bin/bash
# The demo: a 4-broker instance on this machine; a command on every rank, the KVS,
# and the state of the instance.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
unset FLUX_URI
flux start --test-size=4 sh -c '
echo "== flux uptime";             flux uptime
echo "== flux overlay status";     flux overlay status
echo "== flux exec -r all -l flux getattr rank"
flux exec -r all -l flux getattr rank | sort
echo "== flux kvs put demo.answer=42; flux kvs get demo.answer (from rank 3)"
flux kvs put demo.answer=42
flux exec -r 3 flux kvs get demo.answer
echo "== flux kvs eventlog append/get"
flux kvs eventlog append demo.log started "{\"by\":\"demo\"}"
flux kvs eventlog get demo.log
echo "== flux ping -c 3 -i 0.01 3"; flux ping -c 3 -i 0.01 3
echo "== flux run -N4 -n8 -l sh -c \"echo task \$FLUX_TASK_RANK of \$FLUX_JOB_SIZE on rank \$(flux getattr rank)\""
flux run -N4 -n8 -l sh -c "echo task \$FLUX_TASK_RANK of \$FLUX_JOB_SIZE on rank \$(flux getattr rank)" | sort -n
echo "== flux submit --cc=1-20 --quiet true; flux queue drain; flux jobs -a | head -4"
flux submit --cc=1-20 --quiet true; flux queue drain; flux jobs -a | head -4
echo "== flux run -n 1000 true   (does not fit: refused at submit)"
flux run -n 1000 true || true
'
echo "demo: done"
