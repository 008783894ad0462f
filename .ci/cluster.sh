# Sourced by `make test-py`: the Dask cluster the cluster tests run on
# (tests/test_cluster*.py; mpgo.cluster). Self-contained:
#
#   cluster_start PY    start a scheduler and two workers on loopback with
#                       interpreter PY (`make deps` installs distributed), and
#                       export MPGO_TEST_CLUSTER (their address); a cluster
#                       started before is stopped first, since workers must
#                       run the tests' Python version
#   cluster_stop        stop it (it also dies with the shell that started
#                       it: tests/_cluster.py --watch)

_cluster_supervisor=

cluster_start() {
    local py=$1 out
    cluster_stop
    out=$(mktemp)
    PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}" \
        $py tests/_cluster.py --workers 2 --detach --watch $$ > "$out"
    for _ in $(seq 1200); do
        [ -s "$out" ] && break
        sleep 0.1
    done
    MPGO_TEST_CLUSTER=$($py -c 'import json,sys; print(json.load(open(sys.argv[1]))["address"])' "$out")
    _cluster_supervisor=$($py -c 'import json,sys; print(json.load(open(sys.argv[1]))["supervisor"])' "$out")
    rm -f "$out"
    export MPGO_TEST_CLUSTER
    echo "Dask test cluster at $MPGO_TEST_CLUSTER ($py)"
}

cluster_stop() {
    if [ -n "$_cluster_supervisor" ]; then
        kill -TERM "$_cluster_supervisor" 2>/dev/null || true
        # It goes last, once its resource trackers have unlinked what they
        # tracked (tests/_cluster.py): nothing of it outlives this.
        for _ in $(seq 100); do
            kill -0 "$_cluster_supervisor" 2>/dev/null || break
            sleep 0.1
        done
        _cluster_supervisor=
    fi
    unset MPGO_TEST_CLUSTER
}
