package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"vmfs/internal/corpus"
)

// The same dovecot-virtual files, read by vmfs and by Dovecot's own virtual
// plugin over the same backend, must select the same backend messages.
var virtualDefs = map[string]string{
	"Unseen":     "-Trash\n-Junk\n*\n  unseen\n",
	"Flagged":    "*\n  flagged\n",
	"MultiRule":  "INBOX\n  seen\n\nLists.*\n  flagged\n",
	"Encoded":    "*\n  subject \"café\"\n",
	"FromMuller": "*\n  from \"müller\"\n",
	"Since":      "*\n  since 1-Jun-2026\n",
	"SentBefore": "*\n  sentbefore 1-Mar-2026\n",
	"OrNot":      "*\n  or flagged\n  not seen\n",
	"ListsGo":    "Lists.*\n  header List-Id golang\n",
	"Explicit":   "*\n  seen\nWork\n  unseen\n",
	"Excluded":   "-Lists.*\n-Trash\n*\n  answered\n",
	"Body":       "INBOX\nSent\n  body deploy\n",
	"Keyword":    "+*\n  keyword $Important\n",
	"Nested":     "Work.*\n  all\n",
}

func TestSameMembershipAsDovecotVirtual(t *testing.T) {
	doveadm, err := exec.LookPath("doveadm")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("doveadm not installed")
		}
		t.Skip("doveadm not installed")
	}
	top := t.TempDir()
	os.Chmod(top, 0o755)
	os.Chmod(filepath.Dir(top), 0o755)
	root := filepath.Join(top, "mail")
	if _, err := corpus.Generate(root, corpus.Options{Messages: 400, Mailboxes: 12, Seed: 21, CRLF: true}); err != nil {
		t.Fatal(err)
	}
	vdir := filepath.Join(top, "virtual")
	for name, def := range virtualDefs {
		os.MkdirAll(filepath.Join(vdir, name), 0o755)
		os.WriteFile(filepath.Join(vdir, name, "dovecot-virtual"), []byte(def), 0o644)
	}
	// Every backend message by content (the corpus's are unique).
	byHash := map[string]string{}
	for _, b := range backend(t, root) {
		byHash[hashFile(t, b.Path)] = b.Mailbox + "/" + baseOf(b.Name)
	}
	m := mount(t, root, "--virtual-dir", vdir)
	got := map[string]map[string]bool{}
	for name := range virtualDefs {
		got[name] = map[string]bool{}
		for _, sub := range []string{"new", "cur"} {
			for _, n := range names(t, m.path(name, sub)) {
				id, ok := byHash[hashFile(t, m.path(name, sub, n))]
				if !ok {
					t.Fatalf("%s/%s/%s is no backend message", name, sub, n)
				}
				got[name][id] = true
			}
		}
	}
	m.unmount() // Dovecot may move new/ to cur/ in the backend
	// Dovecot's CONTROL stays in the Maildirs, where the keyword maps
	// (dovecot-keywords) are.

	state := filepath.Join(top, "dovecot")
	conf := writeVirtualDovecotConf(root, state, vdir)
	if out, err := exec.Command("chown", "-R", "65534:65534", top).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	var names []string
	for name := range virtualDefs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cmd := exec.Command(doveadm, "-c", conf, "-f", "tab", "fetch", "mailbox guid", "mailbox", "Virtual."+name, "ALL")
		cmd.Env = append(os.Environ(), "USER=nobody", "HOME="+filepath.Join(state, "home"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Fatalf("doveadm fetch Virtual.%s: %v\n%s", name, err, stderr.String())
		}
		want := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n")[1:] {
			mbox, guid, _ := strings.Cut(line, "\t")
			want[strings.ReplaceAll(mbox, ".", "/")+"/"+guid] = true
		}
		var onlyV, onlyD []string
		for id := range got[name] {
			if !want[id] {
				onlyV = append(onlyV, id)
			}
		}
		for id := range want {
			if !got[name][id] {
				onlyD = append(onlyD, id)
			}
		}
		if len(onlyV)+len(onlyD) > 0 {
			sort.Strings(onlyV)
			sort.Strings(onlyD)
			t.Errorf("%s: vmfs %d, Dovecot %d; only vmfs %q; only Dovecot %q", name, len(got[name]), len(want), onlyV[:min(3, len(onlyV))], onlyD[:min(3, len(onlyD))])
		} else {
			t.Logf("%s: %d messages in both", name, len(want))
		}
	}
}

// writeVirtualDovecotConf writes a Dovecot configuration for doveadm
// (uid 65534, no daemon) serving the Maildir++ tree root, with the
// dovecot-virtual folders of vdir as Virtual.<Name>; indexes under state.
// It returns the configuration's path.
func writeVirtualDovecotConf(root, state, vdir string) string {
	for _, d := range []string{"home", "run", "state"} {
		os.MkdirAll(filepath.Join(state, d), 0o755)
	}
	conf := filepath.Join(state, "dovecot.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`protocols =
ssl = no
log_path = /dev/stderr
base_dir = %[2]s/run
state_dir = %[2]s/state
mail_uid = 65534
mail_gid = 65534
first_valid_uid = 1
mail_location = maildir:%[1]s:INDEX=%[2]s/index
mail_plugins = $mail_plugins virtual
namespace inbox {
  inbox = yes
  separator = .
  prefix =
}
namespace virtual {
  separator = .
  prefix = Virtual.
  location = virtual:%[3]s:INDEX=%[2]s/vindex
}
`, root, state, vdir)), 0o644)
	return conf
}
