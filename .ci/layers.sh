#!/bin/sh
# The layers of src/ and what each may include (`make lint` runs this).
#
#   sh .ci/layers.sh        prints every upward include as FILE:LINE and the
#                           rule it breaks; exits 1 when there is one
#
# The arrows run one way (docs/DESIGN.md): util <- proto <- client;
# util <- store <- cluster <- server; kafka is a codec on util and proto.
# "krappy" is include/krappy/, the public headers. An include without a
# folder ("x.h") is the file's own layer. A folder of src/ without a rule
# here is an error too: a new layer starts with its line below. And one
# private header: client/client_internal.h, for libkrappy's files only.
set -eu
cd "$(dirname "$0")/.."

# layer: the folders its files may include
rules='
util:    util
proto:   proto util krappy
store:   store proto util krappy
kafka:   kafka proto util krappy
cluster: cluster store proto util krappy
client:  client proto util krappy
server:  server cluster kafka store proto util krappy
'

status=0
for dir in src/*/; do
    layer=$(basename "$dir")
    allowed=$(printf '%s\n' "$rules" | sed -n "s/^$layer:[[:space:]]*//p")
    if [ -z "$allowed" ]; then
        echo "$dir: no layer rule for src/$layer in .ci/layers.sh" >&2
        status=1
        continue
    fi
    # FILE:LINE:FOLDER for every #include "FOLDER/x.h" (FOLDER empty for "x.h")
    bad=$(grep -Hn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$dir"*.[ch] 2>/dev/null |
        sed 's/^\([^:]*:[0-9]*\):[^"]*"\([^"]*\)".*/\1:\2/' |
        awk -F: -v allowed=" $allowed " -v layer="$layer" '{
            n = split($3, part, "/")
            folder = n > 1 ? part[1] : layer
            if (index(allowed, " " folder " ") == 0)
                printf "%s:%s: includes \"%s\": src/%s may include only %s\n", $1, $2, $3, layer, substr(allowed, 2, length(allowed) - 2)
        }')
    if [ -n "$bad" ]; then
        printf '%s\n' "$bad" >&2
        status=1
    fi
done

# The inside of a krappy_client is libkrappy's alone: the CLI (cli*.c) and
# the tests see the opaque handle of the public header.
bad=$(grep -Hn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"client/client_internal.h"' \
    src/client/cli.[ch] src/client/cli_*.[ch] tests/*.[ch] tests/fuzz/*.[ch] e2e/*.[ch] \
    e2e/bench/*.c e2e/bench/vs/*.[ch] 2>/dev/null | cut -d: -f1,2 || true)
for at in $bad; do
    echo "$at: includes \"client/client_internal.h\": it is private to libkrappy's own files" >&2
    status=1
done

[ "$status" -eq 0 ] || echo "layers: includes that break the rules of .ci/layers.sh, listed above" >&2
exit $status
