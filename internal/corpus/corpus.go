// Package corpus generates deterministic test Maildirs: N messages over F
// mailboxes with realistic headers (encoded words in several charsets,
// threads, mailing-list fields), MIME structures (quoted-printable, base64,
// alternatives, attachments, nested multiparts, embedded messages), flags
// and keywords, in both cur/ and new/. The same options always give the
// same bytes, names and mtimes; tests, benchmarks and the integration suite
// share it.
package corpus

import (
	"encoding/base64"
	"fmt"
	"math/rand"
	"mime"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"strings"
	"time"

	"vmfs/internal/maildir"
)

// Options control a corpus.
type Options struct {
	Messages  int
	Mailboxes int       // at most len(MailboxNames); 0 means 8
	Seed      int64     // same seed, same corpus
	Now       time.Time // mtimes and dates are spread over the year before Now
	CRLF      bool      // CRLF line ends (Dovecot's RFC822.SIZE then equals the file size)
	Nested    bool      // nested layout (A/B/cur) instead of Maildir++ (.A.B/cur)
	BodyScale int       // multiplies body lengths; 0 means 1
}

// MailboxNames are the mailboxes a corpus uses, in order.
var MailboxNames = []string{
	"INBOX", "Sent", "Lists/go-nuts", "Lists/dovecot", "Work", "Work/Project-A", "Reçus", "Archive/2024",
	"Trash", "Junk", "Lists/linux-kernel", "Lists/rust", "Work/Project-B", "Archive/2023", "Family", "Travel",
	"Receipts", "Newsletters", "Drafts", "Archive/2022", "Work/HR", "Work/Ops", "Lists/debian-devel",
	"Lists/nixos", "Friends", "Bank", "Health", "Home", "School", "Sports", "Photos", "Music", "Books",
	"Games", "Events", "Clients/ACME", "Clients/Globex", "Clients/Initech", "Support", "Misc",
}

// Message describes one generated message.
type Message struct {
	Mailbox string
	Path    string
	Base    string
	Flags   string
	New     bool
}

var (
	firstNames = []string{"Alice", "Bob", "Carol", "Dmitri", "Émile", "François", "Jürgen", "Søren", "Zoë", "Γιώργος", "Ελένη", "Иван", "Мария", "李", "José", "Ønskeøen", "Ana", "Ngozi", "Priya", "Tomás"}
	lastNames  = []string{"Smith", "Müller", "Dubois", "Ivanov", "Papadopoulos", "García", "Østergaard", "Kowalski", "O'Brien", "Nguyen", "Straße", "Petrović"}
	domains    = []string{"example.org", "example.com", "mail.example.net", "lists.example.org", "golang.example", "dovecot.example"}
	words      = []string{"release", "meeting", "invoice", "build", "kernel", "patch", "review", "lunch", "Straße", "café", "naïve", "résumé", "Übergröße", "ΑΘΗΝΑ", "Москва", "déjà", "vu", "server", "deploy", "question", "answer", "urgent", "weekly", "report", "the", "a", "of", "and", "golang", "virtual", "folder", "maildir", "flag", "unicode"}
	lists      = map[string]string{"Lists/go-nuts": "golang-nuts.googlegroups.com", "Lists/dovecot": "dovecot.dovecot.org", "Lists/linux-kernel": "linux-kernel.vger.kernel.org", "Lists/rust": "rust-users.rust-lang.org", "Lists/debian-devel": "debian-devel.lists.debian.org", "Lists/nixos": "nixos.discourse.example"}
)

type gen struct {
	r   *rand.Rand
	o   Options
	nl  string
	ids []string
}

// Generate writes a corpus under root (created if needed) and returns its
// messages in generation order.
func Generate(root string, o Options) ([]Message, error) {
	if o.Mailboxes <= 0 {
		o.Mailboxes = 8
	}
	if o.Mailboxes > len(MailboxNames) {
		return nil, fmt.Errorf("corpus: at most %d mailboxes", len(MailboxNames))
	}
	if o.Now.IsZero() {
		o.Now = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	}
	if o.BodyScale <= 0 {
		o.BodyScale = 1
	}
	g := &gen{r: rand.New(rand.NewSource(o.Seed)), o: o, nl: "\n"}
	if o.CRLF {
		g.nl = "\r\n"
	}
	dirs := make([]string, o.Mailboxes)
	for i := range dirs {
		dirs[i] = MailboxDir(root, MailboxNames[i], o.Nested)
		for _, s := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(dirs[i], s), 0o755); err != nil {
				return nil, err
			}
		}
		kw := "0 $Important\n1 work\n2 $Junk\n"
		if err := os.WriteFile(filepath.Join(dirs[i], maildir.KeywordsFile), []byte(kw), 0o644); err != nil {
			return nil, err
		}
	}
	out := make([]Message, 0, o.Messages)
	for i := 0; i < o.Messages; i++ {
		mb := g.r.Intn(o.Mailboxes)
		if g.r.Intn(3) == 0 {
			mb = 0 // INBOX is the biggest
		}
		name := MailboxNames[mb]
		received := o.Now.Add(-time.Duration(g.r.Int63n(int64(365 * 24 * time.Hour))))
		received = received.Truncate(time.Second)
		body := g.message(i, name, received)
		flags := g.flags()
		isNew := g.r.Intn(10) == 0
		if isNew {
			flags = ""
		}
		base := fmt.Sprintf("%d.M%dP%dV%d.vmfsgen,S=%d", received.Unix(), i%1000000, 1000+mb, i, len(body))
		fn := base + ":2," + flags
		sub := "cur"
		if isNew {
			sub, fn = "new", base
		}
		p := filepath.Join(dirs[mb], sub, fn)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return nil, err
		}
		if err := os.Chtimes(p, received, received); err != nil {
			return nil, err
		}
		out = append(out, Message{Mailbox: name, Path: p, Base: base, Flags: flags, New: isNew})
	}
	return out, nil
}

// MailboxDir is the directory of mailbox name under root in a layout.
func MailboxDir(root, name string, nested bool) string {
	if name == maildir.Inbox {
		return root
	}
	if nested {
		return filepath.Join(root, filepath.FromSlash(name))
	}
	return filepath.Join(root, maildir.PlusPlusDir(name))
}

func (g *gen) pick(s []string) string { return s[g.r.Intn(len(s))] }

func (g *gen) flags() string {
	var f []byte
	if g.r.Intn(10) < 7 {
		f = append(f, 'S')
	}
	if g.r.Intn(10) == 0 {
		f = append(f, 'F')
	}
	if g.r.Intn(7) == 0 {
		f = append(f, 'R')
	}
	if g.r.Intn(50) == 0 {
		f = append(f, 'T')
	}
	if g.r.Intn(100) == 0 {
		f = append(f, 'D')
	}
	if g.r.Intn(20) == 0 {
		f = append(f, 'a'+byte(g.r.Intn(3)))
	}
	return maildir.NormFlags(string(f))
}

// encodeWord encodes s as an RFC 2047 word in a charset that can hold it.
func (g *gen) encode(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
		}
	}
	if ascii && g.r.Intn(4) != 0 {
		return s
	}
	if latin1, ok := toLatin1(s); ok && g.r.Intn(2) == 0 {
		return qEncodeLatin1(latin1)
	}
	if g.r.Intn(2) == 0 {
		return mime.BEncoding.Encode("UTF-8", s)
	}
	return mime.QEncoding.Encode("UTF-8", s)
}

func toLatin1(s string) ([]byte, bool) {
	var b []byte
	for _, r := range s {
		if r > 0xff {
			return nil, false
		}
		b = append(b, byte(r))
	}
	return b, true
}

func qEncodeLatin1(b []byte) string {
	var sb strings.Builder
	sb.WriteString("=?ISO-8859-1?Q?")
	for _, c := range b {
		switch {
		case c == ' ':
			sb.WriteByte('_')
		case c >= 0x80 || c == '=' || c == '?' || c == '_' || c < 0x20:
			fmt.Fprintf(&sb, "=%02X", c)
		default:
			sb.WriteByte(c)
		}
	}
	sb.WriteString("?=")
	return sb.String()
}

func (g *gen) person() (display, addr string) {
	first, last := g.pick(firstNames), g.pick(lastNames)
	local := strings.ToLower(fmt.Sprintf("p%d", g.r.Intn(500)))
	addr = local + "@" + g.pick(domains)
	switch g.r.Intn(4) {
	case 0:
		return addr, addr
	case 1:
		return fmt.Sprintf("%q <%s>", last+", "+first, addr), addr
	}
	return g.encode(first+" "+last) + " <" + addr + ">", addr
}

func (g *gen) phrase(n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = g.pick(words)
	}
	return strings.Join(w, " ")
}

func (g *gen) text(lines int) string {
	var b strings.Builder
	for i := 0; i < lines; i++ {
		b.WriteString(g.phrase(4 + g.r.Intn(8)))
		b.WriteString(g.nl)
	}
	return b.String()
}

func (g *gen) message(i int, mailbox string, received time.Time) string {
	nl := g.nl
	var h strings.Builder
	from, _ := g.person()
	to, _ := g.person()
	fmt.Fprintf(&h, "Return-Path: <bounce-%d@%s>%s", i, g.pick(domains), nl)
	fmt.Fprintf(&h, "From: %s%s", from, nl)
	fmt.Fprintf(&h, "To: %s%s", to, nl)
	if g.r.Intn(3) == 0 {
		cc, _ := g.person()
		cc2, _ := g.person()
		fmt.Fprintf(&h, "Cc: %s,%s %s%s", cc, nl, cc2, nl)
	}
	subj := g.phrase(2 + g.r.Intn(6))
	if g.r.Intn(4) == 0 {
		subj = "Re: " + subj
	}
	fmt.Fprintf(&h, "Subject: %s%s", g.encode(subj), nl)
	zone := time.FixedZone("", (g.r.Intn(25)-12)*3600)
	sent := received.Add(-time.Duration(g.r.Intn(7200)) * time.Second).In(zone)
	fmt.Fprintf(&h, "Date: %s%s", sent.Format(time.RFC1123Z), nl)
	id := fmt.Sprintf("%d.%d@%s", i, g.o.Seed, g.pick(domains))
	fmt.Fprintf(&h, "Message-ID: <%s>%s", id, nl)
	if len(g.ids) > 0 && g.r.Intn(3) == 0 {
		parent := g.ids[g.r.Intn(len(g.ids))]
		fmt.Fprintf(&h, "In-Reply-To: <%s>%sReferences: <%s>%s", parent, nl, parent, nl)
	}
	g.ids = append(g.ids, id)
	if len(g.ids) > 200 {
		g.ids = g.ids[1:]
	}
	if l, ok := lists[mailbox]; ok {
		fmt.Fprintf(&h, "List-Id: %s <%s>%s", strings.SplitN(l, ".", 2)[0], l, nl)
	}
	if g.r.Intn(5) == 0 {
		fmt.Fprintf(&h, "X-Spam-Score: %d.%d%s", g.r.Intn(10), g.r.Intn(10), nl)
	}
	fmt.Fprintf(&h, "Received: from mx.%s by mail.example.org;%s\t%s%s", g.pick(domains), nl, received.Format(time.RFC1123Z), nl)
	fmt.Fprintf(&h, "MIME-Version: 1.0%s", nl)
	lines := (3 + g.r.Intn(40)) * g.o.BodyScale
	switch g.r.Intn(6) {
	case 0, 1: // plain UTF-8, 8bit
		fmt.Fprintf(&h, "Content-Type: text/plain; charset=utf-8%sContent-Transfer-Encoding: 8bit%s%s", nl, nl, nl)
		return h.String() + g.text(lines)
	case 2: // quoted-printable
		fmt.Fprintf(&h, "Content-Type: text/plain; charset=UTF-8%sContent-Transfer-Encoding: quoted-printable%s%s", nl, nl, nl)
		return h.String() + g.qp(g.text(lines))
	case 3: // alternative
		b := fmt.Sprintf("alt-%d", i)
		fmt.Fprintf(&h, "Content-Type: multipart/alternative; boundary=\"%s\"%s%s", b, nl, nl)
		t := g.text(lines)
		return h.String() + "--" + b + nl + "Content-Type: text/plain; charset=utf-8" + nl + nl + t +
			"--" + b + nl + "Content-Type: text/html; charset=utf-8" + nl + "Content-Transfer-Encoding: base64" + nl + nl +
			g.b64("<html><body><p>"+t+"</p></body></html>") + "--" + b + "--" + nl
	case 4: // mixed with an attachment and a nested alternative
		b := fmt.Sprintf("mix-%d", i)
		fmt.Fprintf(&h, "Content-Type: multipart/mixed; boundary=\"%s\"%s%s", b, nl, nl)
		att := make([]byte, 512*(1+g.r.Intn(8))*g.o.BodyScale)
		g.r.Read(att)
		return h.String() + "This is a multi-part message in MIME format." + nl + "--" + b + nl +
			"Content-Type: multipart/alternative; boundary=\"in-" + b + "\"" + nl + nl +
			"--in-" + b + nl + "Content-Type: text/plain; charset=utf-8" + nl + nl + g.text(lines) +
			"--in-" + b + "--" + nl +
			"--" + b + nl + "Content-Type: application/pdf; name=\"report.pdf\"" + nl +
			"Content-Disposition: attachment; filename=\"report.pdf\"" + nl + "Content-Transfer-Encoding: base64" + nl + nl +
			g.b64(string(att)) + "--" + b + "--" + nl
	default: // base64 text
		fmt.Fprintf(&h, "Content-Type: text/plain; charset=utf-8%sContent-Transfer-Encoding: base64%s%s", nl, nl, nl)
		return h.String() + g.b64(g.text(lines))
	}
}

func (g *gen) qp(s string) string {
	var b strings.Builder
	w := quotedprintable.NewWriter(&b)
	w.Write([]byte(strings.ReplaceAll(s, "\r\n", "\n")))
	w.Close()
	return strings.ReplaceAll(strings.ReplaceAll(b.String(), "\r\n", "\n"), "\n", g.nl) + g.nl
}

func (g *gen) b64(s string) string {
	enc := base64.StdEncoding.EncodeToString([]byte(s))
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76] + g.nl)
		enc = enc[76:]
	}
	b.WriteString(enc + g.nl)
	return b.String()
}
