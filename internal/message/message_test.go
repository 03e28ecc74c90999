package message

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func readFixture(t *testing.T, name string) (Header, *bufio.Reader) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(bytes.NewReader(b))
	h, err := ReadHeader(br)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return h, br
}

func bodyText(t *testing.T, h Header, r io.Reader) string {
	var b strings.Builder
	if err := WalkText(h, r, func(s string) bool { b.WriteString(s); return false }); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestFixtures(t *testing.T) {
	for _, tc := range []struct {
		file    string
		header  string
		want    string // substring of the decoded header value
		inBody  []string
		notBody []string
	}{
		{file: "koi8.eml", header: "from", want: "Вася Пупкин <vasya@example.ru>", inBody: []string{"Привет мир"}},
		{file: "koi8.eml", header: "subject", want: "Résumé — folded line"},
		{file: "koi8.eml", header: "bcc", want: "Jörg <joerg@example.de>"},
		{file: "greek.eml", header: "subject", want: "Αθήνα και Москва", inBody: []string{"Schöne Grüße aus der Straße"}},
		{file: "raw8bit.eml", header: "subject", want: "Gr\uFFFDe raw latin1 header", inBody: []string{"rawbodytoken"}},
		{file: "noseparator.eml", header: "x-thing", want: "value"},
		{file: "brokenmime.eml", header: "subject", want: "broken mime",
			inBody: []string{"brokenmimetoken", "second part café and softbreak"}, notBody: []string{"preamble"}},
		{file: "embedded.eml", header: "subject", want: "Fwd: embedded",
			inBody: []string{"see attached", "innersubjecttoken", "inner body naïve innerbodytoken"}, notBody: []string{"imagetoken"}},
		{file: "unknowncharset.eml", header: "subject", want: "=?x-unknown-cs?Q?abc?= tail words", inBody: []string{"uctoken"}},
	} {
		h, br := readFixture(t, tc.file)
		vals := h.Values(tc.header)
		if len(vals) != 1 || !strings.Contains(vals[0], tc.want) {
			t.Errorf("%s %s = %q, want %q", tc.file, tc.header, vals, tc.want)
		}
		body := bodyText(t, h, br)
		for _, s := range tc.inBody {
			if !strings.Contains(body, s) {
				t.Errorf("%s body lacks %q: %q", tc.file, s, body)
			}
		}
		for _, s := range tc.notBody {
			if strings.Contains(body, s) {
				t.Errorf("%s body has %q", tc.file, s)
			}
		}
	}
}

func TestReadHeaderShapes(t *testing.T) {
	in := "Subject: one\r\n two\r\n\tthree\r\nnot a field\r\nX-A:\r\nBad Name: x\r\nFrom: a@b\r\n\r\nbody"
	br := bufio.NewReader(strings.NewReader(in))
	h, err := ReadHeader(br)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Values("SUBJECT"); len(got) != 1 || got[0] != "one two\tthree" {
		t.Errorf("folded subject = %q", got)
	}
	if !h.Has("x-a") || h.Has("bad name") || len(h) != 3 {
		t.Errorf("fields = %+v", h)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "body" {
		t.Errorf("body = %q", rest)
	}
}

func TestHugeLineAndHeader(t *testing.T) {
	long := strings.Repeat("y", 1<<20)
	in := "Subject: " + long + "\nX-After: kept\n\nbody " + long + " end\n"
	br := bufio.NewReaderSize(strings.NewReader(in), 4096)
	h, err := ReadHeader(br)
	if err != nil {
		t.Fatal(err)
	}
	if s := h.Values("subject"); len(s) != 1 || len(s[0]) > MaxField {
		t.Errorf("subject not bounded: %d", len(s[0]))
	}
	if v := h.Values("x-after"); len(v) != 1 || v[0] != "kept" {
		t.Errorf("field after a 1 MB line lost: %q", v)
	}
	body := bodyText(t, h, br)
	if !strings.HasSuffix(strings.TrimSpace(body), "end") {
		t.Error("body after a huge line lost")
	}
}

// zeroReader produces a 100 MB message body without holding it.
type bigBody struct{ left int }

func (b *bigBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	n := min(len(p), b.left)
	for i := 0; i < n; i++ {
		p[i] = "abcdefghij klmnopqrstuvwxyz\n"[i%28]
	}
	b.left -= n
	return n, nil
}

func TestHundredMegabytesBoundedMemory(t *testing.T) {
	hdr := "From: x@y\nContent-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n"
	r := io.MultiReader(strings.NewReader(hdr), &bigBody{left: 100 << 20}, strings.NewReader("\n--B--\n"))
	br := bufio.NewReader(r)
	h, err := ReadHeader(br)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak uint64
	n, total := 0, 0
	WalkText(h, br, func(s string) bool {
		total += len(s)
		if n++; n%256 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
		return false
	})
	if total < 50<<20 {
		t.Errorf("decoded only %d bytes", total)
	}
	if peak > base+64<<20 {
		t.Errorf("heap grew by %d MB while walking 100 MB", (peak-base)>>20)
	}
}

func TestParseDate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // RFC 3339, "" = unparseable
	}{
		{"Mon, 2 Jan 2023 23:30:00 -0500", "2023-01-02T23:30:00-05:00"},
		{"Tue, 14 May 2024 01:30:00 +0200 (CEST)", "2024-05-14T01:30:00+02:00"},
		{"3 Mar 2024 10:00 GMT", "2024-03-03T10:00:00Z"},
		{"Sun, 3 Mar 24 10:00:00 +0000", "2024-03-03T10:00:00Z"},
		{"Fri,  1 Mar 2024 10:00:00 +0100", "2024-03-01T10:00:00+01:00"},
		{"1 Mar 2024 10:00:00 XYZ", "2024-03-01T10:00:00Z"},
		{"2024-03-01 10:00:00", "2024-03-01T10:00:00Z"},
		{"yesterday", ""},
		{"", ""},
	} {
		got, ok := ParseDate(tc.in)
		if (tc.want == "") != !ok || (ok && got.Format(time.RFC3339) != tc.want) {
			t.Errorf("ParseDate(%q) = %v %v, want %s", tc.in, got.Format(time.RFC3339), ok, tc.want)
		}
	}
}

func TestMessageIDs(t *testing.T) {
	got := MessageIDs("<a@x> (comment) <b@y>\n <c@z> <bad id> <>")
	if strings.Join(got, ",") != "a@x,b@y,c@z" {
		t.Errorf("MessageIDs = %q", got)
	}
}

func FuzzHeader(f *testing.F) {
	ents, _ := os.ReadDir("testdata")
	for _, e := range ents {
		if b, err := os.ReadFile("testdata/" + e.Name()); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("Subject: =?utf-8?q?=ZZ?=\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(b), 64)
		h, err := ReadHeader(br)
		if err != nil {
			t.Fatalf("ReadHeader failed on in-memory input: %v", err)
		}
		for _, f := range h {
			if f.Name != strings.ToLower(f.Name) || strings.ContainsAny(f.Name, ": \t\r\n") {
				t.Fatalf("bad field name %q", f.Name)
			}
			_ = Decode(f.Value)
		}
		_ = WalkText(h, br, func(string) bool { return false })
		ParseDate(string(b))
	})
}
