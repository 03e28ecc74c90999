#!/usr/bin/env bash
# Whole-process figures of a mount, for comparing two builds in one run:
# the time from `vmfs mount` until Unread lists every unseen message of the
# backend (cold: fresh state, page cache dropped; warm: a remount of that
# state), and the daemon's peak RSS (GNU time's maximum resident set, 3 s
# after the listing is complete, so that Fill's sizes and dates count).
#
#   contrib/bench-mount.sh BACKEND RUNS VMFS [VMFS…]
#   e.g. vmfs demo -n 100000 /tmp/c100k
#        contrib/bench-mount.sh /tmp/c100k 3 /tmp/vmfs-old /tmp/vmfs-new
#
# Runs alternate between the binaries; each line is one run. Root only
# (drop_caches), needs fuse3, GNU time and bc.
set -euo pipefail
root=$1 runs=$2
shift 2
work=$(mktemp -d /tmp/vmfs-bench.XXXX)
trap 'rm -rf "$work"' EXIT
want=$(find "$root" \( -path '*/.Trash/*' -o -path '*/.Junk/*' -o -path '*/.Spam/*' \) -prune -o \
	\( -path '*/cur/*' -o -path '*/new/*' \) -type f -print | grep -vc ':2,[A-Za-z]*S' || true)

one() { # one BIN STATE MODE
	local bin=$1 state=$2 mode=$3 mnt start end pid n
	mnt=$(mktemp -d "$work/mnt.XXXX")
	if [ "$mode" = cold ]; then
		rm -rf "$state"
		sync
		echo 3 >/proc/sys/vm/drop_caches
	fi
	start=$(date +%s.%N)
	XDG_CONFIG_HOME=/nonexistent /usr/bin/time -f %M -o "$work/rss" "$bin" mount --state "$state" "$root" "$mnt" 2>"$work/log" &
	pid=$!
	while :; do
		n=$( (ls -f "$mnt/Unread/cur" "$mnt/Unread/new" 2>/dev/null || true) | grep -c '\.vmfs' || true)
		[ "$n" -ge "$want" ] && break
		kill -0 $pid 2>/dev/null || { cat "$work/log" >&2; exit 1; }
		sleep 0.002
	done
	end=$(date +%s.%N)
	sleep 3
	fusermount3 -u "$mnt"
	wait $pid || true
	printf '%-5s %-24s %6.3f s  %4d MB\n' "$mode" "$bin" "$(echo "$end - $start" | bc)" $(($(cat "$work/rss") / 1024))
}

echo "Unread: $want messages"
for i in $(seq 1 "$runs"); do
	for bin in "$@"; do
		state="$work/state-$(basename "$bin")"
		one "$bin" "$state" cold
		one "$bin" "$state" warm
	done
done
