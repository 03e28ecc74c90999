package vsync

import (
	"fmt"
	"sort"
)

// List returns a folder's listing in UID order, with paths and sizes
// (for tests: the view lists names only, see Names).
func (e *Engine) List(folderName string) ([]Entry, error) {
	e.lockOpAny()
	defer e.op.Unlock()
	f := e.folders[folderName]
	if f == nil {
		return nil, fmt.Errorf("no folder %q", folderName)
	}
	out := make([]Entry, 0, len(f.members))
	for k, mem := range f.members {
		m := e.msgs[k.mailbox][k.base]
		if m == nil {
			continue
		}
		out = append(out, e.entry(f, mem, m))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UID < out[j].UID })
	return out, nil
}
