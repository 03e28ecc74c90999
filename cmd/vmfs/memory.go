package main

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The daemon holds every backend message's record in memory, and garbage
// from a sync (directory listings, index batches, Badger's table builds)
// comes in bursts. With Go's default GOGC=100 the heap may grow to twice
// what is live before a collection, and the memory stays with the process
// afterwards. governMemory sets a soft memory limit of what is live plus a
// margin, adjusted every second as the index grows or shrinks, so that
// the resident size follows the live data (SPEC §9: memory stays bounded).
// A GOMEMLIMIT in the environment is the user's choice and is left alone.

const (
	memFloor  = 96 << 20 // never limit below this: small backends need no tuning
	memMargin = 32 << 20 // room for a sync's garbage above what is live
)

func governMemory(ctx context.Context) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	set := func() {
		metrics.Read(sample)
		live := int64(0)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			live = int64(sample[0].Value.Uint64())
		}
		debug.SetMemoryLimit(max(memFloor, live+live/4+memMargin))
	}
	set()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			set()
		}
	}
}
