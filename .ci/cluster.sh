#!/bin/bash
# make cluster: three krappyd nodes on this machine, one cluster.
#
#   node   data port        admin port (console)   raft port   data
#   1      127.0.0.1:7070   127.0.0.1:7071         7072        ./data/node-1
#   2      127.0.0.1:7170   127.0.0.1:7171         7172        ./data/node-2
#   3      127.0.0.1:7270   127.0.0.1:7271         7272        ./data/node-3
#
# Their logs come out here, each line led by its node. Ctrl-C stops all
# three (the leader hands over first). KRAPPYD picks the binary, KRAPPY_DATA
# the parent of the node directories.
set -u

bin=${KRAPPYD:-./bin/krappyd}
data=${KRAPPY_DATA:-./data}
peers="1=127.0.0.1:7072,2=127.0.0.1:7172,3=127.0.0.1:7272"
pids=""

stop() {
    trap - INT TERM
    [ -n "$pids" ] && kill -TERM $pids 2>/dev/null
    wait
}
trap stop INT TERM

for n in 1 2 3; do
    base=$((7070 + 100 * (n - 1)))
    mkdir -p "$data/node-$n"
    "$bin" --node-id "$n" --peers "$peers" --raft-listen "127.0.0.1:$((base + 2))" \
        --listen "127.0.0.1:$base" --http "127.0.0.1:$((base + 1))" \
        --data "$data/node-$n" --log-format text \
        > >(trap "" INT TERM; exec sed -u "s/^/node-$n | /") 2>&1 &
    pids="$pids $!"
done

# Ready once a leader is known and each node caught up (its /readyz).
for _ in $(seq 1 300); do
    ready=0
    for n in 1 2 3; do
        curl -sf "http://127.0.0.1:$((7071 + 100 * (n - 1)))/readyz" >/dev/null 2>&1 &&
            ready=$((ready + 1))
    done
    [ "$ready" -eq 3 ] && break
    kill -0 $pids 2>/dev/null || break
    sleep 0.2
done
if [ "${ready:-0}" -eq 3 ]; then
    echo "make cluster: three nodes are ready; clients: -h 127.0.0.1:7070,127.0.0.1:7170,127.0.0.1:7270"
    echo "make cluster: bin/krappy -h 127.0.0.1:7070,127.0.0.1:7170,127.0.0.1:7270 cluster"
    echo "make cluster: the console (any node) at http://127.0.0.1:7071/ (Ctrl-C stops all three)"
else
    echo "make cluster: the nodes did not all become ready; see their lines above" >&2
fi
wait
