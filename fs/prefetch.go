package fs

import (
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"vmfs/internal/maildir"
	"vmfs/vsync"
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
	last  uint32 // UID of the message last asked for
	ahead uint32 // the messages up to this UID were handed to the prefetchers
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
// daemon: it queues the next messages of the listing (UID order) that were
// not queued yet. A client that goes back starts the window again.
func (d *msgDir) readAheadOf(vbase string) {
	jobs := d.fd.root.prefetchJobs
	if jobs == nil {
		return
	}
	v, err := d.eng().View(d.folder())
	if err != nil {
		return
	}
	uid, ok := v.UIDOf(vbase)
	if !ok {
		return
	}
	p := &d.pf
	p.mu.Lock()
	defer p.mu.Unlock()
	if uid < p.last || uid >= p.ahead {
		p.ahead = uid
	}
	p.last = uid
	n := 0
	v.Scan(uid, d.isNew, func(e vsync.NameEntry) bool {
		if n++; n > readAhead {
			return false
		}
		if e.UID <= p.ahead {
			return true
		}
		select {
		case jobs <- prefetchJob{d.folder(), maildir.BaseOf(e.Name)}:
			p.ahead = e.UID
			return true
		default:
			return false // the prefetchers are behind: the client catches up
		}
	})
}
