package vsync

import "fmt"

// List returns a folder's listing in UID order, with paths and sizes
// (for tests: the view lists names only, see Names).
func (e *Engine) List(folderName string) ([]Entry, error) {
	e.lockOpAny()
	defer e.op.Unlock()
	f := e.folders[folderName]
	if f == nil {
		return nil, fmt.Errorf("no folder %q", folderName)
	}
	out := make([]Entry, 0, f.t.len())
	f.t.ascend(func(v *vent) bool {
		out = append(out, v.entry())
		return true
	})
	return out, nil
}
