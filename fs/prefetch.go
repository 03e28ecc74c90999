package fs

import (
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"vmfs/internal/maildir"
)

// Reading ahead of a client that opens a folder's messages one by one
// (neomutt, mutt, mblaze and cat do, in listing or name order, which here
// are both chronological): when the kernel asks for a message that is not
// in its cache (a LOOKUP, or a READ), the backend files of the next
// messages of the listing are opened and their contents asked for
// (FADV_WILLNEED) by a few goroutines at once. The client, one file at a
// time, then finds them in the page cache: a cold message otherwise waits
// for its disk read inside a FUSE round trip.
const (
	readAhead      = 32 // messages beyond the one asked for
	prefetchers    = 4  // backend files opened at once
	prefetchQueued = 256
)

// prefetch is one directory's read-ahead state.
type prefetch struct {
	mu    sync.Mutex
	gen   uint64         // the listing generation order belongs to
	order []string       // virtual base names in listing order
	pos   map[string]int // index in order
	ahead int            // order[:ahead] was handed to the prefetchers
}

type prefetchJob struct{ folder, vbase string }

// startPrefetchers starts the goroutines that open backend files ahead of
// clients; they live as long as the process.
func (r *Root) startPrefetchers() {
	r.prefetchJobs = make(chan prefetchJob, prefetchQueued)
	for i := 0; i < prefetchers; i++ {
		go func() {
			for j := range r.prefetchJobs {
				e, err := r.eng.Get(j.folder, j.vbase)
				if err != nil {
					continue
				}
				fd, err := maildir.OpenRegular(e.Path)
				if err != nil {
					continue
				}
				unix.Fadvise(fd, 0, 0, unix.FADV_WILLNEED)
				syscall.Close(fd)
			}
		}()
	}
}

// readAheadOf is told that the kernel wants vbase of directory d from the
// daemon: it queues the messages after it in the listing that were not
// queued yet.
func (d *msgDir) readAheadOf(vbase string) {
	jobs := d.fd.root.prefetchJobs
	if jobs == nil {
		return
	}
	p := &d.pf
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen := d.eng().Gen(d.folder()); p.order == nil || gen != p.gen {
		l, lgen, err := d.eng().Names(d.folder())
		if err != nil {
			return
		}
		p.gen, p.order, p.pos, p.ahead = lgen, p.order[:0], map[string]int{}, 0
		for _, e := range l {
			if e.New == d.isNew {
				b := maildir.BaseOf(e.Name)
				p.pos[b] = len(p.order)
				p.order = append(p.order, b)
			}
		}
	}
	i, ok := p.pos[vbase]
	if !ok {
		return
	}
	if i+1 > p.ahead || i+readAhead < p.ahead-2*readAhead { // past the window, or the client went back
		p.ahead = i + 1
	}
	for ; p.ahead < len(p.order) && p.ahead <= i+readAhead; p.ahead++ {
		select {
		case jobs <- prefetchJob{d.folder(), p.order[p.ahead]}:
		default:
			return // the prefetchers are behind: the client catches up
		}
	}
}
