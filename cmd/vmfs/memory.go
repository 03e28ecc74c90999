package main

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
)

// The daemon holds every backend message's record in memory, and garbage
// from a sync (directory listings, index batches, Badger's table builds)
// comes in bursts. With Go's default GOGC=100 the heap may grow to twice
// what is live before a collection, and the memory stays with the process
// afterwards. governMemory sets a soft memory limit of what is live plus a
// margin, set anew after every collection, so that the resident size
// follows the live data (SPEC §9: memory stays bounded). It is set after
// each collection, not on a clock: while the live data grows fast (the
// first sync builds every folder's listing) a limit computed from what was
// live a second before made the collector run back to back (13 times in
// the first 4 s of a remount at 1,000,000 messages, against 5).
// A GOMEMLIMIT in the environment is the user's choice and is left alone.

const (
	memFloor  = 96 << 20 // never limit below this: small backends need no tuning
	memMargin = 32 << 20 // room for a sync's garbage above what is live
	// buildGCPercent is GOGC while the index is built (a cold index, the
	// first Fill): the heap may grow to 1.5 times what is live, not Go's
	// 2 (a cold index of 100,000 messages peaked at 99-103 MB with 100,
	// at 84-92 MB with 50, as fast). Afterwards Go's default: a search
	// that reads every body makes garbage fast, and with 50 it took 15 %
	// longer and lookups meanwhile waited longer (p99 0.8 ms against
	// 0.3). Big heaps are held by the limit anyway.
	buildGCPercent = 50
	runGCPercent   = 100
)

// governMemory keeps the memory limit until ctx ends. Until loading is
// closed (the index is loaded) the collector runs only when the heap
// reaches that limit (GOGC off): loading a snapshot builds what stays
// live, and collections at 4, 8, 16, 32 MB… found next to no garbage (3-4
// of them before a warm mount at 100,000 messages). After that GOGC is
// buildGCPercent until built is closed (the index is complete), then
// runGCPercent. A GOGC in the environment is left alone too.
// peakProfile, if not empty, is a file that receives a heap profile
// whenever a collection finds more live than any before (VMFS_MEMPROFILE_PEAK).
func governMemory(ctx context.Context, loading, built <-chan struct{}, peakProfile string) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	peak, last := int64(0), int64(0)
	set := func() {
		metrics.Read(sample)
		live := int64(0)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			live = int64(sample[0].Value.Uint64())
		}
		debug.SetMemoryLimit(limitFor(live, last))
		last = live
		if peakProfile != "" && live > peak {
			peak = live
			if f, err := os.Create(peakProfile); err == nil {
				pprof.Lookup("heap").WriteTo(f, 0) // as of the collection that just ended
				f.Close()
			}
		}
	}
	set()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(-1)
		go func() {
			for _, next := range []struct {
				until <-chan struct{}
				gogc  int
			}{{loading, buildGCPercent}, {built, runGCPercent}} {
				select {
				case <-next.until:
				case <-ctx.Done():
					return
				}
				debug.SetGCPercent(next.gogc)
			}
		}()
	}
	afterEachGC(ctx, set)
	<-ctx.Done()
}

// limitFor is the memory limit after a collection that found live bytes
// live, the one before it last: what is live, plus room for as much again
// as it grew since (while the first sync builds every listing, a limit
// with less room made the collector run back to back), but at least an
// eighth of it, plus a margin for a sync's garbage. A quarter of what is
// live, always, kept the peak of a cold index of 1,000,000 messages 40-50
// MB higher (346-350 MB against 298-309), after the live data had stopped
// growing.
func limitFor(live, last int64) int64 {
	return max(memFloor, live+max(live/8, live-last)+memMargin)
}

// afterEachGC calls f after every garbage collection until ctx ends: a
// sentinel object's finalizer runs once the collection that found it
// unreachable is over, and arms the next one. Finalizers run one at a time
// on the runtime's finalizer goroutine.
func afterEachGC(ctx context.Context, f func()) {
	// A sentinel is not a tiny pointer-free object: those share blocks,
	// and their finalizers may never run.
	var arm func()
	arm = func() {
		runtime.SetFinalizer(new(gcSentinel), func(*gcSentinel) {
			if ctx.Err() != nil {
				return
			}
			f()
			arm()
		})
	}
	arm()
}

type gcSentinel struct {
	_ *byte
	_ [8]byte
}
