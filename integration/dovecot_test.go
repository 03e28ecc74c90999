package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// dovecot runs Dovecot's imap preauthenticated over a pipe, serving the
// mount as a Maildir tree (LAYOUT=fs), as the unprivileged uid 65534.
// With controlInside its INDEX and CONTROL files live in the mount.
type dovecot struct {
	t      *testing.T
	dir    string
	conf   string
	c      *imapclient.Client
	cmd    *exec.Cmd
	conn   net.Conn
	mnt    string
	inner  bool
	exists atomic.Uint32
	// expunged counts the EXPUNGE responses the session got.
	expunged atomic.Uint32
	stderr   *bytes.Buffer
}

// dovecotUID is the user the tests' Dovecot runs as. The backends it
// serves through a mount belong to it: with allow_other the kernel lets in
// only the backend's owner (and root).
const dovecotUID = 65534

// ownBy gives a backend to a user, as a Maildir in that user's home is.
func ownBy(t *testing.T, root string, uid int) {
	t.Helper()
	if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", uid, uid), root).CombinedOutput(); err != nil {
		t.Fatalf("chown %s: %v %s", root, err, out)
	}
}

func (d *dovecot) numMessages() uint32 { return d.exists.Load() }

func startDovecot(t *testing.T, mnt, dir string, controlInside bool) *dovecot {
	t.Helper()
	if _, err := exec.LookPath("doveadm"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("dovecot not installed: .ci/run installs dovecot-core and dovecot-imapd")
		}
		t.Skip("dovecot not installed")
	}
	if _, err := os.Stat("/usr/lib/dovecot/imap"); err != nil {
		t.Skip("dovecot-imapd not installed")
	}
	d := &dovecot{t: t, dir: dir, mnt: mnt, inner: controlInside}
	for _, s := range []string{"home", "run", "state", "inbox/cur", "inbox/new", "inbox/tmp"} {
		os.MkdirAll(filepath.Join(dir, s), 0o755)
	}
	loc := fmt.Sprintf("maildir:%s:LAYOUT=fs:INBOX=%s/inbox:INDEX=%s/index:CONTROL=%s/control", mnt, dir, dir, dir)
	if controlInside {
		loc = fmt.Sprintf("maildir:%s:LAYOUT=fs:INBOX=%s/inbox", mnt, dir)
	}
	d.conf = filepath.Join(dir, "dovecot.conf")
	os.WriteFile(d.conf, []byte(fmt.Sprintf(`protocols = imap
ssl = no
log_path = %[1]s/dovecot.log
base_dir = %[1]s/run
state_dir = %[1]s/state
mail_uid = 65534
mail_gid = 65534
first_valid_uid = 1
mail_location = %[2]s
namespace inbox {
  inbox = yes
  separator = /
  prefix =
}
# The README's recipe: vmfs's per-folder dovecot-acl files withhold the
# delete right, so DELETE of a virtual folder is refused before Dovecot
# expunges its messages.
mail_plugins = $mail_plugins acl
plugin {
  acl = vfile
}
`, dir, loc)), 0o644)
	exec.Command("chown", "-R", "65534:65534", dir).Run()
	// t.TempDir's parent is 0700: let uid 65534 reach the mount and dir.
	os.Chmod(filepath.Dir(mnt), 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	d.connect()
	return d
}

func (d *dovecot) connect() {
	t := d.t
	client, server := net.Pipe()
	d.cmd = exec.Command("doveadm", "-c", d.conf, "exec", "imap")
	d.cmd.Env = []string{"USER=nobody", "HOME=" + filepath.Join(d.dir, "home"), "PATH=" + os.Getenv("PATH")}
	d.cmd.Stdin, d.cmd.Stdout = server, server
	d.stderr = &bytes.Buffer{}
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.conn = server
	d.c = imapclient.New(client, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(m *imapclient.UnilateralDataMailbox) {
				if m.NumMessages != nil {
					d.exists.Store(*m.NumMessages)
				}
			},
			Expunge: func(uint32) { d.expunged.Add(1) },
		},
	})
	t.Cleanup(d.close)
}

func (d *dovecot) close() {
	if d.c == nil {
		return
	}
	d.c.Logout().Wait()
	d.c.Close()
	d.conn.Close()
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		d.cmd.Process.Kill()
	}
	d.c = nil
	if os.Getenv("VMFS_SHOW_DOVECOT_LOG") != "" {
		b, _ := os.ReadFile(filepath.Join(d.dir, "dovecot.log"))
		d.t.Logf("dovecot.log:\n%s\nimap stderr:\n%s", b, d.stderr)
	}
	b, _ := os.ReadFile(filepath.Join(d.dir, "dovecot.log"))
	b = append(b, d.stderr.Bytes()...)
	for _, bad := range []string{"Error:", "Panic:", "Fatal:", "Warning:"} {
		if bytes.Contains(b, []byte(bad)) {
			d.t.Errorf("Dovecot logged problems:\n%s", b)
			break
		}
	}
}

func TestDovecotServesTheMount(t *testing.T) {
	for _, inside := range []bool{false, true} {
		name := "control-outside"
		if inside {
			name = "control-inside"
		}
		t.Run(name, func(t *testing.T) { testDovecot(t, inside) })
	}
}

func testDovecot(t *testing.T, controlInside bool) {
	root := genBackend(t, 120)
	cfg := configFile(t, `
[folder.Unread]
mailboxes = ["*", "-Trash", "-Junk", "-Spam"]
query = "UNSEEN"
[folder.Lists]
mailboxes = ["Lists/*"]
query = "ALL"
save = "Lists/appended"
`)
	ownBy(t, root, dovecotUID)
	m := mount(t, root, "--config", cfg, "-o", "allow_other")
	truth := unreadTruth(t, root)
	want := map[string]int{} // content hash → count, before Dovecot moves new/ to cur/
	for p := range truth {
		want[lfHash(t, p)]++
	}
	d := startDovecot(t, m.mnt, t.TempDir(), controlInside)

	// LIST shows the virtual folders.
	list, err := d.c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	var names []string
	for _, l := range list {
		names = append(names, l.Mailbox)
	}
	joined := "," + strings.Join(names, ",") + ","
	if !strings.Contains(joined, ",Unread,") || !strings.Contains(joined, ",Lists,") {
		t.Fatalf("LIST = %q", names)
	}
	// SELECT Unread has exactly the unseen messages.
	sel, err := d.c.Select("Unread", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	if int(sel.NumMessages) != len(truth) {
		t.Fatalf("SELECT Unread: %d messages, the backend has %d unseen", sel.NumMessages, len(truth))
	}
	validity := sel.UIDValidity
	d.exists.Store(sel.NumMessages)
	// FETCH BODY[] equals the backend bytes, message for message.
	all, err := d.c.Fetch(seqAll(sel.NumMessages), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(all) != len(truth) {
		t.Fatalf("FETCH 1:*: %d messages, %v", len(all), err)
	}
	uids := map[imap.UID]string{}
	for _, msg := range all {
		h := hashOf(bytes.ReplaceAll(msg.BodySection[0].Bytes, []byte("\r\n"), []byte("\n")))
		if want[h] == 0 {
			t.Fatalf("FETCH BODY[] of UID %d matches no backend message", msg.UID)
		}
		want[h]--
		uids[msg.UID] = h
	}
	// STORE +FLAGS (\Flagged) renames that backend file.
	target := all[0]
	if err := d.c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatalf("STORE \\Flagged: %v", err)
	}
	if b := backendByHash(t, root, uids[target.UID]); !strings.Contains(b.Flags, "F") {
		t.Errorf("backend %s did not get F", b.Path)
	}
	// STORE +FLAGS (\Deleted) and EXPUNGE delete that file and nothing else.
	before := len(backend(t, root))
	victim := all[1]
	if err := d.c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatalf("STORE \\Deleted: %v", err)
	}
	if err := d.c.Expunge().Close(); err != nil {
		t.Fatalf("EXPUNGE: %v", err)
	}
	d.exists.Store(uint32(len(all) - 1)) // EXPUNGE's own responses went to the command
	if after := len(backend(t, root)); after != before-1 {
		t.Fatalf("EXPUNGE: backend %d -> %d messages", before, after)
	}
	for _, b := range backend(t, root) {
		if lfHash(t, b.Path) == uids[victim.UID] {
			t.Fatal("the expunged message is still in the backend")
		}
	}
	// A delivery into the backend is reported by NOOP.
	n := d.numMessages()
	quickDeliver(t, root, "Subject: noop test\n\nnew mail\n")
	ownBy(t, root, dovecotUID) // as the user's delivery agent would write it
	deadline := time.Now().Add(5 * time.Second)
	for d.numMessages() <= n {
		if time.Now().After(deadline) {
			t.Fatalf("NOOP never reported the delivery (EXISTS %d)", d.numMessages())
		}
		time.Sleep(50 * time.Millisecond)
		d.c.Noop().Wait()
	}
	// APPEND into a folder with a save mailbox delivers into the backend.
	msg := "From: appender@example.org\r\nSubject: appended through IMAP\r\n\r\nhello\r\n"
	appendDate := time.Date(2019, 7, 1, 12, 0, 0, 0, time.UTC)
	app := d.c.Append("Lists", int64(len(msg)), &imap.AppendOptions{Time: appendDate})
	io.WriteString(app, msg)
	app.Close()
	if _, err := app.Wait(); err != nil {
		t.Fatalf("APPEND: %v", err)
	}
	found := false
	for _, b := range backend(t, root) {
		if b.Mailbox == "Lists/appended" {
			data, _ := os.ReadFile(b.Path) // Dovecot stores LF line ends
			if string(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))) == strings.ReplaceAll(msg, "\r\n", "\n") {
				found = true
				// APPEND's date is the INTERNALDATE: the file's mtime.
				if fi, err := os.Stat(b.Path); err != nil || !fi.ModTime().Equal(appendDate) {
					t.Errorf("APPEND with a date: backend mtime %v, want %v", fi.ModTime(), appendDate)
				}
			}
		}
	}
	if !found {
		t.Fatal("APPEND did not reach Lists/appended")
	}
	// After vmfs is unmounted and mounted again, UIDVALIDITY and every UID
	// are unchanged.
	d.close()
	m.remount()
	d.connect()
	sel2, err := d.c.Select("Unread", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT after remount: %v", err)
	}
	if sel2.UIDValidity != validity {
		t.Fatalf("UIDVALIDITY %d -> %d", validity, sel2.UIDValidity)
	}
	again, err := d.c.Fetch(seqAll(sel2.NumMessages), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range again {
		h := hashOf(bytes.ReplaceAll(msg.BodySection[0].Bytes, []byte("\r\n"), []byte("\n")))
		if old, ok := uids[msg.UID]; ok && old != h {
			t.Fatalf("UID %d names another message after the remount", msg.UID)
		}
	}
	kept := 0
	for _, msg := range again {
		if _, ok := uids[msg.UID]; ok {
			kept++
		}
	}
	if kept < len(all)-2 {
		t.Fatalf("only %d of %d UIDs survived the remount", kept, len(all))
	}
}

func seqAll(n uint32) imap.SeqSet {
	var s imap.SeqSet
	s.AddRange(1, n)
	return s
}

// lfHash hashes a file with CRLF line ends turned into LF: IMAP sends
// messages with CRLF whatever the file has.
func lfHash(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return hashOf(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")))
}

func backendByHash(t *testing.T, root, h string) backendMsg {
	for _, b := range backend(t, root) {
		if lfHash(t, b.Path) == h {
			return b
		}
	}
	t.Fatalf("no backend message with hash %s", h[:8])
	return backendMsg{}
}
