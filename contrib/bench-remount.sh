#!/usr/bin/env bash
# Warm remounts of one settled state, for comparing builds in one run:
# each binary gets its own copy of STATE (made by any build; a build that
# cannot read the snapshot loads the index key by key on its first, unmeasured,
# mount), then runs alternate. Each line: time until the daemon logs
# "mounted", until `ls -f Unread/cur` has listed, peak RSS (GNU time), and
# the garbage collections before "mounted" (GODEBUG=gctrace=1).
#
#   contrib/bench-remount.sh BACKEND STATE RUNS VMFS [VMFS…]
#   e.g. vmfs demo -n 1000000 /tmp/c1m
#        vmfs mount --state /tmp/st1m /tmp/c1m /mnt   (then fusermount3 -u /mnt)
#        contrib/bench-remount.sh /tmp/c1m /tmp/st1m 3 /tmp/vmfs-old /tmp/vmfs-new
#
# Root only (it runs the daemon as root), needs fuse3 and GNU time.
set -euo pipefail
root=$1 state=$2 runs=$3
shift 3
work=$(mktemp -d /tmp/vmfs-remount.XXXX)
trap 'rm -rf "$work"' EXIT

one() { # one BIN STATE → one line
	local bin=$1 st=$2 mnt pid s m e n
	mnt=$(mktemp -d "$work/mnt.XXXX")
	s=$(date +%s%N)
	GODEBUG=gctrace=1 XDG_CONFIG_HOME=/nonexistent /usr/bin/time -f %M -o "$work/rss" \
		"$bin" mount -v --state "$st" "$root" "$mnt" 2>"$work/log" &
	pid=$!
	until grep -q msg=mounted "$work/log"; do
		kill -0 $pid 2>/dev/null || { cat "$work/log" >&2; exit 1; }
		sleep 0.005
	done
	m=$(date +%s%N)
	n=$(ls -f "$mnt/Unread/cur" | wc -l)
	e=$(date +%s%N)
	sleep 1
	fusermount3 -u "$mnt"
	wait $pid || true
	printf '%-24s mounted %5d ms  listed %6d at %5d ms  peak %4d MB  %2d GCs before mounted\n' \
		"$(basename "$bin")" $(((m - s) / 1000000)) "$n" $(((e - s) / 1000000)) \
		$(($(cat "$work/rss") / 1024)) "$(awk '/msg=mounted/{exit} /^gc /{n++} END{print n+0}' "$work/log")"
}

for bin in "$@"; do
	cp -a "$state" "$work/state-$(basename "$bin")"
	one "$bin" "$work/state-$(basename "$bin")" >/dev/null # settles it for this build
done
for i in $(seq 1 "$runs"); do
	for bin in "$@"; do
		one "$bin" "$work/state-$(basename "$bin")"
	done
done
