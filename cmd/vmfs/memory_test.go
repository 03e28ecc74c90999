package main

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// TestAfterEachGC: the hook runs after each collection, and no more once
// its context ends.
func TestAfterEachGC(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan struct{}, 100)
	afterEachGC(ctx, func() { calls <- struct{}{} })
	for i := 0; i < 3; i++ {
		runtime.GC()
		select {
		case <-calls:
		case <-time.After(10 * time.Second):
			t.Fatalf("no call after collection %d", i+1)
		}
	}
	cancel()
	runtime.GC()
	runtime.GC()
	time.Sleep(100 * time.Millisecond)
	for len(calls) > 0 {
		<-calls
	}
	runtime.GC()
	time.Sleep(100 * time.Millisecond)
	if n := len(calls); n != 0 {
		t.Errorf("%d calls after the context ended", n)
	}
}
