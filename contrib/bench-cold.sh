#!/usr/bin/env bash
# A cold index, whole: for each run a fresh state and the page cache
# dropped, then `vmfs mount -v` until the background work is done (the
# index written, sizes and dates read), for comparing builds in one run.
# Each line: time until "mounted", until `ls -f Unread/cur` has listed, the
# background commit's time, when Fill finished (from the start), and the
# daemon's peak RSS (GNU time's maximum resident set, unmount included).
# contrib/bench-mount.sh measures the peak 3 s after the listing, which at
# 1,000,000 messages is before most of the background work.
#
#   contrib/bench-cold.sh BACKEND RUNS VMFS [VMFS…]
#   e.g. vmfs demo -n 1000000 /tmp/c1m
#        contrib/bench-cold.sh /tmp/c1m 2 /tmp/vmfs-old /tmp/vmfs-new
#
# Runs alternate between the binaries. Root only (drop_caches), needs fuse3
# and GNU time. For big backends only (a demo of 100,000 or more): it waits
# for the log lines of a background commit and of Fill, which a small sync
# does not write.
set -euo pipefail
root=$1 runs=$2
shift 2
work=$(mktemp -d /tmp/vmfs-bench.XXXX)
trap 'rm -rf "$work"' EXIT
ms() { echo $((($(date +%s%N) - $1) / 1000000)); }

one() { # one BIN
	local bin=$1 mnt=$work/mnt log=$work/log start pid mounted listed fill
	rm -rf "$work/state"
	mkdir -p "$mnt"
	sync
	echo 3 >/proc/sys/vm/drop_caches
	start=$(date +%s%N)
	XDG_CONFIG_HOME=/nonexistent /usr/bin/time -f %M -o "$work/rss" "$bin" mount -v --state "$work/state" "$root" "$mnt" 2>"$log" &
	pid=$!
	until grep -q 'msg=mounted' "$log"; do
		kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
		sleep 0.01
	done
	mounted=$(ms "$start")
	ls -f "$mnt/Unread/cur" >/dev/null
	listed=$(ms "$start")
	until grep -q 'sync committed' "$log"; do sleep 0.1; done
	until grep -q 'sizes and dates read' "$log"; do sleep 0.1; done
	fill=$(ms "$start")
	sleep 2
	fusermount3 -u "$mnt"
	wait $pid || true
	printf '%-24s mounted %6d ms  listed %6d ms  commit %-14s Fill done %6d ms  peak %4d MB\n' "$bin" "$mounted" "$listed" \
		"$(grep -o 'sync committed" took=[0-9.]*[a-zµ]*' "$log" | cut -d= -f2)" "$fill" $(($(cat "$work/rss") / 1024))
}

for i in $(seq 1 "$runs"); do
	for bin in "$@"; do
		one "$bin"
	done
done
