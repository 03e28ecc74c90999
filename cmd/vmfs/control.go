package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"vmfs/index"
	"vmfs/internal/query"
	"vmfs/vsync"
)

// The control socket lets `vmfs ls` and `vmfs expunge` talk to a running
// vmfs: one JSON request per connection, one JSON answer.
const controlSocket = "control.sock"

type controlRequest struct {
	Cmd    string `json:"cmd"` // "ls", "expunge" or "search"
	Folder string `json:"folder,omitempty"`
	Query  string `json:"query,omitempty"`
}

type controlResponse struct {
	Error   string              `json:"error,omitempty"`
	Folders []vsync.FolderStats `json:"folders,omitempty"`
	Hits    []vsync.SearchHit   `json:"hits,omitempty"`
	// NotIndexed: the index does not hold what the query needs (search).
	NotIndexed bool `json:"not_indexed,omitempty"`
}

// serveControl answers control requests until ctx ends.
func serveControl(ctx context.Context, state string, eng *vsync.Engine) (func(), error) {
	p := filepath.Join(state, controlSocket)
	os.Remove(p) // a stale socket of a dead vmfs; the index lock proves none runs
	l, err := net.Listen("unix", p)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	os.Chmod(p, 0o600)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var req controlRequest
				if err := json.NewDecoder(bufio.NewReader(io.LimitReader(c, 1<<16))).Decode(&req); err != nil {
					json.NewEncoder(c).Encode(controlResponse{Error: "bad request: " + err.Error()})
					return
				}
				json.NewEncoder(c).Encode(handleControl(eng, req))
			}()
		}
	}()
	return func() { l.Close(); os.Remove(p) }, nil
}

func handleControl(eng *vsync.Engine, req controlRequest) controlResponse {
	switch req.Cmd {
	case "ls":
		return controlResponse{Folders: eng.Stats()}
	case "expunge":
		if err := eng.Expunge(req.Folder); err != nil {
			return controlResponse{Error: err.Error()}
		}
		slog.Info("expunged", "folder", req.Folder)
		return controlResponse{Folders: eng.Stats()}
	case "search":
		q, err := query.Compile(req.Query)
		if err != nil {
			return controlResponse{Error: err.Error()}
		}
		hits, err := eng.Search(q, time.Now())
		if errors.Is(err, vsync.ErrNotIndexed) {
			return controlResponse{Error: err.Error(), NotIndexed: true}
		}
		if err != nil {
			return controlResponse{Error: err.Error()}
		}
		return controlResponse{Hits: hits}
	}
	return controlResponse{Error: fmt.Sprintf("unknown command %q", req.Cmd)}
}

// control sends a request to the running vmfs of a state directory, or,
// when none runs, carries it out on the index directly.
func control(ctx context.Context, cfg *config, root string, req controlRequest) (controlResponse, error) {
	state := stateFor(cfg.State, root)
	c, err := net.Dial("unix", filepath.Join(state, controlSocket))
	if err == nil {
		defer c.Close()
		if err := json.NewEncoder(c).Encode(req); err != nil {
			return controlResponse{}, err
		}
		var resp controlResponse
		if err := json.NewDecoder(c).Decode(&resp); err != nil {
			return controlResponse{}, fmt.Errorf("control socket: %w", err)
		}
		return resp, nil
	}
	if _, serr := os.Stat(filepath.Join(state, "index")); serr != nil {
		return controlResponse{}, fmt.Errorf("no index for %s in %s: mount it once first", root, cfg.State)
	}
	folders, _, err := withSearches(cfg.Folders, state)
	if err != nil {
		return controlResponse{}, err
	}
	eng, err := vsync.Open(filepath.Join(state, "index"), vsync.Config{Root: root, Folders: folders, Linger: cfg.Linger, Inspect: true})
	if errors.Is(err, index.ErrLocked) {
		return controlResponse{}, fmt.Errorf("a vmfs is running on %s but its control socket does not answer", state)
	}
	if err != nil {
		return controlResponse{}, err
	}
	defer eng.Close()
	return handleControl(eng, req), nil
}

// rootAndConfig resolves the configuration and the backend root of the
// ls and expunge commands.
func rootAndConfig(cfgPath, virtualDir, maildirArg string) (*config, string, error) {
	cfg, err := userConfig(cfgPath, virtualDir)
	if err != nil {
		return nil, "", err
	}
	root := cfg.Maildir
	if maildirArg != "" {
		root = maildirArg
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, "", err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	return cfg, abs, nil
}

func runLs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ls", "[--config F] [--virtual-dir D] [--state D] [MAILDIR]",
		"List the virtual folders with their message counts, from the running vmfs or from the index.\nExample: vmfs ls ~/Mail", stderr)
	cfgPath := fs.String("config", "", "configuration file")
	virtualDir := fs.String("virtual-dir", "", "also the folders of every DIR/<Name>/dovecot-virtual, as in vmfs mount")
	state := fs.String("state", "", "state directory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usageErr("want [MAILDIR]")
	}
	cfg, root, err := rootAndConfig(*cfgPath, *virtualDir, fs.Arg(0))
	if err != nil {
		return err
	}
	if *state != "" {
		cfg.State = *state
	}
	resp, err := control(ctx, cfg, root, controlRequest{Cmd: "ls"})
	if err != nil {
		return err
	}
	if resp.Error != "" {
		return errors.New(resp.Error)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FOLDER\tMESSAGES\tLINGERING")
	for _, f := range resp.Folders {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", f.Name, f.Messages, f.Lingering)
	}
	return tw.Flush()
}

func runExpunge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("expunge", "[--config F] [--virtual-dir D] [--state D] [--maildir M] FOLDER",
		"Drop at once the messages of FOLDER that no longer match its query (they otherwise stay\nlisted until their linger ends), like reopening a mailbox in Dovecot.\nExample: vmfs expunge Unread", stderr)
	cfgPath := fs.String("config", "", "configuration file")
	virtualDir := fs.String("virtual-dir", "", "also the folders of every DIR/<Name>/dovecot-virtual, as in vmfs mount")
	state := fs.String("state", "", "state directory")
	md := fs.String("maildir", "", "backend root (default from the configuration)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr("want FOLDER")
	}
	cfg, root, err := rootAndConfig(*cfgPath, *virtualDir, *md)
	if err != nil {
		return err
	}
	if *state != "" {
		cfg.State = *state
	}
	resp, err := control(ctx, cfg, root, controlRequest{Cmd: "expunge", Folder: fs.Arg(0)})
	if err != nil {
		return err
	}
	if resp.Error != "" {
		return errors.New(resp.Error)
	}
	for _, f := range resp.Folders {
		if f.Name == fs.Arg(0) {
			fmt.Fprintf(stdout, "%s: %d messages\n", f.Name, f.Messages)
		}
	}
	return nil
}
